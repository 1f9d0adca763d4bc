"""Time the nightly flow as operators run it: under a Prefect server, through `fazhi run`.

    python -m benchmarks.flow_run [--json OUT] [--profile OUT.html] [--keep]

Starts `prefect server start` on a free loopback port with a temporary Prefect home (or uses
PREFECT_API_URL when it is set), makes a county home from the cached sample county
(benchmarks/.cache/county-<seed>, generated once as `python -m benchmarks` does) with folder
sources, runs `fazhi run` once (full), applies one day of changes (benchmarks/__main__.py
`one_day_of_changes`) and runs it again. Prints, for the incremental run, its duration as the
server records it (the flow run's start_time to end_time) and the wall time of `fazhi run` as a
subprocess (interpreter start and imports included); then the wall time of `fazhi indicators
--township <code> --year 2023` (5 runs, median). Measured and printed, never asserted.

--profile OUT runs the incremental `fazhi run` under a sampling profiler (not project
dependencies): py-spy (default; every thread, so the task runner's threads too, waiting
included) writes collapsed stacks (OUT, one line per stack with its sample count: `py-spy record
--format raw`) and prints the functions on the most samples; `--profiler pyinstrument` writes pyinstrument's HTML report
(the main thread only).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from tests.processes import api_json, free_port, stop
from warehouse.env import quiet_environment, quiet_values

quiet_environment()

REPO = Path(__file__).resolve().parent.parent
CACHE = Path(__file__).parent / ".cache"
SEED = 20231226
INDICATOR_RUNS = 5


def start_server(root: Path, env: dict) -> tuple[str, subprocess.Popen]:
    """`prefect server start` on a free loopback port, its database in `root`; waits for health."""
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    server_env = env | {
        "PREFECT_HOME": str(root / "prefect"),
        "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{root / 'prefect' / 'prefect.db'}",
        "PREFECT_UI_ENABLED": "false",
    }
    log = open(root / "server.log", "w")  # noqa: SIM115 (closed with the process)
    proc = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=server_env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"prefect server exited: see {root / 'server.log'}")
        try:
            if api_json(f"{api}/health") is True:
                return api, proc
        except OSError:
            pass
        time.sleep(0.5)
    stop(proc)
    raise SystemExit("prefect server did not become healthy in 180 s")


def county_sample() -> Path:
    sample = CACHE / f"county-{SEED}"
    if not (sample / "targets.json").exists():
        from warehouse.demo.sample.generate import generate_sample

        CACHE.mkdir(exist_ok=True)
        generate_sample(sample, seed=SEED, years=(2022, 2023, 2024))
    return sample


def timed_run(cmd: list[str], env: dict) -> float:
    t = time.perf_counter()
    done = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True)
    seconds = time.perf_counter() - t
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return seconds


def last_flow_run(api: str) -> dict:
    """The latest nightly flow run on the server, with its duration from start_time to end_time."""
    (run,) = api_json(
        f"{api}/flow_runs/filter",
        {"flows": {"name": {"any_": ["nightly"]}}, "sort": "START_TIME_DESC", "limit": 1},
    )
    start, end = datetime.fromisoformat(run["start_time"]), datetime.fromisoformat(run["end_time"])
    return {
        "id": run["id"],
        "state": run["state_type"],
        "start": start,
        "seconds": (end - start).total_seconds(),
        "total_run_time": run["total_run_time"],
    }


def _frame(frame: str) -> str:
    """'func (path/to/file.py:123)' -> 'func (to/file.py)': one entry per function."""
    name, _, where = frame.rpartition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    return f"{name} ({'/'.join(path.split('/')[-2:])})"


def print_hot_functions(collapsed: Path, top: int = 30) -> None:
    """From py-spy's collapsed stacks (sampled with --idle, so waiting counts): per thread, the
    functions on the most samples, inclusive (a function counts once per sample it is anywhere
    on the stack). The main thread's samples are the run's wall time."""
    per_thread: dict[str, dict[str, int]] = {}
    totals: dict[str, int] = {}
    for line in collapsed.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        thread = "main thread" if "MainThread" in frames[0] else "other threads"
        totals[thread] = totals.get(thread, 0) + int(count)
        seen = per_thread.setdefault(thread, {})
        for frame in dict.fromkeys(_frame(f) for f in frames[1:]):
            seen[frame] = seen.get(frame, 0) + int(count)
    for thread in sorted(per_thread):
        total = totals[thread]
        print(f"profile, {thread}: {total} samples (with waiting); functions by inclusive share")
        for frame, n in sorted(per_thread[thread].items(), key=lambda kv: -kv[1])[
            : top if thread == "main thread" else 12
        ]:
            print(f"  {n / total:6.1%}  {frame}")


def task_timeline(api: str, flow_run: dict) -> list[tuple[str, float, float]]:
    """The flow run's task runs as the server records them: (name, start in seconds after the
    flow run's start, duration), in order of start. The gaps are Prefect's own time."""
    runs = api_json(f"{api}/task_runs/filter", {"flow_runs": {"id": {"any_": [flow_run["id"]]}}, "limit": 200})
    out = []
    for r in runs:
        if r["start_time"] and r["end_time"]:
            start, end = datetime.fromisoformat(r["start_time"]), datetime.fromisoformat(r["end_time"])
            out.append((r["name"], (start - flow_run["start"]).total_seconds(), (end - start).total_seconds()))
    return sorted(out, key=lambda t: t[1])


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.flow_run")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument("--profile", type=Path, help="profile the incremental `fazhi run`, written here")
    ap.add_argument("--profiler", choices=("py-spy", "pyinstrument"), default="py-spy")
    ap.add_argument("--keep", action="store_true", help="keep the temporary home and server logs")
    args = ap.parse_args()
    profiler = Path(sys.executable).parent / args.profiler
    if args.profile and not profiler.exists():
        raise SystemExit(f"--profile needs {args.profiler}: pip install {args.profiler}")

    from benchmarks import HMAC_KEY
    from benchmarks.__main__ import one_day_of_changes
    from warehouse.config import write_demo_config

    root = Path(tempfile.mkdtemp(prefix="fazhi-flow-run-"))
    env = dict(os.environ) | quiet_values() | {"FAZHI_HMAC_KEY": os.environ.get("FAZHI_HMAC_KEY", HMAC_KEY)}
    server = None
    try:
        if os.environ.get("PREFECT_API_URL"):
            api = os.environ["PREFECT_API_URL"].rstrip("/")
            where = "PREFECT_API_URL"
        else:
            t = time.perf_counter()
            api, server = start_server(root, env)
            where = f"started here in {time.perf_counter() - t:.1f} s"
        env["PREFECT_API_URL"] = api
        print(f"Prefect server {api} ({where})", flush=True)

        sample = county_sample()
        home = root / "home"
        shutil.copytree(sample, home / "sample")
        write_demo_config(home)  # folder sources (the demo's page folders), demo key
        with (home / "sample" / "townships.csv").open(encoding="utf-8") as fh:
            township = next(csv.DictReader(fh))["code"]
        script = Path(sys.executable).parent / "fazhi"  # the console script, as operators run it
        fazhi = [str(script)] if script.exists() else [sys.executable, "-m", "flows.cli"]

        full_wall = timed_run([*fazhi, "run", "--home", str(home)], env)
        full = last_flow_run(api)
        print(
            f"full run:        flow run {full['seconds']:.2f} s (server), `fazhi run` {full_wall:.2f} s wall",
            flush=True,
        )

        changed = one_day_of_changes(sample, home)
        run = [*fazhi, "run", "--home", str(home)]
        if args.profile and args.profiler == "py-spy":
            run = [str(profiler), "record", "--threads", "--idle", "--format", "raw", "--rate", "200"]
            run += ["--output", str(args.profile), "--", *fazhi, "run", "--home", str(home)]
        elif args.profile:
            run = [str(profiler), "-r", "html", "-o", str(args.profile), "-m", "flows.cli", "run", "--home", str(home)]
        incremental_wall = timed_run(run, env)
        incremental = last_flow_run(api)
        print(
            f"incremental run after one day ({changed:,} corrected enforcement records): "
            f"flow run {incremental['seconds']:.2f} s (server start_time to end_time), "
            f"`fazhi run` {incremental_wall:.2f} s wall (interpreter start and imports included)"
            + (f"; profiled: {args.profile}" if args.profile else ""),
            flush=True,
        )

        tasks = task_timeline(api, incremental)
        print("  its task runs (server; name: start after the flow run's start + duration):")
        for name, start, sec in tasks:
            print(f"    {name:<28}{start:6.2f} s + {sec:.2f} s")
        if args.profile and args.profiler == "py-spy":
            print_hot_functions(args.profile)

        indicators = [*fazhi, "indicators", "--home", str(home), "--township", township, "--year", "2023"]
        walls = [timed_run(indicators, env) for _ in range(INDICATOR_RUNS)]
        print(
            f"`fazhi indicators --township {township} --year 2023`: median {statistics.median(walls):.2f} s wall "
            f"of {INDICATOR_RUNS} (min {min(walls):.2f}, max {max(walls):.2f})"
        )
        print(f"({os.cpu_count()} CPUs; wall times depend on what else the machine is running)")
        if args.json:
            args.json.write_text(
                json.dumps(
                    {
                        "api": api,
                        "full": full | {"wall_s": full_wall},
                        "incremental": incremental
                        | {"wall_s": incremental_wall, "changed_records": changed, "tasks": tasks},
                        "indicators_wall_s": walls,
                        "indicators_median_s": statistics.median(walls),
                        "cpus": os.cpu_count(),
                    },
                    indent=2,
                    default=str,  # the runs' start times
                )
            )
    finally:
        if server is not None:
            stop(server)
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
