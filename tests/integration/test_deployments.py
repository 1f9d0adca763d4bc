"""End to end on a real Prefect server and process worker, as in production (docs/operations.md):
`prefect server start` on a loopback port with a temporary home, the work pool, `prefect deploy
--all` from the repository root, `prefect worker start`; then `prefect deployment run` of the
nightly (published indicators checked), and of the year-end rebuild for 2023 together with a
second nightly (a new edition; the two never write at the same time). Everything it starts,
it stops."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import make_mini_home, query
from tests.fixtures import mini

REPO = Path(__file__).resolve().parents[2]
PREFECT = [sys.executable, "-m", "prefect"]
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


def stop(proc: subprocess.Popen) -> None:
    """Terminate the process group (the worker's flow-run subprocesses included)."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    except ProcessLookupError:
        pass


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
            "PREFECT_LOGGING_LEVEL": "INFO",
            "FAZHI_HOME": str(self.home),
            "FAZHI_HMAC_KEY": "test-key-not-secret",
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
                if get_json(f"{self.api}/health") is True:
                    return
            except OSError:
                pass
            time.sleep(0.5)
        raise AssertionError("prefect server did not become healthy")

    def run_deployment(self, name: str, *params: str) -> str:
        args = ["deployment", "run", name]
        for p in params:
            args += ["-p", p]
        out = self.cli(*args)
        return UUID.findall(out)[-1]

    def wait_final(self, flow_run_id: str, timeout: float = 240) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = get_json(f"{self.api}/flow_runs/{flow_run_id}")
            if run["state_type"] in FINAL:
                return run
            time.sleep(1)
        raise AssertionError(f"flow run {flow_run_id} not finished: {run['state_type']} {run['state_name']}")

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            stop(proc)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    s = Stack(tmp_path_factory.mktemp("e2e"))
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
    deployments = {d["name"]: d for d in json.loads(_post(f"{stack.api}/deployments/filter", {}))}
    assert set(deployments) == {"nightly", "year-end-rebuild"}
    nightly, rebuild = deployments["nightly"], deployments["year-end-rebuild"]
    assert nightly["schedules"][0]["schedule"]["cron"] == "0 2 * * *"
    assert nightly["schedules"][0]["schedule"]["timezone"] == "Asia/Shanghai"
    assert rebuild["schedules"][0]["schedule"]["cron"].endswith(" 1 *")  # January
    assert nightly["work_pool_name"] == rebuild["work_pool_name"] == "fazhi-process"
    assert nightly["global_concurrency_limit"]["limit"] == rebuild["global_concurrency_limit"]["limit"] == 1
    assert nightly["pull_steps"][0]["prefect.deployments.steps.set_working_directory"]["directory"] == str(REPO)
    limit = get_json(f"{stack.api}/v2/concurrency_limits/fazhi-warehouse-writer")
    assert limit["limit"] == 1 and limit["active"]


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


def _post(url: str, body: dict) -> bytes:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as r:
        return r.read()
