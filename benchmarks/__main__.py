"""Time each pipeline stage and compare it with the physical limit.

The limit (benchmarks/limit.py) is the fastest way DuckDB gets the same landed files into typed
columns in the same process: one column per field the pipeline keeps, typed as the parsed
tables type it, in a DuckDB database file. JSON pages: read_json_objects + from_json into typed
structs (the fastest of the alternatives timed, per source and run); workbooks: python-calamine
into Arrow columns, by the pipeline's own rule for worker processes. Every stage, the whole
pipeline and the parse of each source are reported as a ratio to it. The limit before issue 20
(the pages as one JSON column, not typed) is timed too and kept in the JSON output.

    python -m benchmarks [--scale county|province|province2x|national] [--rounds N] [--json OUT]
                         [--townships FILE] [--baseline RESULTS.json] [--incremental] [--no-as-run]

county: the sample county (15 townships, 2022-2024); province: 1,100 townships, 2023;
province2x: 2,200 townships, 2023 (memory flatness: compared with the last province results);
national: 38,000 townships, 2023. Samples are generated once and cached in benchmarks/.cache.

Each round lands the sample into a fresh home, measures the limit, then runs the pipeline's own
steps (warehouse/pipeline.py: prepare, land, parse + validate, load, compute, audit + publish; the
parse timed apart inside parse_and_validate). Rounds are interleaved (limit, pipeline, limit,
pipeline ...): seconds and ratios are medians over rounds, peak memory is the first round's (a
fresh process, as a run's), and the load average is recorded at the start of each round. Per
stage: wall time, CPU time and peak resident memory of the process and its worker processes
(memory sampled every 0.2 s, reset before each stage), records per second and the ratio to the
limit; the pipeline's CPU time against the limit's.
After each round's pipeline, the floor of its required work (benchmarks/floor.py: the landed
files copied, GX on one row of each table, the layers, marts and published tables written by
DuckDB alone) is timed in a process of its own, and each stage is printed against it.
Interpreter start, imports and Great Expectations' import and suites are reported apart. Then
(unless --no-as-run) the whole nightly run as `fazhi run` does it without a Prefect server, in a
fresh home: sources parsed and validated concurrently, each loaded as it is ready (wall time
and peak memory; the stages above are timed one after the other). Then the nightly incremental
run after one day of changes (county scale; `--incremental` at other scales, where it
recomputes and republishes the whole warehouse): its library steps in this process, and the same
night as `fazhi run` runs it, in a new process (interpreter, imports, Great Expectations).

Results go to benchmarks/.cache/results-<scale>.json (and --json OUT). With --baseline (by
default, province2x's baseline is the cached province results) peak memory is compared stage by
stage: the ratio this run / baseline, flat when within ±20 %.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

T0 = time.perf_counter()
from benchmarks import HMAC_KEY  # noqa: E402

os.environ.setdefault("FAZHI_HMAC_KEY", HMAC_KEY)
from warehouse.env import quiet_environment  # noqa: E402

quiet_environment()

CACHE = Path(__file__).parent / ".cache"
SCALES = {
    "county": (None, (2022, 2023, 2024)),
    "province": (1_100, (2023,)),
    "province2x": (2_200, (2023,)),
    "national": (38_000, (2023,)),
}
BASELINES = {"province2x": "province"}  # the scale a scale's peak memory is compared with by default
FLAT = 0.20  # peak memory is flat when the ratio to the baseline is within ±20 %
DEFAULT_SEED = 20231226
# Each round's home (and the as-run's) is removed when the benchmark ends, not when the round
# does: ext4 passes over the inodes freed in the last minutes when it allocates new ones
# (recently_deleted, kernel CPU for every file created), so removing a round's thousands of
# landed files made the next round's land 2-3x slower than a run's (docs/performance.md).
HOMES: list[Path] = []


class TreeMemory:
    """Peak resident memory of this process and its children (worker processes), sampled every
    0.2 s from /proc; `reset` starts a new peak. Also the CPU time of the same processes
    (`cpu_s`), the sampling's own left out."""

    def __init__(self):
        import threading

        self.peak_mb = 0.0
        self.sampling_cpu_s = 0.0  # the sampling thread's CPU time, not the pipeline's
        self._stop = threading.Event()
        threading.Thread(target=self._sample, daemon=True).start()

    def reset(self) -> None:
        self.peak_mb = self.current_mb()

    def peak(self) -> float:
        return max(self.peak_mb, self.current_mb())

    def current_mb(self) -> float:
        return sum(int(fields[21]) for fields in _process_tree().values()) * os.sysconf("SC_PAGE_SIZE") / 2**20

    def cpu_s(self) -> float:
        """CPU seconds used so far by this process and its children: a live process's own (user +
        system) and those of the children it has waited for, which covers worker processes that
        have exited (a pool's, once shut down) and those still running."""
        ticks = sum(sum(int(f) for f in fields[11:15]) for fields in _process_tree().values())
        return ticks / os.sysconf("SC_CLK_TCK") - self.sampling_cpu_s

    def _sample(self) -> None:
        while not self._stop.wait(0.2):
            self.peak_mb = max(self.peak_mb, self.current_mb())
            self.sampling_cpu_s = time.thread_time()


def _process_tree() -> dict[int, list[str]]:
    """This process and its descendants: pid -> the fields of /proc/<pid>/stat after the command
    name (index 1 the parent, 11-14 utime, stime, cutime, cstime in clock ticks, 21 rss in pages)."""
    me = os.getpid()
    stats = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            stats[int(stat.parent.name)] = stat.read_text().rsplit(")", 1)[1].split()
    tree, changed = {me}, True
    while changed:
        grown = {pid for pid, fields in stats.items() if int(fields[1]) in tree} | tree
        changed, tree = grown != tree, grown
    return {pid: stats[pid] for pid in tree if pid in stats}


MEMORY: TreeMemory | None = None


class Stages:
    """One round's stages: seconds (summed over parts: sources or tables), peak memory, seconds
    per part; progress to stderr, with the ratio to the round's limit once it is known."""

    def __init__(self):
        self.data: dict[str, dict] = {}
        self.limit_s: float | None = None

    def record(self, name: str, elapsed: float, peak_mb: float, part: str | None = None, cpu_s: float = 0.0) -> None:
        s = self.data.setdefault(name, {"seconds": 0.0, "peak_mb": 0.0, "cpu_s": 0.0})
        s["seconds"] += elapsed
        s["cpu_s"] += cpu_s
        s["peak_mb"] = max(s["peak_mb"], peak_mb)
        if part:
            s.setdefault("parts", {})[part] = s.get("parts", {}).get(part, 0.0) + elapsed
            peaks = s.setdefault("parts_peak_mb", {})
            peaks[part] = max(peaks.get(part, 0.0), peak_mb)
        ratio = f", {s['seconds'] / self.limit_s:.1f}x limit so far" if self.limit_s else ""
        label = f"{name} {part}" if part else name
        print(f"  {label} {elapsed:.1f} s, peak {s['peak_mb']:,.0f} MB{ratio}", file=sys.stderr, flush=True)

    def run(self, name: str, fn, *args, part: str | None = None, **kwargs):
        MEMORY.reset()
        cpu, t = MEMORY.cpu_s(), time.perf_counter()
        out = fn(*args, **kwargs)
        self.record(name, time.perf_counter() - t, MEMORY.peak(), part, MEMORY.cpu_s() - cpu)
        return out


def township_list(n: int, out: Path) -> Path:
    """n synthetic townships: the sample county's list repeated over synthetic counties (the
    first n of a longer list are the same townships)."""
    import pandas as pd

    base = pd.read_csv(Path(__file__).parents[1] / "warehouse" / "demo" / "townships_yongan.csv", dtype=str)
    rows = []
    for i in range(n):
        t = base.iloc[i % len(base)]
        county = f"{35 + (i // len(base)) // 9000:02d}{(i // len(base)) % 9000 + 1000:04d}"
        rows.append(
            {
                "code": county + t["code"][6:],
                "name": f"{t['name']}{i // len(base)}",
                "kind": t["kind"],
                "county_code": county,
                "county_name": f"县{i // len(base)}",
            }
        )
    pd.DataFrame(rows).to_csv(out, index=False)
    return out


def sample_dir(scale: str, townships: Path | None = None, seed: int = DEFAULT_SEED) -> tuple[Path, float | None]:
    """The scale's sample (generated once, cached) and the seconds its generation took now."""
    from warehouse.demo.sample.generate import generate_sample

    count, years = SCALES[scale]
    name = townships.stem if townships else scale
    sample = CACHE / f"{name}-{seed}"
    if (sample / "targets.json").exists():
        return sample, None
    CACHE.mkdir(exist_ok=True)
    townships = townships or (township_list(count, CACHE / f"{name}.csv") if count else None)
    t = time.perf_counter()
    generate_sample(sample, seed=seed, townships_csv=townships, years=years)
    return sample, time.perf_counter() - t


def one_day_of_changes(sample: Path, home: Path) -> int:
    """A new export page correcting 1% of the enforcement records of the first 60 export pages
    the next day (all of a county's; at larger scales the changes stay a night's worth)."""
    pages = sorted((sample / "enforcement").glob("page-*.json"))[:60]
    records = []
    for p in pages:
        records += json.loads(p.read_text(encoding="utf-8"))["records"]
    changed = [dict(r, 更新时间="2025-02-01 09:00:00") for r in records[::100] if r.get("行为类型")]
    doc = {
        "source": "enforcement",
        "page": 1,
        "page_size": len(changed),
        "total_records": len(changed),
        "total_pages": 1,
        "records": changed,
    }
    (home / "sample" / "enforcement" / "page-999999.json").write_text(json.dumps(doc, ensure_ascii=False))
    return len(changed)


def nightly_steps(settings) -> None:
    """Every step of a night, in order, as the flow runs them (without Prefect)."""
    from warehouse import pipeline

    pipeline.prepare_warehouse(settings)
    for source in settings.sources.values():
        batch = pipeline.land_source(settings, source)
        if batch is not None:
            pipeline.load_prepared(settings, pipeline.parse_and_validate(settings, batch), "bench")
    pipeline.compute(settings)
    pipeline.audit_and_publish(settings)


def parse_and_validate(stages: Stages, settings, batch):
    """The pipeline's parse + validate step, its parse (warehouse.pipeline.parse_batch) timed as
    `parse` and the rest of the step (validation, quarantine messages) as `validate`."""
    from warehouse import pipeline

    parse_batch, validate_from = pipeline.parse_batch, []

    def timed_parse(*args, **kwargs):
        out = stages.run("parse", parse_batch, *args, part=batch.source, **kwargs)
        MEMORY.reset()
        validate_from.append((time.perf_counter(), MEMORY.cpu_s()))
        return out

    pipeline.parse_batch = timed_parse
    try:
        prepared = pipeline.parse_and_validate(settings, batch)
    finally:
        pipeline.parse_batch = parse_batch
    if validate_from:
        (started, cpu) = validate_from[0]
        elapsed = time.perf_counter() - started
        stages.record("validate", elapsed, MEMORY.peak(), batch.source, MEMORY.cpu_s() - cpu)
    return prepared


def one_round(sample: Path, incremental: bool) -> dict:
    """Land the sample in a fresh home, measure the limit, run the pipeline (and the nightly
    run after one day of changes)."""
    from benchmarks.floor import kept_tables, required_work_floor
    from benchmarks.limit import duckdb_limit
    from warehouse import pipeline
    from warehouse.config import load_settings, write_demo_config

    load_average = os.getloadavg()[0]
    home = Path(tempfile.mkdtemp(prefix="fazhi-bench-"))
    try:
        if incremental:  # the day of changes is written into the home's copy, never the cache
            shutil.copytree(sample, home / "sample")
        else:
            (home / "sample").symlink_to(sample.resolve())
        write_demo_config(home)
        settings = load_settings(home)
        stages = Stages()
        stages.run("prepare", pipeline.prepare_warehouse, settings)
        batches = {
            name: stages.run("land", pipeline.land_source, settings, s, part=name)
            for name, s in settings.sources.items()
        }
        files_per_group, workers = settings.performance.files_per_group, settings.performance.workers
        # in a process of its own: what DuckDB's reading of every source leaves allocated would
        # otherwise count in the peak memory of the pipeline's stages, and grow with the input
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as own:
            limit = own.submit(duckdb_limit, list(batches.values()), home, files_per_group, workers).result()
        stages.limit_s = limit.seconds
        print(f"  duckdb limit {limit.seconds:.1f} s", file=sys.stderr, flush=True)
        rows, kept = 0, {}
        for name, batch in batches.items():
            if batch is None:
                continue
            prepared = parse_and_validate(stages, settings, batch)
            rows += prepared.received_rows
            kept |= kept_tables(prepared, pipeline.suite_parameters(settings, batch), home / "floor-parsed")
            stages.run("load", pipeline.load_prepared, settings, prepared, "bench", part=name)
            del prepared
        stages.run("compute", pipeline.compute, settings)
        stages.run("audit+publish", pipeline.audit_and_publish, settings)
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as own:
            floor = own.submit(required_work_floor, home, settings.work_db, kept).result()
        changed = incremental_s = incremental_cli_s = None
        if incremental:
            changed = one_day_of_changes(sample, home)
            cli_home = home.with_name(home.name + "-cli")  # the same night, for `fazhi run` in a new process
            shutil.copytree(home, cli_home, symlinks=True)
            HOMES.append(cli_home)
            t = time.perf_counter()
            nightly_steps(settings)
            incremental_s = time.perf_counter() - t
            incremental_cli_s = fazhi_run_seconds(cli_home)
    finally:
        HOMES.append(home)
    pipeline_s = sum(s["seconds"] for s in stages.data.values())
    pipeline_cpu_s = sum(s["cpu_s"] for s in stages.data.values())
    return {
        "load_average_1min": load_average,
        "rows": rows,
        "stages": stages.data,
        "pipeline_s": pipeline_s,
        "pipeline_cpu_s": pipeline_cpu_s,
        "peak_mb": max(s["peak_mb"] for s in stages.data.values()),
        "limit_s": limit.seconds,
        "limit_cpu_s": limit.cpu_s,
        "limit": limit.sources,
        "floor": floor,
        "one_json_column_limit_s": limit.one_json_column_s,
        "ratio": pipeline_s / limit.seconds,
        "ratio_with_one_json_column": pipeline_s / limit.with_one_json_column_s if limit.one_json_column_s else None,
        "incremental_s": incremental_s,
        "incremental_cli_s": incremental_cli_s,
        "incremental_records": changed,
    }


def fazhi_run_seconds(home: Path) -> float:
    """Wall time of `fazhi run --home HOME` as an operator starts it: a new process (interpreter,
    imports, Great Expectations when something is to be validated), no Prefect server."""
    fazhi = shutil.which("fazhi")
    command = [fazhi] if fazhi else [sys.executable, "-m", "flows.cli"]
    t = time.perf_counter()
    subprocess.run([*command, "run", "--home", str(home)], check=True, capture_output=True)
    return time.perf_counter() - t


def as_run(sample: Path) -> dict:
    """The whole nightly run as `fazhi run` does it without a Prefect server (warehouse/runs.py
    LocalEngine: sources pulled, parsed and validated on threads, loaded one at a time as each is
    ready, then compute, the validation page, audits and publish), in a fresh home: its wall time
    and peak memory (the process tree's; the process already holds what the rounds left)."""
    from warehouse.config import write_demo_config
    from warehouse.runs import LocalEngine, run_nightly

    load_average = os.getloadavg()[0]
    home = Path(tempfile.mkdtemp(prefix="fazhi-bench-"))
    try:
        (home / "sample").symlink_to(sample.resolve())
        write_demo_config(home)
        MEMORY.reset()
        t = time.perf_counter()
        out = run_nightly(LocalEngine(), str(home))
        seconds = time.perf_counter() - t
    finally:
        HOMES.append(home)
    rows = sum(s.get("received_rows") or 0 for s in out["sources"].values())
    return {"seconds": seconds, "peak_mb": MEMORY.peak(), "rows": rows, "load_average_1min": load_average}


def summarise(rounds: list[dict]) -> dict:
    """Medians over rounds (ratios: the median of each round's ratio); peak memory the first
    round's, a fresh process as a run's is (later rounds start with what the process kept)."""

    def median(values) -> float:
        return statistics.median(list(values))

    stages = {}
    for name in rounds[0]["stages"]:
        per_round = [r["stages"][name] for r in rounds]
        stages[name] = {
            "seconds": median(s["seconds"] for s in per_round),
            "cpu_s": median(s["cpu_s"] for s in per_round),
            "peak_mb": per_round[0]["peak_mb"],
            "ratio": median(s["seconds"] / r["limit_s"] for s, r in zip(per_round, rounds, strict=True)),
        }
        if "parts" in per_round[0]:
            stages[name]["parts"] = {p: median(s["parts"][p] for s in per_round) for p in per_round[0]["parts"]}
            stages[name]["parts_peak_mb"] = per_round[0].get("parts_peak_mb", {})
    sources = {}
    for source, first in rounds[0]["limit"].items():
        parse = [r["stages"]["parse"]["parts"].get(source) for r in rounds]
        limit = [r["limit"][source]["seconds"] for r in rounds]
        sources[source] = {
            "limit_s": median(limit),
            "methods": [r["limit"][source]["method"] for r in rounds],
            "alternatives_s": {
                m: median(r["limit"][source]["alternatives"][m] for r in rounds) for m in first["alternatives"]
            },
            "parse_s": median(parse) if None not in parse else None,
            "parse_ratio": median(p / s for p, s in zip(parse, limit, strict=True)) if None not in parse else None,
        }
    floor = {
        part: {
            "seconds": median(r["floor"][part]["seconds"] for r in rounds),
            "cpu_s": median(r["floor"][part]["cpu_s"] for r in rounds),
        }
        for part in rounds[0].get("floor", {})  # results from before the floor have none
    }
    return {
        "rows": rounds[0]["rows"],
        "stages": stages,
        "floor": floor,
        # the limit and the floor together, against the limit (per round, then the median)
        "floor_ratio": median(
            (r["limit_s"] + sum(f["seconds"] for f in r["floor"].values())) / r["limit_s"] for r in rounds
        )
        if floor
        else None,
        "pipeline_s": median(r["pipeline_s"] for r in rounds),
        "pipeline_cpu_s": median(r["pipeline_cpu_s"] for r in rounds),
        "limit_s": median(r["limit_s"] for r in rounds),
        "limit_cpu_s": median(r["limit_cpu_s"] for r in rounds),
        "cpu_ratio": median(r["pipeline_cpu_s"] / r["limit_cpu_s"] for r in rounds),
        "ratio": median(r["ratio"] for r in rounds),
        "ratios": [r["ratio"] for r in rounds],
        "peak_mb": rounds[0]["peak_mb"],
        "sources": sources,
        # the pages read as one JSON column (the limit before issue 20), and the pipeline's ratio
        # to the limit with that reading of the pages instead of the typed one
        "one_json_column_limit_s": median(r["one_json_column_limit_s"] for r in rounds),
        "ratio_with_one_json_column": median(r["ratio_with_one_json_column"] for r in rounds)
        if rounds[0]["ratio_with_one_json_column"]
        else None,
        "load_average_1min": [r["load_average_1min"] for r in rounds],
        "incremental_s": rounds[-1]["incremental_s"],
        "incremental_cli_s": rounds[-1]["incremental_cli_s"],
        "incremental_records": rounds[-1]["incremental_records"],
    }


def print_summary(name: str, summary: dict, rounds: int, imports_s: float, gx_import_s: float, generate_s) -> None:
    rows, limit_s = summary["rows"], summary["limit_s"]
    loads = ", ".join(f"{x:.1f}" for x in summary["load_average_1min"])
    print(
        f"scale {name}: {rows:,} source rows; {rounds} round(s), medians (load average at each round's start: {loads})"
        + (f"; sample generated in {generate_s:.1f} s" if generate_s else "")
    )
    print(f"imports {imports_s:.2f} s, Great Expectations import + suites {gx_import_s:.2f} s (not in the stages)")
    print(f"{'stage':<16}{'seconds':>10}{'CPU s':>8}{'rows/s':>14}{'peak MB':>10}{'x limit':>10}")
    for stage, s in summary["stages"].items():
        sec = s["seconds"]
        print(
            f"{stage:<16}{sec:>10.3f}{s['cpu_s']:>8.1f}{rows / sec if sec else 0:>14,.0f}"
            f"{s['peak_mb']:>10,.0f}{s['ratio']:>10.2f}"
        )
    total, total_cpu = summary["pipeline_s"], summary["pipeline_cpu_s"]
    print(
        f"{'pipeline':<16}{total:>10.3f}{total_cpu:>8.1f}{rows / total:>14,.0f}"
        f"{summary['peak_mb']:>10,.0f}{summary['ratio']:>10.2f}"
    )
    print(
        f"{'duckdb limit':<16}{limit_s:>10.3f}{summary['limit_cpu_s']:>8.1f}{rows / limit_s:>14,.0f}{'':>10}{1:>10.2f}"
    )
    print(
        f"CPU time (this process and its workers): pipeline {total_cpu:.1f} s = {summary['cpu_ratio']:.2f}x the "
        f"limit's {summary['limit_cpu_s']:.1f} s; cores busy on average: pipeline {total_cpu / total:.2f}, "
        f"limit {summary['limit_cpu_s'] / limit_s:.2f}"
    )
    if rounds > 1:
        print("pipeline / limit per round: " + ", ".join(f"{r:.2f}" for r in summary["ratios"]))
    print(f"{'parse':<16}{'seconds':>10}{'limit s':>10}{'x limit':>10}  the limit's reading (alternatives, s)")
    for source, s in summary["sources"].items():
        alternatives = ", ".join(f"{m} {sec:.3f}" for m, sec in s["alternatives_s"].items())
        parse = f"{s['parse_s']:>10.3f}{s['limit_s']:>10.3f}{s['parse_ratio']:>10.2f}" if s["parse_s"] else ""
        print(f"{source:<16}{parse}  {'/'.join(sorted(set(s['methods'])))} ({alternatives})")
    print_floor(summary)
    if summary["ratio_with_one_json_column"]:
        print(
            f"the pages as one JSON column (the limit before issue 20): {summary['one_json_column_limit_s']:.3f} s; "
            f"pipeline x that limit: {summary['ratio_with_one_json_column']:.2f}"
        )
    if summary.get("as_run"):
        run = summary["as_run"]
        print(
            f"as run (`fazhi run` without a Prefect server: sources on threads, loads one at a time): "
            f"{run['seconds']:.3f} s = {run['seconds'] / limit_s:.2f}x the limit, peak {run['peak_mb']:,.0f} MB "
            f"(load average {run['load_average_1min']:.1f}; {run['rows']:,} rows)"
        )
    if summary["incremental_s"] is not None:
        print(
            f"nightly incremental run after one day ({summary['incremental_records']:,} corrected records): "
            f"{summary['incremental_s']:.2f} s (library steps in this process, GX imported); as `fazhi run` runs it, "
            f"a new process without a Prefect server: {summary['incremental_cli_s']:.2f} s"
        )


def print_floor(summary: dict) -> None:
    """Each stage against the floor of its required work (benchmarks/floor.py); the parse's is
    the limit."""
    limit_s, floor = summary["limit_s"], summary["floor"]
    if not floor:
        return
    print("the floor of the required work (each part by DuckDB or GX alone, on the round's data: benchmarks/floor.py)")
    print(f"{'stage':<16}{'seconds':>10}{'floor s':>10}{'above s':>10}{'floor x limit':>15}")
    rows = [("parse", summary["stages"]["parse"]["seconds"], limit_s)]
    rows += [(part, summary["stages"][part]["seconds"], f["seconds"]) for part, f in floor.items()]
    for part, seconds, floor_s in rows:
        print(f"{part:<16}{seconds:>10.3f}{floor_s:>10.3f}{seconds - floor_s:>10.3f}{floor_s / limit_s:>15.2f}")
    total_floor = sum(f for _, _, f in rows)
    floor_cpu = summary["limit_cpu_s"] + sum(f["cpu_s"] for f in floor.values())
    cores = os.cpu_count() or 1
    print(
        f"limit + floor {total_floor:.3f} s = {summary['floor_ratio']:.2f}x the limit, one part after another; "
        f"the pipeline spends {summary['pipeline_s'] - total_floor:.3f} s above it. Their CPU time {floor_cpu:.1f} s "
        f"on {cores} cores all busy: at least {floor_cpu / cores / limit_s:.2f}x the limit, however the parts overlap"
    )


def compare_memory(summary: dict, baseline: dict, name: str) -> dict:
    """Peak memory per stage and overall (first rounds), this run / the baseline's; flat within
    ±FLAT."""
    baseline = baseline | summarise(baseline["rounds"])
    rows = {}  # stage, or stage and part (a source or table) -> (baseline MB, this run's MB, ratio)
    for stage, s in summary["stages"].items():
        before = baseline["stages"].get(stage, {})
        if before.get("peak_mb"):
            rows[stage] = (before["peak_mb"], s["peak_mb"], s["peak_mb"] / before["peak_mb"])
        for part, now in s.get("parts_peak_mb", {}).items():
            if before.get("parts_peak_mb", {}).get(part):
                rows[f"{stage} {part}"] = (before["parts_peak_mb"][part], now, now / before["parts_peak_mb"][part])
    rows["pipeline"] = (baseline["peak_mb"], summary["peak_mb"], summary["peak_mb"] / baseline["peak_mb"])
    scale = summary["rows"] / baseline["rows"]
    print(
        f"peak memory against {baseline['scale']} ({baseline['rows']:,} rows, {baseline.get('date', '?')}, "
        f"commit {baseline.get('commit') or '?'}): {scale:.2f}x the rows"
    )
    print(f"{'stage':<24}{baseline['scale'] + ' MB':>16}{name + ' MB':>16}{'ratio':>8}")
    for stage, (before, now, ratio) in rows.items():
        label = stage if stage in summary["stages"] or stage == "pipeline" else "  " + stage
        print(f"{label:<24}{before:>16,.0f}{now:>16,.0f}{ratio:>8.2f}")
    flat = abs(rows["pipeline"][2] - 1) <= FLAT
    print(f"peak memory {'flat' if flat else 'NOT flat'} (within ±{FLAT:.0%}: {rows['pipeline'][2]:.2f})")
    return {
        "baseline": baseline["scale"],
        "rows_ratio": scale,
        "peak_mb": {k: {"baseline": b, "this": n, "ratio": r} for k, (b, n, r) in rows.items()},
        "flat": flat,
    }


def code_commit() -> str | None:
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], cwd=Path(__file__).parent, capture_output=True, text=True
        )
        return out + ("+changes" if dirty.stdout.strip() else "")
    return None


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks")
    ap.add_argument("--scale", choices=SCALES, default="county")
    ap.add_argument("--townships", type=Path, help="a township list instead of the scale's")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="interleaved rounds of limit + pipeline (medians; 3 or more for the goals)",
    )
    ap.add_argument(
        "--as-run",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="after the rounds, time the whole nightly run as `fazhi run` does it (sources concurrent)",
    )
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--baseline", type=Path, help="results (JSON) to compare peak memory with")
    ap.add_argument(
        "--incremental",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="time the nightly run after one day of changes (default: at county scale only)",
    )
    args = ap.parse_args()
    if args.rounds < 1:
        ap.error("--rounds must be 1 or more")
    global MEMORY
    MEMORY = TreeMemory()
    try:
        run(args)
    finally:
        for home in HOMES:
            shutil.rmtree(home, ignore_errors=True)


def run(args: argparse.Namespace) -> None:
    from warehouse import pipeline  # noqa: F401  (imports reported apart from the stages)

    imports_s = time.perf_counter() - T0
    t = time.perf_counter()
    from expectations.validate import import_gx, warm_up

    import_gx()  # imported once, as the pipeline imports it; reported apart from the stages
    warm_up()  # suites built once per process, before the timed stages
    gx_import_s = time.perf_counter() - t

    name = args.townships.stem if args.townships else args.scale
    sample, generate_s = sample_dir(args.scale, args.townships, args.seed)
    incremental = args.incremental or (args.incremental is None and args.scale == "county")
    rounds = []
    for i in range(args.rounds):
        if args.rounds > 1:
            print(f"round {i + 1} of {args.rounds}", file=sys.stderr, flush=True)
        rounds.append(one_round(sample, incremental and i == args.rounds - 1))
    summary = summarise(rounds)
    if args.as_run:
        print("the nightly run as run", file=sys.stderr, flush=True)
        summary["as_run"] = as_run(sample)
    print_summary(name, summary, args.rounds, imports_s, gx_import_s, generate_s)

    results = {
        "scale": name,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": code_commit(),
        **summary,
        "imports_s": imports_s,
        "gx_import_s": gx_import_s,
        "generate_s": generate_s,
        "rounds": rounds,
    }
    baseline = args.baseline or (CACHE / f"results-{BASELINES[name]}.json" if name in BASELINES else None)
    if baseline and baseline.exists():
        results["memory_vs_baseline"] = compare_memory(summary, json.loads(baseline.read_text()), name)
    elif baseline:
        print(f"no baseline to compare peak memory with: {baseline} does not exist (run that scale first)")
    CACHE.mkdir(exist_ok=True)
    text = json.dumps(results, indent=2, ensure_ascii=False)
    (CACHE / f"results-{name}.json").write_text(text)
    if args.json:
        args.json.write_text(text)


if __name__ == "__main__":
    main()
