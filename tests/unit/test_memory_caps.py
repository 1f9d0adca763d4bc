"""DuckDB's memory cap holds for the warehouse and for each parse's scratch file alike, and
FAZHI_DUCKDB_MEMORY_LIMIT moves both: without it, DuckDB takes 80 % of the machine's memory and
peak memory grows with the input (docs/performance.md)."""

from __future__ import annotations

import duckdb
import pytest

from warehouse.db import MEMORY_LIMIT, connect
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
    expected = _as_duckdb_says(override or MEMORY_LIMIT)
    assert expected != _as_duckdb_says("80%")  # not DuckDB's default
    for con in (connect(tmp_path / "work.duckdb"), quiet_connect(tmp_path / "parse.duckdb")):
        try:
            assert _limit(con) == expected
        finally:
            con.close()
