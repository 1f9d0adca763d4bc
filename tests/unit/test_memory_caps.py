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
