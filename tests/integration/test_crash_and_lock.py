"""Write-audit-publish under failure: kill -9 at several points, a second writer, a reader.

The runs are real `fazhi run` subprocesses talking to the session's Prefect test server."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import pytest

from tests.conftest import make_mini_home, query
from tests.fixtures import mini

MART = "select * from mart.indicator_value order by all"
CORE_COUNTS = (
    "select (select count(*) from core.enforcement_act where valid_to is null),"
    " (select count(*) from core.mediation_case where valid_to is null),"
    " (select count(*) from core.training_attendance where valid_to is null),"
    " (select count(*) from core.annual_return_item where valid_to is null)"
)


@pytest.fixture(scope="module")
def api_env(prefect_harness):
    from prefect.settings import PREFECT_API_URL

    env = dict(os.environ)
    env["PREFECT_API_URL"] = PREFECT_API_URL.value()
    return env


def fazhi_run(home: Path, env: dict, **extra) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "flows.cli", "run", "--home", str(home)],
        env=env | extra,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def baseline(tmp_path_factory, api_env):
    home = make_mini_home(tmp_path_factory.mktemp("baseline"))
    done = fazhi_run(home, api_env)
    assert done.returncode == 0, done.stderr[-2000:]
    return query(home / "published" / "fazhi.duckdb", MART), query(home / "work.duckdb", CORE_COUNTS)


@pytest.mark.parametrize("point", ["land:done", "load:table_merged", "publish:built"])
def test_kill_9_then_normal_run_gives_the_uninterrupted_result(tmp_path, api_env, baseline, point):
    home = make_mini_home(tmp_path / "home")
    crashed = fazhi_run(home, api_env, FAZHI_CRASH_AT=point)
    assert crashed.returncode == -9
    assert not (home / "published" / "fazhi.duckdb").exists()  # nothing half-published
    recovered = fazhi_run(home, api_env)
    assert recovered.returncode == 0, recovered.stderr[-2000:]
    assert query(home / "published" / "fazhi.duckdb", MART) == baseline[0]
    assert query(home / "work.duckdb", CORE_COUNTS) == baseline[1]
    assert not list((home / "published").glob(".*building*"))


def test_kill_9_during_publish_keeps_the_last_published_database(tmp_path, api_env, baseline):
    home = make_mini_home(tmp_path / "home")
    assert fazhi_run(home, api_env).returncode == 0
    good, _ = mini.enforcement_records()
    extra = [dict(good[0], 行为编号="E-NEW", 更新时间="2024-03-01 00:00:00")]
    mini.write_pages(home / "data" / "enforcement" / "extra", "enforcement", extra, page_size=10)
    shutil.move(home / "data/enforcement/extra/page-000001.json", home / "data/enforcement/page-000099.json")
    crashed = fazhi_run(home, api_env, FAZHI_CRASH_AT="publish:built")
    assert crashed.returncode == -9
    assert query(home / "published" / "fazhi.duckdb", MART) == baseline[0]  # intact and openable
    assert fazhi_run(home, api_env).returncode == 0
    enf01 = query(
        home / "published" / "fazhi.duckdb",
        "select value from mart.indicator_value where year = 2023 and township_code = ? and indicator_code = 'ENF01'",
        [mini.A],
    )
    assert enf01 == [(4.0,)]


def test_second_writer_waits_then_gives_up_naming_the_holder(tmp_path, api_env):
    from warehouse.lock import writer_lock

    home = make_mini_home(tmp_path / "home")
    text = (
        (home / "fazhi.toml")
        .read_text(encoding="utf-8")
        .replace("first_year = 2022", "first_year = 2022\nlock_wait_seconds = 2")
    )
    (home / "fazhi.toml").write_text(text, encoding="utf-8")
    with writer_lock(home, "run-holding-the-lock"):
        refused = fazhi_run(home, api_env)
    assert refused.returncode == 3
    assert "run-holding-the-lock" in refused.stderr and "another run holds the working database" in refused.stderr
    assert not (home / "work.duckdb").exists() or query(home / "work.duckdb", "select count(*) from audit.batch") == [
        (0,)
    ]

    # a writer that finishes within the wait lets the second run through
    text = text.replace("lock_wait_seconds = 2", "lock_wait_seconds = 120")
    (home / "fazhi.toml").write_text(text, encoding="utf-8")
    released = threading.Event()

    def hold():
        with writer_lock(home, "short-run"):
            time.sleep(3)
        released.set()

    t = threading.Thread(target=hold)
    t.start()
    time.sleep(0.5)
    waited = fazhi_run(home, api_env)
    t.join()
    assert released.is_set() and waited.returncode == 0, waited.stderr[-2000:]


def test_an_open_analyst_connection_does_not_break_the_run(tmp_path, api_env):
    home = make_mini_home(tmp_path / "home")
    assert fazhi_run(home, api_env).returncode == 0
    analyst = duckdb.connect(str(home / "published" / "fazhi.duckdb"), read_only=True)
    before = analyst.execute("select count(*) from core.enforcement_act").fetchone()
    good, _ = mini.enforcement_records()
    mini.write_pages(
        home / "data" / "enforcement" / "x",
        "enforcement",
        [dict(good[0], 行为编号="E-NEW2", 更新时间="2024-03-01 00:00:00")],
        page_size=10,
    )
    shutil.move(home / "data/enforcement/x/page-000001.json", home / "data/enforcement/page-000098.json")
    done = fazhi_run(home, api_env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert analyst.execute("select count(*) from core.enforcement_act").fetchone() == before  # old snapshot
    analyst.close()
    assert (
        query(home / "published" / "fazhi.duckdb", "select count(*) from core.enforcement_act")[0][0] == before[0] + 1
    )
