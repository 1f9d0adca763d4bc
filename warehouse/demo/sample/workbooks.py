"""Township spreadsheets as townships keep them: training ledgers (xlsx) and annual returns
(xlsx, or CSV in GB18030), with title rows, mixed date formats, 合计 rows and footers.

Workbooks carry a fixed creation date so the same inputs give byte-identical files.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import xlsxwriter

from warehouse.demo.sample import fake
from warehouse.demo.sample.bulk_sheet import BulkWorksheet
from warehouse.demo.sample.catalogue import RETURN_ITEMS
from warehouse.demo.sample.context import Township
from warehouse.demo.sample.plan import RetPlan
from warehouse.demo.sample.training import Ledger, Roster
from warehouse.demo.sample.workdays import DayTable

DATE_STYLES = ("iso", "cn", "dot", "slash", "excel", "mixed")
_WB_OPTIONS = {"strings_to_numbers": False, "strings_to_formulas": False, "strings_to_urls": False, "in_memory": True}


def format_dates(days: DayTable, idx: np.ndarray, style: str, rng: np.random.Generator) -> list:
    """Dates as a township clerk types them: text in one of several formats, or Excel dates."""
    idx = np.asarray(idx, dtype=np.int64)
    y, m, d = (a.astype(str).astype(object) for a in days.parts(idx))
    texts = {
        "iso": days.iso(idx),
        "cn": y + "年" + m + "月" + d + "日",
        "dot": y + "." + m + "." + d,
        "slash": y + "/" + m + "/" + d,
    }
    excel = np.empty(len(idx), dtype=object)
    excel[:] = [dt.datetime.combine(x, dt.time()) for x in days.dates(idx)]
    texts["excel"] = excel
    if style != "mixed":
        return list(texts[style])
    pick = rng.choice(list(texts), size=len(idx))
    return [texts[p][i] for i, p in enumerate(pick)]


class _Sheet:
    def __init__(self, wb: xlsxwriter.Workbook, name: str, header: list[str], title: str | None, widths: list[int]):
        self.ws: BulkWorksheet = wb.add_worksheet(name, worksheet_class=BulkWorksheet)
        self.bold = wb.add_format({"bold": True, "align": "center", "border": 1})
        self.date = wb.add_format({"num_format": "yyyy-mm-dd"})
        title_fmt = wb.add_format({"bold": True, "font_size": 14, "align": "center"})
        for i, w in enumerate(widths):
            self.ws.set_column(i, i, w)
        self.row = 0
        if title:
            self.ws.merge_range(0, 0, 0, len(header) - 1, title, title_fmt)
            self.row = 1
        self.ws.write_row(self.row, 0, header, self.bold)
        self.row += 1

    def write(self, rows: Iterable[Sequence]) -> None:
        """Rows of str / number / datetime / None cells."""
        self.row = self.ws.write_rows(self.row, rows, self.date)


def write_training(
    path: Path, t: Township, year: int, ledger: Ledger, roster: Roster, days: DayTable,
    rng: np.random.Generator, created: dt.datetime,
) -> None:  # fmt: skip
    style = str(rng.choice(DATE_STYLES))
    titled = rng.random() < 0.75
    total_row = rng.random() < 0.3
    wb = xlsxwriter.Workbook(str(path), _WB_OPTIONS)
    wb.set_properties({"created": created, "author": f"{t.name}司法所", "title": f"{t.name}{year}年学法培训台账"})

    s = ledger.sessions
    sheet = _Sheet(
        wb, "活动登记", ["活动编号", "日期", "活动类型", "主题", "主办单位", "学时"],
        f"{t.name}{year}年学法培训活动登记表" if titled else None, [22, 14, 14, 40, 24, 8],
    )  # fmt: skip
    dates = format_dates(days, s["日期"], style, rng)
    sheet.write(zip(s["活动编号"], dates, s["活动类型"], s["主题"], s["主办单位"], s["学时"].tolist(), strict=True))
    if total_row:
        sheet.write([["合计", None, None, None, None, int(s["学时"].sum())]])

    a = ledger.attendance
    cols = ["活动编号", "姓名", "工号", "身份证号", "单位", "是否领导干部", "是否执法人员", "成绩", "是否合格"]
    sheet = _Sheet(
        wb, "参训签到", cols, f"{t.name}{year}年学法培训签到表" if titled else None, [22, 10, 10, 22, 24, 12, 12, 8, 10]
    )
    sheet.write(zip(*(a[c] for c in cols), strict=True))

    cols = ["工号", "姓名", "身份证号", "单位", "职务", "是否执法人员", "执法证号", "证件有效期"]
    sheet = _Sheet(
        wb, "人员名册", cols, f"{t.name}{year}年干部职工名册" if titled else None, [10, 10, 22, 26, 12, 12, 20, 14]
    )
    has = roster.expiry >= 0
    valid = np.empty(len(has), dtype=object)
    if has.any():
        valid[has] = format_dates(days, roster.expiry[has], style, rng)
    officer = np.where(roster.officer, "是", "否").tolist()
    sheet.write(zip(roster.staff_no, roster.name, roster.id_no, roster.unit, roster.post, officer, roster.cert, valid,
                    strict=True))  # fmt: skip
    wb.close()


def return_rows(plan: RetPlan, rng: np.random.Generator) -> list[list]:
    rows = []
    for code, name, unit in RETURN_ITEMS:
        v = plan.values[code]
        if plan.qualifiers.get(code):
            rows.append([code, name, f"{v}{'余' if rng.random() < 0.8 else '以上'}", unit, "约数"])
        else:
            rows.append([code, name, v, unit, None])
    return rows


def write_return(
    path: Path, t: Township, year: int, plan: RetPlan, days: DayTable, rng: np.random.Generator, created: dt.datetime
) -> None:
    """The return as xlsx, or as CSV in GB18030 when `path` ends in .csv; filled in late December
    or January by a clerk whose name is in the footer."""
    filler = str(fake.names(rng, 1)[0])
    lo, hi = np.array([days.day(f"{year}-12-20")]), np.array([days.day(f"{year + 1}-01-25")])
    filled = days.iso(days.sample_between(rng, lo, hi))[0]
    title = f"{t.name}{year}年度法治政府建设情况统计表"
    header = ["指标代码", "指标名称", "数值", "单位", "备注"]
    rows = return_rows(plan, rng)
    footer = [f"填报人：{filler}", f"填报日期：{filled}"]
    if path.suffix == ".csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\r\n")
        w.writerow([title, "", "", "", ""])
        w.writerow(header)
        for r in rows:
            w.writerow(["" if x is None else x for x in r])
        for f in footer:
            w.writerow([f, "", "", "", ""])
        path.write_bytes(buf.getvalue().encode("gb18030"))
        return
    wb = xlsxwriter.Workbook(str(path), _WB_OPTIONS)
    wb.set_properties({"created": created, "author": filler, "title": title})
    sheet = _Sheet(wb, "年度报表", header, title, [10, 28, 10, 6, 10])
    sheet.write(rows)
    sheet.row += 1
    sheet.write([f] for f in footer)
    wb.close()
