"""Blank spreadsheets the townships fill in (`fazhi template training|returns --out FILE.xlsx`).

Headers are exactly those of docs/sources.md, under a title row, with a 填表说明 sheet in
Chinese; a filled-in template is read by the same parsers as any ledger.
"""

from __future__ import annotations

from pathlib import Path

import xlsxwriter

TRAINING_SHEETS = {
    "活动登记": ["活动编号", "日期", "活动类型", "主题", "主办单位", "学时"],
    "参训签到": ["活动编号", "姓名", "工号", "身份证号", "单位", "是否领导干部", "是否执法人员", "成绩", "是否合格"],
    "人员名册": ["工号", "姓名", "身份证号", "单位", "职务", "是否执法人员", "执法证号", "证件有效期"],
}
RETURN_HEADER = ["指标代码", "指标名称", "数值", "单位", "备注"]
RETURN_ITEMS = [
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
]

TRAINING_NOTES = [
    "填表说明",
    "1. 文件名：乡镇代码_年份_学法培训台账.xlsx，例如 350481101_2023_学法培训台账.xlsx。",
    "2. 请勿修改表头（第2行）和工作表名称；第1行标题可以改写。",
    "3. 「活动登记」每次培训一行；活动编号在本乡镇内唯一，如 PX350481101-2023-01。",
    "4. 日期填写为 2023-03-05（也可写 2023年3月5日、2023.3.5、2023/3/5 或Excel日期）。",
    "5. 活动类型：专题培训、领导干部法治课、部门学法、执法培训、法律知识测试、其他。",
    "6. 学时：每位参训人员计入的学时数（数字）。",
    "7. 「参训签到」每人每次培训一行；成绩、是否合格仅法律知识测试填写。",
    "8. 「人员名册」本乡镇当年全部在编人员；执法人员填写执法证号和证件有效期。",
    "9. 是/否类字段填写「是」或「否」。合计行可保留，系统会自动跳过。",
    "10. 姓名、身份证号仅用于匹配人员，入库前即删除或以密钥散列替代，不会出现在分析库中。",
    "11. 修改后按原文件名重新提交，新版本将整体替换旧版本（旧版本中删除的行会被关闭）。",
]
RETURN_NOTES = [
    "填表说明",
    "1. 文件名：乡镇代码_年份_年度报表.xlsx，例如 350481101_2023_年度报表.xlsx（也可另存为CSV）。",
    "2. 请勿修改表头（第2行）、指标代码和工作表顺序；只填写「数值」列，必要时填写备注。",
    "3. 数值填写数字；确实无法精确统计的可写「200余」「50以上」，系统按「不少于」处理。",
    "4. LIT02A、LIT02B 用于计算负责人出庭应诉率（LIT02 = LIT02A / LIT02B）。",
    "5. 表末填写「填报人：」和「填报日期：YYYY-MM-DD」；填报人姓名不会进入分析库。",
    "6. 修改后按原文件名重新提交，新版本将整体替换旧版本。",
]


def write_template(kind: str, out: Path) -> Path:
    out = Path(out)
    if out.suffix.lower() != ".xlsx":
        out = out.with_suffix(".xlsx")
    out.parent.mkdir(parents=True, exist_ok=True)
    wb = xlsxwriter.Workbook(str(out), {"strings_to_formulas": False})  # warehouse/formulas.py
    title = wb.add_format({"bold": True, "font_size": 14, "align": "center"})
    head = wb.add_format({"bold": True, "bg_color": "#DDEBF7", "border": 1})
    text = wb.add_format({"num_format": "@"})
    if kind == "training":
        for sheet, header in TRAINING_SHEETS.items():
            ws = wb.add_worksheet(sheet)
            ws.merge_range(0, 0, 0, len(header) - 1, f"××镇（街道）____年学法培训台账 · {sheet}", title)
            ws.write_row(1, 0, header, head)
            ws.set_column(0, len(header) - 1, 16, text)
            ws.freeze_panes(2, 0)
        notes = TRAINING_NOTES
    elif kind == "returns":
        ws = wb.add_worksheet("年度报表")
        ws.merge_range(0, 0, 0, len(RETURN_HEADER) - 1, "××镇（街道）____年度法治政府建设报表", title)
        ws.write_row(1, 0, RETURN_HEADER, head)
        for i, (code, name, unit) in enumerate(RETURN_ITEMS, 2):
            ws.write_row(i, 0, [code, name, None, unit, None])
        ws.write(len(RETURN_ITEMS) + 3, 0, "填报人：")
        ws.write(len(RETURN_ITEMS) + 4, 0, "填报日期：")
        ws.set_column(0, 0, 10)
        ws.set_column(1, 1, 28)
        ws.set_column(2, 4, 14)
        ws.freeze_panes(2, 0)
        notes = RETURN_NOTES
    else:
        wb.close()
        raise ValueError(f"unknown template {kind!r}: training or returns")
    ws = wb.add_worksheet("填表说明")
    ws.set_column(0, 0, 100)
    ws.write(0, 0, notes[0], title)
    for i, line in enumerate(notes[1:], 1):
        ws.write(i, 0, line)
    wb.close()
    return out
