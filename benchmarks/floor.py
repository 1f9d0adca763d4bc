"""The floor of the work the pipeline must do beyond reading the files, measured on a round's own
data: each part done by DuckDB (or Great Expectations) alone, with nothing of the pipeline's
own around it.

- land: the landed files copied once (their bytes read and written; fetching them over HTTP
  costs more);
- validate: every table's suite run by GX on one row of the table (GX's cost per expectation:
  no validation by these suites costs less, whatever the rows);
- load: the layers DESIGN.md keeps written, raw (as received) and core (versioned): the round's
  `raw.*` and `core.*` tables copied into a new database file, one transaction;
- compute: the marts written (`mart.*` copied likewise): computing them costs at least writing them;
- publish: the published tables written into a new database file and as Parquet at once, as
  warehouse/publish.py does (its ParquetExport beside the copy).

The parse's floor is the limit itself (benchmarks/limit.py). Limit + floor against the limit is
how much of a pipeline goal work no code can leave out takes; what the pipeline spends above
the floor, stage by stage, is what is left to win. Every part is a lower bound: the copies read
tables DuckDB already holds, where the pipeline reads Parquet and JSON; GX sees one row. Each
part also counts what it did (bytes copied, expectations run, rows written), for the tests.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import duckdb
import pandas as pd

from benchmarks.limit import cpu_s
from warehouse.sources.parsed import ParsedTable


def _timed(fn, *args) -> dict:
    t, c = time.perf_counter(), cpu_s()
    done = fn(*args)
    return {"seconds": time.perf_counter() - t, "cpu_s": cpu_s() - c, "done": done}


def _tables(con: duckdb.DuckDBPyConnection, schemas: tuple[str, ...]) -> list[str]:
    rows = con.execute(
        "select schema_name || '.' || table_name from duckdb_tables() "
        "where database_name = current_database() and list_contains($schemas, schema_name) order by 1",
        {"schemas": list(schemas)},
    ).fetchall()
    return [r[0] for r in rows]


def _copy_tables(con: duckdb.DuckDBPyConnection, tables: list[str], into: Path) -> int:
    """`tables` of `con` into a new database file, as one transaction, checkpointed; the rows
    written."""
    from warehouse.db import ROW_GROUP_SIZE, rollback

    con.execute(f"attach '{into}' as floor_copy (row_group_size {ROW_GROUP_SIZE})")
    try:
        con.execute("begin transaction")
        try:
            for schema in sorted({t.split(".")[0] for t in tables}):
                con.execute(f"create schema floor_copy.{schema}")
            rows = sum(
                con.execute(f"create table floor_copy.{table} as select * from {table}").fetchone()[0]
                for table in tables
            )
            con.execute("commit")
        except BaseException:
            rollback(con)  # a full disk, say: the copy detached, the error shown
            raise
        con.execute("checkpoint floor_copy")
    finally:
        con.execute("detach floor_copy")
    return rows


def _publish(con: duckdb.DuckDBPyConnection, tables: list[str], folder: Path) -> int:
    from warehouse.parquet_export import ParquetExport

    folder.mkdir()
    export = ParquetExport(con, folder, tuple(tables))
    try:
        rows = _copy_tables(con, tables, folder / "floor.duckdb")
    except BaseException:
        export.abandon()
        raise
    export.finish()
    return rows


def _validate(one_row: dict[str, tuple[pd.DataFrame, dict]]) -> int:
    """Every table's suite on its one row; the expectations run."""
    from expectations import validate
    from warehouse.sources import registry

    validate._REMEMBERED.clear()  # no result carried over from the pipeline's own runs
    return sum(
        len(validate.validate_table(table, frame, params, suite=registry.table(table)[1].suite_path).results)
        for table, (frame, params) in one_row.items()
    )


def kept_tables(prepared, params: dict, into: Path) -> dict[str, tuple[ParsedTable, dict]]:
    """Each parsed table of a prepared batch (warehouse.pipeline.parse_and_validate) that has
    rows, hard-linked into `into` (the load removes the parsed files; the floor validates their
    first rows), with the batch's suite parameters. Linked, not read here: a table's first row
    read in the pipeline's process would leave its row group in Arrow's pool, counted in the
    stages' peak memory."""
    into.mkdir(exist_ok=True)
    kept = {}
    for t in prepared.tables:
        if t.row_count:
            link = into / f"{t.table}.parquet"
            try:
                os.link(t.rows_path, link)
            except OSError:  # another file system
                shutil.copyfile(t.rows_path, link)
            kept[t.table] = (ParsedTable(t.table, link, t.row_count), params)
    return kept


def required_work_floor(home: Path, work_db: Path, kept: dict[str, tuple[ParsedTable, dict]]) -> dict[str, dict]:
    """Each part's seconds, CPU seconds and what it did (`done`) on the round's home and
    working database (its pipeline finished: no connection open), in a scratch folder removed
    after. `kept`: each parsed table (kept_tables) and the suite parameters it was validated
    with; its first row is validated, and its file removed. Runs in a process of its own (GX
    imported and its suites built there before it is timed)."""
    from expectations.validate import warm_up
    from warehouse.db import connect
    from warehouse.publish import published_tables

    warm_up()  # GX imported and the suites built, as before the pipeline's stages
    try:
        one_row = {table: (parsed.read(0, 1), params) for table, (parsed, params) in kept.items()}
    finally:
        for parsed, _ in kept.values():
            parsed.path.unlink()
    scratch = home / "floor"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir()
    parts = {}
    try:
        # each copy removed once timed: at national scale they would not fit beside the home together
        parts["land"] = _timed(shutil.copytree, home / "landing", scratch / "landing")
        parts["land"]["done"] = sum(f.stat().st_size for f in (scratch / "landing").rglob("*") if f.is_file())
        shutil.rmtree(scratch / "landing")
        parts["validate"] = _timed(_validate, one_row)
        con = connect(Path(":memory:"), warehouse=True, spill_to=scratch / "spill")  # the copies are attached to it
        try:
            con.execute(f"attach '{work_db}' as work (read_only)")
            con.execute("use work")
            for part, schemas in (("load", ("raw", "core")), ("compute", ("mart",))):
                parts[part] = _timed(_copy_tables, con, _tables(con, schemas), scratch / f"{part}.duckdb")
                (scratch / f"{part}.duckdb").unlink()
            parts["audit+publish"] = _timed(_publish, con, list(published_tables()), scratch / "published")
        finally:
            con.close()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return parts
