"""Connections to the working database, the migration runner and the SQL file loader."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import threading
from functools import cache
from pathlib import Path

import duckdb

WAREHOUSE_DIR = Path(__file__).parent
MIGRATIONS_DIR = WAREHOUSE_DIR / "migrations"


@cache
def sql(relative: str) -> str:
    """The text of a SQL file under warehouse/ (models/…, audits/…, migrations/…)."""
    return (WAREHOUSE_DIR / relative).read_text(encoding="utf-8")


def sql_literal(text: str) -> str:
    """`text` as a SQL string literal, for the few places a statement cannot take a bound
    parameter (a list of files inside a subquery reused as text). Paths otherwise go as parameters."""
    return "'" + text.replace("'", "''") + "'"


def statements(text: str) -> list[str]:
    """The statements of a SQL file, comment lines removed (no `;` inside literals, by convention)."""
    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))
    return [s.strip() for s in body.split(";") if s.strip()]


# DuckDB's memory cap per database (it spills to disk beyond it); its default, 80 % of RAM,
# would let one national load take the whole machine. FAZHI_DUCKDB_MEMORY_LIMIT overrides both:
# - MEMORY_LIMIT: each parse's scratch file, and any other database. Under 640MB national's
#   enforcement parse failed (a DuckDB error, rule page-parse; under 512MB it ran out of memory).
# - WAREHOUSE_MEMORY_LIMIT: the working database (load, compute, publish). A province's compute
#   takes ~590 MB of DuckDB memory, a 2x province's what the cap allows: under 768MB their
#   peaks were 1.23x apart once GX's import shrank the process by 80 MB, under 640MB 1.14x
#   (docs/performance.md).
MEMORY_LIMIT = "768MB"
WAREHOUSE_MEMORY_LIMIT = "640MB"


# A memory size as DuckDB reads it (`768MB`, `2.5 GiB`, `100000000bytes`) and shows it (`732.4 MiB`).
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(bytes|[KMGT]i?B)\s*$", re.I)


def _bytes(size: str) -> int | None:
    """A memory size in bytes, or None when `size` is not one DuckDB reads."""
    match = _SIZE.match(size)
    if not match:
        return None
    number, unit = float(match[1]), match[2].lower()
    if unit == "bytes":
        return int(number)
    return int(number * (1024 if "i" in unit else 1000) ** ("kmgt".index(unit[0]) + 1))


def memory_limit(warehouse: bool = False) -> str:
    """The cap of a database: FAZHI_DUCKDB_MEMORY_LIMIT when set (refused unless it is a size
    DuckDB reads, above zero: DuckDB's own parser error named neither the variable nor the fix),
    else the defaults above."""
    given = os.environ.get("FAZHI_DUCKDB_MEMORY_LIMIT")
    if not given:
        return WAREHOUSE_MEMORY_LIMIT if warehouse else MEMORY_LIMIT
    if not _bytes(given):
        from warehouse.config import ConfigError

        raise ConfigError(
            f"FAZHI_DUCKDB_MEMORY_LIMIT={given!r} 不是内存大小(如 768MB、2GB) / is not a memory size "
            "(e.g. 768MB, 2GB: a number and KB, MB, GB, TB or KiB, MiB, GiB, TiB)"
        )
    return given


def memory_limit_bytes(con: duckdb.DuckDBPyConnection) -> int | None:
    """The connection's memory cap in bytes (DuckDB shows it as `732.4 MiB`), None when it
    cannot be read."""
    (shown,) = con.execute("select current_setting('memory_limit')").fetchone()
    return _bytes(str(shown))


# Rows per row group in the files this project writes (the working and the analyst database, a
# rebuild's scratch), where DuckDB's default is 122,880. A row group is one unit of parallel
# work: a batch under 122,880 rows (enforcement's 100,170 at province) was inserted, hashed and
# written at commit on one core. The province's four loads take 3.4-3.6 s instead of 4.3-4.5,
# compute and publish as before; the analyst database uses the same size, or its copy of a
# table re-cuts the groups (slower: docs/performance.md). DuckDB keeps the size per attached
# database, not in the file: every writer attaches with it.
ROW_GROUP_SIZE = 32_768


_ATTACHING = threading.Lock()  # two threads' first connections to a file: one attaches it


def connect(
    path: Path, read_only: bool = False, warehouse: bool = False, spill_to: Path | None = None
) -> duckdb.DuckDBPyConnection:
    """A connection to the database file at `path` (or ":memory:"), its default catalog named
    as DuckDB names it (the file's stem). A writer attaches the file to an in-memory database to
    set its row group size (ROW_GROUP_SIZE): one per file and process, shared by its connections
    as DuckDB shares a file it opens itself (a file is attached once per process), and gone with
    the last of them. A cursor of a connection starts in the in-memory catalog: `use_catalog_of`.

    An in-memory database spills beyond its memory cap into `spill_to`, which it must be given:
    DuckDB's default is `.tmp` in the working directory, wherever the command was started (a
    cron job's `/`: the statement fails; a small disk: it fills)."""
    config = {"threads": 2, "memory_limit": memory_limit(warehouse)}
    if str(path) == ":memory:":
        if spill_to is None:
            raise ValueError("an in-memory connection needs spill_to: the folder it spills into")
        config["temp_directory"] = str(spill_to)
    if read_only or str(path) == ":memory:":
        con = duckdb.connect(str(path), read_only=read_only, config=config)
        con.execute("set enable_progress_bar = false")  # no progress bars in run logs
        return con
    path.parent.mkdir(parents=True, exist_ok=True)
    name = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
    # spills go beside the file, where DuckDB puts them for a file it opens itself
    with _ATTACHING:
        con = duckdb.connect(f":memory:{name}", config=config | {"temp_directory": f"{path}.tmp"})
        try:
            con.execute("set enable_progress_bar = false")
            con.execute(
                f"attach if not exists ? as {_identifier(path.stem)} (row_group_size {ROW_GROUP_SIZE})", [str(path)]
            )
            con.execute(f"use {_identifier(path.stem)}")
        except BaseException:
            con.close()
            raise
    return con


def use_catalog_of(con: duckdb.DuckDBPyConnection, cursor: duckdb.DuckDBPyConnection) -> None:
    """Make `con`'s default catalog the `cursor`'s (a new cursor starts in the instance's own)."""
    cursor.execute(f"use {_identifier(con.execute('select current_database()').fetchone()[0])}")


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def rollback(con: duckdb.DuckDBPyConnection) -> None:
    """Roll back after a failed statement or commit, keeping the error that caused it: when the
    commit itself failed (a full disk: "Could not write file …: No space left on device"), DuckDB
    has already ended the transaction, and a plain `rollback` would raise "cannot rollback - no
    transaction is active" in its place (nor any failure to roll back)."""
    with contextlib.suppress(duckdb.Error):
        con.execute("rollback")


def migrate(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Apply the numbered migrations not yet applied, each in its own transaction, then create the
    tables of registered sources the migrations do not (warehouse/sources/schema.py)."""
    con.execute("create table if not exists main.schema_migration (name varchar primary key, applied_at timestamp)")
    done = {r[0] for r in con.execute("select name from main.schema_migration").fetchall()}
    applied = []
    for path in sorted(MIGRATIONS_DIR.glob("[0-9][0-9][0-9]_*.sql")):
        if path.name in done:
            continue
        con.execute("begin transaction")
        try:
            con.execute(path.read_text(encoding="utf-8"))
            con.execute("insert into main.schema_migration values (?, current_timestamp)", [path.name])
            con.execute("commit")
        except Exception:
            rollback(con)
            raise
        applied.append(path.name)
    from warehouse.sources.schema import create_missing_tables  # the registry reads the migrations' tables

    create_missing_tables(con)
    return applied


def open_work_db(path: Path) -> duckdb.DuckDBPyConnection:
    con = connect(path, warehouse=True)
    migrate(con)
    return con
