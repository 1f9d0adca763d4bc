"""The installed `fazhi` console script as a user runs it, in real subprocesses: `fazhi simulate`
through every fault profile, `fazhi run` against failing sources, the README's
`fazhi demo --faults flaky`, a pipe closed by `head`, SIGTERM during a run. No signal ends a
command without a word, and Prefect's temporary server never outlives the command that started it."""

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
from tests.processes import free_port, prefect_servers, stop

FAZHI = str(Path(sys.executable).with_name("fazhi"))
TOKEN = "tok-cli-processes-never-log-me"
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


def http_home(root: Path, urls: dict[str, str]) -> Path:
    """The mini county with enforcement and mediation pulled over HTTP, each from its URL."""
    home = make_mini_home(root)
    fast = "page_size = 2\nread_timeout = 0.5\nconnect_timeout = 0.5\nbackoff_base = 0.01\nmax_retry_seconds = 10\n"
    text = '[pipeline]\ntownships = "data/townships.csv"\nfirst_year = 2022\n\n'
    for source, url in urls.items():
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


@pytest.mark.parametrize("profile", ["none", "flaky", "truncated", "drift"])
def test_fazhi_simulate_serves_every_fault_profile_until_it_is_stopped(mini_data, profile):
    """Pulled with a read timeout shorter than the simulator's slow response, `fazhi simulate`
    meets clients that hung up (it used to die of SIGPIPE, silently, at the first one)."""
    from warehouse.config import HttpOptions
    from warehouse.demo.simulator import PROFILES
    from warehouse.sources.http import HttpPuller
    from warehouse.sources.mapping import SourceError

    assert profile in PROFILES
    proc, url = simulate(mini_data, profile)
    try:
        options = HttpOptions(url=url, token_env="-", page_size=2, read_timeout=0.5, backoff_base=0.01)
        for source in ("enforcement", "mediation"):
            with contextlib.suppress(SourceError):  # truncated: every page after the first is cut
                list(HttpPuller(source, options, TOKEN).pages(None))
        # a response cut short by the client's timeout is written SLOW_SECONDS later
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=SLOW_SECONDS + 1 if profile == "flaky" else 0.5)
        assert proc.poll() is None, f"fazhi simulate --faults {profile} died ({proc.returncode}): {proc.stderr.read()}"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        stop(proc)
    assert proc.returncode == 128 + signal.SIGTERM and "stopped by SIGTERM" in err and "Traceback" not in err


def test_a_run_whose_sources_fail_says_which_and_why(tmp_path, mini_data, api_env):
    """`fazhi run` pulling enforcement from a truncating source and mediation from a drifting one:
    exit 1, each source named with its cause class and its own message, no traceback."""
    truncating, truncated_url = simulate(mini_data, "truncated")
    drifting, drift_url = simulate(mini_data, "drift")
    try:
        home = http_home(tmp_path / "home", {"enforcement": truncated_url, "mediation": drift_url})
        done = fazhi("run", "--home", str(home), env=api_env)
    finally:
        stop(truncating)
        stop(drifting)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-3000:]
    err = done.stderr
    assert "运行失败 / run failed: 运行 / run run-" in err and "数据源失败 / sources failed" in err
    assert "数据源 enforcement: 数据异常 / bad data (page-json)" in err and "page 2" in err
    assert "数据源 mediation: 整批停止 / stopped batch (rule schema-drift)" in err and "调解结果" in err
    assert TOKEN not in done.stdout + err


def _own_server_env(tmp_path: Path) -> dict:
    """No PREFECT_API_URL, Prefect asked for (FAZHI_PREFECT=1): the command starts Prefect's
    temporary server."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    return env | {"PREFECT_HOME": str(tmp_path / "prefect"), "FAZHI_PREFECT": "1"}


def test_demo_with_flaky_sources_completes_and_a_closed_pipe_ends_quietly(tmp_path, api_env):
    """The README's `fazhi demo --faults flaky` (it used to die with exit 141 and no message at the
    first read timeout: the simulator in the same process wrote to a socket the client had left)."""
    env = api_env
    done = fazhi("demo", "--faults", "flaky", "--home", str(tmp_path / "demo"), env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "faults: flaky" in done.stdout and "分析库 / analyst database" in done.stdout
    assert "贡川镇" in done.stdout and "Traceback" not in done.stderr

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
    env = _own_server_env(tmp_path) | {"FAZHI_HMAC_KEY": "test-key-not-secret-" + "0" * 16}
    proc = subprocess.Popen(
        [FAZHI, "run", "--home", str(home)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 240
        while not prefect_servers(tmp_path / "prefect") and time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read()[-3000:]
            time.sleep(0.2)
        assert prefect_servers(tmp_path / "prefect"), "the temporary server never started"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err[-3000:]
    assert "stopped by SIGTERM" in err and "Traceback" not in err
    deadline = time.monotonic() + 10  # the server is told to stop and given 5 s before a kill
    while prefect_servers(tmp_path / "prefect") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert prefect_servers(tmp_path / "prefect") == []


def test_a_run_out_of_memory_under_its_cap_says_so(tmp_path):
    """DuckDB out of memory under the cap (FAZHI_DUCKDB_MEMORY_LIMIT, far too small here): exit 1,
    the cause class `memory` that docs/operations.md explains (the variable to raise), no traceback;
    for the warehouse and for the sources' pages alike, and nothing is lost for the next run."""
    home = make_mini_home(tmp_path / "home")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env |= {"PREFECT_HOME": str(tmp_path / "prefect"), "FAZHI_PREFECT": "0", "FAZHI_DUCKDB_MEMORY_LIMIT": "2MB"}
    done = fazhi("run", "--home", str(home), env=env)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert "内存不足 / memory (OutOfMemoryException)" in done.stderr, done.stderr[-3000:]
    assert "DuckDB's memory cap is too small (FAZHI_DUCKDB_MEMORY_LIMIT=2MB;" in done.stderr
    # enough for the warehouse, too little to read the export pages (DuckDB's JSON buffers): the
    # page sources fail for memory, not as pages that are "not valid JSON" (a stopped batch that
    # sent the operator to the source system); the next run, with the default caps, loads them
    env["FAZHI_DUCKDB_MEMORY_LIMIT"] = "16MB"
    pages = fazhi("run", "--home", str(home), env=env)
    assert pages.returncode == 1 and "Traceback" not in pages.stderr, pages.stderr[-3000:]
    for source in ("enforcement", "mediation"):
        assert f"数据源 {source}: 内存不足 / memory (OutOfMemoryException)" in pages.stderr, pages.stderr[-3000:]
    assert "not valid JSON" not in pages.stderr
    del env["FAZHI_DUCKDB_MEMORY_LIMIT"]
    assert fazhi("run", "--home", str(home), env=env).returncode == 0
    loaded = query(home / "work.duckdb", "select distinct source from audit.batch where status = 'loaded'")
    assert {"enforcement", "mediation"} <= {s for (s,) in loaded}
