"""Year-end rebuilds from the raw layer as editions: deterministic, insert-only, with a change log
that names the records behind each change; works after the landed files are purged."""

from __future__ import annotations

import shutil

import pytest

from tests.conftest import indicator_count, make_mini_home, query, run_steps
from tests.fixtures import mini

VALUES = (
    "select township_code, indicator_code, value, numerator, denominator, qualifier, status "
    "from mart.indicator_edition_value where year = ? and edition = ? order by township_code, indicator_code"
)


@pytest.fixture
def home(tmp_path):
    home = make_mini_home(tmp_path / "home")
    run_steps(home)
    return home


def _rebuild(home, year=2023):
    from warehouse import pipeline
    from warehouse.config import load_settings

    settings = load_settings(home)
    edition = pipeline.rebuild_year(settings, year)
    pipeline.audit_and_publish(settings)
    return edition


def test_rebuild_editions_change_log_and_old_editions_kept(home):
    published = home / "published" / "fazhi.duckdb"
    shutil.rmtree(home / "landing")  # rebuilds replay the raw layer, not the landed files
    first = _rebuild(home)
    assert (first.edition, first.changed_values, first.matches_nightly) == (1, 0, True)
    assert first.compared_with == "nightly" and "nothing changed" in first.note_en
    nightly = query(
        published,
        "select township_code, indicator_code, value, numerator, denominator, qualifier, status "
        "from mart.indicator_value where year = 2023 order by township_code, indicator_code",
    )
    assert query(published, VALUES, [2023, 1]) == nightly and len(nightly) == 3 * indicator_count()

    second = _rebuild(home)
    assert (second.edition, second.changed_values) == (2, 0)
    assert query(published, VALUES, [2023, 2]) == query(published, VALUES, [2023, 1])  # deterministic

    # a late correction: P2's legal review was in fact done before the decision
    good, _ = mini.enforcement_records()
    p2 = next(r for r in good if r["行为编号"] == "P2") | {
        "法制审核日期": "2023-09-27",
        "更新时间": "2024-02-01 09:00:00",
    }
    mini.write_pages(home / "data" / "enforcement" / "x", "enforcement", [p2], page_size=10)
    shutil.move(home / "data/enforcement/x/page-000001.json", home / "data/enforcement/page-000050.json")
    run_steps(home)
    third = _rebuild(home)
    assert third.edition == 3 and third.compared_with == "edition 2"
    changes = query(
        published,
        "select township_code, indicator_code, previous_value, value, change, records "
        "from mart.indicator_edition_change where year = 2023 and edition = 3 order by 1, 2",
    )
    decision = "penalty_decision:" + p2["决定书文号"]
    assert changes == [
        (mini.COUNTY, "ENF07", 0.5, 1.0, 0.5, [decision]),
        (mini.A, "ENF07", 0.5, 1.0, 0.5, [decision]),
    ]
    assert third.changed_values == 2
    edition_2 = "select value from mart.indicator_edition_value where year = 2023 and edition = 2 and township_code = ?"
    edition_2 += " and indicator_code = 'ENF07'"
    assert query(published, edition_2, [mini.A]) == [(0.5,)]  # previous_value: the previous edition's value
    (comment,) = query(
        published,
        "select comment from duckdb_columns() where table_name = 'indicator_edition_change' and column_name = ?",
        ["previous_value"],
    )[0]
    assert "previous edition" in comment and "year" not in comment
    # edition 1 still reads the old figure; the current values and edition 3 the new one
    from warehouse.read.indicators import read_values

    def enf07(edition):
        rows = read_values(published, 2023, mini.A, edition)
        return next(r["value"] for r in rows if r["indicator_code"] == "ENF07")

    assert (enf07(1), enf07(3), enf07(None)) == (0.5, 1.0, 1.0)
    editions = query(published, "select edition, changed_values from mart.indicator_edition order by 1")
    assert editions == [(1, 0), (2, 0), (3, 2)]


def test_matches_nightly_compares_within_the_year_when_other_years_have_editions(home):
    first = _rebuild(home, 2023)
    other = _rebuild(home, 2022)  # 2023's edition 1 exists: it must not count against 2022's
    assert (first.edition, first.matches_nightly) == (1, True)
    assert (other.year, other.edition, other.changed_values, other.matches_nightly) == (2022, 1, 0, True)
    assert "nothing changed" in other.note_en
    published = home / "published" / "fazhi.duckdb"
    flags = query(published, "select year, edition, matches_nightly from mart.indicator_edition order by all")
    assert flags == [(2022, 1, True), (2023, 1, True)]


def test_explain_lists_the_records_behind_a_value(home, capsys):
    from flows.cli import main

    assert (
        main(
            [
                "explain",
                "--year",
                "2023",
                "--township",
                "贡川镇",
                "--indicator",
                "ENF09",
                "--format",
                "json",
                "--home",
                str(home),
            ]
        )
        == 0
    )
    import json

    out = json.loads(capsys.readouterr().out)
    assert out["value"]["numerator"] == 3 and out["value"]["denominator"] == 5
    got = {r["record_id"]: r["numerator"] for r in out["records"]}
    assert got == {"E1": 1, "E2": 0, "E3": 0, "P1": 1, "P2": 1}
    assert sum(got.values()) == out["value"]["numerator"] and len(got) == out["value"]["denominator"]
    assert (
        main(["explain", "--year", "2023", "--township", mini.COUNTY, "--indicator", "ENF01", "--home", str(home)]) == 0
    )
    table = capsys.readouterr().out
    assert "E9" in table and "E1" in table and "4 records counted" in table


def test_comparisons_rank_change_and_traffic_light(home):
    rows = query(
        home / "published" / "fazhi.duckdb",
        "select township_code, indicator_code, rank_in_county, previous_value, change_from_previous, "
        "target_value, gap_to_target, traffic_light from mart.indicator_value where year = 2023 "
        "and indicator_code in ('ENF09', 'ENF02', 'LIT02') order by 1, 2",
    )
    got = {(t, c): rest for t, c, *rest in rows}
    # ENF09: 贡川镇 3/5, 安砂镇 1/1 -> 安砂镇 ranks first; target 1.0 with a 0.05 amber margin
    assert got[(mini.B, "ENF09")][0] == 1 and got[(mini.A, "ENF09")][0] == 2
    assert got[(mini.A, "ENF09")][5] == "red" and got[(mini.B, "ENF09")][5] == "green"
    assert got[(mini.A, "ENF09")][4] == pytest.approx(0.6 - 1.0)
    # ENF02 2022 -> 2023 for 贡川镇: 1 -> 2
    assert list(got[(mini.A, "ENF02")][1:3]) == [1.0, 1.0]
    # a NULL value (安砂镇 LIT02, zero denominator) has no rank and no light
    assert got[(mini.B, "LIT02")][0] is None and got[(mini.B, "LIT02")][5] is None
    assert got[(mini.COUNTY, "ENF09")][0] is None  # the county is not ranked among its townships


def test_a_county_row_lists_the_changed_records_of_all_its_townships():
    """Township A's records changed without changing its value, B's value changed: the county's
    changed value lists A's records too (only the changed values' evidence is compared, record by
    record: a county row's townships' evidence is compared with it)."""
    import duckdb

    from warehouse.db import migrate, sql

    con = duckdb.connect()
    migrate(con)
    # the nightly tables (built by compute), read only for edition 1
    con.execute("create table mart.indicator_value as select * from mart.indicator_edition_value limit 0")
    con.execute("create table mart.indicator_evidence as select * from mart.indicator_edition_evidence limit 0")
    values = {1: {"A": 1.0, "B": 1.0, "C": 2.0}, 2: {"A": 1.0, "B": 2.0, "C": 3.0}}
    evidence = {1: [("A", "r1"), ("B", "r3")], 2: [("A", "r2"), ("B", "r3"), ("B", "r4")]}
    for edition in (1, 2):
        for township, value in values[edition].items():
            con.execute(
                "insert into mart.indicator_edition_value (edition, year, township_code, indicator_code, value) "
                "values (?, 2023, ?, 'X', ?)",
                [edition, township, value],
            )
        for township, record in evidence[edition]:
            con.execute(
                "insert into mart.indicator_edition_evidence (edition, year, county_code, township_code, "
                "indicator_code, record_table, record_id, numerator) values (?, 2023, 'C', ?, 'X', 't', ?, 1)",
                [edition, township, record],
            )
    changes = con.execute(
        f"select township_code, previous_value, value, records from "
        f"({sql('models/marts/indicator_edition_change.sql')}) order by 1",
        {"year": 2023, "edition": 2},
    ).fetchall()
    assert changes == [("B", 1.0, 2.0, ["t:r4"]), ("C", 2.0, 3.0, ["t:r1", "t:r2", "t:r4"])]
