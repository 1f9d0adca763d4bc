"""The value a failing row holds, quoted in its quarantine message.

A clerk fixes a record faster when the message says what was written: `「学时」不是数字(填写为
「两小时」)`, not only which rule failed. For each row-level failure, the rule's column is read
from the parsed rows and its value appended to both messages, for the columns the caller names
(the source's own fields, never a pseudonymised identifier; not derived flags such as
`session_found`).

A number column `x` of a spreadsheet has a companion `_unreadable_x` (warehouse/sources/spreadsheet.py)
holding the text where it is no number: its rule's failure stands for the row, and the other
rules on `x` (required, range) are dropped for that row, so a clerk reads "不是数字：两小时"
instead of "为空".
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import duckdb
import pandas as pd

from expectations.validate import load_suite_doc

UNREADABLE = "_unreadable_"
MAX_CHARS = 40


@cache
def _rule_columns(table: str) -> dict[str, str]:
    """rule -> the column whose value its message quotes (row-level rules on one column)."""
    out = {}
    for exp in load_suite_doc(table)["expectations"]:
        meta, column = exp.get("meta", {}), exp["kwargs"].get("column")
        if meta.get("level", "row") == "row" and column:
            out[meta["rule"]] = column
    return out


def with_values(table: str, failures: pd.DataFrame, rows: Path, quoted: set[str]) -> pd.DataFrame:
    """`failures` (_row, rule, message_zh, message_en) with each row's value quoted where the
    rule's column is one of `quoted` (or a number column's `_unreadable_` text)."""
    if failures.empty:
        return failures
    f = failures.copy()
    f["column"] = f["rule"].map(_rule_columns(table))
    unreadable = f.loc[f["column"].str.startswith(UNREADABLE, na=False), ["_row", "column"]]
    if len(unreadable):
        shadowed = set(zip(unreadable["_row"], unreadable["column"].str.removeprefix(UNREADABLE), strict=True))
        f = f[[(r, c) not in shadowed for r, c in zip(f["_row"], f["column"], strict=True)]]
    shown = [c for c in f["column"].dropna().unique() if c in quoted or c.startswith(UNREADABLE)]
    values = _values(rows, f.loc[f["column"].isin(shown), "_row"].unique(), shown)
    quoted = [values.get((r, c)) if isinstance(c, str) else None for r, c in zip(f["_row"], f["column"], strict=True)]
    f["message_zh"] = [m if q is None else f"{m}(填写为「{q}」)" for m, q in zip(f["message_zh"], quoted, strict=True)]
    f["message_en"] = [
        m if q is None else f"{m} (written as '{q}')" for m, q in zip(f["message_en"], quoted, strict=True)
    ]
    return f.drop(columns="column").reset_index(drop=True)


def _values(rows: Path, positions, columns: list[str]) -> dict[tuple[int, str], str]:
    """(row, column) -> the value as text, for the rows and columns asked (one read)."""
    if not len(positions) or not columns:
        return {}
    con = duckdb.connect()
    try:
        present = {r[0] for r in con.execute("describe select * from read_parquet(?)", [str(rows)]).fetchall()}
        columns = [c for c in columns if c in present]
        if not columns:
            return {}
        con.register("wanted", pd.DataFrame({"_row": pd.Series(positions, dtype="int64")}))
        select = ", ".join(f'"{c}"' for c in columns)
        df = con.execute(  # a row's `_row` is its position in the file (warehouse/sources/parsed.py)
            f"select file_row_number as _row, {select} from read_parquet(?, file_row_number = true) "
            "where file_row_number in (select _row from wanted)",
            [str(rows)],
        ).df()
    finally:
        con.close()
    out = {}
    for c in columns:
        for r, v in zip(df["_row"], df[c], strict=True):
            text = _text(v)
            if text is not None:
                out[(int(r), c)] = text[:MAX_CHARS] + ("…" if len(text) > MAX_CHARS else "")
    return out


def _text(v) -> str | None:
    if hasattr(v, "tolist") and not isinstance(v, str):
        v = v.tolist()  # numpy scalars and arrays (list columns)
    if isinstance(v, list | tuple):
        return "、".join(str(x) for x in v) or None
    if v is None or pd.isna(v):
        return None
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    text = str(v).strip()
    return text or None
