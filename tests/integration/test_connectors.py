"""The HTTP connectors against the simulator on loopback, one test per fault profile, plus
incremental pulls with late corrections, a kill between landing and loading, and the token.

The pipeline steps run without Prefect (as tests/conftest.py `run_steps`, but one failing source
does not stop the others, as in flows/nightly.py). Client delays are tiny so the set stays fast.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.conftest import make_mini_home, query
from tests.fixtures import mini
from warehouse.config import HttpOptions, load_settings
from warehouse.demo.simulator import Simulator
from warehouse.sources.http import HttpPuller
from warehouse.sources.mapping import SourceError

TOKEN = "tok-9f3c1e77b2d54a08-never-log-me"
MART = "select * from mart.indicator_value order by all"
CORE_COUNTS = (
    "select (select count(*) from core.enforcement_act where valid_to is null),"
    " (select count(*) from core.mediation_case where valid_to is null)"
)
RAW_COUNTS = "select (select count(*) from raw.enforcement_act), (select count(*) from raw.mediation_case)"
FAST = {"page_size": 2, "read_timeout": 0.4, "connect_timeout": 0.5, "backoff_base": 0.01, "max_retry_seconds": 10}


def http_home(root: Path, url: str, sources=("enforcement", "mediation"), **opts) -> Path:
    """The mini county with enforcement and mediation pulled over HTTP from `url` (training and
    returns, when asked for, as folder drops)."""
    home = make_mini_home(root)
    options = FAST | opts
    blocks = ["[pipeline]", 'townships = "data/townships.csv"', "first_year = 2022", ""]
    for s in sources:
        blocks.append(f"[sources.{s}]")
        if s in ("enforcement", "mediation"):
            blocks += ['kind = "http"', f'url = "{url}"'] + [f"{k} = {v}" for k, v in options.items()]
        else:
            blocks += ['kind = "spreadsheet_drop"', f'path = "data/{s}"']
        blocks.append("")
    (home / "fazhi.toml").write_text("\n".join(blocks), encoding="utf-8")
    return home


@pytest.fixture(autouse=True)
def _token_env(monkeypatch):
    monkeypatch.setenv("FAZHI_ENFORCEMENT_TOKEN", TOKEN)
    monkeypatch.setenv("FAZHI_MEDIATION_TOKEN", TOKEN)


def run_all(home: Path, publish: bool = True) -> dict:
    """Every step; a failing source is recorded and the others go on (as the nightly flow).
    Without `publish`, only land, parse, validate and load."""
    from warehouse import pipeline

    settings = load_settings(home)
    pipeline.prepare_warehouse(settings)
    result = {}
    for name, source in settings.sources.items():
        try:
            batch = pipeline.land_source(settings, source)
            if batch is None:
                result[name] = "unchanged"
                continue
            prepared = pipeline.parse_and_validate(settings, batch)
            result[name] = pipeline.load_prepared(settings, prepared, "run-test")
        except Exception as exc:  # noqa: BLE001  the source failed; the others go on
            result[name] = exc
    if publish:
        pipeline.compute(settings)
        pipeline.audit_and_publish(settings)
    return result


def _sim(faults="none", *, data: Path, **kw) -> Simulator:
    """A simulator whose slow response (1 s) outlasts the tests' read timeout (0.4 s)."""
    os.environ["FAZHI_ENFORCEMENT_TOKEN"] = os.environ["FAZHI_MEDIATION_TOKEN"] = TOKEN
    return Simulator(data, token=TOKEN, faults=faults, slow_seconds=1.0, retry_after=0.2, **kw)


def _manifests(home: Path, source: str) -> list[dict]:
    return [
        json.loads(p.read_text(encoding="utf-8")) for p in sorted((home / "landing" / source).glob("*/manifest.json"))
    ]


@pytest.fixture(scope="module")
def mini_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("mini-data")
    (root / "data").mkdir()
    mini.build(root / "data")
    return root / "data"


@pytest.fixture(scope="module")
def baseline(tmp_path_factory, mini_data):
    """The mini county pulled with no faults."""
    with _sim(data=mini_data) as sim:
        os.environ["FAZHI_ENFORCEMENT_TOKEN"] = os.environ["FAZHI_MEDIATION_TOKEN"] = TOKEN
        home = http_home(tmp_path_factory.mktemp("none"), sim.url)
        result = run_all(home)
    assert {type(v).__name__ for v in result.values()} == {"LoadOutcome"}, result
    return home, query(home / "published" / "fazhi.duckdb", MART), query(home / "work.duckdb", CORE_COUNTS)


@pytest.fixture(scope="module")
def flaky_run(tmp_path_factory, mini_data):
    """The same pull with the flaky profile; every log record of the run is kept (DEBUG and up)."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record)

    handler, root = Keep(level=logging.DEBUG), logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        with _sim("flaky", data=mini_data) as sim:
            home = http_home(tmp_path_factory.mktemp("flaky"), sim.url)
            result = run_all(home)
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    return home, result, records


def test_none_pull_gives_the_hand_worked_figures(baseline):
    home, mart, _ = baseline
    got = {
        (r[0], r[1], r[2]): r[3]
        for r in query(
            home / "published" / "fazhi.duckdb",
            "select year, township_code, indicator_code, value from mart.indicator_value",
        )
    }
    for key, (value, _, _) in mini.EXPECTED.items():
        if key[2][:3] not in ("ENF", "MED") or key[2] == "ENF09":
            continue  # training and returns (ENF09 needs the roster's certificates) are not loaded here
        assert got[key] == pytest.approx(value) if value is not None else got[key] is None, key
    enf = _manifests(home, "enforcement")[0]
    assert enf["extract_kind"] == "full" and enf["records_received"] == 12 and enf["duplicates"] == 0
    assert enf["request"]["params"] == {"page_size": 2} and "modified_since" not in enf["request"]["params"]
    assert [p["sha256"] for p in enf["pages"]] == [f["sha256"] for f in enf["files"]]
    wm = query(home / "work.duckdb", "select source, modified_at, len(ids) from audit.watermark order by 1")
    # the ids loaded (not the 3 + 2 quarantined) at the newest 更新时间
    assert wm == [("enforcement", "2024-01-05 10:00:00", 9), ("mediation", "2024-01-05 10:00:00", 7)]


def test_flaky_source_ends_identical_to_a_clean_one(baseline, flaky_run):
    _, mart, counts = baseline
    home, result, _ = flaky_run
    assert {type(v).__name__ for v in result.values()} == {"LoadOutcome"}, result
    assert query(home / "published" / "fazhi.duckdb", MART) == mart
    assert query(home / "work.duckdb", CORE_COUNTS) == counts
    assert query(home / "work.duckdb", RAW_COUNTS) == [(12, 9)]  # de-duplicated: each record once
    reasons = set()
    duplicates = 0
    for source in ("enforcement", "mediation"):
        for m in _manifests(home, source):
            reasons |= {r["reason"].split(" (")[0] for r in m["retries"]}
            duplicates += m["duplicates"]
            assert m["records_distinct"] == m["total_records_reported"]
            assert all(not r.get("gave_up") for r in m["retries"])
    assert {"HTTP 429", "HTTP 500", "HTTP 502", "HTTP 503", "ConnectionError", "ReadTimeout", "invalid JSON"} <= reasons
    assert duplicates >= 1  # a page served twice, landed as received, counted once


def test_retry_after_is_honoured(flaky_run):
    home, *_ = flaky_run
    waits = [r for m in _manifests(home, "enforcement") for r in m["retries"] if r["reason"] == "HTTP 429"]
    assert waits and all(r["wait_s"] >= 0.2 for r in waits)  # the simulator's Retry-After, not the 0.01 s backoff


def test_shifting_page_boundaries_break_offset_paging_not_the_cursor(mini_data):
    good, faulty = mini.enforcement_records()
    truth = sorted(r["行为编号"] for r in good + faulty)
    with _sim("flaky", data=mini_data) as sim:
        url, auth = sim.url + "enforcement/records", {"Authorization": f"Bearer {TOKEN}"}
        naive, page = [], 1
        with requests.Session() as s:
            while page <= 12:
                try:  # a naive client that at least retries whatever fails
                    r = s.get(url, params={"page": page, "page_size": 3}, headers=auth, timeout=0.4)
                    r.raise_for_status()
                    naive += [x["行为编号"] for x in r.json()["records"]]
                except (requests.RequestException, ValueError):
                    continue
                page += 1
        opts = HttpOptions(url=sim.url, token_env="X", page_size=3, read_timeout=0.4, backoff_base=0.01)
        puller = HttpPuller("enforcement", opts, TOKEN)
        keyset = [x["行为编号"] for _, _, _, doc in puller.pages(None) for x in doc["records"]]
    assert sorted(naive) != truth  # skipped or repeated records
    assert sorted(set(keyset)) == truth


def test_truncated_page_stops_that_source_naming_it(tmp_path, mini_data):
    with _sim("truncated", data=mini_data) as sim:
        home = http_home(tmp_path / "home", sim.url, sources=("enforcement", "returns"))
        result = run_all(home, publish=False)
    err = result["enforcement"]
    assert isinstance(err, SourceError) and err.rule == "page-json"
    assert "enforcement" in str(err) and "page 2" in str(err) and "第2页" in str(err)
    assert TOKEN not in str(err)
    assert result["returns"].status == "loaded"  # the other source goes on
    assert not list((home / "landing" / "enforcement").glob("*"))  # nothing half-landed
    assert query(home / "work.duckdb", "select count(*) from audit.watermark") == [(0,)]


def test_drift_stops_the_drifting_sources_and_names_the_field(tmp_path, mini_data):
    with _sim("drift", data=mini_data) as sim:
        home = http_home(tmp_path / "home", sim.url, sources=("enforcement", "mediation", "returns"))
        result = run_all(home, publish=False)
    assert result["enforcement"].status == "stopped" and result["mediation"].status == "stopped"
    assert result["returns"].status == "loaded"
    messages = dict(query(home / "work.duckdb", "select source, message_zh || message_en from audit.batch"))
    assert "行为类型" in messages["enforcement"] and "调解结果" in messages["mediation"]
    assert query(home / "work.duckdb", "select count(*) from audit.watermark") == [(0,)]  # pulled again next time


def test_field_override_in_fazhi_toml_absorbs_a_rename(tmp_path, mini_data):
    with _sim("drift", data=mini_data) as sim:
        home = http_home(tmp_path / "home", sim.url, sources=("enforcement",))
        cfg = home / "fazhi.toml"
        cfg.write_text(cfg.read_text(encoding="utf-8") + '[sources.enforcement.fields]\nact_type = "行为种类"\n')
        result = run_all(home, publish=False)
    assert result["enforcement"].status == "loaded" and result["enforcement"].loaded_rows == 9
    assert _manifests(home, "enforcement")[0]["fields"] == {"act_type": "行为种类"}


def test_late_corrections_arrive_in_the_next_incremental_pull(tmp_path, mini_data):
    with _sim(data=mini_data, seed=7) as sim:
        home = http_home(tmp_path / "home", sim.url)
        first = run_all(home, publish=False)
        assert run_all(home, publish=False) == {"enforcement": "unchanged", "mediation": "unchanged"}
        sim.advance()
        later = run_all(home, publish=False)
        assert run_all(home, publish=False) == {"enforcement": "unchanged", "mediation": "unchanged"}
    assert first["enforcement"].received_rows == 12
    assert later["enforcement"].received_rows == 3 and later["mediation"].received_rows == 3
    work = home / "work.duckdb"
    kinds = query(work, "select source, extract_kind from audit.batch order by loaded_at")
    assert kinds == [
        ("enforcement", "full"),
        ("mediation", "full"),
        ("enforcement", "incremental"),
        ("mediation", "incremental"),
    ]
    m = _manifests(home, "enforcement")[-1]
    assert m["request"]["params"]["modified_since"] == "2024-01-05 10:00:00"
    # at the old watermark: 6 loaded acts not corrected, and X1-X3 (quarantined): none of them new
    assert m["already_loaded_records"] == 6 and m["already_quarantined_records"] == 3
    # the corrected records: the old version closed, the voided one current
    voided = query(
        work,
        "select act_id, count(*), count(*) filter (where valid_to is null and is_voided) from core.enforcement_act "
        "where act_id in (select act_id from core.enforcement_act where valid_to is not null) group by 1",
    )
    loaded_corrections = later["enforcement"].loaded_rows
    assert len(voided) == loaded_corrections and all(n == 2 and cur == 1 for _, n, cur in voided)
    wm = query(work, "select modified_at from audit.watermark where source = 'enforcement'")[0][0]
    newest = query(work, "select max(source_modified_at) from raw.enforcement_act")[0][0]
    assert wm > "2024-01-05 10:00:00" and wm == newest


def test_kill_after_landing_loses_nothing_and_duplicates_nothing(tmp_path, mini_data, baseline):
    _, mart, counts = baseline
    with _sim(data=mini_data) as sim:
        home = http_home(tmp_path / "home", sim.url)
        code = "from tests.conftest import run_steps; import sys; run_steps(__import__('pathlib').Path(sys.argv[1]))"
        env = dict(os.environ, FAZHI_CRASH_AT="land:done", PYTHONPATH=str(Path(__file__).parents[2]))
        crashed = subprocess.run([sys.executable, "-c", code, str(home)], env=env, capture_output=True, timeout=120)
        assert crashed.returncode == -9, crashed.stderr[-2000:]
        landed = list((home / "landing" / "enforcement").glob("enforcement-*"))
        assert len(landed) == 1  # landed, then killed before the load
        assert query(home / "work.duckdb", "select count(*) from audit.watermark") == [(0,)]
        result = run_all(home)
    assert {type(v).__name__ for v in result.values()} == {"LoadOutcome"}
    assert query(home / "published" / "fazhi.duckdb", MART) == mart
    assert query(home / "work.duckdb", CORE_COUNTS) == counts
    assert query(home / "work.duckdb", RAW_COUNTS) == [(12, 9)]
    assert len(list((home / "landing" / "enforcement").glob("enforcement-*"))) == 2  # pulled again


def test_the_token_appears_in_no_log_manifest_or_landing_file(flaky_run, tmp_path, mini_data):
    home, _, records = flaky_run
    assert records  # the run did log (retries at WARNING, urllib3 at DEBUG)
    for r in records:
        assert TOKEN not in r.getMessage(), r.name
    leaks = [p for p in home.rglob("*") if p.is_file() and TOKEN.encode() in p.read_bytes()]
    assert leaks == []
    assert len(list(home.rglob("manifest.json"))) >= 2  # the landing manifests were among the files scanned
    # and not in the errors either: a wrong token is refused with a message without it
    with _sim(data=mini_data) as sim:
        opts = HttpOptions(url=sim.url, token_env="X", page_size=2, backoff_base=0.01)
        with pytest.raises(SourceError) as err:
            next(HttpPuller("enforcement", opts, TOKEN + "-wrong").pages(None))
    assert err.value.rule == "http-auth" and TOKEN not in str(err.value)
