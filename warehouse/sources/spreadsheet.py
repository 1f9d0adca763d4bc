"""Read township spreadsheets (xlsx, legacy xls, or CSV in UTF-8 or GB18030) into canonical frames.

Township ledgers are messy: title and units rows above a header that may span two merged rows,
synonyms and hints in headers (`是否合格（是/否）`), merged cells, 合计 rows, an example row,
signature lines under the table (制表人 / 审核人 / 单位负责人 / 填报日期), dates typed as
2023年3月5日 / 2023.3.5 / Excel serials, numbers as `1.22万` / `２００余` / `3学时`, full-width
digits and spaces. This module finds each table's header by its field names (fields.yaml), keeps
only the rows of the table body, normalises text, dates and numbers column by column (pandas
string methods over distinct values, not a loop over rows) and hashes identifiers in DuckDB.

What a file holds that is not read is said, not dropped silently: hidden sheets, sheets without a
recognised table, unrecognised columns and rows after a signature line become warnings
(FileIssue, level `warn`); a file that cannot be read as a whole raises SourceError, and the
parsers refuse that file alone (warehouse/sources/township_files.py).
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from itertools import zip_longest
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from warehouse.sources.landing import UNREAD_SPREADSHEETS
from warehouse.sources.mapping import Column, SourceError, TableMapping
from warehouse.sources.parsed import quiet_connect
from warehouse.sources.pseudonym import install_pseudonym_macro
from warehouse.sources.workbook_guard import check_workbook

HEADER_SCAN_ROWS = 15
_DATE_TEXT = re.compile(
    r"^\s*(\d{4})\s*[年\-./]\s*(\d{1,2})\s*[月\-./]\s*(\d{1,2})\s*日?(?:\s+\d{1,2}:\d{2}(?::\d{2})?)?\s*$"
)
_DATE_DIGITS = re.compile(r"^(\d{4})(\d{2})(\d{2})$")  # 20230305

# Lines that are not records, recognised by their first non-blank cell (NFKC, no spaces):
# totals, the template's example row, and signature / footer lines. A footer line ends the
# table body: what follows it (often the names under 制表人 / 审核人) is never read.
_TOTAL = re.compile(r"^(合计|小计|总计|共计|累计)")
_EXAMPLE = re.compile(r"^(\(?(示例|样例|填写示例|填表示例)\)?|例[:：])")
_FOOTER_LABELS = (
    "制表人", "制表", "填表人", "填报人", "填报单位", "填报日期", "填表日期", "制表日期", "报送日期",
    "审核人", "审核", "审批人", "审批", "单位负责人", "主要负责人", "负责人", "分管领导", "经办人",
    "联系人", "联系电话", "备注", "说明", "附注", "注", "签字", "签名", "单位(盖章)", "(盖章)", "盖章", "日期",
)  # fmt: skip
_FOOTER = re.compile(
    "^(?:" + "|".join(re.escape(w) for w in sorted(_FOOTER_LABELS, key=len, reverse=True)) + r")(?:[:：]|$)"
)
# A units row under the header ("(人)", "单位：件", "学时") or a row numbering the columns (1 2 3 / 甲 乙 丙).
_UNIT_CELL = re.compile(
    r"^\(?(单位[:：]?)?(人|人次|件|次|场|个|份|条|面|处|学时|小时|课时|分|元|万元|天|日期|是/否|是或否)?\)?$"
)
_ORDINALS = "甲乙丙丁戊己庚辛壬癸"
# Header cells a township adds that carry nothing to read (not reported as unrecognised).
_IGNORED_HEADERS = {"序号", "序", "行号", "编号序号"}
# Sheets a workbook may hold besides its tables: not reported when they hold no table.
NOTE_SHEETS = re.compile(r"(填表说明|说明|乡镇代码|代码表|下拉|选项|目录|封面)")


class Sheets(dict):
    """A workbook's visible sheets (name -> rows of cell values, merged cells filled down);
    `hidden`: the names of the hidden sheets, which are never read."""

    def __init__(self, *args, hidden: list[str] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.hidden = hidden or []
        self.merged: dict[str, list] = {}


@dataclass(frozen=True)
class FileIssue:
    """Something about one file: a refusal (the file is not loaded) or a warning (it loads, but
    part of it was not read). Located by sheet, Excel row and column; `value` is the cell as
    written, never from a personal column."""

    rule: str
    level: str  # refused | warn
    message_zh: str
    message_en: str
    sheet: str | None = None
    row: int | None = None
    column: str | None = None
    value: str | None = None


class FileRefused(SourceError):
    """A file that cannot be read as a whole, with where in it (sheet, Excel row, column)."""

    def __init__(self, source, file, message_zh, message_en, rule, sheet=None, row=None, column=None):
        super().__init__(source, file, message_zh, message_en, rule)
        self.sheet, self.row, self.column = sheet, row, column

    def __reduce__(self):
        return (
            FileRefused,
            (self.source, self.file, self.message_zh, self.message_en, self.rule, self.sheet, self.row, self.column),
        )


_OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ENCRYPTED = "EncryptedPackage".encode("utf-16-le")


def read_workbook(path: Path, source: str) -> Sheets:
    """Every visible sheet as a list of rows of cell values; a CSV is one sheet named after the
    file. Refused with a message a clerk can act on: empty, HTML or XML saved as .xls, encrypted,
    damaged, not a spreadsheet."""
    unread = UNREAD_SPREADSHEETS.get(path.suffix.lower())
    if unread:
        raise SourceError(
            source,
            path.name,
            f"该文件是「{unread[0]}」({path.suffix})格式，不能读取：请「另存为」Excel 工作簿(.xlsx)再提交",
            f"the file is {unread[1]} ({path.suffix}), which is not read: save it as an Excel workbook (.xlsx)",
            "file-format",
        )
    errors: dict[str, dict] = {}
    data = check_workbook(path, source, errors)  # hostile or broken files are refused before calamine sees them
    if not data.strip():
        raise SourceError(source, path.name, "文件为空", "the file is empty", "file-empty")
    if data[:4] == b"PK\x03\x04" or data[:8] == _OLE:
        return _read_calamine(data, source, path.name, errors)
    if path.suffix.lower() == ".csv":
        return _read_csv(data, source, path)
    head = data[:2048].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith(b"<") and (b"<html" in head or b"<table" in head or b"<!doctype" in head):
        raise SourceError(
            source,
            path.name,
            "该文件是网页(HTML)格式，只是扩展名为表格：请用 Excel 或 WPS 打开后「另存为」Excel 工作簿(.xlsx)再提交",
            "the file is a web page (HTML) with a spreadsheet's extension: open it in Excel or WPS and save it "
            "as an Excel workbook (.xlsx)",
            "file-html",
        )
    if head.startswith(b"<?xml") and b"urn:schemas-microsoft-com:office:spreadsheet" in data[:4096]:
        raise SourceError(
            source,
            path.name,
            "该文件是「XML 电子表格 2003」格式：请另存为 Excel 工作簿(.xlsx)再提交",
            "the file is an XML Spreadsheet 2003: save it as an Excel workbook (.xlsx)",
            "file-format",
        )
    raise SourceError(
        source,
        path.name,
        "不是电子表格文件：请提交 Excel 工作簿(.xlsx 或 .xls)或 CSV 文件",
        "not a spreadsheet: an Excel workbook (.xlsx or .xls) or a CSV file is expected",
        "file-format",
    )


def _read_calamine(data: bytes, source: str, name: str, errors: dict[str, dict] | None = None) -> Sheets:
    """The workbook's visible sheets; a cell holding a formula's error (`errors`, found by the
    workbook guard: calamine reads it as blank) is read as the error it shows, `#DIV/0!`, so
    that a number or a date there is refused as written, not taken as left blank."""
    from python_calamine import CalamineWorkbook, SheetTypeEnum, SheetVisibleEnum

    if data[:8] == _OLE and _ENCRYPTED in data:
        raise SourceError(
            source, name, "文件设置了打开密码：请取消密码后再提交", "the workbook has a password", "file-encrypted"
        )
    try:
        wb = CalamineWorkbook.from_filelike(io.BytesIO(data))
        sheets = Sheets()
        for meta in wb.sheets_metadata:
            if meta.typ != SheetTypeEnum.WorkSheet:
                continue
            if meta.visible != SheetVisibleEnum.Visible:
                sheets.hidden.append(meta.name)
                continue
            sheet = wb.get_sheet_by_name(meta.name)
            rows = sheet.to_python(skip_empty_area=False)
            for (r, c), shown in (errors or {}).get(meta.name, {}).items():
                if r < len(rows) and c < len(rows[r]) and rows[r][c] == "":
                    rows[r][c] = shown
            merged = list(sheet.merged_cell_ranges or [])
            sheets[meta.name] = _fill_down(rows, merged)
            sheets.merged[meta.name] = merged
        return sheets
    except Exception as exc:  # calamine raises its own error types
        raise SourceError(
            source,
            name,
            "无法读取该 Excel 文件(文件已损坏或不完整)：请在 Excel 或 WPS 中打开并重新保存后再提交",
            f"not a readable workbook (damaged or incomplete: {type(exc).__name__})",
            "file-format",
        ) from None


def _read_csv(data: bytes, source: str, path: Path) -> Sheets:
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise SourceError(
            source,
            path.name,
            "CSV编码无法识别(应为UTF-8或GB18030)",
            "CSV is neither UTF-8 nor GB18030",
            "file-encoding",
        )
    return Sheets({path.stem: [row for row in csv.reader(io.StringIO(text))]})


def _fill_down(rows: list[list], merged: list) -> list[list]:
    """A merged cell's value in every row it spans (its first column): a 活动编号 merged over the
    attendance rows of one session belongs to each of them. Merges across columns are left to
    header detection (a group header above its columns)."""
    for (r0, c0), (r1, _) in merged:
        if r1 <= r0 or r0 >= len(rows) or c0 >= len(rows[r0]):
            continue
        value = rows[r0][c0]
        for r in range(r0 + 1, min(r1, len(rows) - 1) + 1):
            row = rows[r]
            if c0 < len(row) and not _nonblank(row[c0]):
                row[c0] = value
    return rows


def norm_header(cell) -> str:
    """A header cell as compared with fields.yaml names: NFKC, no spaces, no `*` required
    markers, no bracketed hints or units (`是否合格（是/否）`, `学时(小时)`), no trailing colon."""
    return _norm_header(cell) if isinstance(cell, str) else _norm_header(str(cell or ""))


@lru_cache(maxsize=1 << 16)  # headers and short codes repeat in every file
def _norm_header(cell: str) -> str:
    text = _SPACES.sub("", unicodedata.normalize("NFKC", cell))
    return _HINTS.sub("", text.replace("*", "").replace("※", "")).rstrip(":：")


_SPACES = re.compile(r"\s+")
_HINTS = re.compile(r"\([^()]*\)|\[[^\[\]]*\]|【[^【】]*】")


def _norm_line(cell) -> str:
    return _SPACES.sub("", unicodedata.normalize("NFKC", str(cell)))


def _cell_text(v) -> str | None:
    """One cell as text (footer lines); whole columns go through cells_to_text."""
    if v is None:
        return None
    if isinstance(v, datetime):
        return v.date().isoformat() if v.time() == datetime.min.time() else v.isoformat(sep=" ")
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    s = str(v)
    return s if s.strip() else None


def _blank(v) -> bool:
    return isinstance(v, str) and not v.strip()


def _nonblank(v) -> bool:
    return v is not None and (not isinstance(v, str) or bool(v.strip()))


def column_letter(j: int) -> str:
    """Excel's name of the 0-based column j (0 -> A, 26 -> AA)."""
    out = ""
    j += 1
    while j:
        j, r = divmod(j - 1, 26)
        out = chr(65 + r) + out
    return out


def cells_to_text(s: pd.Series) -> pd.Series:
    """Raw cell values (text, numbers, dates as calamine gives them) as text, column-wise:
    whole numbers without '.0', dates as ISO, blank text as missing. Same result as _cell_text
    on every cell, without a Python call per cell."""
    if pd.api.types.infer_dtype(s, skipna=True) in ("string", "empty"):  # text cells only: no per-cell type
        out = s.astype(object)
        out[_map_distinct(out, _blank, False).astype(bool)] = None
        return out.where(out.notna(), None)
    out = pd.Series(None, index=s.index, dtype=object)
    kinds = s.map(type)
    text = kinds.isin([str])
    out[text] = s[text]
    for kind in (float, int, bool):
        mask = kinds.isin([kind])
        if not mask.any():
            continue
        values = s[mask]
        if kind is float:
            numbers = values.astype("float64")
            exact = (numbers % 1 == 0) & (numbers.abs() < 2**53)  # whole numbers int64 holds exactly
            out[exact[exact].index] = numbers[exact].astype("int64").astype(str)
            out[exact[~exact].index] = values[~exact].map(_cell_text)  # fractions, huge numbers
        else:
            out[mask] = values.map(str)
    for kind in (datetime, date):
        mask = kinds.isin([kind])
        if mask.any():
            out[mask] = s[mask].map(_cell_text)  # rare in ledgers: cells typed as dates
    rest = ~(text | kinds.isin([float, int, bool, datetime, date, type(None)]))
    if rest.any():
        out[rest] = s[rest].map(_cell_text)
    out[_map_distinct(out, _blank, False).astype(bool)] = None
    return out.where(out.notna(), None)


def _map_distinct(s: pd.Series, fn, missing=None) -> pd.Series:
    """fn applied once per distinct value of s (ledger columns repeat few values), missing
    values mapped to `missing`."""
    codes, distinct = pd.factorize(s.astype(object), use_na_sentinel=True)
    return pd.Series(np.array([*(fn(v) for v in distinct), missing], dtype=object)[codes], index=s.index)


# ---- finding a table in a sheet ---------------------------------------------------------------


@dataclass
class Header:
    """Where a table's header is in a sheet: its first and last row (0-based; a two-row merged
    header spans two), each canonical column's position, and the columns not recognised."""

    first_row: int
    last_row: int
    positions: dict[str, int]
    texts: dict[int, str]  # position -> header text as written (for messages)
    missing: list[Column]
    unrecognised: list[tuple[int, str]]

    @property
    def complete(self) -> bool:
        return not self.missing

    def score(self, mapping: TableMapping) -> tuple[int, int]:
        required = [c for c in mapping.columns if c.required]
        return (len(required) - len(self.missing), len(self.positions))


def header_area(rows: list[list], merged: list | None = None) -> list[tuple[list, list[str]]]:
    """The first HEADER_SCAN_ROWS + 1 rows where a header may be, each as (cells with merges
    across columns spread over them, the cells as norm_header gives them): computed once per
    sheet, whichever tables are looked for in it."""
    area = []
    for i, row in enumerate(rows[: HEADER_SCAN_ROWS + 1]):
        cells = _spread_across(row, i, merged or [])
        area.append((cells, [_header_text(c) for c in cells]))
    return area


def _header_text(cell) -> str:
    """A header area's cell as norm_header gives it, blank as ''."""
    if isinstance(cell, str):
        return _norm_header(cell) if cell.strip() else ""
    return "" if cell is None else norm_header(cell)


def find_header(
    rows: list[list], mapping: TableMapping, merged: list | None = None, area: list | None = None
) -> Header | None:
    """The best header row (or pair of rows: a group header merged over the columns it names, or
    a header cell merged down over two rows) among the first HEADER_SCAN_ROWS rows: the most
    required columns, then the most columns; a one-row header wins a tie. None when no row
    names a required column. `area`: header_area(rows, merged), when already computed."""
    area = area if area is not None else header_area(rows, merged)
    wanted, split, required = _header_names(mapping)
    # rows naming no field (nor, over the row below, a field split in two) cannot be the header:
    # the table body under a short header is passed over at set speed
    named = [not wanted.keys().isdisjoint(cells) for _, cells in area]
    best_key, best = None, None
    for i in range(min(len(area), HEADER_SCAN_ROWS)):
        top = area[i][1]
        for two in (False, True):
            if two and i + 1 >= len(area):
                continue
            if not named[i] and not (two and (named[i + 1] or _names_split(split, top, area[i + 1][1]))):
                continue  # no cell (s, t or t + s below) is a field's name: nothing found
            sub = area[i + 1][1] if two else []
            found: dict[str, int] = {}
            for j in range(max(len(top), len(sub))):
                t = top[j] if j < len(top) else ""
                s = sub[j] if j < len(sub) else ""
                for c in (s, t, t + s) if two else (t,):
                    name = wanted.get(c) if c else None
                    if name and name not in found:
                        found[name] = j
                        break
            n_required = sum(c.name in found for c in required)
            key = (n_required, len(found), not two, -i)
            if n_required and (best_key is None or key > best_key):
                best_key, best = key, (i, two, found)
    if best is None:
        return None
    i, two, found = best
    top, sub = area[i][0], area[i + 1][0] if two else []
    texts = {}
    for j in range(max(len(top), len(sub))):
        shown = sub[j] if two and j < len(sub) and _nonblank(sub[j]) else top[j] if j < len(top) else None
        if _nonblank(shown):
            texts[j] = str(shown).strip()
    unrecognised = [
        (j, text) for j, text in texts.items() if j not in found.values() and norm_header(text) not in _IGNORED_HEADERS
    ]
    return Header(i, i + 1 if two else i, found, texts, [c for c in required if c.name not in found], unrecognised)


@lru_cache(maxsize=64)
def _header_names(mapping: TableMapping) -> tuple[dict[str, str], frozenset[tuple[str, str]], tuple[Column, ...]]:
    """A table's field names as norm_header gives them (-> the canonical column), each name cut
    in two in every way (a two-row header's cell `t` over `s` names a field as `t + s`), and the
    required columns."""
    wanted = {norm_header(f): c.name for c in mapping.columns for f in c.fields}
    split = frozenset((k[:n], k[n:]) for k in wanted for n in range(1, len(k)))
    return wanted, split, tuple(c for c in mapping.columns if c.required)


def _names_split(split: frozenset[tuple[str, str]], top: list[str], sub: list[str]) -> bool:
    """Does a cell of `top` and the one under it name a field together? (Past the shorter row,
    a cell over nothing is itself, which `named` covers.)"""
    return not split.isdisjoint(zip(top, sub, strict=False))


def _spread_across(row: list, i: int, merged: list) -> list:
    """Row i with each cell merged across columns repeated in every column it spans."""
    out = list(row)
    for (r0, c0), (r1, c1) in merged:
        if r0 <= i <= r1 and c1 > c0 and r0 == i and c0 < len(out):
            out += [None] * (c1 + 1 - len(out))
            for c in range(c0 + 1, c1 + 1):
                if not _nonblank(out[c]):
                    out[c] = out[c0]
    return out


def header_refusal(header: Header | None, mapping: TableMapping, source: str, file: str, sheet: str | None):
    """The refusal for a sheet whose header lacks a required column (or has none)."""
    where = f" 工作表「{sheet}」" if sheet else ""
    where_en = f" (sheet {sheet!r})" if sheet else ""
    required = [c for c in mapping.columns if c.required]
    if header is None:
        return FileRefused(
            source,
            file,
            f"{where.strip()}找不到表头行(应包含: " + "、".join(c.fields[0] for c in required) + ")",
            f"no recognisable header row{where_en} (expected: " + ", ".join(c.fields[0] for c in required) + ")",
            "header-missing",
            sheet,
        )
    col = header.missing[0]
    others = "、".join(t for _, t in header.unrecognised)
    hint_zh = f"；表头中未识别的列: {others}" if others else ""
    hint_en = f"; unrecognised header columns: {', '.join(t for _, t in header.unrecognised)}" if others else ""
    return FileRefused(
        source,
        file,
        f"{where.strip()}第{header.last_row + 1}行表头缺少必填列「{col.fields[0]}」"
        f"(可写作: {'、'.join(col.fields)}){hint_zh}",
        f"the header{where_en} at row {header.last_row + 1} lacks required column {col.fields[0]!r} "
        f"(any of: {', '.join(col.fields)}){hint_en}",
        "schema-drift",
        sheet,
        header.last_row + 1,
    )


@dataclass
class SheetTable:
    """A table's rows in one sheet: the body rows and their Excel row numbers, the header's
    column positions, and what was not read (warnings)."""

    sheet: str | None
    header: Header
    rows: list[list]
    numbers: list[int]
    warnings: list[FileIssue] = field(default_factory=list)


def slice_table(rows: list[list], header: Header, sheet: str | None) -> SheetTable:
    """The table body under `header`: units / column-number rows right under it, blank rows,
    totals, the example row and repeated header rows skipped; a footer line (制表人, 审核人,
    填报日期, 备注 …) ends the body, and rows after it are never read (a warning names them)."""
    start = header.last_row + 1
    while start < len(rows) and _is_units_row(rows[start]):
        start += 1
    header_cells = {j: norm_header(t) for j, t in header.texts.items()}
    kept, numbers, after_footer, footer_row = [], [], [], None
    for idx in range(start, len(rows)):
        row = rows[idx]
        if row and (first := row[0]) is not None and (not isinstance(first, str) or first.strip()):
            first_at = 0  # _nonblank(row[0]), inline: once per row of every table
        else:
            first_at, first = next(((j, v) for j, v in enumerate(row) if _nonblank(v)), (None, None))
            if first is None:
                continue
        kind, as_header = _line_kind(first) if isinstance(first, str) else (None, None)
        if footer_row is not None:
            if kind != _FOOTER_LINE:
                after_footer.append(idx + 1)
            continue
        if kind is not None:
            if kind == _FOOTER_LINE:
                footer_row = idx + 1
                continue
            if kind == _NOT_A_RECORD:
                continue
            if header_cells.get(first_at) == as_header and _repeats_header(row, header_cells):
                continue
        kept.append(row)
        numbers.append(idx + 1)
    table = SheetTable(sheet, header, kept, numbers)
    if after_footer:
        one = len(after_footer) == 1
        span = f"{after_footer[0]}" if one else f"{after_footer[0]}–{after_footer[-1]}"
        table.warnings.append(
            FileIssue(
                "rows-after-footer",
                "warn",
                f"第{footer_row}行是表尾(制表人、审核人、填报日期、备注等)，其后的第{span}行未读取；"
                "如有数据，请移到表尾之前",
                f"row {footer_row} is a footer line (signatures, date, notes): {'row' if one else 'rows'} {span} "
                f"after it {'was' if one else 'were'} not read; move any records above the footer",
                sheet,
                after_footer[0],
            )
        )
    for j, text in header.unrecognised:
        table.warnings.append(
            FileIssue(
                "column-unrecognised",
                "warn",
                f"表头「{text}」({column_letter(j)}列)不是本表的字段，该列未读取",
                f"column {column_letter(j)} ({text!r}) is not a field of this table and was not read",
                sheet,
                header.last_row + 1,
                column_letter(j),
                text,
            )
        )
    return table


_FOOTER_LINE, _NOT_A_RECORD, _A_RECORD = 1, 2, 0


@lru_cache(maxsize=1 << 14)  # first cells repeat (a session's id on each attendance row)
def _line_kind(first: str) -> tuple[int, str]:
    """What a row is, by its first non-blank cell (text): a footer line, a total or example row
    (not a record), or a record (or a repeated header: judged by the whole row); and the cell
    as norm_header gives it."""
    line = _norm_line(first)
    if _FOOTER.match(line):
        kind = _FOOTER_LINE
    else:
        kind = _NOT_A_RECORD if _TOTAL.match(line) or _EXAMPLE.match(line) else _A_RECORD
    return kind, norm_header(first)


def _repeats_header(row: list, header_cells: dict[int, str]) -> bool:
    same = sum(1 for j, h in header_cells.items() if j < len(row) and _nonblank(row[j]) and norm_header(row[j]) == h)
    return same >= max(2, len(header_cells) // 2)


def _is_units_row(row: list) -> bool:
    cells = [_norm_line(_cell_text(v)) for v in row if _nonblank(v)]
    if not cells:
        return False
    if all(_UNIT_CELL.match(c) for c in cells):
        return True
    if all(c.isdigit() for c in cells):  # 1 2 3 …: numbering the columns, not a record
        return [int(c) for c in cells] == list(range(int(cells[0]), int(cells[0]) + len(cells))) and len(cells) > 2
    return all(len(c) == 1 and c in _ORDINALS for c in cells) and len(cells) > 1


# Excel keeps 15 significant digits of a number: an identity number (18 digits) typed into a
# cell not formatted as text is stored as 3.50481199001011E+17, its last digits lost
_DIGITS_LOST = 1e15


def _identifiers_kept_whole(cells, table: SheetTable, header: str, j: int):
    """An identifier column's cells, those stored as numbers too long for Excel's 15 digits
    made missing (their rows are quarantined for it): two people whose numbers differ only in
    the lost digits would be one person, and a number on the roster as text would not match
    it. A warning locates the first and counts them."""
    lost = [i for i, v in enumerate(cells) if type(v) is float and abs(v) >= _DIGITS_LOST]
    if not lost:
        return cells
    cells = list(cells)
    for i in lost:
        cells[i] = None
    table.warnings.append(
        FileIssue(
            "cell-id-as-number",
            "warn",
            f"「{header}」列有 {len(lost)} 个单元格存成了数字，末几位已丢失(Excel 只保留 15 位)：这些行按缺少"
            f"「{header}」隔离；请把该列设为文本格式后重新录入",
            f"{len(lost)} cell(s) of {header} hold numbers whose last digits Excel lost (it keeps 15): their rows "
            f"are quarantined as missing it; format the column as text and type them again",
            table.sheet,
            table.numbers[lost[0]],
            column_letter(j),
        )
    )
    return cells


class TableRows:
    """A table's raw rows gathered over many sheets (files), turned into one text frame at the
    end: the per-file work is finding the header and slicing rows; the conversion of cells to
    text and all normalisation run once per column over every file."""

    def __init__(self, mapping: TableMapping, constants: tuple[str, ...] = ()):
        """`constants`: the columns with one value per sheet (township, year), present even when
        no sheet was added."""
        self.mapping = mapping
        self.files: list[str] = []
        self.numbers: list[int] = []
        self.values: dict[str, list] = {c.name: [] for c in mapping.columns}
        self.constants: dict[str, list] = {name: [] for name in constants}
        # identifier columns (hashed to pseudonyms) by name: their header as written in fields.yaml
        self.identifiers = {c.name: c.fields[0] for c in mapping.columns if c.type == "pseudonym" and c.fields}

    def add(self, rows: list[list], source: str, file: str, sheet: str | None = None, **constants) -> int:
        """The sheet's rows under its header row (refused when it has none); `constants` are
        columns with one value for the whole sheet (township, year). Returns the rows taken."""
        header = find_header(rows, self.mapping)
        if header is None or not header.complete:
            raise header_refusal(header, self.mapping, source, file, sheet)
        return self.extend(slice_table(rows, header, sheet), file, **constants)

    def extend(self, table: SheetTable, file: str, **constants) -> int:
        """A sliced sheet's rows (slice_table); returns how many."""
        kept, positions = table.rows, table.header.positions
        columns = list(zip_longest(*kept))  # transposed at C speed; short rows padded with None
        for name, values in self.values.items():
            j = positions.get(name)
            cells = columns[j] if j is not None and j < len(columns) else [None] * len(kept)
            if name in self.identifiers:
                cells = _identifiers_kept_whole(cells, table, self.identifiers[name], j)
            values.extend(cells)
        self.files.extend([file if not table.sheet else f"{file}#{table.sheet}"] * len(kept))
        self.numbers.extend(table.numbers)
        for name, value in constants.items():
            self.constants.setdefault(name, []).extend([value] * len(kept))
        return len(kept)

    def frame(self) -> pd.DataFrame:
        """`_source_file`, `_row_number` (as Excel numbers rows), the kept columns as normalised
        text (normal_text), then the constant columns. Personal columns never leave the cells."""
        df = pd.DataFrame(
            {
                "_source_file": pd.Series(self.files, dtype=object),
                "_row_number": pd.Series(self.numbers, dtype="int32"),
            }
        )
        for col in self.mapping.kept_columns:
            df[col.name] = normal_text(pd.Series(self.values[col.name], dtype=object))
        for name, values in self.constants.items():
            df[name] = values
        return df


def extract_table(
    rows: list[list], mapping: TableMapping, source: str, file: str, sheet: str | None = None
) -> pd.DataFrame:
    """One sheet's table under the header row, canonical column names, `_row_number` as Excel
    numbers rows (a single sheet; parsers gather many with TableRows)."""
    gathered = TableRows(mapping)
    gathered.add(rows, source, file, sheet)
    return gathered.frame()


def footer_value(rows: list[list], label: str) -> str | None:
    """The value of a footer line such as 填报日期：2024-01-15, or of the cell typed beside
    `填报日期：` (text or an Excel date)."""
    for row in rows:
        for j, cell in enumerate(row):
            # _cell_text(cell), text inline: every cell of the sheet is looked at
            text = (cell if cell.strip() else None) if isinstance(cell, str) else _cell_text(cell)
            if text and norm_header(text.split("：")[0].split(":")[0]) == label:
                rest = re.split(r"[:：]", text, maxsplit=1)
                if len(rest) > 1 and rest[1].strip():
                    return rest[1].strip()
                beside = next((_cell_text(v) for v in row[j + 1 :] if _nonblank(v)), None)
                return beside.strip() if beside else None
    return None


# ---- normalising columns ----------------------------------------------------------------------


def _normal(v) -> str | None:
    return unicodedata.normalize("NFKC", str(v)).strip() or None


def normalise_text(s: pd.Series) -> pd.Series:
    """NFKC (full-width digits and spaces), trimmed, blank as missing. Ledger columns repeat few
    distinct values: each distinct value is normalised once (factorize), not every cell, and the
    column built in Arrow (pandas' "string" dtype)."""
    codes, distinct = pd.factorize(s.astype(object), use_na_sentinel=True)
    values = pa.array([*(_normal(v) for v in distinct), None], type=pa.large_string())
    # each cell's text taken by position from the distinct values' Arrow array: no Python string per cell
    taken = values.take(np.where(codes < 0, len(distinct), codes))
    return pd.Series(pd.arrays.ArrowStringArray(taken), index=s.index)


def normal_text(cells: pd.Series) -> pd.Series:
    """Raw cells as normalised text: normalise_text(cells_to_text(cells)), in one pass over the
    distinct values when the column holds only text (the common case: blank text is missing
    either way)."""
    if pd.api.types.infer_dtype(cells, skipna=True) in ("string", "empty"):
        return normalise_text(cells)
    return normalise_text(cells_to_text(cells))


def normalise_dates(s: pd.Series) -> pd.Series:
    """ISO dates from 2023-3-5 / 2023年3月5日 / 2023.3.5 / 2023/3/5 / 20230305 / Excel serials;
    other text kept (validation rejects it, naming it)."""
    return _dates(normalise_text(s))


def _dates(text: pd.Series) -> pd.Series:
    """normalise_dates of text already normalised (a column repeats few dates: each distinct
    value is read once)."""
    codes, distinct = pd.factorize(text, use_na_sentinel=True)
    out = _dates_of(pd.Series(pd.array([*distinct, None], dtype="string")))
    return pd.Series(out.array.take(codes), index=text.index)  # code -1 (missing) takes the last: None's


def _dates_of(text: pd.Series) -> pd.Series:
    parts = text.str.extract(_DATE_TEXT)
    digits = text.str.extract(_DATE_DIGITS)
    parts = parts.fillna(digits)
    iso = parts[0] + "-" + parts[1].str.zfill(2) + "-" + parts[2].str.zfill(2)
    serial = pd.to_numeric(text.where(text.str.fullmatch(r"\d{5}(\.\d+)?", na=False)), errors="coerce")
    serial_date = (pd.Timestamp("1899-12-30") + pd.to_timedelta(serial, unit="D")).dt.strftime("%Y-%m-%d")
    out = iso.fillna(serial_date.astype("string")).fillna(text)
    return out


# Numbers as clerks write them (after NFKC): `1,000`, `1.22万`, `3千`, `200余`, `8000余份`,
# `50以上`, `约8000`, `2学时`, `90分`. A qualifier says the figure is a bound (">=": 余 多 以上
# 不少于 至少 超过) or approximate ("~": 约 大约 近 左右 上下).
_UNITS = "人次|人|件|次|场|个|份|条|面|处|块|期|篇|项|家|学时|小时|课时|分钟|分|元|天|h"
_NUMBER = re.compile(
    r"^(?P<pre>约|大约|近|超过|逾|不少于|至少|共|共计|计|合计)?"
    r"(?P<number>[+-]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?)"
    r"(?P<scale>万|千|百)?"
    r"(?P<post1>余|多|以上|左右|上下)?"
    rf"(?:{_UNITS})?"
    r"(?P<post2>余|多|以上|左右|上下)?$"
)
_AT_LEAST = {"余", "多", "以上", "超过", "逾", "不少于", "至少"}
_ABOUT = {"约", "大约", "近", "左右", "上下"}
_SCALE = {"万": Decimal(10000), "千": Decimal(1000), "百": Decimal(100)}


def _read_number(text: str) -> tuple[float | None, str | None, bool]:
    """(value, qualifier, plain): plain is False when the text had a qualifier or a 万/千/百."""
    m = _NUMBER.match(re.sub(r"\s+", "", text))
    if not m:
        return None, None, False
    try:
        value = Decimal(m["number"].replace(",", "")) * _SCALE.get(m["scale"] or "", Decimal(1))
    except InvalidOperation:
        return None, None, False
    marks = {m["pre"], m["post1"], m["post2"]} - {None}
    qualifier = "~" if marks & _ABOUT else ">=" if marks & _AT_LEAST else None
    return float(round(value, 2)), qualifier, not (marks - {"共", "共计", "计", "合计"}) and not m["scale"]


def read_numbers(text: pd.Series, qualified: bool = True) -> pd.DataFrame:
    """Normalised text (normal_text) as numbers, read exactly, once per distinct value:
    `value` (float, NaN when unreadable), `qualifier` (">=", "~" or missing) and `unreadable`
    (the text as written where it is not a number). With qualified=False (hours, scores) a
    qualifier or a 万/千 makes the value unreadable too."""
    codes, distinct = pd.factorize(text.astype(object), use_na_sentinel=True)
    parsed = [_read_number(v) for v in distinct]
    values = np.array([*(p[0] if (qualified or p[2]) else None for p in parsed), None], dtype=object)
    qualifiers = np.array([*(p[1] if qualified else None for p in parsed), None], dtype=object)
    out = pd.DataFrame(
        {
            "value": pd.to_numeric(pd.Series(values[codes], index=text.index), errors="coerce").astype("float64"),
            "qualifier": pd.Series(qualifiers[codes], index=text.index, dtype="string"),
        }
    )
    out["unreadable"] = text.where(out["value"].isna() & text.notna()).astype("string")
    return out


UNREADABLE = "_unreadable_"  # prefix of the column holding a number column's unreadable text


def canonicalise(
    df: pd.DataFrame, mapping: TableMapping, key: bytes, passthrough: tuple[str, ...] = ()
) -> pd.DataFrame:
    """Type the kept columns of a TableRows frame (normalised text) and hash identifiers; one
    call per table for a whole batch (all files together), not per file. A number column `x`
    gets a companion `_unreadable_x`: the text as written where it is not a number (validated,
    echoed in the quarantine message; never loaded)."""
    return canonicalise_tables([(df, mapping, passthrough)], key)[0]


# what a cell shows when its formula fails (Excel, WPS, LibreOffice)
FORMULA_ERRORS = [
    "#NULL!", "#DIV/0!", "#VALUE!", "#REF!", "#NAME?", "#NUM!", "#N/A", "#GETTING_DATA", "#SPILL!",
    "#CALC!", "#FIELD!", "#BLOCKED!", "#CONNECT!", "#BUSY!", "#UNKNOWN!", "#ERROR",
]  # fmt: skip


def canonicalise_tables(
    tables: Iterable[tuple[pd.DataFrame, TableMapping, tuple[str, ...]]], key: bytes
) -> list[pd.DataFrame]:
    """canonicalise of several tables (frame, mapping, passthrough) of the same files: an
    identifier named in several of them (a person on the staff roster and in the attendance)
    is hashed once."""
    out, hashed = [], []
    for df, mapping, passthrough in tables:
        frame = df[["_source_file", "_row_number", *passthrough]].copy()
        for col in mapping.kept_columns:
            s = df[col.name]
            if col.type == "date":
                frame[col.name] = _dates(s)
            elif col.type == "number":
                numbers = read_numbers(s, qualified=False)
                frame[col.name] = numbers["value"]
                frame[UNREADABLE + col.name] = numbers["unreadable"]
            elif col.type == "pseudonym":  # a formula's error is no identifier: missing, not one person
                frame[col.name] = s.where(~s.isin(FORMULA_ERRORS), None)
            else:
                frame[col.name] = s
            if col.type == "pseudonym" and len(frame):
                hashed.append((frame, col.name))
        out.append(frame)
    if hashed:
        con = quiet_connect()
        try:
            install_pseudonym_macro(con, key)
            for (frame, name), keys in zip(hashed, _pseudonyms(con, [f[n] for f, n in hashed]), strict=True):
                frame[name] = keys
        finally:
            con.close()
    return out


def _pseudonyms(con: duckdb.DuckDBPyConnection, columns: list[pd.Series]) -> list[pd.Series]:
    """The keyed hash of each value of the columns, computed once per distinct value (a ledger
    names the same person on every session they attend, and on its staff roster) in one
    DuckDB statement; the values stay in Arrow (no Python string per cell)."""
    values = pa.concat_arrays([pa.array(s, type=pa.large_string(), from_pandas=True) for s in columns])
    values = values.dictionary_encode()  # the distinct values, and each cell's position among them
    con.register("distinct_values", pa.table({"v": values.dictionary}))
    hashes = con.sql("select pseudonym(v) from distinct_values").to_arrow_table().column(0)
    con.unregister("distinct_values")
    # a missing value (null position): the null after the hashes
    hashes = pa.concat_arrays([*hashes.cast(pa.large_string()).chunks, pa.nulls(1, pa.large_string())])
    codes = values.indices.fill_null(len(values.dictionary))
    out, start = [], 0
    for s in columns:
        taken = hashes.take(codes.slice(start, len(s)))
        out.append(pd.Series(pd.arrays.ArrowStringArray(taken), index=s.index))
        start += len(s)
    return out
