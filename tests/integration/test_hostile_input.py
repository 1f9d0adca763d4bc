"""Hostile input end to end, as a user runs it (`fazhi` subprocesses on the session's Prefect
test server): a drop folder holding a sparse-grid workbook, a zip bomb, a workbook whose zip
entry is flagged encrypted, links, lock and hidden files, under a memory cap; and the whole demo
in a home whose path holds `'`, spaces, `;` and Chinese. The run ends, the other sources
publish, the figures the bad input does not feed equal the clean run's, and the refusal names
the file."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import make_mini_home, query
from tests.fixtures import hostile, mini
from tests.processes import fazhi

MEMORY_CAP = 3584 * 2**20  # a clean `fazhi run` of the mini county needs ~2.3 GB of address space
FIGURES = (
    "select year, township_code, indicator_code, value, numerator, denominator, status "
    "from mart.indicator_value where regexp_matches(indicator_code, ?) order by all"
)
# figures by the source files they come from: ENF09 (certified officers) reads the training roster
PAGES_ONLY = "^(ENF(0[1-8]|1[0-9])|MED)"
TRAINING_FED = "^(TRN|ENF09)"


@pytest.fixture(scope="module")
def api_env(prefect_harness):
    from prefect.settings import PREFECT_API_URL

    return dict(os.environ) | {"PREFECT_API_URL": PREFECT_API_URL.value(), "FAZHI_DUCKDB_MEMORY_LIMIT": "512MB"}


def _figures(db: Path, codes: str) -> list[tuple]:
    """The figures whose indicator code matches the regular expression `codes`."""
    return query(db, FIGURES, [codes])


def test_hostile_drop_files_are_refused_by_name_and_the_others_publish(tmp_path, api_env, mini_run):
    home = make_mini_home(tmp_path / "home")
    data = home / "data"
    clean = mini_run.settings.published_db
    # training: a 1.8 KB workbook with a cell at XFD1048576 (calamine aborted on it), beside an
    # Excel lock file, a hidden copy and a link to the home's key file
    sparse = hostile.sparse_workbook(data / "training" / f"{mini.B}_2023_学法培训台账.xlsx")
    ledger = data / "training" / f"{mini.A}_2023_学法培训台账.xlsx"
    hostile.lock_file(data / "training", ledger.name)
    shutil.copy(ledger, data / "training" / f".{ledger.name}")
    (home / "secrets").mkdir()
    (home / "secrets" / "hmac.key").write_text("k" * 64)
    hostile.link(data / "training", f"{mini.B}_2022_学法培训台账.xlsx", home / "secrets" / "hmac.key")
    # returns: a zip bomb (300 MB of XML, 20 million cells, in a 1.7 MB file), and a return whose
    # zip entry is flagged encrypted (zipfile's bare RuntimeError went through the guard)
    bomb = hostile.zip_bomb_workbook(data / "returns" / f"{mini.B}_2022_年度报表.xlsx")
    encrypted = hostile.encrypted_entry_workbook(
        data / "returns" / f"{mini.A}_2022_年度报表.xlsx", data / "returns" / f"{mini.A}_2023_年度报表.xlsx"
    )
    # enforcement: a link to pages outside the folder and a hidden page, each with an extra act
    good, _ = mini.enforcement_records()
    outside = tmp_path / "outside"
    extra = [dict(good[0], 行为编号="E-OUTSIDE", 更新时间="2024-03-01 00:00:00")]
    mini.write_pages(outside, "enforcement", extra, page_size=10)
    hostile.link(data / "enforcement", "page-000777.json", outside / "page-000001.json")
    shutil.copy(outside / "page-000001.json", data / "enforcement" / ".page-000778.json")

    done = fazhi("run", "--home", str(home), env=api_env, memory_cap_bytes=MEMORY_CAP)

    # the run ends and publishes; each hostile workbook is refused alone, as a file, by name
    assert done.returncode == 0, done.stderr[-3000:]
    refused = _refused_files(home)
    assert "sheet 活动登记 spans A1:XFD1048576" in refused[sparse.name]
    assert "the workbook unpacks to more than 268,435,456 bytes" in refused[bomb.name]
    assert "the xlsx file is damaged or incomplete" in refused[encrypted.name]
    published = home / "published" / "fazhi.duckdb"
    # the figures the refused files do not feed publish as in the clean run
    assert len(_figures(clean, PAGES_ONLY)) == 90  # 15 indicators × 2 years × 2 townships and the county
    assert _figures(published, PAGES_ONLY) == _figures(clean, PAGES_ONLY)
    landed = {p.name for p in (home / "landing").rglob("*") if p.is_file()}
    assert not landed & {"page-000777.json", ".page-000778.json", f"{mini.B}_2022_学法培训台账.xlsx"}
    assert not any(p.name.startswith("~$") for p in (home / "landing").rglob("*"))
    for name in ("page-000777.json", ".page-000778.json", f"~${ledger.name[2:]}", f".{ledger.name}"):
        assert name in done.stderr, name  # skipped by name, in the run's log

    # the township replaces its broken ledger: training loads (the lock file and links still
    # there, skipped), and its figures equal the clean run's; the bomb is still refused
    sparse.unlink()
    again = fazhi("run", "--home", str(home), env=api_env, memory_cap_bytes=MEMORY_CAP)
    assert again.returncode == 0, again.stderr[-3000:]
    assert bomb.name in _refused_files(home)
    assert _figures(published, TRAINING_FED) == _figures(clean, TRAINING_FED)
    manifests = [json.loads(p.read_text()) for p in (home / "landing" / "training").glob("*/manifest.json")]
    skipped = {e["name"] for m in manifests for e in m.get("skipped_entries", [])}
    assert {f"~${ledger.name[2:]}", f".{ledger.name}", f"{mini.B}_2022_学法培训台账.xlsx"} <= skipped


def _refused_files(home: Path) -> dict[str, str]:
    """Files refused as a whole and still open, as `fazhi quarantine` lists them: name -> message."""
    done = fazhi("quarantine", "--home", str(home), "--format", "json", env=dict(os.environ))
    assert done.returncode == 0, done.stderr
    return {
        r["source_file"].split("#")[0]: r["message_en"] for r in json.loads(done.stdout) if r["table_name"] == "(file)"
    }


def test_the_demo_runs_in_a_home_whose_path_holds_quotes_semicolons_and_chinese(tmp_path, api_env):
    """Paths reach SQL as bound parameters or quoted literals: an apostrophe in the home once failed
    every source, and a crafted home ran its own COPY."""
    home = tmp_path / "永安 o'brien; 数据" / "x'); copy (select 42) to 'pwned.csv' (format csv); --"
    done = fazhi("demo", "--home", str(home), env=api_env, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    published = home / "published" / "fazhi.duckdb"
    loaded = query(published, "select distinct source from audit.batch where status = 'loaded' order by 1")
    assert loaded == [("enforcement",), ("mediation",), ("returns",), ("training",)]
    gongchuan = "select indicator_code, value from mart.indicator_value where year = 2023 and township_code = ? "
    figures = dict(query(published, gongchuan + "and indicator_code in ('ENF01', 'MED01', 'TRN02')", ["350481101"]))
    assert figures == {"ENF01": 52, "MED01": 320, "TRN02": 68}  # the seed report's
    parquet = home / "published" / "parquet" / "mart.indicator_value.parquet"
    assert query(published, "select count(*) from read_parquet(?)", [str(parquet)]) == query(
        published, "select count(*) from mart.indicator_value"
    )
    assert "贡川镇" in done.stdout
    assert not list(tmp_path.rglob("pwned*")) and not (Path.cwd() / "pwned.csv").exists()


def test_a_run_with_another_pseudonymisation_key_stops_naming_the_procedure(tmp_path, api_env, mini_run):
    """A new FAZHI_HMAC_KEY once took 贡川镇 ENF09 from 0.912 to 0.0 with exit 0."""
    home = tmp_path / "home"
    shutil.copytree(mini_run.settings.home, home, symlinks=True)
    before = _figures(home / "published" / "fazhi.duckdb", "")
    other = api_env | {"FAZHI_HMAC_KEY": "another-key-also-not-secret-0123456789"}
    done = fazhi("run", "--home", str(home), env=other)
    assert done.returncode == 2, done.stderr[-3000:]
    assert "the pseudonymisation key differs from the one this warehouse was built with" in done.stderr
    assert "'Changing the pseudonymisation key'" in done.stderr and other["FAZHI_HMAC_KEY"] not in done.stderr
    assert _figures(home / "published" / "fazhi.duckdb", "") == before
