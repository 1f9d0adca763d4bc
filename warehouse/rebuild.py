"""The year-end rebuild: recompute a year from the raw layer into a fresh build, compare it,
and record it as the year's next edition with a change log.

The build replays every loaded batch of `raw` (as received, personal data already removed) in
load order through the same staging and merge models as the nightly load, so it works after
the landed files are purged. Editions are insert-only, and each is published exactly once: a
rebuild killed after recording its edition but before publishing it leaves the edition for the
next run to publish (warehouse/publish.py needs_publish), and a rebuild run again with nothing
loaded since publishes that edition instead of recording another.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from warehouse.compute import compute_indicators
from warehouse.db import ROW_GROUP_SIZE, migrate, rollback, sql
from warehouse.load import merge_into_core
from warehouse.publish import unpublished_editions
from warehouse.read.lookup import check
from warehouse.sources import registry


def check_year(con: duckdb.DuckDBPyConnection, year: int) -> None:
    """Refuse a year the nightly runs have not computed (UnknownName, exit 2): a typo'd 2099
    recorded an edition of nothing, and editions are insert-only."""
    computed = con.execute(
        "select count(*) from information_schema.tables where table_schema = 'mart' and table_name = 'indicator_value'"
    ).fetchone()[0]
    years = con.execute("select distinct year from mart.indicator_value").fetchall() if computed else []
    check("年度", "year", year, [y for (y,) in years], within=("可重建的", "to rebuild"))


@dataclass(frozen=True)
class Edition:
    year: int
    edition: int
    changed_values: int
    matches_nightly: bool
    compared_with: str
    note_zh: str
    note_en: str
    resumed: bool = False  # recorded by an earlier rebuild that did not publish it


def rebuild_year(
    con: duckdb.DuckDBPyConnection,
    year: int,
    keys: dict[str, tuple[str, ...]],
    scratch: Path,
    *,
    first_year: int,
    required_training_hours: float = 60.0,
    on_step: Callable[[str], None] | None = None,
) -> Edition:
    """`con` is the working database. Builds `scratch` from its raw layer, then records the
    edition; or returns the year's unpublished edition when nothing was loaded since it.
    `on_step` is called after the build and after the edition's commit (crash tests)."""
    step = on_step or (lambda name: None)
    check_year(con, year)
    pending = _pending_edition(con, year)
    if pending:
        return pending
    work = con.execute("select current_database()").fetchone()[0]
    for leftover in (scratch, scratch.with_name(scratch.name + ".wal")):  # a killed rebuild's
        leftover.unlink(missing_ok=True)
    con.execute(f"attach ? as build (row_group_size {ROW_GROUP_SIZE})", [str(scratch)])
    try:
        con.execute("use build")
        migrate(con)
        for table in ("ref.township",):
            con.execute(f"insert into {table} select * from {work}.{table}")
        for table in registry.table_names():
            con.execute(f"insert into raw.{table} select * from {work}.raw.{table}")
        con.execute(f"insert into audit.quarantine select * from {work}.audit.quarantine")
        # which township-years delivered their spreadsheets (statuses, the files behind the figures)
        con.execute(f"insert into audit.spreadsheet_file select * from {work}.audit.spreadsheet_file")
        batches = con.execute(
            f"""
            select b.batch_id, b.loaded_at, t.table_name
            from {work}.audit.batch b join {work}.audit.batch_table t using (batch_id)
            where b.status = 'loaded' order by b.loaded_at, b.batch_id, t.table_name
            """
        ).fetchall()
        for batch_id, loaded_at, table in batches:
            merge_into_core(con, table, keys[table], batch_id, loaded_at)
        compute_indicators(
            con,
            first_year=first_year,
            required_training_hours=required_training_hours,
            last_year=max(year, _last_year(con, first_year)),
        )
        con.execute(f"use {work}")
        step("rebuild:built")
        edition = _record_edition(con, year, batches[-1][1] if batches else None)
        step("rebuild:edition_committed")
        return edition
    finally:
        con.execute(f"use {work}")
        con.execute("detach build")
        scratch.unlink(missing_ok=True)


def _pending_edition(con: duckdb.DuckDBPyConnection, year: int) -> Edition | None:
    """The year's latest edition if it was never published and replays the batches loaded now."""
    pending = unpublished_editions(con, year)
    if not pending:
        return None
    row = con.execute(
        f"""
        select year, edition, changed_values, matches_nightly, compared_with, note_zh, note_en
        from mart.indicator_edition
        where year = ? and edition = ?
          and batches_through is not distinct from ({LAST_LOADED_BATCH})
        """,
        [year, pending[-1]],
    ).fetchall()
    return Edition(*row[0], resumed=True) if row else None


# the load time of the last batch a rebuild replays (its edition's batches_through)
LAST_LOADED_BATCH = (
    "select max(b.loaded_at) from audit.batch b join audit.batch_table t using (batch_id) where b.status = 'loaded'"
)


def _last_year(con: duckdb.DuckDBPyConnection, first_year: int) -> int:
    from warehouse.compute import data_years

    return data_years(con)[1] or first_year


def _record_edition(con: duckdb.DuckDBPyConnection, year: int, batches_through) -> Edition:
    con.execute("begin transaction")
    try:
        edition = con.execute(
            "select coalesce(max(edition), 0) + 1 from mart.indicator_edition where year = ?", [year]
        ).fetchone()[0]
        con.execute(
            "insert into mart.indicator_edition_value by name "
            "select ? as edition, * from build.mart.indicator_value where year = ? "
            "order by township_code, indicator_code",
            [edition, year],
        )
        con.execute(
            "insert into mart.indicator_edition_evidence by name "
            "select ? as edition, * from build.mart.indicator_evidence where year = ?",
            [edition, year],
        )
        compared_with = f"edition {edition - 1}" if edition > 1 else "nightly"
        con.execute(
            f"insert into mart.indicator_edition_change {sql('models/marts/indicator_edition_change.sql')}",
            {"year": year, "edition": edition},
        )
        changed = con.execute(
            "select count(*) from mart.indicator_edition_change where year = ? and edition = ?", [year, edition]
        ).fetchone()[0]
        # this edition's values against the year's nightly values, within the year: every value on
        # either side must have its equal on the other
        matches_nightly = con.execute(
            """
            select count(*) = 0
            from (select * from mart.indicator_edition_value where year = $year and edition = $edition) e
            full join (select * from mart.indicator_value where year = $year) n
              on n.township_code = e.township_code and n.indicator_code = e.indicator_code
            where e.value is distinct from n.value or e.qualifier is distinct from n.qualifier
               or e.township_code is null or n.township_code is null
            """,
            {"year": year, "edition": edition},
        ).fetchone()[0]
        if changed:
            note_zh = f"{year}年第{edition}版：与{_zh(compared_with)}相比有 {changed} 个指标值变化"
            note_en = f"{year} edition {edition}: {changed} indicator values changed since {compared_with}"
        else:
            note_zh = f"{year}年第{edition}版：与{_zh(compared_with)}相比没有变化"
            note_en = f"{year} edition {edition}: nothing changed since {compared_with}"
        con.execute(
            "insert into mart.indicator_edition values (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                year,
                edition,
                datetime.now(UTC).replace(tzinfo=None),
                batches_through,
                compared_with,
                changed,
                matches_nightly,
                note_zh,
                note_en,
            ],
        )
        con.execute("commit")
    except Exception:
        rollback(con)
        raise
    return Edition(year, edition, changed, matches_nightly, compared_with, note_zh, note_en)


def _zh(compared_with: str) -> str:
    return "每日值" if compared_with == "nightly" else compared_with.replace("edition ", "第") + "版"
