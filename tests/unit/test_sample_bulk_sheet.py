"""BulkWorksheet: the same xlsx bytes as plain xlsxwriter writing the same cells one by one."""

from __future__ import annotations

import datetime as dt
import io

import pytest
import xlsxwriter

from warehouse.demo.sample.bulk_sheet import BulkWorksheet

OPTIONS = {"strings_to_numbers": False, "strings_to_formulas": False, "strings_to_urls": False, "in_memory": True}
CREATED = dt.datetime(2024, 1, 31, 18)


def _rows(n: int, salt: str) -> list[list]:
    """Strings repeated within and across sheets, text with XML characters, control characters
    and edge whitespace, integers, floats, datetimes and empty cells."""
    rows = []
    for i in range(n):
        rows.append(
            [
                f"PX350481101-2023-{i % 7:02d}",
                [dt.datetime(2023, 1, 1) + dt.timedelta(days=i), f"2023年{i % 12 + 1}月1日", None][i % 3],
                "是" if i % 2 else "否",
                f'<{salt}> & "引号" {i}' if i % 5 == 0 else f" 前后空格{salt} " if i % 5 == 1 else f"控制\x01{i}",
                None if i % 4 == 0 else i * 3,
                [72.0, 35.5, 1e-7, 123456789012.0, None][i % 5],
                "_x0041_ 转义" if i == 3 else None,
            ]
        )
    return rows


def _workbook(bulk: bool, sheets: list[tuple[str, list[list]]]) -> bytes:
    buf = io.BytesIO()
    wb = xlsxwriter.Workbook(buf, OPTIONS)
    wb.set_properties({"created": CREATED, "author": "司法所", "title": "台账"})
    for name, rows in sheets:
        ws = wb.add_worksheet(name, worksheet_class=BulkWorksheet if bulk else None)
        title = wb.add_format({"bold": True, "font_size": 14, "align": "center"})
        head = wb.add_format({"bold": True, "align": "center", "border": 1})
        date = wb.add_format({"num_format": "yyyy-mm-dd"})
        for c, width in enumerate([22, 14, 8, 40, 8, 8, 12]):
            ws.set_column(c, c, width)
        ws.merge_range(0, 0, 0, 6, f"{name}标题", title)
        ws.write_row(1, 0, ["编号", "日期", "是否", "说明", "数", "成绩", "备注"], head)
        if bulk:
            ws.write_rows(2, rows, date)
        else:
            for r, values in enumerate(rows, 2):
                for c, v in enumerate(values):
                    if v is None:
                        continue
                    if type(v) is str:
                        ws.write_string(r, c, v)
                    elif isinstance(v, dt.datetime):
                        ws.write_datetime(r, c, v, date)
                    else:
                        ws.write_number(r, c, v)
    wb.close()
    return buf.getvalue()


@pytest.mark.parametrize("n", [0, 1, 15, 16, 17, 333])
def test_bulk_rows_give_the_same_bytes_as_cell_by_cell(n):
    sheets = [("活动登记", _rows(n, "a")), ("参训签到", _rows(n + 5, "b")), ("人员名册", [])]
    assert _workbook(True, sheets) == _workbook(False, sheets)


def test_rows_starting_inside_a_block_and_a_total_row():
    def build(bulk: bool) -> bytes:
        buf = io.BytesIO()
        wb = xlsxwriter.Workbook(buf, OPTIONS)
        wb.set_properties({"created": CREATED})
        ws = wb.add_worksheet("表", worksheet_class=BulkWorksheet if bulk else None)
        rows = [["合计", None, None, 3], [None, None], ["x", 1.5]]
        if bulk:
            assert ws.write_rows(9, rows) == 12
        else:
            for r, values in enumerate(rows, 9):
                for c, v in enumerate(values):
                    if v is not None:
                        ws.write(r, c, v)
        wb.close()
        return buf.getvalue()

    assert build(True) == build(False)


def test_unsupported_sheets_are_refused():
    wb = xlsxwriter.Workbook(io.BytesIO(), OPTIONS)
    ws = wb.add_worksheet("表", worksheet_class=BulkWorksheet)
    ws.write_rows(0, [["a"]])
    ws.set_row(0, 30)
    with pytest.raises(NotImplementedError):
        wb.close()

    wb = xlsxwriter.Workbook(io.BytesIO(), OPTIONS)
    ws = wb.add_worksheet("表", worksheet_class=BulkWorksheet)
    ws.write_rows(0, [["a"]])
    ws.write_string(0, 1, "b")
    with pytest.raises(ValueError, match="row 1"):
        wb.close()

    ws = xlsxwriter.Workbook(io.BytesIO(), OPTIONS).add_worksheet("表", worksheet_class=BulkWorksheet)
    with pytest.raises(ValueError, match="B1"):
        ws.write_rows(0, [["a", float("nan")]])
