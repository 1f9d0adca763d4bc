"""The nightly flow with `[orchestration] task_runner = "dask"`: the mini county's sources landed,
parsed and validated on a local Dask cluster of two worker processes publish exactly what the
default thread runner publishes. Also how a home's fazhi.toml chooses the runner."""

from __future__ import annotations

import json
import multiprocessing
import os

import pytest

from tests.conftest import make_mini_home, query
from tests.fixtures import mini

pytestmark = pytest.mark.prefect

VALUES = "select * from mart.indicator_value order by all"
QUARANTINE = (
    "select source, table_name, row_number, township_code, business_key, rules, message_en "
    "from audit.quarantine order by all"
)
DASK = '[orchestration]\ntask_runner = "dask"\ndask_workers = 2\n'


def _settings(tmp_path, orchestration: str):
    from warehouse.config import load_settings

    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    (home / "fazhi.toml").write_text(f"{orchestration}\n[sources]\n", encoding="utf-8")
    return load_settings(home)


def test_fazhi_toml_chooses_the_task_runner(tmp_path):
    from flows.orchestration import describe_task_runner, task_runner_choice
    from warehouse.config import ConfigError

    assert task_runner_choice(_settings(tmp_path, "")) == {"kind": "threads"}
    assert task_runner_choice(_settings(tmp_path, '[orchestration]\ntask_runner = "dask"')) == {
        "kind": "dask",
        "workers": 2,
    }
    choice = task_runner_choice(_settings(tmp_path, DASK.replace("2", "3")))
    assert describe_task_runner(choice) == "dask (local cluster, 3 worker processes)"
    remote = '[orchestration]\ntask_runner = "dask"\ndask_address = "tcp://127.0.0.1:8786"'
    assert task_runner_choice(_settings(tmp_path, remote)) == {"kind": "dask", "address": "tcp://127.0.0.1:8786"}
    for bad in (
        '[orchestration]\ntask_runner = "processes"',
        '[orchestration]\ntask_runner = "dask"\ndask_workers = 0',
        '[orchestration]\ntask_runner = "dask"\ndask_address = "127.0.0.1:8786"',
        '[orchestration]\ntask_runner = "dask"\ndask_address = "tcp://h:1"\ndask_workers = 2',
    ):
        with pytest.raises(ConfigError, match="orchestration"):
            task_runner_choice(_settings(tmp_path, bad))


def test_dask_runner_publishes_the_same_indicators_and_quarantine_as_threads(prefect_harness, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterId,
        FlowRunFilterParentFlowRunId,
    )

    from flows.nightly import nightly

    threads = make_mini_home(tmp_path / "threads")
    dask = make_mini_home(tmp_path / "dask")
    with (dask / "fazhi.toml").open("a", encoding="utf-8") as fh:
        fh.write("\n" + DASK)

    by_threads = nightly(home=str(threads))
    state = nightly(home=str(dask), return_state=True)
    assert state.is_completed(), state.message
    by_dask = state.result()

    published = {h: h / "published" / "fazhi.duckdb" for h in (threads, dask)}
    values = query(published[dask], VALUES)
    assert values == query(published[threads], VALUES)
    assert len(values) > 100
    enf01 = (
        "select value from mart.indicator_value where year = 2023 and township_code = ? and indicator_code = 'ENF01'"
    )
    assert query(published[dask], enf01, [mini.A]) == [(mini.EXPECTED[(2023, mini.A, "ENF01")][0],)]
    quarantined = query(published[dask], QUARANTINE)
    assert quarantined == query(published[threads], QUARANTINE)
    assert {r[0] for r in quarantined} == {"enforcement", "mediation", "training"}
    counts = {s: (i["received_rows"], i["loaded_rows"], i["quarantined_rows"]) for s, i in by_dask["sources"].items()}
    assert counts == {
        s: (i["received_rows"], i["loaded_rows"], i["quarantined_rows"]) for s, i in by_threads["sources"].items()
    }

    # the dask run landed and validated its sources in the subflow `nightly-sources` on the cluster
    (manifest,) = (dask / "runs").glob("*/manifest.json")
    assert json.loads(manifest.read_text(encoding="utf-8"))["steps"]["task_runner"] == (
        "dask (local cluster, 2 worker processes)"
    )
    with get_client(sync_client=True) as client:
        children = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["nightly-sources"])),
            flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[state.state_details.flow_run_id])
            ),
        )
        assert [c.state_type.value for c in children] == ["COMPLETED"]
        task_runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[children[0].id])))
    names = sorted(t.name.rsplit("-", 1)[0] for t in task_runs)
    assert names == ["land_source"] * 4 + ["parse_and_validate"] * 4
    assert {t.state_type.value for t in task_runs} == {"COMPLETED"}


def _get(url: str) -> tuple[int, str]:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""


def _listening(pid: int) -> set[tuple[str, int]]:
    import psutil

    return {(c.laddr.ip, c.laddr.port) for c in psutil.Process(pid).net_connections("inet") if c.status == "LISTEN"}


def test_the_local_cluster_is_processes_on_loopback_with_the_quiet_environment(monkeypatch):
    """What the runner starts for `dask_workers = 2`: two worker processes of one thread each,
    every listening socket on loopback, no dashboard, the quiet environment inside the workers
    (given to them explicitly: here this process does not have it)."""
    from flows.orchestration import dask_task_runner
    from warehouse.env import QUIET

    for key in QUIET:
        monkeypatch.delenv(key, raising=False)
    with dask_task_runner({"kind": "dask", "workers": 2}) as runner:
        client = runner.client
        info = client.scheduler_info()
        env = client.run(lambda: {k: os.environ.get(k) for k in QUIET})
        daemons = client.run(lambda: multiprocessing.current_process().daemon)
        pids = list(client.run(os.getpid).values())
        sockets = [_listening(pid) for pid in pids]
        # the scheduler and the nannies run in this process, the workers in their own
        ports = {
            int(a.rsplit(":", 1)[1]) for a in [info["address"], *(w["nanny"] for w in info["workers"].values())]
        } | set(info["services"].values())
        here = {s for s in _listening(os.getpid()) if s[1] in ports}
        http = f"http://127.0.0.1:{info['services']['dashboard']}"
        health, status = _get(f"{http}/health"), _get(f"{http}/status")
    assert len(info["workers"]) == 2 and {w["nthreads"] for w in info["workers"].values()} == {1}
    assert len(set(pids)) == 2 and os.getpid() not in pids  # worker processes
    assert set(daemons.values()) == {False}  # so that a task may start processes ([performance] workers)
    assert all(s and {ip for ip, _ in s} == {"127.0.0.1"} for s in sockets), sockets
    assert len(here) == len(ports) == 4 and {ip for ip, _ in here} == {"127.0.0.1"}, here
    assert 8787 not in ports and health == (200, "ok") and status[0] == 404  # no dashboard
    assert env and all(
        v["DO_NOT_TRACK"] == "1" and v["GX_ANALYTICS_ENABLED"] == v["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"
        for v in env.values()
    )
