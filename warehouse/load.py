"""Load one validated batch into the working database in a single transaction.

raw (every received row, PII-free) -> audit.quarantine (failing rows, with every rule; and
versions older than the one already current: models/core/stale_versions.sql) -> staging
(accepted rows: models/staging/accepted_rows.sql, typed by the field dictionary:
warehouse/sources/schema.py) -> core (versioned merge:
models/core/merge_versioned.sql). The batch's audit rows are written last, inside the same
transaction: a batch without its audit.batch row was never loaded. An HTTP source's watermark
moves over the rows that loaded, in the same transaction (warehouse/watermark.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb
import pandas as pd

from warehouse.db import rollback, sql, statements
from warehouse.sources.parsed import PARSED_ROWS
from warehouse.sources.schema import staging_select
from warehouse.supersede import close_superseded
from warehouse.watermark import advance_watermark


@dataclass(frozen=True)
class BatchInfo:
    batch_id: str
    source: str
    run_id: str
    landed_at: str
    files: list[dict]  # name, bytes, sha256
    extract_kind: str = "full"
    advances_watermark: bool = False  # HTTP pulls: the watermark moves over the loaded rows (audit.watermark)
    supersede: str | None = None  # spreadsheet drops: file_name | township_year (warehouse/supersede.py)
    # spreadsheet drops: each file's outcome (file_name, township_code, report_year, status parsed |
    # refused, rows) and the issues found in the files (warehouse/sources/township_files.py)
    spreadsheet_files: pd.DataFrame | None = None
    file_issues: pd.DataFrame | None = None


@dataclass(frozen=True)
class TableLoad:
    table: str
    rows_path: Path  # parsed rows as Parquet (warehouse/sources/parsed.py): a row's position is its `_row`
    row_count: int
    failures: pd.DataFrame  # _row, rule, message_zh, message_en (row-level only)
    results: pd.DataFrame  # per-expectation validation results
    key: tuple[str, ...]


@dataclass(frozen=True)
class LoadOutcome:
    batch_id: str
    source: str
    status: str
    received_rows: int
    loaded_rows: int
    quarantined_rows: int
    core_rows_inserted: int
    stale_rows: int = 0  # of the quarantined: older versions than the current one (STALE-VERSION)


def _key_expr(key: tuple[str, ...], alias: str) -> str:
    if len(key) == 1:
        return f'cast({alias}."{key[0]}" as varchar)'
    return "concat_ws('|', " + ", ".join(f'cast({alias}."{k}" as varchar)' for k in key) + ")"


def load_batch(
    con: duckdb.DuckDBPyConnection,
    batch: BatchInfo,
    tables: list[TableLoad],
    loaded_at: datetime,
    on_step: Callable[[str], None] | None = None,
) -> LoadOutcome:
    """`on_step(name)` is called at points inside the transaction (crash tests use it).
    A batch already loaded is not loaded again: replaying it changes nothing."""
    done = con.execute(
        "select received_rows, loaded_rows, quarantined_rows from audit.batch where batch_id = ? and status = 'loaded'",
        [batch.batch_id],
    ).fetchone()
    if done:
        return LoadOutcome(batch.batch_id, batch.source, "already_loaded", *done, 0)
    received = loaded = quarantined = inserted = stale = 0
    con.execute("begin transaction")
    try:
        for t in tables:
            r, q, n, old = _load_table(con, batch, t, loaded_at)
            stale += old
            if batch.supersede:
                close_superseded(con, t.table, t.key, batch.batch_id, loaded_at, by=batch.supersede)
            if on_step:
                on_step("load:table_merged")
            received, quarantined, inserted = received + r, quarantined + q, inserted + n
            loaded += r - q
        _record_validation(con, batch, tables, loaded_at)
        _close_stopped_entries(con, batch, loaded_at)
        _record_landed_files(con, batch)
        _record_spreadsheet_files(con, batch, loaded_at, loaded=True)
        con.execute(
            "insert into audit.batch values (?, ?, ?, ?, ?, 'loaded', ?, ?, ?, null, null, ?)",
            [
                batch.batch_id,
                batch.source,
                batch.run_id,
                batch.landed_at,
                loaded_at,
                received,
                loaded,
                quarantined,
                batch.extract_kind,
            ],
        )
        if batch.advances_watermark:
            for t in tables:
                advance_watermark(con, batch.source, t.table, t.key[0], batch.batch_id, loaded_at)
        con.execute("commit")
    except Exception:
        rollback(con)
        raise
    return LoadOutcome(batch.batch_id, batch.source, "loaded", received, loaded, quarantined, inserted, stale)


def record_stopped_batch(
    con: duckdb.DuckDBPyConnection,
    batch: BatchInfo,
    tables: list[TableLoad],
    loaded_at: datetime,
    message_zh: str,
    message_en: str,
    received_rows: int,
) -> LoadOutcome:
    """A batch stopped by a batch-level rule: nothing loads; the audit says why, audit.batch_table
    what each table received (an operator may accept a stopped full extract's size:
    warehouse/acceptance.py), and every row that failed a rule is quarantined with its rules, so
    the township knows what to correct whatever stopped the batch. Its files are not marked as
    loaded, so the next run tries them again (after the source is corrected); the batch that
    does closes these entries (it quarantines what still fails)."""
    con.execute("begin transaction")
    try:
        _record_validation(con, batch, tables, loaded_at)
        _record_spreadsheet_files(con, batch, loaded_at, loaded=False)
        _close_stopped_entries(con, batch, loaded_at)
        quarantined = 0
        for t in tables:
            failing = _quarantine(con, batch, t, loaded_at)
            quarantined += failing
            con.execute(
                "insert into audit.batch_table values (?, ?, ?, 0, ?)", [batch.batch_id, t.table, t.row_count, failing]
            )
        con.execute(
            "insert into audit.batch values (?, ?, ?, ?, ?, 'stopped', ?, 0, ?, ?, ?, ?)",
            [
                batch.batch_id,
                batch.source,
                batch.run_id,
                batch.landed_at,
                loaded_at,
                received_rows,
                quarantined,
                message_zh,
                message_en,
                batch.extract_kind,
            ],
        )
        con.execute("commit")
    except Exception:
        rollback(con)
        raise
    return LoadOutcome(batch.batch_id, batch.source, "stopped", received_rows, 0, quarantined, 0)


def _close_stopped_entries(con: duckdb.DuckDBPyConnection, batch: BatchInfo, now: datetime) -> None:
    """The open quarantine entries of the source's earlier stopped batches are closed by this
    batch: a stopped batch is always delivered again (its files were not marked loaded; an HTTP
    watermark did not advance), and this batch quarantines again whatever still fails."""
    con.execute(
        """
        update audit.quarantine set resolved_at = $now, resolved_by_batch = $batch_id
        where source = $source and resolved_at is null and batch_id <> $batch_id
          and batch_id in (select batch_id from audit.batch where source = $source and status = 'stopped')
        """,
        {"now": now, "batch_id": batch.batch_id, "source": batch.source},
    )


def _load_table(
    con: duckdb.DuckDBPyConnection, batch: BatchInfo, t: TableLoad, loaded_at: datetime
) -> tuple[int, int, int, int]:
    path = str(t.rows_path)
    # every parsed column but the bookkeeping ones: a row's type errors stay in its quarantine entry;
    # `_unreadable_<column>` is a number column's text as written where it is no number (validated
    # and quoted in the quarantine message, warehouse/sources/spreadsheet.py), not a raw column
    con.execute(
        f"insert into raw.{t.table} by name select $batch_id as _batch_id, "
        "columns(lambda c: c <> '_type_errors' and not starts_with(c, '_unreadable_')) "
        "from read_parquet($path)",
        {"batch_id": batch.batch_id, "path": path},
    )

    quarantined = _quarantine(con, batch, t, loaded_at)
    stale = _quarantine_stale_versions(con, batch, t, loaded_at)
    quarantined += stale
    inserted = merge_into_core(con, t.table, t.key, batch.batch_id, loaded_at, resolve_quarantine=True)
    con.execute(
        "insert into audit.batch_table values (?, ?, ?, ?, ?)",
        [batch.batch_id, t.table, t.row_count, t.row_count - quarantined, quarantined],
    )
    return t.row_count, quarantined, inserted, stale


def _quarantine(con: duckdb.DuckDBPyConnection, batch: BatchInfo, t: TableLoad, now: datetime) -> int:
    """The table's failing rows into audit.quarantine, one entry per row with every rule it
    failed and their messages; returns how many rows."""
    if not len(t.failures):
        return 0
    rows = str(t.rows_path)
    con.register("failures", t.failures)
    try:
        con.execute(
            f"""
            insert into audit.quarantine
            select $batch_id, $source, $table, d._source_file, d._row_number, d.township_code,
                   {_key_expr(t.key, "d")}, f.rules, f.message_zh, f.message_en,
                   to_json(d), $now, null, null
            from (select * from {PARSED_ROWS} where _row in (select _row from failures)) d
            join (select _row, list(distinct rule order by rule) as rules,
                         string_agg(distinct message_zh, '；' order by message_zh) as message_zh,
                         string_agg(distinct message_en, '; ' order by message_en) as message_en
                  from failures group by _row) f on f._row = d._row
            """,
            {"batch_id": batch.batch_id, "source": batch.source, "table": t.table, "now": now, "path": rows},
        )
    finally:
        con.unregister("failures")
    return int(t.failures["_row"].nunique())


STALE_RULE = "STALE-VERSION"
STALE_MESSAGE_ZH = "此版本的更新时间早于仓库中当前的版本：旧版本不覆盖新版本(数据源重发了旧数据)"
STALE_MESSAGE_EN = (
    "an older version than the one already loaded (earlier 更新时间): it does not replace the newer "
    "version (the source sent old data again)"
)


def _has_modified_at(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    return bool(
        con.execute(
            "select count(*) from information_schema.columns "
            "where table_schema = 'core' and table_name = ? and column_name = 'source_modified_at'",
            [table],
        ).fetchone()[0]
    )


def _quarantine_stale_versions(con: duckdb.DuckDBPyConnection, batch: BatchInfo, t: TableLoad, at: datetime) -> int:
    """Rows of the batch older than the current core version of their record (sources with
    更新时间) go to quarantine as STALE-VERSION: recorded and counted, never applied."""
    if not _has_modified_at(con, t.table):
        return 0
    statement = sql("models/core/stale_versions.sql").format(
        table=t.table,
        raw_key=_key_expr(t.key, "r"),
        key_match=" and ".join(f'c."{k}" = r."{k}"' for k in t.key),
    )
    (stale,) = con.execute(
        statement,
        {
            "batch_id": batch.batch_id,
            "source": batch.source,
            "now": at,
            "rule": STALE_RULE,
            "message_zh": STALE_MESSAGE_ZH,
            "message_en": STALE_MESSAGE_EN,
        },
    ).fetchone()
    return int(stale)


def merge_into_core(
    con: duckdb.DuckDBPyConnection,
    table: str,
    key: tuple[str, ...],
    batch_id: str,
    loaded_at: datetime,
    resolve_quarantine: bool = False,
) -> int:
    """Stage a batch's accepted raw rows (sources/schema.py staging_select) and merge them into the versioned core
    table; returns the number of versions opened. Rebuilds call this to replay raw batches."""
    con.execute(
        "create or replace temp table staged as select s.*, md5(cast(to_json(s) as varchar)) as row_hash "
        f"from ({staging_select(con, table)}) s",
        {"batch_id": batch_id},
    )
    before = con.execute(f"select count(*) from core.{table}").fetchone()[0]
    key_match = " and ".join(f't."{k}" = s."{k}"' for k in key)
    # never replace a current version by an older one (the load quarantines those first; a replay
    # of raw may still hold them)
    not_older = (
        "and coalesce(s.source_modified_at >= t.source_modified_at, true)" if _has_modified_at(con, table) else ""
    )
    merge = sql("models/core/merge_versioned.sql").format(table=table, key_match=key_match, not_older=not_older)
    for statement in statements(merge):
        con.execute(statement, _params(statement, batch_id, loaded_at))
    inserted = con.execute(f"select count(*) from core.{table}").fetchone()[0] - before
    if resolve_quarantine:
        con.execute(
            f"""
            update audit.quarantine set resolved_at = $now, resolved_by_batch = $batch_id
            where table_name = $table and resolved_at is null and batch_id <> $batch_id
              and business_key in (select {_key_expr(key, "s")} from staged s)
            """,
            {"now": loaded_at, "batch_id": batch_id, "table": table},
        )
    con.execute("drop table staged")
    return inserted


def _params(statement: str, batch_id: str, loaded_at: datetime) -> dict:
    params = {}
    if "$loaded_at" in statement:
        params["loaded_at"] = loaded_at
    if "$batch_id" in statement:
        params["batch_id"] = batch_id
    return params


def _record_landed_files(con: duckdb.DuckDBPyConnection, batch: BatchInfo) -> None:
    """The batch's files as loaded, in one statement (a national drop is 38,000 workbooks; a
    row at a time took minutes). A file whose content was already loaded keeps its first row."""
    files = pd.DataFrame(batch.files, columns=["name", "bytes", "sha256"])
    files["position"] = range(len(files))
    con.register("landed_files", files)
    try:
        con.execute(
            """
            insert into audit.landed_file
            select sha256, $source, $batch_id, name, bytes from landed_files
            qualify row_number() over (partition by sha256 order by position) = 1
            on conflict do nothing
            """,
            {"source": batch.source, "batch_id": batch.batch_id},
        )
    finally:
        con.unregister("landed_files")


def _record_validation(con: duckdb.DuckDBPyConnection, batch: BatchInfo, tables: list[TableLoad], at: datetime) -> None:
    for t in tables:
        if t.results is None or t.results.empty:
            continue
        res = t.results.assign(batch_id=batch.batch_id, table_name=t.table, validated_at=at)
        con.register("results", res)
        con.execute(
            """
            insert into audit.validation_result
            select batch_id, table_name, rule, expectation_type, "column", level, success,
                   element_count, unexpected_count, validated_at from results
            """
        )
        con.unregister("results")


def _record_spreadsheet_files(con: duckdb.DuckDBPyConnection, batch: BatchInfo, at: datetime, loaded: bool) -> None:
    """A spreadsheet batch's files (audit.spreadsheet_file, when the batch loads) and the issues
    found in them (audit.file_issue; a stopped batch's too, so they are seen, but an issue still
    open from an earlier attempt at the same content is not recorded twice). A file loaded now
    resolves what was open about an earlier delivery of it: the same name (whatever the
    extension), the same content, or with supersede = township_year the same township-year."""
    if batch.spreadsheet_files is None:
        return
    con.register("batch_files", pd.DataFrame(batch.files, columns=["name", "bytes", "sha256"]))
    params = {"batch_id": batch.batch_id, "source": batch.source, "at": at}
    try:
        if loaded:
            con.register("parsed_files", batch.spreadsheet_files)
            con.execute(sql("models/audit/record_spreadsheet_files.sql"), params)
            by_township_year = batch.supersede == "township_year"
            con.execute(sql("models/audit/resolve_file_issues.sql"), params | {"by_township_year": by_township_year})
            con.unregister("parsed_files")
        if batch.file_issues is not None and len(batch.file_issues):
            con.register("issues", batch.file_issues)
            con.execute(sql("models/audit/record_file_issues.sql"), params)
            con.unregister("issues")
    finally:
        con.unregister("batch_files")
