"""A writer's connection to a database file (warehouse/db.py connect): the file attached with
ROW_GROUP_SIZE rows per row group (a batch under DuckDB's 122,880 was one row group, loaded on
one core: docs/performance.md), spills beside the file, one attachment shared by the process's
connections to it, and the file released when the last of them closes."""

from __future__ import annotations

import math
import threading
from pathlib import Path

import duckdb
import pytest

from warehouse.db import ROW_GROUP_SIZE, connect, open_work_db, use_catalog_of


def _row_groups(con: duckdb.DuckDBPyConnection, table: str) -> int:
    return con.execute(f"select count(distinct row_group_id) from pragma_storage_info('{table}')").fetchone()[0]


def test_a_writer_writes_row_groups_of_the_projects_size_and_spills_beside_the_file(tmp_path):
    path = tmp_path / "work.duckdb"
    rows = 100_170  # enforcement's records at province: one row group at DuckDB's default size
    con = open_work_db(path)
    try:
        assert con.execute("select current_database()").fetchone()[0] == "work"
        assert con.execute("select current_setting('temp_directory')").fetchone()[0] == f"{path}.tmp"
        con.execute(f"create table main.facts as select range as i from range({rows})")
        assert ROW_GROUP_SIZE < 122_880
        assert _row_groups(con, "main.facts") == math.ceil(rows / ROW_GROUP_SIZE)
    finally:
        con.close()
    # released: the file opens as DuckDB opens it (an attachment still held would refuse it)
    plain = duckdb.connect(str(path), read_only=True)
    try:
        assert plain.execute("select count(*), sum(i) from main.facts").fetchone() == (rows, rows * (rows - 1) // 2)
    finally:
        plain.close()


def test_connections_of_one_process_share_the_file_and_a_cursor_joins_its_catalog(tmp_path):
    path = tmp_path / "work.duckdb"
    first = connect(path)
    errors: list[BaseException] = []

    def write(k: int) -> None:
        try:
            con = connect(path)  # the file is attached once, by whichever thread comes first
            try:
                con.execute(f"create table main.t{k} as select {k} as k")
            finally:
                con.close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert errors == []
        cursor = first.cursor()
        use_catalog_of(first, cursor)
        assert cursor.execute(
            "select sum(k) from (from main.t0 union all from main.t1 union all from main.t2 union all from main.t3)"
        ).fetchone() == (6,)
        cursor.close()
    finally:
        first.close()


def test_an_in_memory_database_spills_where_it_is_told_never_into_the_working_directory(tmp_path, monkeypatch):
    """DuckDB's default for an in-memory database is `.tmp` in the working directory: a cron job's
    `/`, or here a folder where `.tmp` is a file, made a region roll-up fail (IOException)."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    (cwd / ".tmp").write_bytes(b"")
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("FAZHI_DUCKDB_MEMORY_LIMIT", "16MB")
    with pytest.raises(ValueError, match="spill_to"):
        connect(Path(":memory:"))
    spill = tmp_path / "spill"
    con = connect(Path(":memory:"), spill_to=spill)
    try:
        # ~40 MB of text under a 16MB cap: the table's blocks are written to the spill folder
        con.execute("create temp table t as select md5(i::varchar) as m from range(1000000) r(i)")
        assert any(f.name.endswith(".tmp") for f in spill.iterdir())
        assert con.execute("select count(*), count(m) from t").fetchone() == (1_000_000, 1_000_000)
    finally:
        con.close()
    assert [f.name for f in cwd.iterdir()] == [".tmp"]
