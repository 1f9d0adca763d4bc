"""End to end on a real Prefect server and process worker, as in production (docs/operations.md):
`prefect server start` on a loopback port with a temporary home, the work pool, `prefect deploy
--all` from the repository root, `prefect worker start`; then `prefect deployment run` of the
nightly (published indicators checked), and of the year-end rebuild for 2023 together with a
second nightly (a new edition; the two never write at the same time); then a province: two
county homes, a deployment each, a second worker on the same pool, both counties run together
(each holding its own writer limit) and rolled up. Everything it starts, it stops."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import make_mini_home, query
from tests.fixtures import mini
from tests.processes import api_json, free_port, stop, webhook_receiver
from warehouse.province import roll_up

REPO = Path(__file__).resolve().parents[2]
PREFECT = [sys.executable, "-m", "prefect"]
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


class Stack:
    def __init__(self, root: Path):
        self.root = root
        self.port = free_port()
        self.api = f"http://127.0.0.1:{self.port}/api"
        self.home = make_mini_home(root / "fazhi")
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        env |= {
            "PREFECT_HOME": str(root / "prefect"),
            "PREFECT_API_URL": self.api,
            "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{root / 'prefect' / 'prefect.db'}",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_UI_ENABLED": "false",
            "DO_NOT_TRACK": "1",
            "PREFECT_WORKER_QUERY_SECONDS": "2",
            "PREFECT_WORKER_PREFETCH_SECONDS": "2",
            # a run waiting for a writer slot asks again within 3 s (default: up to 30 s)
            "PREFECT_SERVER_CONCURRENCY_MAXIMUM_CONCURRENCY_SLOT_WAIT_SECONDS": "3",
            "PREFECT_LOGGING_LEVEL": "INFO",
            "FAZHI_HOME": str(self.home),
            "FAZHI_HMAC_KEY": "test-key-not-secret-0123456789abcdef",
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        self.env = env
        self.procs: list[subprocess.Popen] = []

    def start(self, args: list[str], log: str) -> subprocess.Popen:
        out = open(self.root / log, "w")  # noqa: SIM115 (closed with the process)
        proc = subprocess.Popen(
            args, env=self.env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.procs.append(proc)
        return proc

    def cli(self, *args: str, timeout: float = 120) -> str:
        done = subprocess.run(
            [*PREFECT, *args], env=self.env, cwd=REPO, capture_output=True, text=True, timeout=timeout
        )
        assert done.returncode == 0, f"prefect {' '.join(args)}:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        return done.stdout + done.stderr

    def wait_healthy(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.procs[0].poll() is None, (self.root / "server.log").read_text()[-3000:]
            try:
                if api_json(f"{self.api}/health") is True:
                    return
            except OSError:
                pass
            time.sleep(0.5)
        raise AssertionError("prefect server did not become healthy")

    def run_deployment(self, name: str, *params: str, env: dict | None = None) -> str:
        """Run a deployment with parameters `key=value`; `env`: extra environment of that run."""
        args = ["deployment", "run", name]
        for p in params:
            args += ["-p", p]
        if env:
            args += ["--job-variable", f"env={json.dumps(env)}"]
        out = self.cli(*args)
        return UUID.findall(out)[-1]

    def wait_final(self, flow_run_id: str, timeout: float = 240) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = api_json(f"{self.api}/flow_runs/{flow_run_id}")
            if run["state_type"] in FINAL:
                return run
            time.sleep(1)
        raise AssertionError(f"flow run {flow_run_id} not finished: {run['state_type']} {run['state_name']}")

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            stop(proc)


@pytest.fixture(scope="module")
def alerts():
    """The robot webhook the deployments alert (a loopback receiver): the bodies it received."""
    with webhook_receiver() as (url, received):
        yield url, received


@pytest.fixture(scope="module")
def stack(tmp_path_factory, alerts):
    s = Stack(tmp_path_factory.mktemp("e2e"))
    s.env["FAZHI_ALERT_WEBHOOK_URL"] = alerts[0]  # read by `prefect deploy` (and the worker's runs)
    try:
        s.start([*PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(s.port)], "server.log")
        s.wait_healthy()
        s.cli("work-pool", "create", "fazhi-process", "--type", "process")
        s.cli("--no-prompt", "deploy", "--all", timeout=180)
        s.start([*PREFECT, "worker", "start", "--pool", "fazhi-process", "--type", "process"], "worker.log")
        yield s
    finally:
        s.stop_all()
        if os.environ.get("FAZHI_KEEP_E2E_LOGS"):
            shutil.copytree(s.root, os.environ["FAZHI_KEEP_E2E_LOGS"], dirs_exist_ok=True)


def test_deploy_all_creates_both_deployments_schedules_and_the_writer_limit(stack):
    deployments = {d["name"]: d for d in api_json(f"{stack.api}/deployments/filter", {})}
    assert set(deployments) == {"nightly", "year-end-rebuild"}
    nightly, rebuild = deployments["nightly"], deployments["year-end-rebuild"]
    assert nightly["schedules"][0]["schedule"]["cron"] == "0 2 * * *"
    assert nightly["schedules"][0]["schedule"]["timezone"] == "Asia/Shanghai"
    assert rebuild["schedules"][0]["schedule"]["cron"].endswith(" 1 *")  # January
    assert nightly["work_pool_name"] == rebuild["work_pool_name"] == "fazhi-process"
    assert nightly["global_concurrency_limit"]["limit"] == rebuild["global_concurrency_limit"]["limit"] == 1
    assert nightly["pull_steps"][0]["prefect.deployments.steps.set_working_directory"]["directory"] == str(REPO)
    limit = api_json(f"{stack.api}/v2/concurrency_limits/fazhi-warehouse-writer")
    assert limit["limit"] == 1 and limit["active"]
    (automation,) = api_json(
        f"{stack.api}/automations/filter", {"automations": {"name": {"any_": ["fazhi-run-alert"]}}}
    )
    assert automation["enabled"] and set(automation["trigger"]["expect"]) == {
        "prefect.flow-run.Failed",
        "prefect.flow-run.Crashed",
    }


def test_nightly_then_rebuild_with_a_concurrent_nightly(stack):
    run = stack.wait_final(stack.run_deployment("nightly/nightly"))
    assert run["state_type"] == "COMPLETED", (stack.root / "worker.log").read_text()[-4000:]
    published = stack.home / "published" / "fazhi.duckdb"
    enf01 = (
        "select value from mart.indicator_value where year = 2023 and township_code = ? and indicator_code = 'ENF01'"
    )
    assert query(published, enf01, [mini.A]) == [(3.0,)]

    # a rebuild and a nightly started together: both complete, one after the other
    rebuild_id = stack.run_deployment("year-end-rebuild/year-end-rebuild", "year=2023")
    nightly_id = stack.run_deployment("nightly/nightly")
    rebuild, nightly = stack.wait_final(rebuild_id), stack.wait_final(nightly_id)
    assert rebuild["state_type"] == nightly["state_type"] == "COMPLETED", (stack.root / "worker.log").read_text()[
        -4000:
    ]
    assert rebuild["parameters"]["year"] == 2023
    assert query(published, "select year, edition from mart.indicator_edition") == [(2023, 1)]
    runs = query(stack.home / "work.duckdb", "select started_at, finished_at from audit.run order by started_at")
    assert len(runs) == 3
    for (_, finished), (started, _) in zip(runs, runs[1:], strict=False):
        assert finished <= started, f"writes overlapped: {runs}"
    log = (stack.root / "worker.log").read_text()
    assert "holding the writer slot" in log
    assert "telemetry" not in log.lower() and "sens-o-matic" not in log


def recode(home: Path, county: str) -> Path:
    """The mini county moved to another county code: townships county+101 and county+102 (same
    records, same names), so that two homes are two different counties."""
    codes = {mini.A: county + mini.A[6:], mini.B: county + mini.B[6:]}
    for path in sorted((home / "data").rglob("*")):
        if path.is_file() and path.suffix in (".json", ".csv"):
            encoding = "gb18030" if path.parent.name == "returns" else "utf-8"
            text = path.read_text(encoding=encoding)
            for old, new in codes.items():
                text = text.replace(old, new)
            if path.name == "townships.csv":
                text = text.replace(f",{mini.COUNTY},永安市", f",{county},沙县区")
            path.write_text(text, encoding=encoding)
        for old, new in codes.items():
            if path.name.startswith(old):
                path.rename(path.with_name(new + path.name[len(old) :]))
    return home


PROVINCE_YAML = """\
# per-county deployments of a province (docs/operations.md, "A province")
name: fazhi-province
prefect-version: 3.9.1
build:
  - flows.orchestration.prepare_deployment:
      id: fazhi
push: null
pull:
  - prefect.deployments.steps.set_working_directory:
      directory: "{{{{ fazhi.directory }}}}"
deployments:
{deployments}"""
COUNTY_DEPLOYMENT = """\
  - name: nightly-{county}
    entrypoint: flows/nightly.py:nightly
    parameters:
      home: {home}
    work_pool:
      name: fazhi-province
      work_queue_name: default
    concurrency_limit:
      limit: 1
      collision_strategy: ENQUEUE
"""


def _logs(stack: Stack, flow_run_id: str) -> str:
    body = {"logs": {"flow_run_id": {"any_": [flow_run_id]}}, "sort": "TIMESTAMP_ASC"}
    return "\n".join(r["message"] for r in api_json(f"{stack.api}/logs/filter", body))


def _wait_for(condition, what: str, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(1)


def test_a_province_two_counties_on_two_workers_each_with_its_own_writer_limit(stack):
    """One home and one deployment per county on one pool served by two workers (one run at a
    time each, so the two counties run on different workers). Each home names its own writer
    limit (created by its first run): while county 350481's is held (as by its own rebuild),
    county 350427 takes its own; released, both complete. Then the province roll-up over both
    counties' Parquet partitions."""
    counties = {"350481": stack.root / "county-350481", "350427": stack.root / "county-350427"}
    make_mini_home(counties["350481"])
    recode(make_mini_home(counties["350427"]), "350427")
    for county, home in counties.items():
        with (home / "fazhi.toml").open("a", encoding="utf-8") as fh:
            fh.write(f'\n[orchestration]\nconcurrency_limit = "fazhi-warehouse-writer-{county}"\n')
    province = stack.root / "province.yaml"
    deployments = "".join(COUNTY_DEPLOYMENT.format(county=c, home=h) for c, h in counties.items())
    province.write_text(PROVINCE_YAML.format(deployments=deployments), encoding="utf-8")
    stack.cli("work-pool", "create", "fazhi-province", "--type", "process")
    for n in (1, 2):  # one flow run at a time each, so that two runs at once need both workers
        worker = [*PREFECT, "worker", "start", "--pool", "fazhi-province", "--type", "process"]
        stack.start([*worker, "--limit", "1", "--name", f"province-worker-{n}"], f"province-worker-{n}.log")
    stack.cli("--no-prompt", "deploy", "--all", "--prefect-file", str(province), timeout=180)
    pool_workers = f"{stack.api}/work_pools/fazhi-province/workers/filter"
    _wait_for(lambda: len(api_json(pool_workers, {})) == 2, "two workers on the pool")

    # county 350481's writer is busy (its limit exists with its one slot taken)
    held = "fazhi-warehouse-writer-350481"
    api_json(f"{stack.api}/v2/concurrency_limits/", {"name": held, "limit": 1, "active_slots": 1})
    first = stack.run_deployment("nightly/nightly-350481")
    second = stack.run_deployment("nightly/nightly-350427")
    _wait_for(lambda: f"waiting for the writer slot '{held}'" in _logs(stack, first), "350481 waiting for its slot")
    own = "fazhi-warehouse-writer-350427"
    _wait_for(lambda: f"holding the writer slot '{own}'" in _logs(stack, second), "350427 holding its own slot")
    # 350427 got its writer while 350481's was taken: the limits are per home
    assert f"holding the writer slot '{held}'" not in _logs(stack, first)
    assert api_json(f"{stack.api}/flow_runs/{first}")["state_type"] == "RUNNING"
    created = api_json(f"{stack.api}/v2/concurrency_limits/{own}")
    assert created["limit"] == 1 and created["active"]

    api_json(f"{stack.api}/v2/concurrency_limits/{held}", {"active_slots": 0}, method="PATCH")  # its holder is done
    for run in (first, second):
        done = stack.wait_final(run)
        assert done["state_type"] == "COMPLETED", _logs(stack, run)[-3000:]
    assert f"holding the writer slot '{held}'" in _logs(stack, first)
    logs = {n: (stack.root / f"province-worker-{n}.log").read_text() for n in (1, 2)}
    ran = {n: [run for run in (first, second) if f"/runs/flow-run/{run}" in log] for n, log in logs.items()}
    assert sorted(map(len, ran.values())) == [1, 1], f"each worker runs one county: {ran}"

    enf01 = "select township_code, value from mart.indicator_value where year = 2023 and indicator_code = 'ENF01'"
    for county, home in counties.items():
        published = home / "published" / "fazhi.duckdb"
        assert sorted(query(published, enf01)) == [(county, 4.0), (county + "101", 3.0), (county + "102", 1.0)]
        assert query(home / "work.duckdb", "select outcome from audit.run") == [("completed",)]

    region = stack.root / "province.duckdb"
    roll_up([home / "published" for home in counties.values()], region, "350000")  # as `fazhi rollup`
    region_enf01 = (
        "select area_code, value from mart.region_indicator_value where year = 2023 and indicator_code = 'ENF01' "
        "and area_level in ('region', 'county') order by area_code"
    )
    assert query(region, region_enf01) == [("350000", 8.0), ("350427", 4.0), ("350481", 4.0)]


# --- alerts from the server (last: the killed run's writer slot is only freed when its lease ends)


def _alerts_after(received: list, count: int, timeout: float = 120) -> list[str]:
    """The alert contents once `count` have arrived, and a few seconds more for any extra."""
    _wait_for(lambda: len(received) >= count, f"{count} alert(s)", timeout)
    time.sleep(5)
    return [r["text"]["content"] for r in received]


def test_a_failed_deployment_run_alerts_once_from_the_server_naming_deployment_and_cause(stack, alerts):
    _, received = alerts
    before = len(received)
    run_id = stack.run_deployment("nightly/nightly", env={"FAZHI_HMAC_KEY": ""})  # no pseudonymisation key
    run = stack.wait_final(run_id)
    assert run["state_type"] == "FAILED"
    contents = _alerts_after(received, before + 1)[before:]
    assert len(contents) == 1, contents  # the server's, and none from the flow itself
    (content,) = contents
    assert "nightly 运行失败 / run failed" in content and "部署 / deployment: nightly" in content
    assert run_id in content and "配置错误 / config (ConfigError)" in content
    assert re.search(r"运行 / run run-\d{8}T\d{6}-\d{6} ", content), content  # the run id survived the filter
    assert "the Prefect server's automation 'fazhi-run-alert' alerts for this run" in _logs(stack, run_id)


def _flow_run_process(flow_run_id: str) -> int | None:
    """The pid of the process a worker started for this flow run."""
    marker = f"PREFECT__FLOW_RUN_ID={flow_run_id}".encode()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "environ").read_bytes().split(b"\0"):
                    return int(entry.name)
            except OSError:
                continue
    return None


def test_a_run_killed_with_kill_9_alerts_exactly_once(stack, alerts):
    _, received = alerts
    before = len(received)
    good, _ = mini.enforcement_records()  # something new to load: the run has work to be killed in
    mini.write_pages(
        stack.root / "new", "enforcement", [dict(good[0], 行为编号="E-KILL", 更新时间="2024-03-02 00:00:00")], 10
    )
    shutil.move(stack.root / "new" / "page-000001.json", stack.home / "data" / "enforcement" / "page-000097.json")
    run_id = stack.run_deployment("nightly/nightly")
    _wait_for(lambda: api_json(f"{stack.api}/flow_runs/{run_id}")["state_type"] == "RUNNING", "the run to start")
    pid = _flow_run_process(run_id)
    assert pid, "the flow run's process"
    os.kill(pid, signal.SIGKILL)
    run = stack.wait_final(run_id)
    assert run["state_type"] == "CRASHED", run["state"]
    contents = _alerts_after(received, before + 1)[before:]
    assert len(contents) == 1, contents
    (content,) = contents
    assert "nightly 运行中断 / run crashed" in content and "部署 / deployment: nightly" in content
    assert run_id in content and "进程被终止 / crashed" in content and "-9" in content
