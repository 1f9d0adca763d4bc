"""Read township spreadsheets (xlsx, or CSV in UTF-8 or GB18030) into canonical frames.

Township ledgers are messy: a title row above the header, synonyms in headers, 合计 rows,
dates typed as 2023年3月5日 / 2023.3.5 / Excel serials, full-width digits and spaces. This
module finds the header row by its field names, maps columns by fields.yaml, normalises text
and dates column by column (pandas string methods, not a loop over rows) and hashes
identifiers in DuckDB.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from datetime import date, datetime
from itertools import zip_longest
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from flows.sources.mapping import SourceError, TableMapping
from flows.sources.parsed import quiet_connect
from flows.sources.pseudonym import install_pseudonym_macro
from flows.sources.workbook_guard import check_workbook

_SKIP_FIRST_CELL = re.compile(r"^\s*(合\s*计|小\s*计|总\s*计|填报人|填报日期|填表人|审核人|备注|说明)")
_DATE_TEXT = re.compile(r"^\s*(\d{4})\s*[年\-./]\s*(\d{1,2})\s*[月\-./]\s*(\d{1,2})\s*日?\s*$")
_HEADER_SCAN_ROWS = 15


def read_workbook(path: Path, source: str) -> dict[str, list[list]]:
    """Every sheet as a list of rows of cell values; a CSV is one sheet named after the file."""
    check_workbook(path, source)  # hostile or broken files are refused before calamine sees them
    data = path.read_bytes()
    if not data.strip():
        raise SourceError(source, path.name, "文件为空", "the file is empty", "file-empty")
    if data[:2] == b"PK":
        from python_calamine import CalamineWorkbook

        try:
            wb = CalamineWorkbook.from_filelike(io.BytesIO(data))
            return {name: wb.get_sheet_by_name(name).to_python(skip_empty_area=False) for name in wb.sheet_names}
        except Exception as exc:  # calamine raises its own error types
            raise SourceError(
                source,
                path.name,
                "无法读取该Excel文件",
                f"not a readable xlsx workbook: {exc}",
                "file-format",
            ) from None
    if path.suffix.lower() == ".csv":
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
        return {path.stem: [row for row in csv.reader(io.StringIO(text))]}
    raise SourceError(
        source,
        path.name,
        "不是电子表格文件(应为xlsx或csv)",
        "not a spreadsheet (xlsx or csv expected)",
        "file-format",
    )


def _norm_header(cell) -> str:
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", str(cell or "")))


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


class TableRows:
    """A table's raw rows gathered over many sheets (files), turned into one text frame at the
    end: the per-file work is finding the header and slicing rows; the conversion of cells to
    text and all normalisation run once per column over every file."""

    def __init__(self, mapping: TableMapping):
        self.mapping = mapping
        self.files: list[str] = []
        self.numbers: list[int] = []
        self.values: dict[str, list] = {c.name: [] for c in mapping.columns}
        self.constants: dict[str, list] = {}

    def add(self, rows: list[list], source: str, file: str, sheet: str | None = None, **constants) -> int:
        """The sheet's rows under its header row; `constants` are columns with one value for the
        whole sheet (township, year). Returns the number of rows taken."""
        header_idx, positions = _find_header(rows, self.mapping, source, file, sheet)
        kept, numbers = [], []
        for offset, row in enumerate(rows[header_idx + 1 :]):
            first = next(filter(_nonblank, row), None)
            if first is None or (isinstance(first, str) and _SKIP_FIRST_CELL.match(first)):
                continue
            kept.append(row)
            numbers.append(header_idx + offset + 2)
        columns = list(zip_longest(*kept))  # transposed at C speed; short rows padded with None
        for name, values in self.values.items():
            j = positions.get(name)
            values.extend(columns[j] if j is not None and j < len(columns) else [None] * len(kept))
        self.files.extend([file if not sheet else f"{file}#{sheet}"] * len(kept))
        self.numbers.extend(numbers)
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


def _find_header(
    rows: list[list], mapping: TableMapping, source: str, file: str, sheet: str | None
) -> tuple[int, dict[str, int]]:
    """The header row's index and each canonical column's position (fields.yaml names)."""
    where = f"{file}" + (f" [{sheet}]" if sheet else "")
    wanted = {_norm_header(f): c.name for c in mapping.columns for f in c.fields}
    required = [c for c in mapping.columns if c.required]
    for i, row in enumerate(rows[:_HEADER_SCAN_ROWS]):
        found: dict[str, int] = {}
        for j, cell in enumerate(row):
            name = wanted.get(_norm_header(cell))
            if name and name not in found:
                found[name] = j
        if sum(c.name in found for c in required) >= max(1, (len(required) + 1) // 2):
            missing = [c for c in required if c.name not in found]
            if missing:
                raise SourceError(
                    source,
                    where,
                    f"表头缺少必填列「{missing[0].fields[0]}」",
                    f"the header lacks required column {missing[0].fields[0]!r}",
                    "schema-drift",
                )
            return i, found
    raise SourceError(
        source,
        where,
        "找不到表头行(应包含: " + "、".join(c.fields[0] for c in required) + ")",
        "no recognisable header row (expected: " + ", ".join(c.fields[0] for c in required) + ")",
        "header-missing",
    )


def extract_table(
    rows: list[list], mapping: TableMapping, source: str, file: str, sheet: str | None = None
) -> pd.DataFrame:
    """One sheet's table under the header row, canonical column names, `_row_number` as Excel
    numbers rows (a single sheet; parsers gather many with TableRows)."""
    gathered = TableRows(mapping)
    gathered.add(rows, source, file, sheet)
    return gathered.frame()


def footer_value(rows: list[list], label: str) -> str | None:
    """The value of a footer line such as 填报日期：2024-01-15."""
    for row in rows:
        for cell in row:
            text = _cell_text(cell)
            if text and _norm_header(text).startswith(label):
                rest = re.split(r"[:：]", text, maxsplit=1)
                return rest[1].strip() if len(rest) > 1 and rest[1].strip() else None
    return None


def _normal(v) -> str | None:
    return unicodedata.normalize("NFKC", str(v)).strip() or None


def normalise_text(s: pd.Series) -> pd.Series:
    """NFKC (full-width digits and spaces), trimmed, blank as missing. Ledger columns repeat few
    distinct values: each distinct value is normalised once (factorize), not every cell."""
    return _map_distinct(s, _normal).astype("string")


def normal_text(cells: pd.Series) -> pd.Series:
    """Raw cells as normalised text: normalise_text(cells_to_text(cells)), in one pass over the
    distinct values when the column holds only text (the common case: blank text is missing
    either way)."""
    if pd.api.types.infer_dtype(cells, skipna=True) in ("string", "empty"):
        return normalise_text(cells)
    return normalise_text(cells_to_text(cells))


def normalise_dates(s: pd.Series) -> pd.Series:
    """ISO dates from 2023-3-5 / 2023年3月5日 / 2023.3.5 / 2023/3/5 / Excel serials; other text kept."""
    return _dates(normalise_text(s))


def _dates(text: pd.Series) -> pd.Series:
    """normalise_dates of text already normalised."""
    parts = text.str.extract(_DATE_TEXT)
    iso = parts[0] + "-" + parts[1].str.zfill(2) + "-" + parts[2].str.zfill(2)
    serial = pd.to_numeric(text.where(text.str.fullmatch(r"\d{5}(\.\d+)?", na=False)), errors="coerce")
    serial_date = (pd.Timestamp("1899-12-30") + pd.to_timedelta(serial, unit="D")).dt.strftime("%Y-%m-%d")
    out = iso.fillna(serial_date.astype("string")).fillna(text)
    return out


def canonicalise(
    df: pd.DataFrame, mapping: TableMapping, key: bytes, passthrough: tuple[str, ...] = ()
) -> pd.DataFrame:
    """Type the kept columns of a TableRows frame (normalised text) and hash identifiers; one
    call per table for a whole batch (all files together), not per file."""
    out = df[["_source_file", "_row_number", *passthrough]].copy()
    for col in mapping.kept_columns:
        s = df[col.name]
        if col.type == "date":
            out[col.name] = _dates(s)
        elif col.type == "number":
            out[col.name] = pd.to_numeric(s, errors="coerce").astype("float64")
        else:
            out[col.name] = s
    hashed = [c.name for c in mapping.kept_columns if c.type == "pseudonym"]
    if hashed and len(out):
        con = quiet_connect()
        try:
            install_pseudonym_macro(con, key)
            for name in hashed:
                out[name] = _pseudonyms(con, out[name])
        finally:
            con.close()
    return out


def _pseudonyms(con: duckdb.DuckDBPyConnection, s: pd.Series) -> pd.Series:
    """The keyed hash of each value, computed once per distinct value (a ledger names the same
    person on every session they attend) in one DuckDB statement."""
    codes, distinct = pd.factorize(s, use_na_sentinel=True)
    con.register("distinct_values", pd.DataFrame({"v": pd.Series(distinct, dtype=object)}))
    hashes = [h for (h,) in con.execute("select pseudonym(v) from distinct_values").fetchall()]
    con.unregister("distinct_values")
    values = np.array([*hashes, None], dtype=object)  # code -1: missing
    return pd.Series(values[codes], index=s.index, dtype="string")
