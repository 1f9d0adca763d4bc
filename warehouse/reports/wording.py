"""Figures in words: the status vocabulary in Chinese and English, and values in the phrasing
township reports use (52件, 200余份, 98%以上, 100%). A figure without a value is said in words,
never printed as 0."""

from __future__ import annotations

import math
from decimal import Decimal

# mart.indicator_value.status (the briefing's shared vocabulary; `missing_return` is the name
# older databases use for `missing_source`). zh, en.
STATUS_WORDS = {
    "ok": ("正常", "ok"),
    "no_data": ("无数据（分母为0）", "no data (zero denominator)"),
    "missing_source": ("数据源缺失或被拒收", "source missing or refused"),
    "missing_return": ("年度报表未报送", "annual return missing"),
    "quarantined": ("输入数据被隔离，未计算", "input quarantined, not computed"),
    "calendar_not_covered": ("节假日历未覆盖该年，未计算", "holiday calendar does not cover the year"),
    "incomplete": ("部分乡镇缺数，合计不完整", "incomplete: townships missing"),
}
SOURCE_NAMES = {
    "enforcement": "行政执法平台",
    "mediation": "矛盾纠纷化解平台",
    "training": "学法培训台账",
    "returns": "年度报表",
}
LIGHT_WORDS = {"green": ("绿灯", "green"), "amber": ("黄灯", "amber"), "red": ("红灯", "red")}
NO_TARGET = ("无目标", "no target")


def status_words(row: dict) -> tuple[str, str]:
    """The status in words (zh, en); a county row names how many townships are missing."""
    status = row.get("status") or "no_data"
    zh, en = STATUS_WORDS.get(status, (f"状态 {status}", f"status {status}"))
    missing = row.get("missing_townships")
    if status == "incomplete" and missing:
        zh, en = f"{missing}个乡镇缺数，合计不完整", f"incomplete: {missing} township(s) missing"
    return zh, en


def light_words(light: str | None) -> tuple[str, str]:
    return LIGHT_WORDS.get(light or "", NO_TARGET)


def has_value(row: dict | None) -> bool:
    return row is not None and row.get("value") is not None


def _whole(x: float | int | Decimal) -> str:
    return str(int(x)) if float(x).is_integer() else f"{float(x):.1f}"


def rate_percent(row: dict) -> tuple[int, bool]:
    """(whole percent rounded down, exact?) computed from the integer numerator and denominator
    when there are any, so 29/100 is 29% and not 28% from a float."""
    num, den = row.get("numerator"), row.get("denominator")
    if num is not None and den:
        scaled = Decimal(num) * 100
        return int(scaled // Decimal(den)), scaled % Decimal(den) == 0
    pct = float(row["value"]) * 100
    near = round(pct)
    if math.isclose(pct, near, abs_tol=1e-9):
        return near, True
    return math.floor(pct), False


def phrase(row: dict, unit: str | None = None) -> str:
    """A figure as a report sentence says it: 52件, 200余份, 98%以上, 100%, 9.4天. `unit` replaces
    the catalogue's unit where a sentence counts in another measure word (讲座2次, 诉讼1起).
    The caller checks has_value first."""
    v, kind = row["value"], row["kind"]
    unit = unit or row["unit"]
    if kind == "rate":
        pct, exact = rate_percent(row)
        return f"{pct}%" if exact else f"{pct}%以上"
    more = "余" if row.get("qualifier") == ">=" else ""
    return f"{_whole(v)}{more}{unit}"


def short(row: dict | None) -> str:
    """A value for tables (annex, dashboard): 52, ≥200, 38.2%, 9.4; a missing figure in words."""
    if not has_value(row):
        return "—" if row is None else status_words(row)[0]
    v = row["value"]
    q = "≥" if row.get("qualifier") == ">=" else ""
    if row["kind"] == "rate":
        return f"{q}{float(v) * 100:.1f}%"
    return f"{q}{_whole(v)}"


def change(row: dict | None) -> str:
    """Change from last year: +12, −3, +4.5个百分点 (rates); blank when there is no last year."""
    if row is None or row.get("change_from_previous") is None:
        return ""
    c = float(row["change_from_previous"])
    if row["kind"] == "rate":
        return f"{c * 100:+.1f}个百分点".replace("-", "−")
    return ("+" if c >= 0 else "−") + _whole(abs(c))


def target(row: dict | None) -> str:
    if row is None or row.get("target_value") is None:
        return ""
    t = float(row["target_value"])
    return f"{t * 100:.0f}%" if row["kind"] == "rate" else _whole(t)


def explain_command(year: int, area: str, code: str) -> str:
    """The command that lists the records counted in a figure."""
    return f"fazhi explain --year {year} --township {area} --indicator {code}"
