"""DuckDB's memory cap holds for the warehouse (WAREHOUSE_MEMORY_LIMIT) and for each parse's
scratch file (MEMORY_LIMIT), and FAZHI_DUCKDB_MEMORY_LIMIT moves both: without them, DuckDB
takes 80 % of the machine's memory and peak memory grows with the input (docs/performance.md)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from tests.conftest import make_mini_home
from warehouse.db import MEMORY_LIMIT, WAREHOUSE_MEMORY_LIMIT, connect, memory_limit, open_work_db
from warehouse.sources.parsed import quiet_connect


def _limit(con: duckdb.DuckDBPyConnection) -> str:
    return con.execute("select current_setting('memory_limit')").fetchone()[0]


def _as_duckdb_says(limit: str) -> str:
    con = duckdb.connect(config={"memory_limit": limit})
    try:
        return _limit(con)
    finally:
        con.close()


@pytest.mark.parametrize("override", [None, "300MB"])
def test_the_warehouse_and_the_parse_are_capped(tmp_path, monkeypatch, override):
    if override:
        monkeypatch.setenv("FAZHI_DUCKDB_MEMORY_LIMIT", override)
    else:
        monkeypatch.delenv("FAZHI_DUCKDB_MEMORY_LIMIT", raising=False)
    default = _as_duckdb_says("80%")
    caps = {
        "warehouse": (open_work_db(tmp_path / "work.duckdb"), override or WAREHOUSE_MEMORY_LIMIT),
        "parse": (quiet_connect(tmp_path / "parse.duckdb"), override or MEMORY_LIMIT),
        "other": (connect(tmp_path / "other.duckdb"), override or MEMORY_LIMIT),
    }
    try:
        for what, (con, cap) in caps.items():
            assert _limit(con) == _as_duckdb_says(cap) != default, what  # not DuckDB's default
        second = connect(tmp_path / "work.duckdb", warehouse=True)  # the run record's, beside the run's own
        assert _limit(second) == _as_duckdb_says(override or WAREHOUSE_MEMORY_LIMIT)
        second.close()
    finally:
        for con, _ in caps.values():
            con.close()


@pytest.mark.parametrize(
    "limit, cap_bytes", [("256MB", 256_000_000), ("768MB", 768_000_000), ("2GiB", 2 * 2**30), ("3GB", 3_000_000_000)]
)
def test_a_model_sorted_in_pieces_takes_as_many_rows_as_the_cap_holds(limit, cap_bytes):
    """Each piece reads the whole statement again: pieces as large as the memory cap allows
    (warehouse/dag.py piece_rows), from the cap as DuckDB shows it (`732.4 MiB`)."""
    from warehouse import dag
    from warehouse.db import memory_limit_bytes

    con = duckdb.connect(config={"memory_limit": limit})
    try:
        assert memory_limit_bytes(con) == pytest.approx(cap_bytes, rel=0.05)  # shown to a tenth of its unit
        assert dag.piece_rows(con) == pytest.approx(cap_bytes / dag.PIECE_ROW_BYTES, rel=0.05)
    finally:
        con.close()


def test_a_cap_duckdb_cannot_read_is_refused_naming_the_variable(tmp_path, monkeypatch):
    """FAZHI_DUCKDB_MEMORY_LIMIT=abc (or 0, or -5GB) made DuckDB's parser fail as an unexpected
    error naming neither the variable nor the fix; `fazhi run` now stops as a configuration error
    (exit 2) before anything lands. Sizes DuckDB reads still pass (2.5GB, 512mb, 1 TB)."""
    home = make_mini_home(tmp_path / "home")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env |= {"PREFECT_HOME": str(tmp_path / "prefect"), "FAZHI_PREFECT": "0"}
    for wrong in ("abc", "0", "-5GB"):
        argv = [str(Path(sys.executable).with_name("fazhi")), "run", "--home", str(home)]
        env["FAZHI_DUCKDB_MEMORY_LIMIT"] = wrong
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        assert f"FAZHI_DUCKDB_MEMORY_LIMIT={wrong!r} 不是内存大小" in done.stderr
    assert not (home / "landing").exists() or not any((home / "landing").iterdir())
    for right in ("2.5GB", "512mb", "1 TB"):
        monkeypatch.setenv("FAZHI_DUCKDB_MEMORY_LIMIT", right)
        con = connect(tmp_path / "capped.duckdb")
        try:
            assert memory_limit() == right == memory_limit(warehouse=True)
            assert _limit(con) == _as_duckdb_says(right)
        finally:
            con.close()
