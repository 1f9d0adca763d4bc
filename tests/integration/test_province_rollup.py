"""Three counties run separately, rolled up from their Parquet partitions, equal one combined run."""

from __future__ import annotations

import csv
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb

from tests.conftest import indicator_count, query, run_steps

COUNTIES = {
    "350481": ("永安市", [("350481101", "贡川镇", "镇"), ("350481102", "安砂镇", "镇")]),
    "350482": ("甲县", [("350482100", "甲一镇", "镇"), ("350482001", "甲二街道", "街道")]),
    "350483": ("乙县", [("350483200", "乙一乡", "乡")]),
}


def _townships(path, codes):
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["code", "name", "kind", "county_code", "county_name"])
        for county in codes:
            name, towns = COUNTIES[county]
            w.writerows([(c, n, k, county, name) for c, n, k in towns])
    return path


def _home(root, codes):
    from warehouse.config import write_demo_config
    from warehouse.demo.sample.generate import generate_sample

    root.mkdir(parents=True)
    generate_sample(root / "sample", townships_csv=_townships(root / "t.csv", codes), years=(2023,))
    write_demo_config(root)
    run_steps(root)
    return root


def test_region_roll_up_of_separate_counties_equals_a_combined_run(tmp_path):
    from warehouse.province import roll_up

    counties = [_home(tmp_path / c, [c]) for c in COUNTIES]
    combined = _home(tmp_path / "combined", list(COUNTIES))
    roll_up([c / "published" for c in counties], tmp_path / "region.duckdb", "350400")
    roll_up([combined / "published"], tmp_path / "combined_region.duckdb", "350400")
    select = (
        "select year, area_code, area_level, indicator_code, value, numerator, denominator, qualifier "
        "from mart.region_indicator_value order by all"
    )
    separate = query(tmp_path / "region.duckdb", select)
    assert separate == query(tmp_path / "combined_region.duckdb", select)
    assert {r[1] for r in separate} == {"350400", *COUNTIES}
    assert len(separate) == 4 * indicator_count()

    # the county rows also equal the combined run's own county figures (mart.indicator_value)
    combined_counties = {
        (r[0], r[1], r[2]): r[3]
        for r in query(
            combined / "published" / "fazhi.duckdb",
            "select year, township_code, indicator_code, value from mart.indicator_value where area_level = 'county'",
        )
    }
    for year, area, level, code, value, *_ in separate:
        if level == "county":
            expected = combined_counties[(year, area, code)]
            assert (value is None and expected is None) or math.isclose(value, expected, rel_tol=1e-12), code
    # and a region count is the sum of its counties'
    by = {(r[1], r[3]): r[4] for r in separate}
    assert by[("350400", "MED01")] == sum(by[(c, "MED01")] for c in COUNTIES) > 0


FAZHI = str(Path(sys.executable).with_name("fazhi"))


def test_rollup_refuses_a_county_given_twice_or_a_township_claimed_by_two_counties(mini_run, tmp_path):
    """`fazhi rollup` as a user runs it: the same folder twice, the same county from two folders, a
    township two counties claim: each refused (exit 2) naming them, nothing written. One county
    alone rolls up into a file the DuckDB CLI of the dev extra (1.5) opens."""
    published = mini_run.settings.published_db.parent
    out = tmp_path / "region.duckdb"

    def rollup(*folders: Path) -> subprocess.CompletedProcess:
        counties = [a for f in folders for a in ("--county", str(f))]
        argv = [FAZHI, "rollup", *counties, "--out", str(out), "--region-code", "350000"]
        return subprocess.run(argv, capture_output=True, text=True, timeout=300)

    twice = rollup(published, published)
    assert twice.returncode == 2 and "the same county folder is given twice" in twice.stderr, twice.stderr
    copy = tmp_path / "copy" / "published"
    shutil.copytree(published, copy, symlinks=True)
    again = rollup(published, copy)
    assert again.returncode == 2 and "county 350481 is given twice" in again.stderr and str(copy) in again.stderr
    other = tmp_path / "other" / "published"
    (other / "parquet").mkdir(parents=True)
    claim = "select '350481101' as code, '贡川镇' as name, '镇' as kind, '350482' as county_code, '甲县' as county_name"
    duckdb.execute(f"copy ({claim}) to '{other / 'parquet' / 'ref.township.parquet'}' (format parquet)")
    claimed = rollup(published, other)
    assert claimed.returncode == 2 and "1 township(s) claimed by two counties: 350481101: 350481, 350482" in (
        claimed.stderr
    )
    assert "Traceback" not in twice.stderr + again.stderr + claimed.stderr and not out.exists()

    alone = rollup(published)
    assert alone.returncode == 0 and "1 个县(市) / counties" in alone.stdout, alone.stderr[-2000:]
    cli = Path(sys.executable).with_name("duckdb")
    if cli.exists():
        sql = "select count(*) from mart.region_indicator_value where area_level = 'county'"
        got = subprocess.run([str(cli), "-readonly", "-csv", str(out), "-c", sql], capture_output=True, text=True)
        assert got.returncode == 0, got.stderr
        assert int(got.stdout.splitlines()[1]) == query(out, sql)[0][0] > 0


def test_rollup_without_a_server_refuses_bad_input_and_a_failed_one_leaves_nothing(mini_run, tmp_path):
    """`fazhi rollup` with no Prefect server configured runs without one (no temporary server);
    a county partition cut short, a region code that is a county's own or not a division code are
    refused (exit 2) naming them; a roll-up that fails while building (a memory cap it cannot
    work under) leaves nothing beside --out, whose folder it makes, and nothing in the working
    directory (where DuckDB spilled by default: here `.tmp` is a file, as a read-only `/` would
    refuse it)."""
    published = mini_run.settings.published_db.parent
    out = tmp_path / "new" / "region.duckdb"
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    (cwd / ".tmp").write_bytes(b"")
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"} | {
        "PREFECT_HOME": str(tmp_path / "prefect"),  # no profile naming a server
        "FAZHI_PREFECT": "",
    }
    stderr = []

    def rollup(folder: Path, region: str = "350000", into: Path = out, **extra: str) -> subprocess.CompletedProcess:
        argv = [FAZHI, "rollup", "--county", str(folder), "--out", str(into), "--region-code", region]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=cwd, env=env | extra)
        stderr.append(done.stderr)
        return done

    damaged = tmp_path / "damaged" / "published"
    shutil.copytree(published, damaged)  # the `parquet` link's folder copied as a folder
    evidence = damaged / "parquet" / "mart.indicator_evidence.parquet"
    evidence.write_bytes(evidence.read_bytes()[: evidence.stat().st_size // 2])
    refused = {
        f"the county partition {evidence} is not a complete Parquet file": rollup(damaged),
        "the region code 350481 is one of the counties rolled up": rollup(published, region="350481"),
        "the region code must be a 6-digit division code (e.g. 350000, 350400): '35'": rollup(published, region="35"),
        f"--out {published / 'fazhi.duckdb'} is inside the county's published folder {published}": rollup(
            published, into=published / "fazhi.duckdb"
        ),
        f"--out {tmp_path} is a folder": rollup(published, into=tmp_path),
    }
    for said, done in refused.items():
        assert done.returncode == 2 and said in done.stderr, done.stderr
    assert query(published / "fazhi.duckdb", "select count(*) from mart.indicator_value")[0][0] > 0  # untouched

    failed = rollup(published, FAZHI_DUCKDB_MEMORY_LIMIT="2MB")
    assert failed.returncode == 1 and "OutOfMemory" in failed.stderr, failed.stderr
    assert "raise FAZHI_DUCKDB_MEMORY_LIMIT" in failed.stderr
    assert list(out.parent.iterdir()) == []

    done = rollup(published)
    assert done.returncode == 0, done.stderr
    assert [p.name for p in out.parent.iterdir()] == [out.name]
    assert query(out, "select count(*) from mart.region_indicator_value where area_level = 'county'")[0][0] > 0
    assert not any("Traceback" in e or "temporary server" in e for e in stderr), stderr
    assert [p.name for p in cwd.iterdir()] == [".tmp"]


def _county_copy(published: Path, folder: Path, county: str, evidence: str) -> Path:
    """`published`'s county as another county's partitions (codes replaced), its evidence as the
    select `evidence` gives it over `{src}` (another version of fazhi's columns)."""
    src, part = published / "parquet", folder / "parquet"
    part.mkdir(parents=True)
    con = duckdb.connect()
    try:
        township = f"select * replace ('{county}' as county_code, '{county}' || code[7:] as code) from read_parquet(?)"
        con.execute(
            f"copy ({township}) to '{part / 'ref.township.parquet'}' (format parquet)",
            [str(src / "ref.township.parquet")],
        )
        rows = evidence.format(src=f"read_parquet('{src / 'mart.indicator_evidence.parquet'}')", county=county)
        con.execute(f"copy ({rows}) to '{part / 'mart.indicator_evidence.parquet'}' (format parquet)")
    finally:
        con.close()
    shutil.copy(src / "mart.indicator_catalogue.parquet", part)
    return folder


def test_rollup_reads_counties_by_column_name_and_refuses_one_lacking_a_column(mini_run, tmp_path):
    """Counties upgrade fazhi at different times: a county whose evidence has a column more and
    another column order rolls up with the same figures as the county it copies; one lacking a
    column the roll-up reads is refused naming the file and the column (exit 2)."""
    from warehouse.province import roll_up

    published = mini_run.settings.published_db.parent
    newer = _county_copy(
        published,
        tmp_path / "newer",
        "350482",
        "select 1 as added_later, qualifier, * exclude (qualifier) "
        "replace ('{county}' as county_code, '{county}' || township_code[7:] as township_code) from {src}",
    )
    out = tmp_path / "region.duckdb"
    roll_up([newer, published], out, "350000")  # the newer layout first: its columns do not lead
    values = (
        "select indicator_code, value from mart.region_indicator_value where year = 2023 and area_code = ? order by 1"
    )
    copied = query(out, values, ["350482"])
    assert copied == query(out, values, ["350481"]) and len(copied) == indicator_count()
    assert any(v for _, v in copied)

    older = _county_copy(
        published,
        tmp_path / "older",
        "350483",
        "select * exclude (qualifier) replace ('{county}' as county_code) from {src}",
    )
    argv = [FAZHI, "rollup", "--county", str(published), "--county", str(older), "--out", str(out)]
    lacking = subprocess.run([*argv, "--region-code", "350000"], capture_output=True, text=True, timeout=300)
    evidence = older / "parquet" / "mart.indicator_evidence.parquet"
    assert lacking.returncode == 2, lacking.stderr
    assert f"the county partition {evidence} lacks column(s) qualifier" in lacking.stderr
