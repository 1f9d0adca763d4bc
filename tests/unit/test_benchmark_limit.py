"""The benchmarks' limit (benchmarks/limit.py) reads what the parse keeps: the same records into
the same columns, typed as the parsed tables type them, so that the ratio to it compares the
same work. (Benchmarks themselves never run in the tests; this reads the mini county.)"""

from __future__ import annotations

import duckdb
import pytest

from benchmarks.limit import FAST_JSON, read_json_pages, read_workbooks
from tests.fixtures import mini
from warehouse.sources.landing import delivered_files, land
from warehouse.sources.parse import parse_batch
from warehouse.sources.registry import load_mappings

KEY = b"limit-test-key-not-a-secret-0123456789"
KINDS = {"enforcement": "json_pages", "mediation": "json_pages", "training": "spreadsheet_drop"}


@pytest.fixture(scope="module")
def parsed(tmp_path_factory):
    """The mini county's batches, landed and parsed by the pipeline's parse."""
    root = mini.build(tmp_path_factory.mktemp("limit"))
    out = {}
    for source, kind in KINDS.items():
        batch = land(source, delivered_files(root / source, kind), root / "landing", {})
        out[source] = batch, parse_batch(batch, KEY, root / "parsed" / source)
    return out


def _columns(con, relation: str) -> list[tuple[str, str]]:
    return [(r[0], r[1]) for r in con.execute(f"describe {relation}").fetchall()]


@pytest.mark.parametrize("method", FAST_JSON)
@pytest.mark.parametrize("source", ["enforcement", "mediation"])
def test_json_limit_reads_the_parsed_records_into_the_parsed_types(parsed, source, method):
    batch, tables = parsed[source]
    (table,) = tables.values()
    con = duckdb.connect()
    rows = read_json_pages(con, source, [f.path for f in batch.files], method)
    parquet = f"read_parquet('{table.path}')"
    kept = {c.name for c in load_mappings()[source][table.table].kept_columns}
    parsed_types = [c for c in _columns(con, f"(select * from {parquet})") if c[0] in kept]
    assert rows == table.rows > 0
    assert _columns(con, source) == parsed_types  # every kept column, in order, with its type
    key = load_mappings()[source][table.table].key[0]
    assert (
        con.execute(f"select list({key} order by {key}) from {source}").fetchone()
        == con.execute(f"select list({key} order by {key}) from {parquet}").fetchone()
    )
    numbers = [c for c, t in parsed_types if t == "DOUBLE"]
    assert numbers and con.execute(f"select count({numbers[0]}) from {source}").fetchone()[0] > 0


def test_workbook_limit_reads_every_table_with_the_parsed_records(parsed):
    batch, tables = parsed["training"]
    con = duckdb.connect()
    rows = read_workbooks(con, "training", [f.path for f in batch.files], files_per_group=2, workers=1)
    assert set(rows) == set(load_mappings()["training"])
    for name, n in rows.items():
        # the limit skips blank rows only: totals and footer lines the parse drops are read too
        assert n >= tables[name].rows > 0
    assert dict(_columns(con, "training_session"))["hours"] == "DOUBLE"
    (hours,) = con.execute("select sum(hours) from training_session").fetchone()
    assert hours > 0
