"""The indicator codes the sample generator builds data for, and what kind of figure each is.

This mirrors ../shared/reference/indicators.md (the warehouse keeps its own catalogue in
warehouse/); the generator only needs each code's kind to parse a calibration profile and to
write targets.json.
"""

from __future__ import annotations

# kind: count | rate | amount (yuan, 2 decimals) | median_days | mean_days
INDICATORS: dict[str, str] = {
    "ENF01": "count",
    "ENF02": "count",
    "ENF03": "count",
    "ENF04": "count",
    "ENF05": "rate",
    "ENF06": "count",
    "ENF07": "rate",
    "ENF08": "rate",
    "ENF09": "rate",
    "ENF10": "amount",
    "ENF11": "median_days",
    "MED01": "count",
    "MED02": "rate",
    "MED03": "rate",
    "MED04": "count",
    "MED05": "mean_days",
    "TRN01": "count",
    "TRN02": "count",
    "TRN03": "count",
    "TRN04": "count",
    "TRN05": "count",
    "TRN06": "count",
    "TRN07": "rate",
    "TRN08": "rate",
    "TRN09": "rate",
    "LIT01": "count",
    "LIT02": "rate",
    "OGI01": "count",
    "OGI02": "count",
    "OGI03": "count",
    "PUB01": "count",
    "PUB02": "count",
    "PUB03": "count",
    "PUB04": "count",
    "PUB05": "count",
    "PUB06": "count",
}

# Counts a township reports on its annual return: ">=N" there means the return says "N余".
RETURN_COUNTS = ("LIT01", "OGI01", "OGI02", "OGI03", "PUB01", "PUB02", "PUB03", "PUB04", "PUB05", "PUB06")

# The return's rows: item code, name, unit (docs/sources.md).
RETURN_ITEMS: tuple[tuple[str, str, str], ...] = (
    ("LIT01", "行政应诉案件数", "件"),
    ("LIT02A", "负责人出庭应诉件数", "件"),
    ("LIT02B", "开庭审理件数", "件"),
    ("OGI01", "主动公开政府信息条数", "条"),
    ("OGI02", "依申请公开答复件数", "件"),
    ("OGI03", "法律顾问审核文件份数", "份"),
    ("PUB01", "普法宣传资料发放份数", "份"),
    ("PUB02", "法治讲座场次", "场"),
    ("PUB03", "户外法治广告牌更新面数", "面"),
    ("PUB04", "户外法治主题宣传活动次数", "次"),
    ("PUB05", "反诈主题宣传次数", "次"),
    ("PUB06", "新建反诈宣传阵地个数", "个"),
)

REQUIRED_TRAINING_HOURS = 60
