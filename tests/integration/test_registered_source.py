"""A source that exists only under tests/ (tests/fixtures/reconsideration: a 行政复议 system
exporting JSON pages over HTTP) registered through the source registry and run from landing to
the published database — pulled from the simulator on loopback, parsed by its field dictionary,
validated by its own GX suite, loaded into tables created from the dictionary, counted by its
own evidence model, published with its comments — with no product file edited."""

from __future__ import annotations

import os

import pytest

from tests.conftest import make_mini_home, query, run_steps
from tests.fixtures import mini, reconsideration
from warehouse import compute
from warehouse.demo.simulator import Simulator
from warehouse.sources import registry

TOKEN = "tok-reconsideration-test"


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    registry.register_source(reconsideration.SOURCE)
    catalogue = tmp_path_factory.mktemp("catalogue") / "indicator_catalogue.yaml"
    catalogue.write_text(compute.CATALOGUE_FILE.read_text(encoding="utf-8") + reconsideration.CATALOGUE, "utf-8")
    shipped, compute.CATALOGUE_FILE = compute.CATALOGUE_FILE, catalogue  # the county's catalogue, extended
    os.environ["FAZHI_RECONSIDERATION_TOKEN"] = TOKEN
    try:
        home = make_mini_home(tmp_path_factory.mktemp("registered"))
        data = reconsideration.write(tmp_path_factory.mktemp("export"))
        with Simulator(data, token=TOKEN) as sim:
            with (home / "fazhi.toml").open("a", encoding="utf-8") as cfg:
                cfg.write(f'\n[sources.reconsideration]\nkind = "http"\nurl = "{sim.url}"\npage_size = 2\n')
            run = run_steps(home)
    finally:
        compute.CATALOGUE_FILE = shipped
        os.environ.pop("FAZHI_RECONSIDERATION_TOKEN")
        registry.unregister_source("reconsideration")
    return run, home / "published" / "fazhi.duckdb"


def test_cases_are_pulled_validated_and_loaded_without_personal_data(published):
    run, db = published
    outcome = run.outcomes["reconsideration"]
    assert (outcome.status, outcome.received_rows, outcome.loaded_rows, outcome.quarantined_rows) == ("loaded", 8, 5, 3)
    rows = query(db, "select case_id, township_code, decision_kind, claim_amount_yuan, is_voided, applicant_id_key "
                     "from core.reconsideration_case where valid_to is null order by case_id")  # fmt: skip
    assert [r[:5] for r in rows] == [
        ("R1", mini.A, "撤销", 5000, False),
        ("R2", mini.A, "维持", 5000, False),
        ("R3", mini.A, None, 5000, False),
        ("R4", mini.B, "确认违法", 5000, False),
        ("R5", mini.B, None, 5000, True),
    ]
    assert len({r[5] for r in rows}) == 1 and len(rows[0][5]) == 32  # one person's keyed hash, never the ID
    columns = {
        c for (c,) in query(db, "select column_name from duckdb_columns() where table_name = 'reconsideration_case'")
    }
    assert not columns & {"applicant_name", "申请人"}
    quarantined = query(
        db, "select business_key, rules from audit.quarantine where table_name = 'reconsideration_case' order by 1"
    )
    assert [(k, r) for k, r in quarantined] == [("X1", ["REV-R04"]), ("X2", ["REV-R02"]), ("X3", ["REV-R08"])]
    everything = " ".join(str(v) for r in query(db, "select * from core.reconsideration_case") for v in r)
    assert mini.NAMES[0] not in everything and mini.IDS[0] not in everything


def test_its_evidence_model_counts_into_the_indicator_set(published):
    _, db = published
    values = query(db, "select township_code, indicator_code, value, numerator, denominator from mart.indicator_value "
                       "where year = 2023 and indicator_code like 'REV%' order by 1, 2")  # fmt: skip
    assert values == [
        (mini.COUNTY, "REV01", 4, 4, None),
        (mini.COUNTY, "REV02", pytest.approx(2 / 3), 2, 3),
        (mini.A, "REV01", 3, 3, None),
        (mini.A, "REV02", 0.5, 1, 2),
        (mini.B, "REV01", 1, 1, None),
        (mini.B, "REV02", 1.0, 1, 1),
    ]
    evidence = query(db, "select record_id from mart.indicator_evidence where indicator_code = 'REV02' order by 1")
    assert evidence == [("R1",), ("R2",), ("R4",)]
    # the built-in sources are counted as before
    enf = query(
        db,
        "select value from mart.indicator_value where year = 2023 and township_code = ? and indicator_code = 'ENF01'",
        [mini.A],
    )
    assert enf == [(mini.EXPECTED[(2023, mini.A, "ENF01")][0],)]


def test_it_is_published_with_the_comments_of_its_field_dictionary(published):
    _, db = published
    table = query(db, "select comment from duckdb_tables() where table_name = 'reconsideration_case'")
    assert table == [
        (
            "行政复议案件(含历史版本，已去除个人信息) / "
            "administrative reconsideration cases with history, personal data removed",
        )
    ]
    comments = dict(
        query(db, "select column_name, comment from duckdb_columns() where table_name = 'reconsideration_case'")
    )
    assert comments["applicant_id_key"] == "申请人证件号码密钥散列 / applicant ID pseudonym"
    assert comments["respondent_body"] == "源字段「被申请人」 / source field 被申请人"
    assert (
        "reconsideration=行政复议平台"
        in dict(
            query(db, "select column_name, comment from duckdb_columns() where table_name = 'indicator_catalogue'")
        )["source"]
    )
    parquet = db.parent / "parquet"
    assert any(
        p.name.startswith("core.reconsideration_case") or "reconsideration_case" in str(p) for p in parquet.rglob("*")
    )


def test_once_unregistered_nothing_of_it_remains_in_the_lists():
    assert "reconsideration" not in registry.source_names()
    assert "reconsideration_case" not in registry.table_names()
