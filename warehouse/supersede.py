"""Spreadsheet drops: a corrected file with the same name supersedes the old version's rows.

The versioned merge (models/core/merge_versioned.sql) already versions rows whose values
changed; this closes the rows the corrected file no longer has (models/core/close_superseded.sql).
The raw layer keeps every version of every file (`_batch_id`, `_source_file`), so what a file
said at any load stays reachable.
"""

from __future__ import annotations

from datetime import datetime

import duckdb

from warehouse.db import sql


def _key(key: tuple[str, ...], alias: str) -> str:
    cols = ", ".join(f'cast({alias}."{k}" as varchar)' for k in key)
    return f"concat_ws('|', {cols})" if len(key) > 1 else cols


def close_superseded(
    con: duckdb.DuckDBPyConnection, table: str, key: tuple[str, ...], batch_id: str, loaded_at: datetime
) -> int:
    """Close current core rows of `table` that an earlier version of one of this batch's files
    delivered and this version does not; returns how many were closed."""
    count = f"select count(*) from core.{table} where valid_to is null"
    before = con.execute(count).fetchall()[0][0]
    statement = sql("models/core/close_superseded.sql").format(
        table=table, core_key=_key(key, "t"), raw_key=_key(key, "r")
    )
    con.execute(statement, {"batch_id": batch_id, "loaded_at": loaded_at}).fetchall()
    return before - con.execute(count).fetchall()[0][0]
