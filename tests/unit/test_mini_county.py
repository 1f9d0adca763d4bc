"""The whole pipeline (no Prefect) on the hand-made mini county: every value worked out by hand."""

from __future__ import annotations

import math

import pytest

from tests.conftest import query
from tests.fixtures import mini


@pytest.mark.parametrize("key", list(mini.EXPECTED), ids=lambda k: f"{k[0]}-{k[1]}-{k[2]}")
def test_indicator_value_matches_hand_computation(mini_run, key):
    year, area, code = key
    value, numerator, denominator = mini.EXPECTED[key]
    rows = query(
        mini_run.settings.published_db,
        "select value, numerator, denominator, status from mart.indicator_value "
        "where year = ? and township_code = ? and indicator_code = ?",
        [year, area, code],
    )
    assert len(rows) == 1
    got_value, got_num, got_den, status = rows[0]
    if value is None:
        assert got_value is None and status == "no_data"
    else:
        assert math.isclose(got_value, value, rel_tol=1e-12) and status == mini.EXPECTED_STATUS.get(key, "ok")
    assert (None if got_num is None else float(got_num)) == numerator
    if denominator is not None:
        assert float(got_den) == denominator


def test_missing_return_and_ledger_are_null_with_reason(mini_run):
    rows = query(
        mini_run.settings.published_db,
        "select township_code, indicator_code, value, status, source_files, missing_townships "
        "from mart.indicator_value where year = ? and indicator_code in ('OGI01', 'TRN01', 'TRN07') order by 1, 2",
        [2022],
    )
    assert [r[2:] for r in rows] == [(None, "incomplete", None, 2)] * 3 + [(None, "missing_source", None, None)] * 6
    rows = query(
        mini_run.settings.published_db,
        "select township_code, indicator_code, value, status, source_files, missing_townships "
        "from mart.indicator_value where year = 2023 and indicator_code in ('OGI01', 'TRN01') order by 1, 2",
    )
    assert rows == [
        (mini.COUNTY, "OGI01", 8.0, "ok", None, 0),
        (mini.COUNTY, "TRN01", 1.0, "incomplete", None, 1),  # 安砂镇 sent no ledger: not 0 ok
        (mini.A, "OGI01", 6.0, "ok", [f"{mini.A}_2023_年度报表.xlsx"], None),
        (mini.A, "TRN01", 1.0, "ok", [f"{mini.A}_2023_学法培训台账.xlsx"], None),
        (mini.B, "OGI01", 2.0, "ok", [f"{mini.B}_2023_年度报表.csv"], None),
        (mini.B, "TRN01", None, "missing_source", None, None),
    ]


def test_qualifier_from_return(mini_run):
    rows = query(
        mini_run.settings.published_db,
        "select township_code, indicator_code, qualifier from mart.indicator_value where year = 2023 "
        "and indicator_code in ('OGI03', 'PUB01', 'PUB02') order by 1, 2",
    )
    got = {(t, c): q for t, c, q in rows}
    assert got[(mini.A, "OGI03")] == ">=" and got[(mini.A, "PUB01")] == ">=" and got[(mini.A, "PUB02")] is None
    assert got[(mini.B, "OGI03")] == ">=" and got[(mini.COUNTY, "OGI03")] == ">="


def test_faulty_rows_are_quarantined_with_rule_and_counts_add_up(mini_run):
    db = mini_run.settings.published_db
    q = query(
        db,
        "select source, business_key, rules, message_zh, message_en, source_file, row_number "
        "from audit.quarantine order by source, business_key",
    )
    by_key = {(s, k): (rules, zh, en, f, n) for s, k, rules, zh, en, f, n in q}
    assert by_key[("enforcement", "X1")][0] == ["ENF-R07"]
    assert by_key[("enforcement", "X2")][0] == ["ENF-R10"]
    assert "检查时间" in by_key[("enforcement", "X2")][1]
    assert by_key[("enforcement", "X3")][0] == ["ENF-R03"]
    assert by_key[("enforcement", "X3")][3] == "page-000003.json" and by_key[("enforcement", "X3")][4] == 2
    assert set(by_key[("mediation", "X8")][0]) == {"MED-R04", "MED-R17"}
    assert by_key[("mediation", "X7")][0] == ["MED-R07"]
    assert by_key[("training", f"{mini.A}|S9|" + _key_of(mini_run, "training_attendance", "S9"))][0] == ["TRA-R02"]
    # received = loaded + quarantined, for every batch, and the core holds exactly the loaded rows
    for outcome in mini_run.outcomes.values():
        assert outcome.received_rows == outcome.loaded_rows + outcome.quarantined_rows
    assert mini_run.outcomes["enforcement"].quarantined_rows == 3
    assert mini_run.outcomes["mediation"].quarantined_rows == 2
    assert query(db, "select count(*) from core.enforcement_act")[0][0] == mini_run.outcomes["enforcement"].loaded_rows


def _key_of(run, table, session_id):
    (key,) = query(run.settings.work_db, f"select person_key from raw.{table} where session_id = ?", [session_id])[0]
    return key


def test_published_database_holds_no_personal_data(mini_run):
    import duckdb

    needles = mini.NAMES + mini.IDS + mini.PHONES + [c for c, _ in mini.CERTS.values()] + ["集凤村"]
    con = duckdb.connect(str(mini_run.settings.published_db), read_only=True)
    cols = con.execute(
        "select table_schema, table_name, column_name from information_schema.columns "
        "where data_type in ('VARCHAR', 'VARCHAR[]', 'JSON')"
    ).fetchall()
    assert len(cols) > 50
    for schema, table, column in cols:
        hits = con.execute(
            f"select count(*) from {schema}.{table}, unnest($needles) n(needle) "
            f'where contains(upper(cast("{column}" as varchar)), upper(needle))',
            {"needles": needles},
        ).fetchone()[0]
        assert hits == 0, f"personal data found in {schema}.{table}.{column}"
    con.close()


def test_published_tables_have_bilingual_comments(mini_run):
    rows = query(
        mini_run.settings.published_db,
        "select comment from duckdb_columns() where schema_name = 'mart' and table_name = 'indicator_value'",
    )
    assert rows and all(c and " / " in c for (c,) in rows)


def test_rerun_changes_nothing(mini_run):
    from tests.conftest import run_steps

    tables = [
        "core.enforcement_act",
        "core.mediation_case",
        "core.training_attendance",
        "audit.quarantine",
        "mart.indicator_value",
        "raw.enforcement_act",
    ]
    before = {t: query(mini_run.settings.work_db, f"select * from {t} order by all") for t in tables}
    again = run_steps(mini_run.settings.home)
    assert again.outcomes == {}  # every file already loaded: nothing new lands
    after = {t: query(mini_run.settings.work_db, f"select * from {t} order by all") for t in tables}
    assert before == after and all(before[t] for t in tables)


def test_the_reports_read_how_many_townships_a_county_total_lacks(mini_run):
    from warehouse.reports import wording
    from warehouse.reports.published import read_year

    data = read_year(mini_run.settings.published_db, 2023)
    county = data.value(mini.COUNTY, "TRN01")
    assert county["missing_townships"] == 1
    assert wording.status_words(county) == ("1个乡镇缺数，合计不完整", "incomplete: 1 township(s) missing")
