"""The shipped sample, end to end through the Prefect flow: 贡川镇 2023 reproduces the town's
published report (reference/seed-figures.md); every township-year reproduces what the generator
aimed at; faulty rows are quarantined; a second run changes nothing."""

from __future__ import annotations

import json
import math

from tests.conftest import indicator_count, query

GONGCHUAN = "350481101"

# reference/seed-figures.md: the figures of 永贡政〔2023〕69号 the sample must reproduce.
SEED_EXACT = {
    "ENF01": 52,
    "ENF02": 16,
    "ENF03": 20,
    "ENF04": 6,
    "ENF07": 1.0,
    "MED01": 320,
    "TRN01": 2,
    "TRN02": 68,
    "TRN03": 3,
    "TRN04": 12,
    "TRN05": 3,
    "TRN06": 2,
    "LIT01": 1,
    "LIT02": 1.0,
    "OGI01": 6,
    "OGI02": 1,
    "PUB02": 9,
    "PUB03": 5,
    "PUB04": 12,
    "PUB05": 4,
    "PUB06": 1,
}
SEED_AT_LEAST = {"OGI03": 200, "PUB01": 8000}  # reported as 200余份 / 8000余份
SEED_RANGES = {"MED02": (0.98, 0.99), "MED03": (0.90, 0.91)}


def test_gongchuan_2023_reproduces_the_published_report(sample_home, capsys):
    from flows.cli import main

    assert (
        main(
            [
                "indicators",
                "--year",
                "2023",
                "--township",
                "贡川镇",
                "--format",
                "json",
                "--home",
                str(sample_home),
            ]
        )
        == 0
    )
    rows = {r["indicator_code"]: r for r in json.loads(capsys.readouterr().out)}
    for code, expected in SEED_EXACT.items():
        assert rows[code]["value"] == expected, code
    for code, floor in SEED_AT_LEAST.items():
        assert rows[code]["value"] == floor and rows[code]["qualifier"] == ">=", code
    for code, (lo, hi) in SEED_RANGES.items():
        assert lo <= rows[code]["value"] < hi, code
    assert rows["ENF06"]["value"] >= 1
    assert (rows["ENF05"]["numerator"], rows["ENF05"]["denominator"]) == (26, 68)
    assert rows["LIT02"]["numerator"] == 1 and rows["LIT02"]["denominator"] == 1
    assert rows["ENF01"]["township_name"] == "贡川镇" and rows["ENF01"]["unit"] == "件"


def test_every_township_year_matches_what_the_generator_built(sample_home):
    targets = json.loads((sample_home / "sample" / "targets.json").read_text(encoding="utf-8"))
    got = {
        (r[0], r[1], r[2]): r[3:]
        for r in query(
            sample_home / "published" / "fazhi.duckdb",
            "select year, township_code, indicator_code, value, numerator, denominator, qualifier "
            "from mart.indicator_value where area_level = 'township'",
        )
    }
    assert len(targets) == len(got) == 15 * 3 * indicator_count()
    mismatches = []
    for t in targets:
        value, _, _, qualifier = got[(t["year"], t["township_code"], t["indicator_code"])]
        same = (value is None and t["value"] is None) or (
            value is not None and t["value"] is not None and math.isclose(value, t["value"], rel_tol=1e-9)
        )
        if not same or qualifier != t["qualifier"]:
            mismatches.append((t["year"], t["township_code"], t["indicator_code"], t["value"], value))
    assert mismatches == []


def test_county_rows_are_sums_of_numerators_over_denominators(sample_home):
    rows = query(
        sample_home / "published" / "fazhi.duckdb",
        """
        select c.year, c.indicator_code, c.numerator, c.denominator, sum(t.numerator), sum(t.denominator)
        from mart.indicator_value c
        join mart.indicator_value t on t.year = c.year and t.indicator_code = c.indicator_code
             and t.area_level = 'township'
        where c.area_level = 'county' and c.kind in ('count', 'rate', 'amount', 'mean')
        group by all
        """,
    )
    assert rows
    for year, code, num, den, sum_num, sum_den in rows:
        assert num == sum_num and den == sum_den, (year, code)


def test_faulty_sample_rows_are_quarantined_and_counts_add_up(sample_home):
    faults = json.loads((sample_home / "sample" / "faults.json").read_text(encoding="utf-8"))
    work = sample_home / "work.duckdb"
    quarantined = query(work, "select source, count(*) from audit.quarantine group by 1")
    assert sum(n for _, n in quarantined) >= len(faults) >= 4
    for row in query(work, "select received_rows, loaded_rows, quarantined_rows from audit.batch"):
        assert row[0] == row[1] + row[2]
    assert all(rules for (rules,) in query(work, "select rules from audit.quarantine"))


def test_second_run_changes_nothing(sample_home):
    from flows.nightly import nightly

    tables = [
        "core.enforcement_act",
        "core.mediation_case",
        "core.training_staff",
        "audit.quarantine",
        "mart.indicator_value",
    ]
    before = {t: query(sample_home / "work.duckdb", f"select * from {t} order by all") for t in tables}
    published_before = (sample_home / "published" / "fazhi.duckdb").stat().st_mtime_ns
    result = nightly(home=str(sample_home))
    assert {s["status"] for s in result["sources"].values()} == {"unchanged"}
    after = {t: query(sample_home / "work.duckdb", f"select * from {t} order by all") for t in tables}
    assert before == after
    assert (sample_home / "published" / "fazhi.duckdb").stat().st_mtime_ns == published_before


def test_year_end_rebuild_edition_1_reproduces_the_report(sample_home):
    from flows.rebuild import year_end_rebuild
    from warehouse.read.indicators import read_values

    result = year_end_rebuild(year=2023, home=str(sample_home))
    assert result["edition"] == 1 and result["matches_nightly"] and result["changed_values"] == 0
    rows = {r["indicator_code"]: r for r in read_values(sample_home / "published" / "fazhi.duckdb", 2023, "贡川镇", 1)}
    for code, expected in SEED_EXACT.items():
        assert rows[code]["value"] == expected, code
    for code, (lo, hi) in SEED_RANGES.items():
        assert lo <= rows[code]["value"] < hi, code
    assert rows["OGI03"]["qualifier"] == ">=" and rows["ENF06"]["value"] >= 1
    # the edition's report draft and workbook (issue 19); the rebuild's publish rewrote the dashboard
    from tests.integration.test_outputs import SEED_PHRASES, _text, fazhi

    home, docx_file, xlsx_file = str(sample_home), sample_home / "edition-1.docx", sample_home / "edition-1.xlsx"
    done = fazhi(
        "report", "--year", "2023", "--township", "贡川镇", "--edition", "1", "--out", str(docx_file), "--home", home
    )
    assert done.returncode == 0, done.stderr
    text = _text(docx_file)
    assert [p for p in SEED_PHRASES if p not in text] == [] and "（第1版，数据截至" in text
    assert fazhi("export", "--year", "2023", "--edition", "1", "--out", str(xlsx_file), "--home", home).returncode == 0
    page = (sample_home / "published" / "reports" / "dashboard-2023.html").read_text(encoding="utf-8")
    assert "2023年已发布第1版" in page


def test_no_personal_data_of_the_sample_reaches_the_published_database(sample_home):
    """Every name, ID number, phone number and certificate number the sample's exports carry
    is looked for in every text column of the published database: whole values, and any run
    of 11-18 digits inside a value."""
    import duckdb

    con = duckdb.connect()
    pages = [str(p) for p in sorted((sample_home / "sample").glob("*/page-*.json"))]
    con.execute(
        """
        create table needles as
        with recs as (
            select unnest(cast(json_extract(json, '$.records') as json[])) as r
            from read_json_objects($p, format = 'auto')
        )
        select distinct needle from (
            select unnest([r->>'当事人名称', r->>'当事人姓名', r->>'证件号码', r->>'联系电话', r->>'地址',
                           r->>'调解员', r->>'纠纷简要情况']) as needle from recs
            union all
            select unnest(cast(r->'执法人员' as varchar[])) from recs
            union all
            select unnest(cast(r->'执法证号' as varchar[])) from recs
        ) where needle is not null and length(needle) >= 2
        """,
        {"p": pages},
    )
    assert con.execute("select count(*) from needles").fetchone()[0] > 10_000
    con.execute(f"attach '{sample_home / 'published' / 'fazhi.duckdb'}' as pub (read_only)")
    columns = con.execute(
        "select schema_name, table_name, column_name from duckdb_columns() "
        "where database_name = 'pub' and data_type in ('VARCHAR', 'VARCHAR[]', 'JSON')"
    ).fetchall()
    assert len(columns) > 100
    for schema, table, column in columns:
        value = f'cast("{column}" as varchar)'
        hits = con.execute(
            f"""
            select count(*) from (
                select {value} as v from pub.{schema}.{table} where {value} in (select needle from needles)
                union all
                select d from (select unnest(regexp_extract_all({value}, '[0-9]{{11,17}}[0-9Xx]?')) as d
                               from pub.{schema}.{table}) where d in (select needle from needles)
            )
            """
        ).fetchone()[0]
        assert hits == 0, f"personal data of the sample found in {schema}.{table}.{column}"
