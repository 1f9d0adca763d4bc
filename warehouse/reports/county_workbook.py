"""The county workbook: every township × indicator of a year for analysts who work in Excel.

Sheets: 全部指标 (a row per township, the county last; for each indicator its value and rank,
traffic-light fills), one sheet per indicator group (a row per township × indicator with
numerator, denominator, last year, change, target, light, status and the `fazhi explain`
command), 指标定义 (the catalogue), 待更正记录 (open quarantine entries per township and
source), 说明 (what the workbook holds). Numbers are numbers; a figure without a value is said
in words, never written as 0. `write_csv` gives the same rows, one per township × indicator,
for scripts."""

from __future__ import annotations

import csv
from datetime import datetime
from pathlib import Path

from warehouse.formulas import neutralise_row
from warehouse.reports import wording
from warehouse.reports.published import ReportInputError, YearData, read_year

GROUPS = {
    "ENF": "行政执法",
    "MED": "矛盾纠纷化解",
    "TRN": "学法培训",
    "LIT": "行政应诉",
    "OGI": "政务公开",
    "PUB": "普法宣传",
}
LIGHT_FILL = {"green": "#C6EFCE", "amber": "#FFEB9C", "red": "#FFC7CE"}
NUMBER_FORMAT = {"rate": "0.0%", "count": "0", "amount": "#,##0.00", "mean": "0.0", "median": "0.0"}
CSV_COLUMNS = (
    "year", "edition", "township_code", "township_name", "area_level", "indicator_code", "indicator_name_zh",
    "indicator_name_en", "unit", "value", "numerator", "denominator", "qualifier", "status", "status_zh",
    "status_en", "previous_value", "change_from_previous", "rank_in_county", "target_value", "traffic_light",
)  # fmt: skip


def areas(data: YearData) -> list[tuple[str, str]]:
    """(code, name) of every township in code order, then the county."""
    return [(t["code"], t["name"]) for t in data.townships] + [(data.county_code, data.county_name)]


def long_rows(data: YearData, codes: list[str] | None = None) -> list[dict]:
    """One row per indicator × area (townships, then the county), in catalogue order."""
    out = []
    for c in data.catalogue:
        if codes is not None and c["indicator_code"] not in codes:
            continue
        for area, _ in areas(data):
            r = data.value(area, c["indicator_code"])
            if r is not None:
                out.append(r)
    return out


def _formats(wb):
    base = {"font_name": "Microsoft YaHei", "font_size": 10}
    f = {
        "header": wb.add_format(
            {**base, "bold": True, "bg_color": "#DDEBF7", "text_wrap": True, "valign": "top", "border": 1}
        ),
        "text": wb.add_format(base),
        "words": wb.add_format({**base, "italic": True, "font_color": "#7F7F7F"}),
        "county": wb.add_format({**base, "bold": True}),
        "int": wb.add_format({**base, "num_format": "0"}),
        "change_rate": wb.add_format({**base, "num_format": "+0.0%;-0.0%;0.0%"}),
        "change": wb.add_format({**base, "num_format": "+0.##;-0.##;0"}),
        "ratio": wb.add_format({**base, "num_format": "0.##"}),
    }
    cache = {}

    def value_format(row: dict, light: str | None = None, bold: bool = False):
        fmt = NUMBER_FORMAT.get(row["kind"], "General")
        if row.get("qualifier") == ">=":
            fmt = f'"≥"{fmt}'
        key = (fmt, light, bold)
        if key not in cache:
            props = {**base, "num_format": fmt, "bold": bold}
            if light in LIGHT_FILL:
                props["bg_color"] = LIGHT_FILL[light]
            cache[key] = wb.add_format(props)
        return cache[key]

    return f, value_format


def _write_value(ws, r: int, c: int, row: dict | None, f, value_format, bold: bool = False) -> None:
    if wording.has_value(row):
        ws.write_number(r, c, float(row["value"]), value_format(row, row.get("traffic_light"), bold))
        if row["status"] != "ok":  # a value with a caveat (a county total with townships missing)
            ws.write_comment(r, c, " / ".join(wording.status_words(row)))
    else:
        ws.write_string(r, c, "未发布" if row is None else wording.status_words(row)[0], f["words"])


def _overview(wb, data: YearData, f, value_format) -> None:
    ws = wb.add_worksheet("全部指标")
    ws.write_string(0, 0, "乡镇代码 code", f["header"])
    ws.write_string(0, 1, "乡镇/街道 township", f["header"])
    for i, c in enumerate(data.catalogue):
        col = 2 + 2 * i
        ws.write_string(0, col, f"{c['indicator_code']} {c['name_zh']}（{c['unit']}）", f["header"])
        ws.write_string(0, col + 1, f"{c['indicator_code']} 排名 rank", f["header"])
        ws.set_column(col, col, 13)
        ws.set_column(col + 1, col + 1, 7)
    for r, (area, name) in enumerate(areas(data), start=1):
        county = area == data.county_code
        ws.write_string(r, 0, area, f["county"] if county else f["text"])
        ws.write_string(r, 1, name, f["county"] if county else f["text"])
        for i, c in enumerate(data.catalogue):
            row = data.value(area, c["indicator_code"])
            _write_value(ws, r, 2 + 2 * i, row, f, value_format, bold=county)
            if row is not None and row.get("rank_in_county") is not None:
                ws.write_number(r, 3 + 2 * i, row["rank_in_county"], f["int"])
    ws.set_row(0, 48)
    ws.set_column(0, 0, 11)
    ws.set_column(1, 1, 12)
    ws.freeze_panes(1, 2)
    _print_setup(ws, columns_repeated=True)


LONG_HEADER = (
    "乡镇代码 code", "乡镇/街道 township", "指标代码 indicator", "指标 name", "单位 unit", "值 value",
    "分子 numerator", "分母 denominator", "上年值 last year", "比上年 change", "全县排名 rank", "目标 target",
    "目标灯 light", "状态 status", "核查记录 records (fazhi explain)",
)  # fmt: skip


def _print_setup(ws, columns_repeated: bool = False) -> None:
    """Printed landscape with the header (and the township names) on every page."""
    ws.set_landscape()
    ws.set_paper(9)  # A4
    ws.repeat_rows(0)
    if columns_repeated:
        ws.repeat_columns(0, 1)
    else:
        ws.fit_to_pages(1, 0)


def _group(wb, data: YearData, prefix: str, title: str, f, value_format) -> None:
    ws = wb.add_worksheet(f"{prefix} {title}")
    for col, name in enumerate(LONG_HEADER):
        ws.write_string(0, col, name, f["header"])
    rows = long_rows(data, [c["indicator_code"] for c in data.catalogue if c["indicator_code"].startswith(prefix)])
    for r, row in enumerate(rows, start=1):
        county = row["area_level"] == "county"
        ws.write_string(r, 0, row["township_code"], f["county"] if county else f["text"])
        ws.write_string(r, 1, row["township_name"], f["county"] if county else f["text"])
        ws.write_string(r, 2, row["indicator_code"], f["text"])
        ws.write_string(r, 3, row["indicator_name_zh"], f["text"])
        ws.write_string(r, 4, row["unit"], f["text"])
        _write_value(ws, r, 5, row, f, value_format, bold=county)
        for col, key in ((6, "numerator"), (7, "denominator")):
            if row[key] is not None:
                ws.write_number(r, col, float(row[key]), f["ratio"])
        if row.get("previous_value") is not None:
            ws.write_number(r, 8, float(row["previous_value"]), value_format(row))
        if row.get("change_from_previous") is not None:
            change = f["change_rate"] if row["kind"] == "rate" else f["change"]
            ws.write_number(r, 9, float(row["change_from_previous"]), change)
        if row.get("rank_in_county") is not None:
            ws.write_number(r, 10, row["rank_in_county"], f["int"])
        if row.get("target_value") is not None:
            ws.write_number(r, 11, float(row["target_value"]), value_format({**row, "qualifier": None}))
            ws.write_string(r, 12, wording.light_words(row.get("traffic_light"))[0], f["text"])
        ws.write_string(r, 13, wording.status_words(row)[0], f["text"] if wording.has_value(row) else f["words"])
        command = wording.explain_command(data.year, row["township_code"], row["indicator_code"])
        ws.write_string(r, 14, command, f["text"])
    ws.freeze_panes(1, 3)
    ws.autofilter(0, 0, max(1, len(rows)), len(LONG_HEADER) - 1)
    for col, width in enumerate((11, 12, 9, 24, 6, 10, 10, 10, 10, 10, 8, 8, 8, 22, 62)):
        ws.set_column(col, col, width)
    _print_setup(ws)


def _definitions(wb, data: YearData, f) -> None:
    ws = wb.add_worksheet("指标定义")
    cols = ("indicator_code", "name_zh", "name_en", "unit", "source", "kind", "direction", "definition",
            "definition_source", "target_value", "target_amber_margin", "target_source")  # fmt: skip
    for col, name in enumerate(cols):
        ws.write_string(0, col, name, f["header"])
    for r, c in enumerate(data.catalogue, start=1):
        for col, name in enumerate(cols):
            v = c.get(name)
            if isinstance(v, int | float):
                ws.write_number(r, col, v, f["ratio"])
            elif v is not None:
                ws.write_string(r, col, str(v), f["text"])
    for col, width in enumerate((9, 22, 34, 6, 12, 8, 16, 90, 30, 10, 10, 12)):
        ws.set_column(col, col, width)
    ws.freeze_panes(1, 1)


def _quarantine(wb, data: YearData, f) -> None:
    ws = wb.add_worksheet("待更正记录")
    sources = sorted({s for per in data.quarantine.values() for s in per})
    header = ("乡镇代码 code", "乡镇/街道 township", *sources, "合计 total")
    for col, name in enumerate(header):
        ws.write_string(0, col, name, f["header"])
    names = {t["code"]: t["name"] for t in data.townships}
    codes = [t["code"] for t in data.townships] + sorted(c for c in data.quarantine if c not in names)
    for r, code in enumerate(codes, start=1):
        per = data.quarantine.get(code, {})
        ws.write_string(r, 0, code, f["text"])
        ws.write_string(r, 1, names.get(code, "（未知乡镇 unknown township）"), f["text"])
        for col, s in enumerate(sources, start=2):
            ws.write_number(r, col, per.get(s, 0), f["int"])
        ws.write_number(r, 2 + len(sources), sum(per.values()), f["int"])
    ws.set_column(0, 1, 14)
    ws.set_column(2, 2 + len(sources), 12)
    ws.freeze_panes(1, 2)


def _about(wb, data: YearData, f) -> None:
    ws = wb.add_worksheet("说明")
    edition = f"第{data.edition}版 edition {data.edition}" if data.edition else "日常更新值 current (nightly) values"
    lines = [
        f"{data.county_name}{data.year}年法治政府建设指标 / rule-of-law indicators {data.year}",
        f"版本 / edition: {edition}",
        f"数据截至 / data as of: {data.as_of:%Y-%m-%d %H:%M}" if isinstance(data.as_of, datetime) else "",
        "县（市）合计行 = 各乡镇分子之和 / 分母之和 / county row = sum of numerators over sum of denominators",
        "填充色为目标灯：绿、黄、红 / fills are the target lights: green, amber, red",
        "无值的指标以文字说明原因，从不写作 0 / a figure without a value says why in words, never 0:",
        *(f"  {zh} / {en}  ({status})" for status, (zh, en) in wording.STATUS_WORDS.items()),
    ]
    for r, line in enumerate(x for x in lines if x):
        ws.write_string(r, 0, line, f["text"])
    ws.set_column(0, 0, 100)


def write_workbook(data: YearData, out: Path) -> Path:
    import xlsxwriter

    tmp = out.with_name(f".{out.name}.tmp")
    wb = xlsxwriter.Workbook(str(tmp), {"strings_to_formulas": False})  # text stays text (warehouse/formulas.py)
    wb.set_properties(
        {
            "title": f"{data.county_name}{data.year}年法治政府建设指标",
            "author": "fazhi-warehouse",
            "created": data.as_of if isinstance(data.as_of, datetime) else datetime(data.year, 12, 31),
        }
    )
    f, value_format = _formats(wb)
    _overview(wb, data, f, value_format)
    for prefix, title in GROUPS.items():
        if any(c["indicator_code"].startswith(prefix) for c in data.catalogue):
            _group(wb, data, prefix, title, f, value_format)
    _definitions(wb, data, f)
    _quarantine(wb, data, f)
    _about(wb, data, f)
    wb.close()
    tmp.replace(out)
    return out


def write_csv(data: YearData, out: Path) -> Path:
    tmp = out.with_name(f".{out.name}.tmp")
    with tmp.open("w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        w.writeheader()
        for row in long_rows(data):
            zh, en = wording.status_words(row)
            w.writerow(neutralise_row({**row, "edition": data.edition or "", "status_zh": zh, "status_en": en}))
    tmp.replace(out)
    return out


def export_county(published: Path, year: int, out: Path, edition: int | None = None, fmt: str | None = None) -> Path:
    """The year's workbook (`fmt` xlsx, the default) or CSV; raises ReportInputError for bad input."""
    out = Path(out)
    fmt = fmt or ("csv" if out.suffix.lower() == ".csv" else "xlsx")
    if out.suffix.lower() != f".{fmt}":
        raise ReportInputError(f"输出文件须以 .{fmt} 结尾：{out}", f"the output file must end in .{fmt}: {out}")
    data = read_year(published, year, edition, history=False)
    out.parent.mkdir(parents=True, exist_ok=True)
    return write_csv(data, out) if fmt == "csv" else write_workbook(data, out)
