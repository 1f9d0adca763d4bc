"""Publish the analyst database: build it beside the published one, swap it in, then switch in
its Parquet copy (warehouse/parquet_export.py: written from the working database while the
analyst database is built), then record the publication.

The new file is written completely (in a storage version DuckDB 1.4+ tools can open), closed,
fsynced and renamed over `published/fazhi.duckdb` in one atomic step, so readers and crashes
only ever see the old or the new file, never a half-written one. The database and the Parquet
copy are one publication: its row in audit.publication is written only when both are in place,
so a run killed between the two (or whose export failed) leaves no row, and the next run
publishes both again (needs_publish).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from warehouse.db import ROW_GROUP_SIZE, rollback, sql_literal
from warehouse.parquet_export import ParquetExport
from warehouse.sources import registry
from warehouse.sources.fields import published_comments

log = logging.getLogger("fazhi.publish")

MART_TABLES = (
    "mart.indicator_value",
    "mart.indicator_catalogue",
    "mart.indicator_evidence",
    "mart.indicator_edition",
    "mart.indicator_edition_value",
    "mart.indicator_edition_change",
    "mart.indicator_edition_evidence",
    "ref.township",
)
AUDIT_TABLES = (
    "audit.batch",
    "audit.quarantine",
    "audit.validation_result",
    "audit.spreadsheet_file",
    "audit.file_issue",
)


def published_tables() -> tuple[str, ...]:
    """The tables of the analyst database: the marts, the townships, every source table's core
    facts (personal-data free: warehouse/sources/registry.py) and the audit trail."""
    return MART_TABLES + tuple(f"core.{t}" for t in registry.table_names()) + AUDIT_TABLES


# Views of the working database recreated in the analyst database (migration 008: validation
# trends); their queries name published tables only, and resolve inside the published file.
PUBLISHED_VIEWS = ("audit.validation_trend", "audit.validation_rule_trend")
STORAGE_VERSION = "v1.4.0"


def publish(
    con: duckdb.DuckDBPyConnection,
    published: Path,
    on_step: Callable[[str], None] | None = None,
) -> Path:
    """Build and swap in the analyst database, export its Parquet copy, record the publication.
    `on_step` is called at each step (the crash tests kill the process there)."""
    step = on_step or (lambda name: None)
    published.parent.mkdir(parents=True, exist_ok=True)
    batches_through, editions_through = _contents(con)
    building = published.with_name(f".{published.name}.building-{os.getpid()}")
    for leftover in published.parent.glob(f".{published.name}.building-*"):
        leftover.unlink()
    wal = building.with_name(building.name + ".wal")
    if wal.exists():
        wal.unlink()
    # the Parquet copy is written from the working database while the same tables are copied
    # into the analyst database: the two at once keep both cores busy (docs/performance.md)
    export = ParquetExport(con, published.parent, published_tables())
    try:
        con.execute(
            f"attach ? as pub (storage_version '{STORAGE_VERSION}', row_group_size {ROW_GROUP_SIZE})", [str(building)]
        )
        try:
            con.execute("begin transaction")  # one commit for the ~300 statements, not one each
            try:
                _write_tables(con)
                con.execute("commit")
            except BaseException:
                rollback(con)
                raise
            con.execute("checkpoint pub")
        finally:
            con.execute("detach pub")
        step("publish:built")
        fd = os.open(building, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(building, published)
        _fsync_dir(published.parent)
        step("publish:swapped")
    except BaseException:
        export.abandon()
        raise
    link = export.finish(on_step=step)
    _fsync_dir(published.parent)
    step("parquet:switched")
    now = datetime.now(UTC).replace(tzinfo=None)
    con.execute(
        "insert into audit.publication values (?, ?, ?, ?, ?)",
        [now, str(published), batches_through, editions_through, link.readlink().name],
    )
    return published


def _contents(con: duckdb.DuckDBPyConnection) -> tuple:
    """What a publication holds: the last batch loaded and the last edition recorded."""
    return con.execute(
        "select (select max(loaded_at) from audit.batch), (select max(built_at) from mart.indicator_edition)"
    ).fetchall()[0]


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_tables(con: duckdb.DuckDBPyConnection) -> None:
    """The published tables and views into the attached `pub`, with their comments (the field
    dictionary: warehouse/sources/fields.py); the ~300 comments go to DuckDB as one string, not
    one call each (docs/performance.md)."""
    tables = published_tables()
    comments = published_comments()
    notes = []

    def describe(kind: str, name: str) -> None:
        if comments.table(name):
            notes.append(f"comment on {kind} pub.{name} is {sql_literal(comments.table(name))}")
        for col in [r[0] for r in con.execute(f"select * from pub.{name} limit 0").description]:
            note = comments.column(name, col)
            if note:
                notes.append(f'comment on column pub.{name}."{col}" is {sql_literal(note)}')

    for schema in sorted({t.split(".")[0] for t in tables}):
        con.execute(f"create schema pub.{schema}")
    for table in tables:
        con.execute(f"create table pub.{table} as select * from {table}")
        describe("table", table)
    for view in PUBLISHED_VIEWS:
        schema, name = view.split(".")
        (text,) = con.execute(
            "select sql from duckdb_views() where database_name = current_database() "
            "and schema_name = ? and view_name = ?",
            [schema, name],
        ).fetchone()
        con.execute(text.replace(f"CREATE VIEW {view} ", f"CREATE VIEW pub.{view} ", 1))
        describe("view", view)
    if notes:
        con.execute(";\n".join(notes))


def needs_publish(con: duckdb.DuckDBPyConnection, published: Path) -> bool:
    """True when the published database or its Parquet copy is missing, the database does not
    open (a damaged file: a night with nothing new left it to the analysts), or the last
    complete publication is older than the last batch loaded or the last edition recorded (an
    edition whose rebuild was killed before publishing is published by the next run)."""
    if not published.exists() or not (published.parent / "parquet").exists():
        return True
    if not _opens(published):
        log.warning("the published database %s does not open (damaged?): it is published again", published)
        return True
    last = con.execute(
        "select batches_through, editions_through from audit.publication order by published_at desc limit 1"
    ).fetchall()  # not fetchone: a DuckDB 2.0 result streams until it is read to the end
    if not last:
        return True
    batches, editions = _contents(con)
    return _after(batches, last[0][0]) or _after(editions, last[0][1])


def _opens(path: Path) -> bool:
    """Whether DuckDB opens the database file (its header and catalog: not every block)."""
    try:
        duckdb.connect(str(path), read_only=True).close()
    except duckdb.Error:
        return False
    return True


def _after(now, published) -> bool:
    return now is not None and (published is None or now > published)


def unpublished_editions(con: duckdb.DuckDBPyConnection, year: int) -> list[int]:
    """The year's editions recorded after the last complete publication (a rebuild killed
    between its edition and its publication leaves one)."""
    rows = con.execute(
        """
        select edition from mart.indicator_edition
        where year = ? and built_at > coalesce(
            (select editions_through from audit.publication order by published_at desc limit 1),
            '-infinity'::timestamp)
        order by edition
        """,
        [year],
    ).fetchall()
    return [r[0] for r in rows]
