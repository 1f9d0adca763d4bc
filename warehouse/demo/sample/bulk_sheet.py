"""An xlsxwriter worksheet whose body rows are turned into sheet XML as they are written.

Plain xlsxwriter spends most of a ledger's time in per-cell bookkeeping: argument handling and
checks in write_string()/write_number(), a cell tuple per cell, then several calls per cell
when the sheet XML is rendered. BulkWorksheet.write_rows() looks each string up in the shared
string table and renders the row's cells straight away; at close the rows are written in order
with those written by xlsxwriter's own methods (titles, headers). The shared strings, styles and
XML are exactly those of write_string / write_number / write_datetime called cell by cell, so
the files are byte-identical (tests/unit/test_sample_bulk_sheet.py compares both).

Body rows hold str, numbers and datetimes (with a date format), None for no cell; a sheet with
body rows cannot have row options, comments, column formats or constant_memory.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from math import isfinite

from xlsxwriter.format import Format
from xlsxwriter.utility import _datetime_to_excel_datetime, xl_col_to_name
from xlsxwriter.worksheet import Worksheet

_SHORT_STRING = 16383  # a string this long or shorter never exceeds Excel's 32767 UTF-16 units


@dataclass
class _Row:
    first: int  # first and last column with a cell
    last: int
    xml: list[str | Format]  # the cells' XML; a Format stands for its index, known only at close


class BulkWorksheet(Worksheet):
    """Use as `workbook.add_worksheet(name, worksheet_class=BulkWorksheet)`."""

    def __init__(self) -> None:
        super().__init__()
        self.body: dict[int, _Row] = {}

    def write_rows(self, first_row: int, rows: Iterable[Sequence], date_format: Format | None = None) -> int:
        """Writes rows of cells from column 0, starting at first_row; returns the next row."""
        shared = self.str_table._get_shared_string_index
        string_xml: dict[str, str] = {}  # strings already looked up by this call, and their cell XML
        repeats = 0  # references to those, counted in the shared string table at the end
        date_format = date_format or self.default_date_format
        next_row = first_row
        top = bottom = left = right = -1  # the cells' extent
        for r, values in enumerate(rows, first_row):
            num = str(r + 1)
            next_row = r + 1
            refs = _refs(len(values))
            xml: list[str | Format] = []
            add = xml.append
            first = last = -1
            dated = False
            for c, v in enumerate(values):
                if v is None:
                    continue
                add(refs[c])
                add(num)
                if type(v) is str and len(v) <= _SHORT_STRING:
                    tail = string_xml.get(v)
                    if tail is None:
                        tail = string_xml[v] = f'" t="s"><v>{shared(v)}</v></c>'
                    else:
                        repeats += 1
                    add(tail)
                elif isinstance(v, dt.datetime):
                    add('" s="')
                    add(date_format)
                    dated = True
                    add(f'"><v>{_datetime_to_excel_datetime(v, self.date_1904, self.remove_timezone):.16G}</v></c>')
                elif type(v) is not str and isfinite(v):
                    add(f'"><v>{v:.16G}</v></c>')
                else:
                    raise ValueError(f"cell {xl_col_to_name(c)}{num}: {v!r:.40} is not a short string or finite number")
                if first < 0:
                    first = c
                last = c
            if first >= 0:
                self.body[r] = _Row(first, last, xml if dated else ["".join(xml)])
                bottom = r
                if top < 0:
                    top, left, right = r, first, last
                left, right = min(left, first), max(right, last)
        if top >= 0:
            if bottom >= self.xls_rowmax or right >= self.xls_colmax:
                raise ValueError(f"rows {top + 1}-{bottom + 1} do not fit in a worksheet")
            self._check_dimensions(top, left)
            self._check_dimensions(bottom, right)
        self.str_table.count += repeats
        return next_row

    def _write_rows(self) -> None:
        """The <row> elements of <sheetData>, as Worksheet._write_rows writes them."""
        if not self.body:
            super()._write_rows()
            return
        unsupported = (
            self.row_info
            or self.comments
            or self.constant_memory
            or self.excel_version != 2007
            or self.default_row_height != self.original_row_height
            or any(i.column_format is not None for i in self.col_info.values())
        )
        if unsupported:
            raise NotImplementedError("BulkWorksheet body rows with row options, comments or column formats")
        rows: dict[int, _Row] = {}
        for r, cells in self.table.items():
            if cells:
                if r in self.body:
                    raise ValueError(f"row {r + 1} written both by write_rows and cell by cell")
                rows[r] = _render_cells(r, cells)
        rows.update(self.body)
        spans = _spans(rows)
        out: list[str] = []
        for r in sorted(rows):
            out.append(f'<row r="{r + 1}" spans="{spans[r // 16]}">')
            xml = rows[r].xml
            if len(xml) == 1:
                out.append(xml[0])
            else:
                for piece in xml:  # formats get their index in cell order, as in xlsxwriter
                    out.append(piece if type(piece) is str else str(piece._get_xf_index()))
            out.append("</row>")
        self.fh.write("".join(out))


def _render_cells(r: int, cells: dict) -> _Row:
    """Cells written by xlsxwriter's own methods, as Worksheet._write_cell renders them."""
    xml: list[str | Format] = []
    for c in sorted(cells):
        cell = cells[c]
        kind = type(cell).__name__
        if kind == "String":
            tail = f' t="s"><v>{cell.string}</v></c>'
        elif kind in ("Number", "Datetime"):
            tail = f"><v>{cell.number:.16G}</v></c>"
        elif kind == "Blank":
            tail = "/>"
        else:
            raise NotImplementedError(f"BulkWorksheet with {kind} cells")
        ref = _refs(c + 1)[c]
        xml += [ref, str(r + 1), '" s="', cell.format, f'"{tail}'] if cell.format else [ref, f'{r + 1}"{tail}']
    return _Row(min(cells), max(cells), xml)


def _spans(rows: dict[int, _Row]) -> dict[int, str]:
    """The spans attribute of each block of 16 rows: its first and last used column, 1-based."""
    lo: dict[int, int] = {}
    hi: dict[int, int] = {}
    for r, row in rows.items():
        b = r // 16
        lo[b] = min(lo.get(b, row.first), row.first)
        hi[b] = max(hi.get(b, row.last), row.last)
    return {b: f"{lo[b] + 1}:{hi[b] + 1}" for b in lo}


_REFS: list[str] = []  # the start of a cell element in column c, up to its row number


def _refs(width: int) -> list[str]:
    while len(_REFS) < width:
        _REFS.append(f'<c r="{xl_col_to_name(len(_REFS))}')
    return _REFS
