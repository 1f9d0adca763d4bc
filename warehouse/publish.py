"""Publish the analyst database: build it beside the published one, then swap it in.

The new file is written completely (in a storage version DuckDB 1.4+ tools can open), closed,
fsynced and renamed over `published/fazhi.duckdb` in one atomic step, so readers and crashes
only ever see the old or the new file, never a half-written one.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

import duckdb
import yaml

from warehouse.db import WAREHOUSE_DIR, sql_literal

PUBLISHED_TABLES = (
    "mart.indicator_value",
    "mart.indicator_catalogue",
    "mart.indicator_evidence",
    "mart.indicator_edition",
    "mart.indicator_edition_value",
    "mart.indicator_edition_change",
    "mart.indicator_edition_evidence",
    "ref.township",
    "core.enforcement_act",
    "core.mediation_case",
    "core.training_session",
    "core.training_attendance",
    "core.training_staff",
    "core.annual_return_item",
    "audit.batch",
    "audit.quarantine",
    "audit.validation_result",
)
# Views of the working database recreated in the analyst database (migration 008: validation
# trends); their queries name published tables only, and resolve inside the published file.
PUBLISHED_VIEWS = ("audit.validation_trend", "audit.validation_rule_trend")
STORAGE_VERSION = "v1.4.0"


@cache
def _dictionary() -> dict:
    return yaml.safe_load((WAREHOUSE_DIR / "dictionary.yaml").read_text(encoding="utf-8"))


def publish(
    con: duckdb.DuckDBPyConnection,
    published: Path,
    column_notes: dict[str, str] | None = None,
    on_step: Callable[[str], None] | None = None,
) -> Path:
    """Build and swap in the analyst database. `column_notes` describes columns that
    dictionary.yaml does not (the flows pass each source field's name)."""
    published.parent.mkdir(parents=True, exist_ok=True)
    building = published.with_name(f".{published.name}.building-{os.getpid()}")
    for leftover in published.parent.glob(f".{published.name}.building-*"):
        leftover.unlink()
    wal = building.with_name(building.name + ".wal")
    if wal.exists():
        wal.unlink()
    con.execute(f"attach ? as pub (storage_version '{STORAGE_VERSION}')", [str(building)])
    try:
        con.execute("begin transaction")  # one commit for the ~300 statements, not one each
        try:
            _write_tables(con, column_notes)
            con.execute("commit")
        except BaseException:
            with contextlib.suppress(duckdb.Error):  # already rolled back if the commit failed
                con.execute("rollback")
            raise
        con.execute("checkpoint pub")
    finally:
        con.execute("detach pub")
    if on_step:
        on_step("publish:built")
    fd = os.open(building, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(building, published)
    con.execute("insert into audit.publication values (?, ?)", [datetime.now(UTC).replace(tzinfo=None), str(published)])
    dir_fd = os.open(published.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return published


def _write_tables(con: duckdb.DuckDBPyConnection, column_notes: dict[str, str] | None) -> None:
    """The published tables and views into the attached `pub`, with their comments."""
    schemas = sorted({t.split(".")[0] for t in PUBLISHED_TABLES})
    for schema in schemas:
        con.execute(f"create schema pub.{schema}")
    d = _dictionary()
    notes = {**(column_notes or {}), **d["columns"]}
    for table in PUBLISHED_TABLES:
        con.execute(f"create table pub.{table} as select * from {table}")
        if table in d["tables"]:
            con.execute(f"comment on table pub.{table} is {sql_literal(d['tables'][table])}")
        cols = [r[0] for r in con.execute(f"select * from pub.{table} limit 0").description]
        for col in cols:
            note = notes.get(f"{table}.{col}") or notes.get(col)
            if note:
                con.execute(f'comment on column pub.{table}."{col}" is {sql_literal(note)}')
    for view in PUBLISHED_VIEWS:
        schema, name = view.split(".")
        (text,) = con.execute(
            "select sql from duckdb_views() where database_name = current_database() "
            "and schema_name = ? and view_name = ?",
            [schema, name],
        ).fetchone()
        con.execute(text.replace(f"CREATE VIEW {view} ", f"CREATE VIEW pub.{view} ", 1))
        if view in d["tables"]:
            con.execute(f"comment on view pub.{view} is {sql_literal(d['tables'][view])}")
        for col in [r[0] for r in con.execute(f"select * from pub.{view} limit 0").description]:
            if col in notes:
                con.execute(f'comment on column pub.{view}."{col}" is {sql_literal(notes[col])}')


def needs_publish(con: duckdb.DuckDBPyConnection, published: Path) -> bool:
    """True when the published file is missing or batches were loaded after the last publish."""
    if not published.exists():
        return True
    return con.execute(
        """
        select coalesce((select max(loaded_at) from audit.batch), '-infinity'::timestamp)
             > coalesce((select max(published_at) from audit.publication), '-infinity'::timestamp)
        """
    ).fetchone()[0]
