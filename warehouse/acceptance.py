"""The size a source's full extract is compared with (rule *-B02), and an operator's acceptance
of a full extract that the rule stopped.

A full extract far smaller than the source's previous full extract stops the source: probably
truncated. When the source really did shrink (records moved to another system, a clean-up), the
operator accepts the stopped extract (`fazhi accept-extract`): its rows per table become the
reference, so the next full extract of that size loads — and one far smaller than it still
stops. The other batch rules still apply to it. Every acceptance is kept in
audit.extract_acceptance with who accepted it and why.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import duckdb

from warehouse.errors import BadInput

EXTRACT_SIZE_RULE = "-B02"  # the rule id's suffix in every suite (ENF-B02, MED-B02, …)


class AcceptanceRefused(BadInput, ValueError):
    """The acceptance asked for does not apply; the message says why, in Chinese and English."""


@dataclass(frozen=True)
class Acceptance:
    batch_id: str
    source: str
    rows: dict[str, int]  # table -> rows received in the accepted extract
    previous: dict[str, int]  # table -> rows of the reference it replaces


def reference_extract_rows(con: duckdb.DuckDBPyConnection, source: str) -> dict[str, int]:
    """Rows per table that the source's next full extract is compared with: those of its last
    loaded full extract, or of a stopped extract accepted after it (empty: no reference)."""
    rows = con.execute(
        """
        with reference as (
            select batch_id, loaded_at as since from audit.batch
            where source = $source and status = 'loaded' and extract_kind = 'full'
            union all
            select batch_id, accepted_at from audit.extract_acceptance where source = $source
        )
        select t.table_name, t.received_rows
        from audit.batch_table t
        join (select batch_id from reference order by since desc, batch_id desc limit 1) r using (batch_id)
        """,
        {"source": source},
    ).fetchall()
    return {table: int(n) for table, n in rows}


def accept_extract(
    con: duckdb.DuckDBPyConnection,
    source: str,
    accepted_by: str,
    reason: str,
    at: datetime,
    batch_id: str | None = None,
) -> Acceptance:
    """Accept `batch_id` (default: the source's latest stopped batch) as the source's reference
    size. Refused unless that batch is a full extract of the source stopped by the extract-size
    rule and not accepted yet, and unless a reason is given."""
    if not reason.strip():
        raise AcceptanceRefused("请说明接受的理由(--reason) / give the reason for accepting (--reason)")
    found = con.execute(
        """
        select batch_id, status, extract_kind from audit.batch
        where source = $source and ($batch_id is null and status = 'stopped' or batch_id = $batch_id)
        order by loaded_at desc, batch_id desc limit 1
        """,
        {"source": source, "batch_id": batch_id},
    ).fetchall()
    if not found:
        raise AcceptanceRefused(
            f"数据源 {source} 没有{'批次 ' + batch_id if batch_id else '被停止的批次'} / "
            f"source {source} has {'no batch ' + batch_id if batch_id else 'no stopped batch'}"
        )
    batch_id, status, kind = found[0]
    stopped_by_size = con.execute(
        "select count(*) from audit.validation_result where batch_id = ? and rule like ? and not success",
        [batch_id, f"%{EXTRACT_SIZE_RULE}"],
    ).fetchall()[0][0]
    if status != "stopped" or kind != "full" or not stopped_by_size:
        raise AcceptanceRefused(
            f"批次 {batch_id} 不是因全量导出过小(*{EXTRACT_SIZE_RULE})而停止的全量导出，无需接受 / "
            f"batch {batch_id} is not a full extract stopped as far smaller than the previous one "
            f"(*{EXTRACT_SIZE_RULE}): there is nothing to accept"
        )
    if con.execute("select count(*) from audit.extract_acceptance where batch_id = ?", [batch_id]).fetchall()[0][0]:
        raise AcceptanceRefused(f"批次 {batch_id} 已被接受 / batch {batch_id} is already accepted")
    previous = reference_extract_rows(con, source)
    con.execute(
        "insert into audit.extract_acceptance values (?, ?, ?, ?, ?)", [batch_id, source, at, accepted_by, reason]
    )
    rows = con.execute(
        "select table_name, received_rows from audit.batch_table where batch_id = ? order by table_name", [batch_id]
    ).fetchall()
    return Acceptance(batch_id, source, {t: int(n) for t, n in rows}, previous)
