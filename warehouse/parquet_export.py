"""The published tables as Parquet, for tools that do not read DuckDB files.

Written into a fresh folder `published/parquet-<stamp>/`, then `published/parquet` (a symlink)
is switched to it in one atomic rename. Readers following the link see the old or the new set
of files, never a mix. The folder the link pointed to before stays until the next publish (a
reader that resolved the link just before the switch, such as a province roll-up, still finds
its files); older folders are removed. A failed or abandoned export removes its own folder and
leaves the link as it was.

The publish (warehouse/publish.py) starts the export from the working database before it copies
the same tables into the analyst database, so the two are written at once on the two cores:
the export's cursors each read one snapshot, taken before the copy's; the run holds the writer
lock (warehouse/lock.py) and nothing else writes the working database meanwhile, so the files
hold what the analyst database holds.
"""

from __future__ import annotations

import os
import queue
import shutil
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from warehouse.db import rollback, use_catalog_of

# zstd at level 1, not DuckDB's default 3: the files stay compressed for analysts, are written
# faster and come out no larger (docs/performance.md).
PARQUET_OPTIONS = "format parquet, compression zstd, compression_level 1"
# Tables written two at a time, each writer on its own cursor: a table of one row group (most of
# them) is written by a single thread, so one table at a time left the second core idle
# (docs/performance.md).
WRITERS = 2


class ParquetExport:
    """An export under way: `tables` read from `con`'s database (one snapshot per writer, taken
    here) into a new folder beside `folder / "parquet"`; `finish` switches the link, `abandon`
    removes the folder."""

    def __init__(self, con: duckdb.DuckDBPyConnection, folder: Path, tables: tuple[str, ...]):
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        self.folder, self.stamp = folder, stamp
        self.building = folder / f"parquet-{stamp}"
        self.building.mkdir()
        self._cursors: queue.SimpleQueue[duckdb.DuckDBPyConnection] = queue.SimpleQueue()
        self._all: list[duckdb.DuckDBPyConnection] = []
        self._pool = ThreadPoolExecutor(WRITERS)
        try:
            for _ in range(min(WRITERS, len(tables))):
                cursor = con.cursor()  # a connection is not for use from several threads at once
                use_catalog_of(con, cursor)
                self._all.append(cursor)
                cursor.execute("begin transaction")
                cursor.execute(f"select 1 from {tables[0]} limit 0").fetchall()  # the snapshot starts here
                self._cursors.put(cursor)
            self._writes: list[Future] = [self._pool.submit(self._write, table) for table in tables]
        except BaseException:
            self.abandon()
            raise

    def finish(self, on_step: Callable[[str], None] | None = None) -> Path:
        """Wait for every table, then switch the link; returns the link. The first failure raises
        (the folder removed, the link as it was). `on_step("parquet:table_written")` after the
        first table (the crash tests kill there)."""
        try:
            for i, write in enumerate(self._writes):
                write.result()
                if i == 0 and on_step:
                    on_step("parquet:table_written")
        except BaseException:
            self.abandon()
            raise
        self._close()
        link = self.folder / "parquet"
        previous = link.resolve() if link.is_symlink() else None
        tmp = self.folder / f".parquet-link-{self.stamp}"
        os.symlink(self.building.name, tmp)
        os.replace(tmp, link)
        for old in self.folder.glob("parquet-*"):
            if old not in (self.building, previous):
                shutil.rmtree(old, ignore_errors=True)
        return link

    def abandon(self) -> None:
        """Stop writing (tables not yet started are not written) and remove the folder."""
        for write in getattr(self, "_writes", []):
            write.cancel()
        self._close()
        shutil.rmtree(self.building, ignore_errors=True)  # the pool has finished: nothing writes there now

    def _write(self, table: str) -> None:
        cursor = self._cursors.get()
        try:
            cursor.execute(
                f"copy (select * from {table}) to ? ({PARQUET_OPTIONS})", [str(self.building / f"{table}.parquet")]
            )
        finally:
            self._cursors.put(cursor)

    def _close(self) -> None:
        self._pool.shutdown(wait=True)
        for cursor in self._all:
            rollback(cursor)  # read only: nothing to keep
            cursor.close()
        self._all.clear()
