"""The installed `fazhi` console script as a user runs it, in real subprocesses: every fault
profile of `fazhi simulate` pulled by `fazhi run`, the README's `fazhi demo --faults flaky`, a
pipe closed by `head`, SIGTERM during a run. No signal ends a command without a word, and
Prefect's temporary server never outlives the command that started it."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import make_mini_home, query
from tests.fixtures import mini
from tests.processes import free_port, stop

FAZHI = str(Path(sys.executable).with_name("fazhi"))
TOKEN = "tok-cli-processes-never-log-me"
MART = "select * from mart.indicator_value order by all"
SLOW_SECONDS = 6.0  # `fazhi simulate`'s slow response, longer than the client's read timeout


@pytest.fixture(scope="module")
def api_env(prefect_harness) -> dict:
    from prefect.settings import PREFECT_API_URL

    return dict(os.environ) | {
        "PREFECT_API_URL": PREFECT_API_URL.value(),
        "FAZHI_ENFORCEMENT_TOKEN": TOKEN,
        "FAZHI_MEDIATION_TOKEN": TOKEN,
    }


@pytest.fixture(scope="module")
def mini_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("mini-data") / "data"
    root.mkdir()
    mini.build(root)
    return root


def http_home(root: Path, url: str) -> Path:
    """The mini county with enforcement and mediation pulled over HTTP from `url`."""
    home = make_mini_home(root)
    fast = "page_size = 2\nread_timeout = 0.5\nconnect_timeout = 0.5\nbackoff_base = 0.01\nmax_retry_seconds = 10\n"
    text = '[pipeline]\ntownships = "data/townships.csv"\nfirst_year = 2022\n\n'
    for source in ("enforcement", "mediation"):
        text += f'[sources.{source}]\nkind = "http"\nurl = "{url}"\n{fast}\n'
    (home / "fazhi.toml").write_text(text, encoding="utf-8")
    return home


def simulate(data: Path, faults: str) -> tuple[subprocess.Popen, str]:
    """`fazhi simulate` in its own process: (process, its URL once it listens)."""
    port = free_port()
    proc = subprocess.Popen(
        [FAZHI, "simulate", "--data", str(data), "--port", str(port), "--token", TOKEN, "--faults", faults],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    line = proc.stdout.readline()
    assert "simulator at" in line, (line, proc.stderr.read() if proc.poll() is not None else "")
    return proc, f"http://127.0.0.1:{port}/"


def fazhi(*args: str, env: dict, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([FAZHI, *args], env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def profiles(tmp_path_factory, mini_data, api_env) -> dict:
    """`fazhi run` against `fazhi simulate --faults <profile>`, for every profile: the run's
    result, and whether the simulator was still serving a slow response's time after the run."""
    from flows.sources.simulator import PROFILES

    out = {}
    for profile in PROFILES:
        proc, url = simulate(mini_data, profile)
        try:
            home = http_home(tmp_path_factory.mktemp(profile), url)
            done = fazhi("run", "--home", str(home), env=api_env)
            # a response cut short by the client's timeout is written SLOW_SECONDS later
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=SLOW_SECONDS + 1)
            alive = proc.poll() is None
        finally:
            stop(proc)
        out[profile] = (home, done, alive, proc.returncode, proc.stderr.read())
    return out


def test_every_fault_profile_ends_with_a_result_and_a_message(profiles):
    for profile, (_, done, alive, code, sim_err) in profiles.items():
        assert alive, f"fazhi simulate --faults {profile} died ({code}) while serving: {sim_err[-2000:]}"
        assert "Traceback" not in done.stderr, (profile, done.stderr[-3000:])
        assert done.returncode in (0, 1), (profile, done.returncode, done.stderr[-3000:])
    assert [profiles[p][1].returncode for p in ("none", "flaky", "truncated", "drift")] == [0, 0, 1, 1]
    for profile in ("none", "flaky"):
        assert "enforcement: 接收 12 行" in profiles[profile][1].stdout, profiles[profile][1].stdout
    none_home, flaky_home = profiles["none"][0], profiles["flaky"][0]
    published = "published/fazhi.duckdb"
    assert query(flaky_home / published, MART) == query(none_home / published, MART)
    truncated = profiles["truncated"][1].stderr
    assert "运行失败 / run failed" in truncated and "enforcement: 数据异常 / bad data (page-json)" in truncated
    assert "mediation: 数据异常 / bad data (page-json)" in truncated and "page 2" in truncated
    drift = profiles["drift"][1].stderr
    assert "enforcement: 整批停止 / stopped batch (rule schema-drift)" in drift and "行为类型" in drift
    assert "mediation: 整批停止 / stopped batch" in drift and "调解结果" in drift
    for profile, (_, done, *_rest) in profiles.items():
        assert TOKEN not in done.stdout + done.stderr, profile


def _prefect_servers(prefect_home: Path) -> list[int]:
    """Processes serving a Prefect API from this Prefect home (the temporary server included)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if b"prefect.server" in cmdline and f"PREFECT_HOME={prefect_home}".encode() in environ.split(b"\0"):
            pids.append(int(entry.name))
    return pids


def _own_server_env(tmp_path: Path) -> dict:
    """No PREFECT_API_URL: the command starts Prefect's temporary server, as for a first-time user."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    return env | {"PREFECT_HOME": str(tmp_path / "prefect")}


def test_demo_with_flaky_sources_completes_and_leaves_no_server(tmp_path):
    env = _own_server_env(tmp_path)
    done = fazhi("demo", "--faults", "flaky", "--home", str(tmp_path / "demo"), env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "faults: flaky" in done.stdout and "分析库 / analyst database" in done.stdout
    assert "贡川镇" in done.stdout
    assert _prefect_servers(tmp_path / "prefect") == []

    # a reader that stops after one line ends the command quietly (141, as a tool killed by SIGPIPE)
    indicators = f"{FAZHI} indicators --year 2023 --format json --home {tmp_path / 'demo'}"
    piped = subprocess.run(
        ["bash", "-c", f"set -o pipefail; {indicators} | head -1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert piped.stdout == "[\n" and piped.stderr == "" and piped.returncode == 141
    whole = subprocess.run(["bash", "-c", indicators], env=env, capture_output=True, text=True, timeout=120)
    # more than a pipe holds: the writer did meet the closed pipe
    assert len(json.loads(whole.stdout)) > 500 and len(whole.stdout) > 2**16


def test_sigterm_during_a_run_says_so_and_stops_the_temporary_server(tmp_path):
    home = make_mini_home(tmp_path / "home")
    env = _own_server_env(tmp_path) | {"FAZHI_HMAC_KEY": "test-key-not-secret"}
    proc = subprocess.Popen(
        [FAZHI, "run", "--home", str(home)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 240
        while not _prefect_servers(tmp_path / "prefect") and time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read()[-3000:]
            time.sleep(0.2)
        assert _prefect_servers(tmp_path / "prefect"), "the temporary server never started"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err[-3000:]
    assert "stopped by SIGTERM" in err and "Traceback" not in err
    deadline = time.monotonic() + 10  # the server is told to stop and given 5 s before a kill
    while _prefect_servers(tmp_path / "prefect") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _prefect_servers(tmp_path / "prefect") == []
