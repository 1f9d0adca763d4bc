"""Write-audit-publish under failure: kill -9 at every step, a second writer, a reader.

The runs are real `fazhi` subprocesses talking to the session's Prefect test server. After a kill
at any step and a normal run, the analyst database, its Parquet copy and the editions equal an
uninterrupted run's (warehouse/pipeline.py CRASH_POINTS)."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import duckdb
import pytest

from tests.conftest import make_mini_home, query
from tests.fixtures import mini
from tests.processes import fazhi

CORE_COUNTS = (
    "select (select count(*) from core.enforcement_act where valid_to is null),"
    " (select count(*) from core.mediation_case where valid_to is null),"
    " (select count(*) from core.training_attendance where valid_to is null),"
    " (select count(*) from core.annual_return_item where valid_to is null)"
)
# a run's steps in order: each crashed run is rerun by the next, killed one step later; the
# rerun reaching its step (-9) shows it redid what the kill before left undone
LOAD_POINTS = ("land:done", "parse:validated", "load:table_merged", "load:committed", "compute:done", "publish:built")
PUBLISH_POINTS = ("publish:built", "publish:swapped", "parquet:table_written", "parquet:switched")
# a rebuild killed after its edition: reruns of the rebuild and nightly runs alike publish that edition
REBUILD_POINTS = (
    ("rebuild", "rebuild:built"),
    ("rebuild", "rebuild:edition_committed"),
    ("run", "publish:swapped"),  # nothing new arrived, yet the night publishes the edition
    ("rebuild", "parquet:table_written"),
    ("run", "parquet:switched"),
)


@pytest.fixture(scope="module")
def api_env(prefect_harness):
    from prefect.settings import PREFECT_API_URL

    env = dict(os.environ)
    env["PREFECT_API_URL"] = PREFECT_API_URL.value()
    return env


def fazhi_run(home: Path, env: dict, **extra) -> subprocess.CompletedProcess:
    return fazhi("run", "--home", str(home), env=env | extra)


def fazhi_rebuild(home: Path, env: dict, **extra) -> subprocess.CompletedProcess:
    return fazhi("rebuild", "--year", "2023", "--home", str(home), env=env | extra)


def copy_home(home: Path, to: Path) -> Path:
    shutil.copytree(home, to, symlinks=True)
    return to


def add_late_act(home: Path) -> None:
    """A page with one more act of 贡川镇 in 2023 (ENF01 3 -> 4)."""
    good, _ = mini.enforcement_records()
    extra = [dict(good[0], 行为编号="E-NEW", 更新时间="2024-03-01 00:00:00")]
    mini.write_pages(home / "data" / "enforcement" / "extra", "enforcement", extra, page_size=10)
    shutil.move(home / "data/enforcement/extra/page-000001.json", home / "data/enforcement/page-000099.json")


def published_state(home: Path) -> dict[str, list[tuple]]:
    """Every published table as the analyst database holds it, checked equal to its Parquet copy
    (one publication), without what differs between runs: times, batch and run ids."""
    from warehouse.publish import published_tables

    con = duckdb.connect(str(home / "published" / "fazhi.duckdb"), read_only=True)
    state = {}
    try:
        for table in published_tables():
            columns = ", ".join(
                f'"{name}"'
                for name, kind, *_ in con.execute(f"describe {table}").fetchall()
                if not kind.startswith("TIMESTAMP") and "batch_id" not in name and name != "run_id"
            )
            rows = con.execute(f"select {columns} from {table} order by all").fetchall()
            parquet = home / "published" / "parquet" / f"{table}.parquet"
            assert con.execute(f"select {columns} from read_parquet(?) order by all", [str(parquet)]).fetchall() == rows
            state[table] = rows
    finally:
        con.close()
    return state


@pytest.fixture(scope="module")
def clean(tmp_path_factory, api_env):
    """Uninterrupted runs: a nightly; on copies of its home, the year-end rebuild of 2023, and
    the next night with a late act."""
    home = make_mini_home(tmp_path_factory.mktemp("clean") / "home")
    done = fazhi_run(home, api_env)
    assert done.returncode == 0, done.stderr[-2000:]
    rebuilt = copy_home(home, home.with_name("rebuilt"))
    done = fazhi_rebuild(rebuilt, api_env)
    assert done.returncode == 0, done.stderr[-2000:]
    later = copy_home(home, home.with_name("later"))
    add_late_act(later)
    done = fazhi_run(later, api_env)
    assert done.returncode == 0, done.stderr[-2000:]
    state = {"nightly": published_state(home), "rebuild": published_state(rebuilt), "later": published_state(later)}
    assert len(state["nightly"]["mart.indicator_value"]) > 100 and not state["nightly"]["mart.indicator_edition"]
    assert len(state["rebuild"]["mart.indicator_edition"]) == 1
    assert state["later"]["mart.indicator_value"] != state["nightly"]["mart.indicator_value"]
    return state | {"home": home, "core": query(home / "work.duckdb", CORE_COUNTS)}


def test_kill_9_at_every_load_step_then_a_rerun_gives_the_uninterrupted_result(tmp_path, api_env, clean):
    home = make_mini_home(tmp_path / "home")
    for point in LOAD_POINTS:
        crashed = fazhi_run(home, api_env, FAZHI_CRASH_AT=point)
        assert crashed.returncode == -9, (point, crashed.stderr[-2000:])
        assert not (home / "published" / "fazhi.duckdb").exists(), point  # nothing half-published
    recovered = fazhi_run(home, api_env)
    assert recovered.returncode == 0, recovered.stderr[-2000:]
    assert published_state(home) == clean["nightly"]
    assert query(home / "work.duckdb", CORE_COUNTS) == clean["core"]
    assert not list((home / "published").glob(".*building*"))
    assert len(list((home / "published").glob("parquet-*"))) <= 2  # the current folder and the one before


def test_kill_9_at_every_rebuild_step_publishes_one_edition(tmp_path, api_env, clean):
    home = copy_home(clean["home"], tmp_path / "home")
    for command, point in REBUILD_POINTS:
        run = fazhi_rebuild if command == "rebuild" else fazhi_run
        crashed = run(home, api_env, FAZHI_CRASH_AT=point)
        assert crashed.returncode == -9, (command, point, crashed.stderr[-2000:])
        if point == "rebuild:edition_committed":
            assert published_state(home) == clean["nightly"]  # recorded, not yet published
    recovered = fazhi_rebuild(home, api_env)
    assert recovered.returncode == 0, recovered.stderr[-2000:]
    assert "2023 edition 1" in recovered.stdout  # the edition recorded before the kills, published once
    assert query(home / "work.duckdb", "select year, edition from mart.indicator_edition") == [(2023, 1)]
    assert published_state(home) == clean["rebuild"]


def test_second_writer_waits_then_gives_up_naming_the_holder(tmp_path, api_env):
    """`fazhi run` and `fazhi rebuild` alike exit 3 when another writer holds the database."""
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
        refused_rebuild = fazhi_rebuild(home, api_env)
    for done in (refused, refused_rebuild):
        assert done.returncode == 3, done.stderr[-2000:]
        assert "run-holding-the-lock" in done.stderr and "another run holds the working database" in done.stderr
        assert "Traceback" not in done.stderr
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
