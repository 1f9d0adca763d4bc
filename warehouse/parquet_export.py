"""The published tables as Parquet, for tools that do not read DuckDB files.

Written into a fresh folder `published/parquet-<stamp>/` from the published database, then
`published/parquet` (a symlink) is switched to it in one atomic rename. Readers following the
link see the old or the new set of files, never a mix. The folder the link pointed to before
stays until the next publish (a reader that resolved the link just before the switch, such as a
province roll-up, still finds its files); older folders are removed. A failed export removes its
own folder and leaves the link as it was.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from warehouse.db import connect

# zstd at level 1, not DuckDB's default 3: the files stay compressed for analysts, are written
# faster and come out no larger (docs/performance.md).
PARQUET_OPTIONS = "format parquet, compression zstd, compression_level 1"
# Tables written two at a time, each on its own cursor: a table of one row group (most of them)
# is written by a single thread, so one table at a time left the second core idle (docs/performance.md).
WRITERS = 2


def export_parquet(published_db: Path, tables: tuple[str, ...], on_step: Callable[[str], None] | None = None) -> Path:
    """Write `tables` of the published database as Parquet and switch the link; returns the link.
    `on_step("parquet:table_written")` after the first table (the crash tests kill there)."""
    folder = published_db.parent
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    building = folder / f"parquet-{stamp}"
    building.mkdir()
    con = connect(published_db, read_only=True)
    try:
        with ThreadPoolExecutor(WRITERS) as pool:
            # one cursor per table, made here: a connection is not for use from several threads
            writes = [pool.submit(_write_table, con.cursor(), building, table) for table in tables]
            for i, write in enumerate(writes):
                write.result()  # the first failure raises, and the link is not switched
                if i == 0 and on_step:
                    on_step("parquet:table_written")
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)  # the pool has finished: nothing writes there now
        raise
    finally:
        con.close()
    link = folder / "parquet"
    previous = link.resolve() if link.is_symlink() else None
    tmp = folder / f".parquet-link-{stamp}"
    os.symlink(building.name, tmp)
    os.replace(tmp, link)
    for old in folder.glob("parquet-*"):
        if old not in (building, previous):
            shutil.rmtree(old, ignore_errors=True)
    return link


def _write_table(cursor: duckdb.DuckDBPyConnection, building: Path, table: str) -> None:
    try:
        cursor.execute(f"copy (select * from {table}) to ? ({PARQUET_OPTIONS})", [str(building / f"{table}.parquet")])
    finally:
        cursor.close()
