"""Blank spreadsheets the townships fill in (`fazhi template training|returns --out FILE.xlsx`).

Made so that a clerk can hardly get them wrong: the headers of docs/sources.md under a title row;
drop-down lists for every enumerated column (活动类型, 是/否, 指标代码); date and number validation
with an input message on each column; one greyed example row (its first cell starts with 示例,
so the parsers never read it, filled in or not); ID and certificate numbers formatted as text;
a sheet listing the county's township codes (for the file name); print setup (A4 landscape,
fitted to one page wide, title and header repeated on every page); and a 填表说明 sheet naming
the traps the parsers refuse or warn about.
"""

from __future__ import annotations

import unicodedata
from datetime import date
from pathlib import Path

import xlsxwriter

SESSION_TYPES = ["专题培训", "领导干部法治课", "部门学法", "执法培训", "法律知识测试", "其他"]
YES_NO = ["是", "否"]
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
LEDGER_ROWS = 500  # rows under the header carrying the validation
NOTES_WIDTH = 100  # the 填表说明 column, in characters

# The example row of each sheet (first cell 示例…: never read) and each column's width.
TRAINING_EXAMPLES = {
    "活动登记": ["示例：PX350481101-2023-01", "2023-03-05", "专题培训", "《行政处罚法》专题讲座", "镇司法所", 2],
    "参训签到": ["示例：PX350481101-2023-01", "张某某", "G001", "350481199001010000", "党政综合办公室", "否", "是",
                 90, "是"],
    "人员名册": ["示例：G001", "张某某", "350481199001010000", "综合执法大队", "队员", "是", "35040100001",
                 "2025-12-31"],
}  # fmt: skip
WIDTHS = {
    "活动编号": 24, "日期": 12, "活动类型": 16, "主题": 36, "主办单位": 18, "学时": 7, "姓名": 9, "工号": 9,
    "身份证号": 21, "单位": 18, "是否领导干部": 12, "是否执法人员": 12, "成绩": 7, "是否合格": 9, "职务": 10,
    "执法证号": 15, "证件有效期": 12,
}  # fmt: skip

TRAINING_NOTES = [
    "填表说明",
    "1. 文件名：乡镇代码_年份_学法培训台账.xlsx，例如 350481101_2023_学法培训台账.xlsx。乡镇代码见「乡镇代码」工作表；"
    "年份是台账所属年度(不能晚于今年)。请勿沿用模板的文件名。",
    "2. 请保存为 Excel 工作簿(.xlsx)：不要另存为 .xls、WPS 表格(.et)、OpenDocument(.ods)、"
    "网页(.htm/.mht)或 PDF；不要加密码。",
    "3. 三张表各一张工作表：请勿改动表头(第2行)和工作表名称，不要增删列(增加的列不会读取)，不要隐藏工作表"
    "(隐藏的工作表不会读取)；全年的记录填在同一张表中，不要按季度拆分工作表或文件。",
    "4. 「活动登记」每次培训一行；活动编号在本乡镇内唯一，如 PX350481101-2023-01。",
    "5. 日期填写为 2023-03-05(也可写 2023年3月5日、2023.3.5、2023/3/5 或 Excel 日期)。",
    "6. 活动类型从下拉列表中选择：" + "、".join(SESSION_TYPES) + "。",
    "7. 学时、成绩只填数字(可带“学时”“分”)，不要写“约”“余”“万”或汉字数字。",
    "8. 「参训签到」每人每次培训一行；成绩、是否合格仅法律知识测试填写。",
    "9. 「人员名册」本乡镇当年全部在编人员；执法人员填写执法证号和证件有效期。",
    "10. 是/否类字段从下拉列表中选择「是」或「否」。",
    "11. 灰色的示例行不会被读取，可以保留或删除；合计行会自动跳过。",
    "12. 表格下方的制表人、审核人、填报日期等签字行之后的内容不会读取：请把所有记录填在签字行之上。",
    "13. 姓名、身份证号仅用于匹配人员，入库前即删除或以密钥散列替代，不会出现在分析库中。",
    "14. 修改后请按原文件名重新提交，新版本将整体替换旧版本(旧版本中删除的行会被关闭)。",
]
RETURN_NOTES = [
    "填表说明",
    "1. 文件名：乡镇代码_年份_年度报表.xlsx，例如 350481101_2023_年度报表.xlsx(也可另存为 CSV)。"
    "乡镇代码见「乡镇代码」工作表；年份是报表所属年度。请勿沿用模板的文件名。",
    "2. 请保存为 Excel 工作簿(.xlsx)：不要另存为 .xls、WPS 表格(.et)、OpenDocument(.ods)、"
    "网页(.htm/.mht)或 PDF；不要加密码。",
    "3. 请勿修改表头(第2行)、指标代码；只填写「数值」列，必要时填写备注。",
    "4. 全年数填在本工作表中：不要按季度或月份拆分工作表(系统不会把各季度相加，分季度的报表会被退回)；"
    "如需保留季度数，请另加一张名为「全年合计」的工作表填写全年数。",
    "5. 数值请填阿拉伯数字，如 12000、12.5：不要写“万”“千”(写 12000，不写 1.2万)，不要写汉字数字(如 一万)；"
    "确实无法精确统计的可写「200余」「50以上」(按“不少于”处理)或「约200」(按“约数”处理)。",
    "6. LIT02A、LIT02B 用于计算负责人出庭应诉率(LIT02 = LIT02A / LIT02B)，两项都要填写。",
    "7. 表末填写「填报人：」和「填报日期：」；签字行之后的内容不会读取，填报人姓名不会进入分析库。",
    "8. 灰色的示例行不会被读取。",
    "9. 修改后请按原文件名重新提交，新版本将整体替换旧版本：新版本中填错的数值会被退回，旧值不再使用。",
]


def township_rows(townships_csv: Path | None) -> list[list[str]]:
    """code, name, kind of the county's townships (warehouse/townships.py checks the list;
    default: the shipped sample county's)."""
    from warehouse.townships import read_townships

    if townships_csv is None:
        from warehouse.demo.sample.generate import default_townships_csv

        townships_csv = default_townships_csv()
    return read_townships(Path(townships_csv))[["code", "name", "kind"]].values.tolist()


def write_template(kind: str, out: Path, townships_csv: Path | None = None) -> Path:
    out = Path(out)
    if out.suffix.lower() != ".xlsx":
        out = out.with_suffix(".xlsx")
    if kind not in ("training", "returns"):
        raise ValueError(f"unknown template {kind!r}: training or returns")
    out.parent.mkdir(parents=True, exist_ok=True)
    wb = xlsxwriter.Workbook(str(out), {"strings_to_formulas": False})  # warehouse/formulas.py
    fmt = _Formats(wb)
    if kind == "training":
        for sheet, header in TRAINING_SHEETS.items():
            _ledger_sheet(wb, fmt, sheet, header, TRAINING_EXAMPLES[sheet])
        notes = TRAINING_NOTES
    else:
        _return_sheet(wb, fmt)
        notes = RETURN_NOTES
    _codes_sheet(wb, fmt, township_rows(townships_csv))
    ws = wb.add_worksheet("填表说明")
    ws.set_column(0, 0, NOTES_WIDTH, fmt.wrap)
    ws.write(0, 0, notes[0], fmt.title)
    for i, line in enumerate(notes[1:], 1):
        # wrapped over as many lines as it needs (office applications do not grow the row by themselves)
        width = sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in line)
        ws.set_row(i, 16 * -(-width // (NOTES_WIDTH - 6)))
        ws.write(i, 0, line, fmt.wrap)
    _print_setup(ws, 0)
    ws.fit_to_pages(1, 0)
    wb.close()
    return out


class _Formats:
    def __init__(self, wb: xlsxwriter.Workbook):
        self.title = wb.add_format({"bold": True, "font_size": 14, "align": "center", "valign": "vcenter"})
        self.head = wb.add_format({"bold": True, "bg_color": "#DDEBF7", "border": 1, "align": "center"})
        self.text = wb.add_format({"num_format": "@"})
        self.cell = wb.add_format({})
        self.example = wb.add_format(
            {"font_color": "#808080", "italic": True, "bg_color": "#F2F2F2", "num_format": "@"}
        )
        self.wrap = wb.add_format({"text_wrap": True, "valign": "top"})
        self.boxed = wb.add_format({"border": 1, "num_format": "@"})


def _ledger_sheet(wb, fmt: _Formats, sheet: str, header: list[str], example: list) -> None:
    ws = wb.add_worksheet(sheet)
    ws.merge_range(0, 0, 0, len(header) - 1, f"××镇(街道)____年学法培训台账 · {sheet}", fmt.title)
    ws.write_row(1, 0, header, fmt.head)
    ws.write_row(2, 0, [str(v) for v in example], fmt.example)  # the example row: greyed, never read
    for j, name in enumerate(header):
        ws.set_column(j, j, WIDTHS.get(name, 12), fmt.text if name in _TEXT_COLUMNS else fmt.cell)
        rule = _validation(name)
        if rule:
            ws.data_validation(3, j, 2 + LEDGER_ROWS, j, rule)
    ws.freeze_panes(2, 0)
    _print_setup(ws, 1)


_TEXT_COLUMNS = {"活动编号", "工号", "身份证号", "执法证号"}


def _validation(column: str) -> dict | None:
    """The data validation (with its input message) of a ledger column, or None."""

    def listed(values: list[str], title: str) -> dict:
        return {
            "validate": "list", "source": values, "input_title": title,
            "input_message": "从下拉列表中选择：" + "、".join(values),
            "error_title": title, "error_message": "请从下拉列表中选择：" + "、".join(values),
        }  # fmt: skip

    if column == "活动类型":
        return listed(SESSION_TYPES, "活动类型")
    if column.startswith("是否"):
        return listed(YES_NO, column)
    if column in ("日期", "证件有效期"):
        return {
            "validate": "date", "criteria": "between",
            "minimum": date(2000, 1, 1), "maximum": date(2099, 12, 31),
            "input_title": column, "input_message": "填写日期，如 2023-03-05",
            "error_title": column, "error_message": "请填写日期，如 2023-03-05 或 2023/3/5",
        }  # fmt: skip
    if column in ("学时", "成绩"):
        top = 100 if column == "学时" else 150
        return {
            "validate": "decimal", "criteria": "between", "minimum": 0, "maximum": top,
            "input_title": column, "input_message": f"只填数字(0–{top})，不要写“约”“余”或汉字",
            "error_title": column, "error_message": f"请填写 0 至 {top} 之间的数字",
        }  # fmt: skip
    if column == "身份证号":
        return {
            "validate": "length", "criteria": "between", "minimum": 15, "maximum": 18,
            "input_title": "身份证号", "input_message": "18位身份证号(以文本保存，勿转成数字)",
            "error_title": "身份证号", "error_message": "身份证号应为15或18位",
        }  # fmt: skip
    return None


def _return_sheet(wb, fmt: _Formats) -> None:
    ws = wb.add_worksheet("年度报表")
    last = len(RETURN_HEADER) - 1
    ws.merge_range(0, 0, 0, last, "××镇(街道)____年度法治政府建设报表", fmt.title)
    ws.write_row(1, 0, RETURN_HEADER, fmt.head)
    ws.write_row(2, 0, ["示例", "(示例)法治讲座场次", "9", "场", "可写 200余、50以上、约200"], fmt.example)
    first = 3
    for i, (code, name, unit) in enumerate(RETURN_ITEMS, first):
        ws.write_row(i, 0, [code, name, None, unit, None], fmt.boxed)
    end = first + len(RETURN_ITEMS) - 1
    codes = [c for c, _, _ in RETURN_ITEMS]
    ws.data_validation(first, 0, end, 0, {
        "validate": "list", "source": codes, "input_title": "指标代码", "input_message": "请勿修改指标代码",
        "error_title": "指标代码", "error_message": "指标代码应为：" + "、".join(codes),
    })  # fmt: skip
    ws.data_validation(first, 2, end, 2, {
        "validate": "any", "input_title": "数值",
        "input_message": "填阿拉伯数字，如 8000；约数可写 200余、50以上、约200；不要写汉字数字",
    })  # fmt: skip
    ws.write(end + 2, 0, "填报人：")
    ws.write(end + 3, 0, "填报日期：")
    ws.data_validation(end + 3, 1, end + 3, 1, {
        "validate": "date", "criteria": "between", "minimum": date(2000, 1, 1), "maximum": date(2099, 12, 31),
        "input_title": "填报日期", "input_message": "填写日期，如 2024-01-15",
    })  # fmt: skip
    for j, width in enumerate([10, 30, 14, 8, 30]):
        ws.set_column(j, j, width, fmt.text if j == 0 else fmt.cell)
    ws.freeze_panes(2, 0)
    _print_setup(ws, 1)


def _codes_sheet(wb, fmt: _Formats, townships: list[list[str]]) -> None:
    ws = wb.add_worksheet("乡镇代码")
    ws.merge_range(0, 0, 0, 2, "本县(市)乡镇(街道)代码：文件名以此代码开头", fmt.title)
    ws.write_row(1, 0, ["乡镇代码", "名称", "类型"], fmt.head)
    for i, row in enumerate(townships, 2):
        ws.write_row(i, 0, row, fmt.text)
    ws.set_column(0, 0, 14)
    ws.set_column(1, 1, 20)
    ws.set_column(2, 2, 8)
    _print_setup(ws, 1)


def _print_setup(ws, header_last_row: int) -> None:
    """A4 landscape, one page wide (as many long as needed), the title and header rows on every
    page, page numbers in the footer."""
    ws.set_paper(9)
    ws.set_landscape()
    ws.fit_to_pages(1, 0)
    ws.repeat_rows(0, header_last_row)
    ws.center_horizontally()
    ws.set_margins(left=0.4, right=0.4, top=0.6, bottom=0.6)
    ws.set_footer("&C第 &P 页，共 &N 页")
