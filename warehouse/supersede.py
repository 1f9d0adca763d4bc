"""Spreadsheet drops: a corrected delivery supersedes the earlier version's rows.

What counts as the same delivery is the source's `supersede` setting: `file_name` (a file
delivered again under the same name) or `township_year` (any file of the same township and year,
the `<code>_<year>_` its name starts with: a township re-sending its ledger under a new name).
The versioned merge (models/core/merge_versioned.sql) already versions rows whose values
changed; this closes the rows the corrected delivery no longer has, or has only in quarantine
(models/core/close_superseded.sql), and resolves the quarantine entries of the earlier version
(models/core/resolve_superseded.sql). The raw layer keeps every version of every file
(`_batch_id`, `_source_file`), so what a file said at any load stays reachable.
"""

from __future__ import annotations

from datetime import datetime

import duckdb

from warehouse.db import sql

# the delivery a raw row `r` belongs to, by the source's `supersede` setting
SUPERSEDE_BY = {
    "file_name": "split_part(r._source_file, '#', 1)",
    # null when the name does not start with <code>_<year>_: such a file supersedes nothing; its
    # digits and underscores as warehouse/sources/township_files.py reads them (full-width too)
    "township_year": "nullif(regexp_extract(translate(r._source_file, '０１２３４５６７８９＿', '0123456789_'), "
    "'^([0-9]+_[0-9]{4})_', 1), '')",
}


def _key(key: tuple[str, ...], alias: str) -> str:
    cols = ", ".join(f'cast({alias}."{k}" as varchar)' for k in key)
    return f"concat_ws('|', {cols})" if len(key) > 1 else cols


def close_superseded(
    con: duckdb.DuckDBPyConnection,
    table: str,
    key: tuple[str, ...],
    batch_id: str,
    loaded_at: datetime,
    by: str = "file_name",
) -> int:
    """Close current core rows of `table` that an earlier version of one of this batch's
    deliveries (`by`: file_name or township_year) had and this version does not; returns how many
    were closed."""
    count = f"select count(*) from core.{table} where valid_to is null"
    before = con.execute(count).fetchall()[0][0]
    statement = sql("models/core/close_superseded.sql").format(
        table=table, core_key=_key(key, "t"), raw_key=_key(key, "r"), delivery=SUPERSEDE_BY[by]
    )
    con.execute(statement, {"batch_id": batch_id, "loaded_at": loaded_at}).fetchall()
    resolve = sql("models/core/resolve_superseded.sql").format(
        table=table,
        delivery=SUPERSEDE_BY[by],
        quarantine_delivery=SUPERSEDE_BY[by].replace("r._source_file", "q.source_file"),
    )
    con.execute(resolve, {"batch_id": batch_id, "loaded_at": loaded_at}).fetchall()
    return before - con.execute(count).fetchall()[0][0]
