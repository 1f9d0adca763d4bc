"""Corrections make new versions (the old figure stays reachable "as of" before), corrected
quarantined rows load and resolve, and schema drift stops only the drifting source."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from tests.conftest import make_mini_home, query, run_steps
from tests.fixtures import mini


def _value(db, year, area, code, table="mart.indicator_value"):
    return query(
        db,
        f"select value from {table} where year = ? and township_code = ? and indicator_code = ?",
        [year, area, code],
    )[0][0]


def _add_page(home, records, n=9):
    mini.write_pages(home / "data" / "enforcement" / "tmp", "enforcement", records, page_size=100)
    (home / "data" / "enforcement" / "tmp" / "page-000001.json").rename(
        home / "data" / "enforcement" / f"page-{n:06d}.json"
    )
    (home / "data" / "enforcement" / "tmp").rmdir()


@pytest.fixture
def fresh_run(tmp_path):
    return run_steps(make_mini_home(tmp_path / "home"))


def test_correction_versions_record_and_resolves_quarantine(fresh_run):
    home, db = fresh_run.settings.home, fresh_run.settings.work_db
    assert _value(db, 2023, mini.A, "ENF07") == 0.5
    before_correction = datetime.now()
    good, faulty = mini.enforcement_records()
    p2 = next(r for r in good if r["行为编号"] == "P2") | {
        "法制审核日期": "2023-09-27",
        "更新时间": "2024-02-01 09:00:00",
    }
    x2 = next(r for r in faulty if r["行为编号"] == "X2") | {
        "检查时间": "2023-02-28",
        "更新时间": "2024-02-01 09:00:00",
    }
    _add_page(home, [p2, x2])
    run = run_steps(home)
    assert run.outcomes["enforcement"].loaded_rows == 2 and run.outcomes["enforcement"].quarantined_rows == 0

    versions = query(
        db,
        "select valid_to is null, legal_review_date::varchar from core.enforcement_act "
        "where act_id = 'P2' order by valid_from",
    )
    assert versions == [(False, "2023-09-29"), (True, "2023-09-27")]
    assert _value(db, 2023, mini.A, "ENF07") == 1.0
    assert _value(db, 2023, mini.A, "ENF01") == 4  # X2 now loads
    resolved = query(
        db,
        "select resolved_at is not null, resolved_by_batch from audit.quarantine where business_key = 'X2'",
    )
    assert resolved == [(True, run.outcomes["enforcement"].batch_id)]
    still_open = query(
        db,
        "select business_key from audit.quarantine where resolved_at is null and source = 'enforcement' order by 1",
    )
    assert still_open == [("X1",), ("X3",)]

    # what the warehouse knew before the correction still gives the old figure
    import duckdb

    from warehouse.compute import compute_indicators

    con = duckdb.connect(str(db))
    compute_indicators(con, first_year=2022, as_of=before_correction)
    con.close()
    assert _value(db, 2023, mini.A, "ENF07") == 0.5 and _value(db, 2023, mini.A, "ENF01") == 3


def test_replaying_a_batch_changes_nothing(fresh_run):
    """Loading the same landed batch again (e.g. a retried task after its load committed)."""
    from warehouse import pipeline

    settings = fresh_run.settings
    tables = [
        f"{schema}.{t}"
        for schema, t in query(
            settings.work_db,
            "select schema_name, table_name from duckdb_tables() "
            "where schema_name in ('raw', 'core', 'audit', 'mart', 'ref')",
        )
        if t not in ("run",)
    ]
    assert len(tables) > 15
    before = {t: query(settings.work_db, f"select * from {t} order by all") for t in tables}
    outcome = pipeline.load_prepared(settings, fresh_run.prepared["mediation"], "run-replay")
    assert outcome.status == "already_loaded" and outcome.received_rows == fresh_run.outcomes["mediation"].received_rows
    pipeline.compute(settings)
    after = {t: query(settings.work_db, f"select * from {t} order by all") for t in tables}
    assert before == after


def test_schema_drift_stops_only_that_source(tmp_path):
    home = make_mini_home(tmp_path / "home")
    run_steps(home)
    published = home / "published" / "fazhi.duckdb"
    enf_before = query(published, "select * from core.enforcement_act order by all")
    good, _ = mini.enforcement_records()
    drifted = [
        {("行为种类" if k == "行为类型" else k): v for k, v in r.items()} | {"更新时间": "2024-03-01 00:00:00"}
        for r in good[:3]
    ]
    _add_page(home, drifted)
    # and a new training workbook for the other township, which must still load
    ws = json.loads((home / "data" / "enforcement" / "page-000009.json").read_text(encoding="utf-8"))
    assert "行为种类" in ws["records"][0]
    run = run_steps(home)
    prep = run.prepared["enforcement"]
    assert prep.stop_rule == "schema-drift" and "行为类型" in prep.stop_zh and "行为类型" in prep.stop_en
    assert run.outcomes["enforcement"].status == "stopped"
    assert query(published, "select * from core.enforcement_act order by all") == enf_before
    status = query(
        home / "work.duckdb",
        "select status, message_en from audit.batch where source = 'enforcement' order by loaded_at desc limit 1",
    )[0]
    assert status[0] == "stopped" and "行为类型" in status[1]
    # the stopped files are not marked loaded: they are tried again next run
    assert (
        query(
            home / "work.duckdb",
            "select count(*) from audit.landed_file where file_name = 'page-000009.json'",
        )[0][0]
        == 0
    )


def test_drift_means_absent_from_every_record_not_only_from_each_page_s_first(tmp_path):
    """The drift check looks at each page's first record before reading all records: a field
    missing there but present further down a page is not drift."""
    from warehouse.sources.landing import delivered_files, land
    from warehouse.sources.mapping import SourceError
    from warehouse.sources.parse import parser_for

    good, _ = mini.enforcement_records()
    good = [r for r in good if r.get("行为类型")][:4]
    without = [{k: v for k, v in r.items() if k != "行为类型"} for r in good]

    def parse(name, records):
        mini.write_pages(tmp_path / name, "enforcement", records, page_size=2)
        batch = land("enforcement", delivered_files(tmp_path / name, "json_pages"), tmp_path / "landing", {})
        return parser_for("enforcement")(batch, b"k")["enforcement_act"]

    rows = parse("later", [without[0], good[1], without[2], good[3]])  # each page's first lacks it
    assert rows["act_type"].notna().sum() == 2
    with pytest.raises(SourceError) as stopped:
        parse("absent", without)
    assert stopped.value.rule == "schema-drift" and "行为类型" in stopped.value.message_zh
