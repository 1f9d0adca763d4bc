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
from datetime import date, datetime
from pathlib import Path

import duckdb
import pandas as pd

from flows.sources.mapping import SourceError, TableMapping
from flows.sources.pseudonym import install_pseudonym_macro

_SKIP_FIRST_CELL = re.compile(r"^\s*(合\s*计|小\s*计|总\s*计|填报人|填报日期|填表人|审核人|备注|说明)")
_DATE_TEXT = re.compile(r"^\s*(\d{4})\s*[年\-./]\s*(\d{1,2})\s*[月\-./]\s*(\d{1,2})\s*日?\s*$")
_HEADER_SCAN_ROWS = 15


def read_workbook(path: Path, source: str) -> dict[str, list[list]]:
    """Every sheet as a list of rows of cell values; a CSV is one sheet named after the file."""
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
    import unicodedata

    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", str(cell or "")))


def _cell_text(v) -> str | None:
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


def extract_table(
    rows: list[list], mapping: TableMapping, source: str, file: str, sheet: str | None = None
) -> pd.DataFrame:
    """The table under the header row, canonical column names, `_row_number` as Excel numbers rows."""
    where = f"{file}" + (f" [{sheet}]" if sheet else "")
    wanted = {_norm_header(f): c.name for c in mapping.columns for f in c.fields}
    required = [c for c in mapping.columns if c.required]
    header_idx, positions = None, {}
    for i, row in enumerate(rows[:_HEADER_SCAN_ROWS]):
        found: dict[str, int] = {}
        for j, cell in enumerate(row):
            name = wanted.get(_norm_header(cell))
            if name and name not in found:
                found[name] = j
        if sum(c.name in found for c in required) >= max(1, (len(required) + 1) // 2):
            header_idx, positions = i, found
            break
    if header_idx is None:
        raise SourceError(
            source,
            where,
            "找不到表头行(应包含: " + "、".join(c.fields[0] for c in required) + ")",
            "no recognisable header row (expected: " + ", ".join(c.fields[0] for c in required) + ")",
            "header-missing",
        )
    missing = [c for c in required if c.name not in positions]
    if missing:
        raise SourceError(
            source,
            where,
            f"表头缺少必填列「{missing[0].fields[0]}」",
            f"the header lacks required column {missing[0].fields[0]!r}",
            "schema-drift",
        )
    body = rows[header_idx + 1 :]
    records, numbers = [], []
    for offset, row in enumerate(body):
        cells = [_cell_text(v) for v in row]
        if not any(cells):
            continue
        first = next((c for c in cells if c), "")
        if _SKIP_FIRST_CELL.match(first):
            continue
        records.append({name: (cells[j] if j < len(cells) else None) for name, j in positions.items()})
        numbers.append(header_idx + offset + 2)
    df = pd.DataFrame.from_records(records, columns=list(positions))
    df.insert(0, "_row_number", pd.Series(numbers, dtype="int32"))
    df.insert(0, "_source_file", file if not sheet else f"{file}#{sheet}")
    for col in mapping.columns:
        if col.name not in df.columns:
            df[col.name] = None
    return df


def footer_value(rows: list[list], label: str) -> str | None:
    """The value of a footer line such as 填报日期：2024-01-15."""
    for row in rows:
        for cell in row:
            text = _cell_text(cell)
            if text and _norm_header(text).startswith(label):
                rest = re.split(r"[:：]", text, maxsplit=1)
                return rest[1].strip() if len(rest) > 1 and rest[1].strip() else None
    return None


def normalise_text(s: pd.Series) -> pd.Series:
    s = s.astype("string").str.normalize("NFKC").str.strip()
    return s.mask(s == "")


def normalise_dates(s: pd.Series) -> pd.Series:
    """ISO dates from 2023-3-5 / 2023年3月5日 / 2023.3.5 / 2023/3/5 / Excel serials; other text kept."""
    text = normalise_text(s)
    parts = text.str.extract(_DATE_TEXT)
    iso = parts[0] + "-" + parts[1].str.zfill(2) + "-" + parts[2].str.zfill(2)
    serial = pd.to_numeric(text.where(text.str.fullmatch(r"\d{5}(\.\d+)?", na=False)), errors="coerce")
    serial_date = (pd.Timestamp("1899-12-30") + pd.to_timedelta(serial, unit="D")).dt.strftime("%Y-%m-%d")
    out = iso.fillna(serial_date.astype("string")).fillna(text)
    return out


def canonicalise(
    df: pd.DataFrame, mapping: TableMapping, key: bytes, passthrough: tuple[str, ...] = ()
) -> pd.DataFrame:
    """Normalise by column type, hash identifiers, drop personal fields; one call per table for a
    whole batch (all files together), not per file."""
    out = df[["_source_file", "_row_number", *passthrough]].copy()
    for col in mapping.columns:
        if not col.kept:
            continue
        s = df[col.name]
        if col.type == "date":
            out[col.name] = normalise_dates(s)
        elif col.type == "number":
            out[col.name] = pd.to_numeric(normalise_text(s), errors="coerce").astype("float64")
        else:
            out[col.name] = normalise_text(s)
    hashed = [c.name for c in mapping.kept_columns if c.type == "pseudonym"]
    if hashed and len(out):
        con = duckdb.connect()
        try:
            install_pseudonym_macro(con, key)
            con.register("frame", out[hashed])
            exprs = ", ".join(f'pseudonym("{c}") as "{c}"' for c in hashed)
            out[hashed] = con.execute(f"select {exprs} from frame").df()[hashed].astype("string")
        finally:
            con.close()
    return out
