"""Declared models (warehouse/dag.py): every model's header says what it builds and reads, the
runner derives the order from it, refuses wrong declarations naming the file, and checks each
declared grain after the build."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pytest

from tests.conftest import query
from tests.fixtures import mini


def _model(folder: Path, name: str, header: dict[str, str], body: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name.split('.')[1]}.sql"
    lines = [f"-- model: {name}"] + [f"-- {k}: {v}" for k, v in header.items()]
    path.write_text("\n".join(lines) + "\n" + body + "\n", encoding="utf-8")
    return path


@pytest.fixture
def con():
    con = duckdb.connect()
    con.execute("create schema src; create schema mart")
    con.execute("create table src.n as select range as n from range(5)")
    yield con
    con.close()


def _temp_tables(con) -> list[str]:
    return [r[0] for r in con.execute("select table_name from duckdb_tables() where temporary").fetchall()]


def test_every_model_of_the_product_declares_what_it_reads(tmp_path):
    """Each header against its SQL (DuckDB's parser), in a fresh warehouse; the file is named
    after its relation; the per-batch statements are declared too."""
    from warehouse import dag
    from warehouse.compute import MARTS_DIR
    from warehouse.db import migrate
    from warehouse.province import REGION_MODELS

    con = duckdb.connect(str(tmp_path / "work.duckdb"))
    migrate(con)
    marts = dag.load_models(MARTS_DIR)
    dag.check_declarations(con, marts)
    names = [m.name for m in dag.build_order(marts)]
    assert names.index("temp.quarantined_figure") < names.index("temp.evidence_returns")
    assert names.index("temp.evidence_returns") < names.index("mart.indicator_evidence")
    assert names.index("mart.indicator_evidence") < names.index("mart.indicator_value")
    assert {"mart.indicator_value", "mart.indicator_evidence", "mart.indicator_catalogue"} <= set(names)
    evidence = {m.name for m in marts if "evidence" in m.tags}
    assert evidence == {f"temp.evidence_{s}" for s in ("enforcement", "mediation", "training", "returns")}
    assert all(m.grain for m in marts if m.name.startswith("mart.") and m.built)

    con.execute("create schema counties")
    con.execute("create table counties.indicator_evidence as select * from mart.indicator_edition_evidence")
    con.execute("create table counties.indicator_catalogue as select * from ref.indicator_catalogue")
    dag.check_declarations(con, dag.load_models(REGION_MODELS))
    statements = dag.load_models(dag.MODELS_DIR / "core", dag.MODELS_DIR / "audit")
    assert len(statements) == 7 and {m.materialized for m in statements} == {"statement"}
    con.close()


def test_a_model_reading_another_is_built_after_it_even_if_listed_first(tmp_path, con):
    from warehouse import dag

    total = _model(
        tmp_path,
        "mart.total",
        {"materialized": "table", "reads": "temp.doubled", "grain": "total"},
        "select sum(n2) as total from temp.doubled",
    )
    doubled = _model(
        tmp_path, "temp.doubled", {"materialized": "temp", "reads": "src.n"}, "select n * $factor as n2 from src.n"
    )
    built = dag.build(con, dag.load_models(total, doubled), {"factor": 2, "unused": 1})
    assert [m.name for m in built] == ["temp.doubled", "mart.total"]
    assert con.execute("select total from mart.total").fetchall() == [(20,)]
    assert _temp_tables(con) == []  # the temp model is dropped once its reader is built


def test_a_cycle_is_refused_naming_the_files(tmp_path, con):
    from warehouse import dag

    a = _model(tmp_path, "mart.a", {"materialized": "table", "reads": "mart.b"}, "select * from mart.b")
    b = _model(tmp_path, "mart.b", {"materialized": "table", "reads": "mart.a"}, "select * from mart.a")
    with pytest.raises(dag.ModelError) as err:
        dag.build(con, dag.load_models(a, b))
    assert "cycle" in str(err.value) and str(a) in str(err.value) and str(b) in str(err.value)


@pytest.mark.parametrize(
    ("reads", "body", "expected"),
    [
        ("", "select * from src.n", "reads src.n, not declared in its header"),
        ("src.n, src.m", "select * from src.n", "declares -- reads: src.m, which its SQL does not read"),
        ("src.gone", "select * from src.gone", "src.gone: neither a model of this run nor a table"),
        ("temp.staged", "select * from temp.staged", "temp.staged: neither a model of this run"),
        ("n", "select * from n", "reads n without its schema"),
        ("src.n", "select * from src.n where n = $limit", "needs parameter(s) $limit"),
    ],
)
def test_a_wrong_declaration_is_refused_naming_the_file_before_anything_is_built(tmp_path, con, reads, body, expected):
    from warehouse import dag

    first = _model(tmp_path, "mart.first", {"materialized": "table", "reads": "src.n"}, "select * from src.n")
    wrong = _model(tmp_path, "mart.wrong", {"materialized": "table", "reads": reads}, body)
    con.execute("create temp table staged as select 1 as x")  # a temp table no model declares
    with pytest.raises(dag.ModelError) as err:
        dag.build(con, dag.load_models(first, wrong))
    assert str(wrong) in str(err.value) and expected in str(err.value)
    assert con.execute("select count(*) from duckdb_tables() where table_name = 'first'").fetchone() == (0,)


def test_a_file_not_named_after_its_relation_is_refused(tmp_path):
    from warehouse import dag

    path = tmp_path / "province_indicator_value.sql"
    path.write_text("-- model: mart.region_indicator_value\n-- materialized: table\nselect 1\n", encoding="utf-8")
    with pytest.raises(dag.ModelError, match="name the file region_indicator_value.sql"):
        dag.load_models(path)


def test_a_null_in_the_grain_is_caught(tmp_path, con):
    from warehouse import dag

    model = _model(
        tmp_path,
        "mart.pairs",
        {"materialized": "table", "reads": "src.n", "grain": "n, half"},
        "select n, case when n > 0 then n // 2 end as half from src.n",
    )
    with pytest.raises(dag.GrainViolation) as err:
        dag.build(con, dag.load_models(model))
    assert "mart.pairs" in str(err.value) and "half (1 rows)" in str(err.value)


def _facts(con) -> None:
    # three years, townships with 1 to 7 rows each, rows written in no particular order
    con.execute(
        """
        create table src.facts as
        select 2021 + (i % 3) as year, 't' || lpad(((i * 7) % 11)::varchar, 2, '0') as township_code,
               i as record_id, 'r' || (i * 13 % 97) as note
        from range(200) t(i)
        """
    )


def test_a_table_sorted_in_pieces_has_the_rows_and_order_of_one_sort(tmp_path, con, monkeypatch):
    from warehouse import dag

    _facts(con)
    body = "select * from src.facts order by year, township_code, record_id"
    whole = con.execute(body).fetchall()
    model = _model(
        tmp_path,
        "mart.facts",
        {"materialized": "table", "reads": "src.facts", "sorted_in_pieces": "year, township_code"},
        body,
    )
    counts = con.execute("select year, township_code, count(*) from src.facts group by all order by all").fetchall()
    pieces, small = dag._pieces(counts, dag.piece_rows(con)), dag._pieces(counts, 10)
    assert len(pieces) == 3 and len(small) > 2 * len(pieces)  # one per year, then many per year
    monkeypatch.setattr(dag, "PIECE_ROWS", 10)
    dag.build(con, dag.load_models(model))
    assert con.execute("select * from mart.facts").fetchall() == whole


def test_a_piece_never_silently_drops_a_row_with_a_null_key(tmp_path, con):
    from warehouse import dag

    _facts(con)
    con.execute("update src.facts set township_code = null where record_id = 5")
    model = _model(
        tmp_path,
        "mart.facts",
        {
            "materialized": "table",
            "reads": "src.facts",
            "grain": "year, township_code, record_id",
            "sorted_in_pieces": "year, township_code",
        },
        "select * from src.facts order by year, township_code, record_id",
    )
    with pytest.raises(dag.GrainViolation) as err:
        dag.build(con, dag.load_models(model))
    assert "township_code (1 rows)" in str(err.value)


def test_pieces_need_an_order_that_begins_with_their_columns(tmp_path, con):
    from warehouse import dag

    _facts(con)
    model = _model(
        tmp_path,
        "mart.facts",
        {"materialized": "table", "reads": "src.facts", "sorted_in_pieces": "year, township_code"},
        "select * from src.facts order by township_code, year",
    )
    with pytest.raises(dag.ModelError, match="order by begins with year, township_code"):
        dag.build(con, dag.load_models(model))


@pytest.fixture
def work(mini_run, tmp_path) -> Path:
    """A copy of the mini county's computed working database."""
    db = tmp_path / "work.duckdb"
    shutil.copyfile(mini_run.settings.work_db, db)
    return db


INDICATOR = (
    "select value from mart.indicator_value where year = 2023 and indicator_code = 'ENF01' and township_code = ?"
)


def test_a_grain_violation_stops_the_compute_naming_the_model_and_a_duplicate_key(work, tmp_path):
    """A second evidence model counting the same acts again: mart.indicator_evidence's grain is
    broken, the compute fails naming it with a duplicate key, and the marts stay as they were."""
    from warehouse import dag
    from warehouse.compute import compute_indicators

    extra = _model(
        tmp_path / "models",
        "temp.evidence_again",
        {"materialized": "temp", "reads": "temp.evidence_enforcement", "tags": "evidence"},
        "select * from temp.evidence_enforcement where indicator_code = 'ENF01'",
    )
    before = query(work, "select * from mart.indicator_evidence order by all")
    con = duckdb.connect(str(work))
    try:
        with pytest.raises(dag.GrainViolation) as err:
            compute_indicators(con, first_year=2022, extra_models=[extra])
    finally:
        con.close()
    message = str(err.value)
    assert "mart.indicator_evidence" in message and "warehouse/models/marts/indicator_evidence.sql" in message
    assert "4 key(s) occur more than once" in message  # the inspections of 2023: A's three, B's one
    assert "indicator_code='ENF01', record_table='enforcement_act'" in message and "year=2023" in message
    assert query(work, "select * from mart.indicator_evidence order by all") == before
    assert query(work, INDICATOR, [mini.A]) == [(3.0,)]


def test_a_model_passed_in_and_tagged_evidence_counts_in_the_figures(work, tmp_path):
    """A source's own evidence model (as a source registry passes it): its records join
    mart.indicator_evidence, and the township's and the county's figures count them."""
    from warehouse.compute import compute_indicators

    extra = _model(
        tmp_path / "models",
        "temp.evidence_review",
        {"materialized": "temp", "reads": "ref.township", "tags": "evidence"},
        f"""select 2023 as year, county_code, code as township_code, 'ENF01' as indicator_code,
                   'review_case' as record_table, 'R1' as record_id, date '2023-05-04' as record_date,
                   1.00::decimal(18, 2) as numerator
            from ref.township where code = '{mini.A}'""",
    )
    con = duckdb.connect(str(work))
    try:
        compute_indicators(con, first_year=2022, extra_models=[extra])
        assert _temp_tables(con) == []
    finally:
        con.close()
    assert query(work, INDICATOR, [mini.A]) == [(4.0,)]
    county = query(work, INDICATOR, [mini.COUNTY])[0][0]
    review = "select record_id, numerator, denominator from mart.indicator_evidence where record_table = 'review_case'"
    assert query(work, review) == [("R1", 1, None)]
    con = duckdb.connect(str(work))
    try:
        compute_indicators(con, first_year=2022)
    finally:
        con.close()
    assert query(work, INDICATOR, [mini.A]) == [(3.0,)] and query(work, INDICATOR, [mini.COUNTY]) == [(county - 1,)]
