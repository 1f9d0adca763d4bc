"""The per-source watermark of incremental HTTP pulls (audit.watermark, migration 007).

The watermark is the newest 更新时间 among the records the warehouse *loaded* (never one it
quarantined: a record dated 2099 must not make every later pull ask for 2099 onwards), with the
ids loaded at exactly that time. It only moves forward: a batch of older versions (a source
re-sending what it sent before) leaves it where it is. It is written in the transaction that
loads the batch (warehouse/load.py), so a run that dies before its load pulls again.
"""

from __future__ import annotations

from datetime import datetime

import duckdb


def read_watermark(con: duckdb.DuckDBPyConnection, source: str) -> dict | None:
    """What the next pull of `source` starts from: {"modified_at", "ids", "quarantined"}, or
    None (nothing held: pull everything). `quarantined` lists the open quarantined record
    versions ([id, 更新时间]) at or after `modified_at`: a source sends them again (they are
    after the watermark, or at it), and they are not new."""
    row = con.execute("select modified_at, ids from audit.watermark where source = ?", [source]).fetchall()
    modified_at, ids = (row[0][0], list(row[0][1])) if row else (None, [])
    quarantined = con.execute(
        """
        select distinct business_key, row_content->>'source_modified_at' as ts
        from audit.quarantine
        where source = $source and resolved_at is null and business_key is not null
          and row_content->>'source_modified_at' is not null
          and ($since is null or row_content->>'source_modified_at' >= $since)
        order by all
        """,
        {"source": source, "since": modified_at},
    ).fetchall()
    if modified_at is None and not quarantined:
        return None
    return {"modified_at": modified_at, "ids": ids, "quarantined": [list(q) for q in quarantined]}


def advance_watermark(
    con: duckdb.DuckDBPyConnection, source: str, table: str, key: str, batch_id: str, at: datetime
) -> None:
    """Move the source's watermark over the records of `batch_id` that loaded into `table` (raw
    rows not quarantined), forward only; call inside the transaction that loads the batch."""
    newest = con.execute(
        f"""
        select max(source_modified_at), list(distinct "{key}") filter (where source_modified_at = newest)
        from (select r.source_modified_at, r."{key}", max(r.source_modified_at) over () as newest
              from raw.{table} r
              where r._batch_id = $batch_id and r.source_modified_at is not null
                and not exists (select 1 from audit.quarantine q
                                where q.batch_id = r._batch_id and q.table_name = $table
                                  and q.source_file = r._source_file and q.row_number = r._row_number))
        """,
        {"batch_id": batch_id, "table": table},
    ).fetchone()
    modified_at, ids = newest[0], sorted(newest[1] or [])
    if modified_at is None:
        return  # nothing loaded: the watermark stays
    current = con.execute("select modified_at, ids from audit.watermark where source = ?", [source]).fetchone()
    if current and current[0] > modified_at:
        return  # only forward
    if current and current[0] == modified_at:
        ids = sorted(set(ids) | set(current[1]))
    con.execute(
        "insert or replace into audit.watermark values (?, ?, ?, ?, ?)", [source, modified_at, ids, batch_id, at]
    )
