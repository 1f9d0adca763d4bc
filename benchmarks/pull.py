"""Pull and land N enforcement records from the simulator; compare with DuckDB parsing the same
landed files (the physical limit: the pull cannot be faster than reading what it lands).

    python -m benchmarks.pull [--records 1000000] [--page-size 5000] [--faults none]

Records are the sample's enforcement records replicated with new ids (`…-R0001`), serialised
once; the simulator runs in a forked process (its own core and interpreter lock) on loopback.
The pull is the production code path: warehouse/sources/http.py `land_http` (requests Session,
orjson page parse, every page written to the landing batch with its sha256, duplicates counted,
the record versions already held counted).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import shutil
import tempfile
import time
from pathlib import Path

from benchmarks import HMAC_KEY

os.environ.setdefault("FAZHI_HMAC_KEY", HMAC_KEY)
from warehouse.env import quiet_environment

quiet_environment()

CACHE = Path(__file__).parent / ".cache"
TOKEN = "benchmark-token"


def base_records(seed: int) -> list[dict]:
    from warehouse.demo.sample.generate import generate_sample
    from warehouse.demo.simulator import read_pages

    sample = CACHE / f"county-{seed}"
    if not (sample / "targets.json").exists():
        generate_sample(sample, seed=seed)
    return read_pages(sample / "enforcement")


def replicate(records: list[dict], n: int):
    """n records as (sort keys, JSON lines): the base records over and over, each copy's id
    suffixed with its replica number (the id is unique; everything else as in the sample)."""
    import orjson

    from warehouse.demo.simulator import RecordStore

    base = [(r["更新时间"], r["行为编号"], orjson.dumps(r)) for r in records]
    keys, lines = [], []
    replica = 0
    while len(lines) < n:
        replica += 1
        suffix = f"-R{replica:04d}"
        for ts, rid, line in base[: n - len(lines)]:
            new = rid + suffix
            lines.append(line.replace(f'"行为编号":"{rid}"'.encode(), f'"行为编号":"{new}"'.encode(), 1))
            keys.append(f"{ts}\0{new}")
    order = sorted(range(len(keys)), key=keys.__getitem__)
    return RecordStore([keys[i] for i in order], [lines[i] for i in order])


def _serve(store, faults: str, port_queue, stop_event) -> None:
    from warehouse.demo.simulator import Simulator

    sim = Simulator(
        token=TOKEN, faults=faults, stores={"enforcement": {"initial": store, "later": store}}, slow_seconds=2
    )
    sim.start()
    port_queue.put(sim.url)
    stop_event.wait()
    sim.stop()


def duckdb_parse(paths: list[Path]) -> dict[str, tuple[float, int]]:
    """DuckDB alone reading the landed pages into one row per record, two ways: the reader the
    pipeline's parse uses (read_json with a JSON[] column) and read_json_objects + json_extract."""
    import duckdb

    ways = {
        "duckdb read_json": "select unnest(records) as rec from read_json($p, columns = {records: 'JSON[]'})",
        "duckdb read_json_objects": (
            "select unnest(json_extract(json, '$.records[*]')) as rec "
            "from read_json_objects($p, format = 'unstructured')"
        ),
    }
    out = {}
    for name, query in ways.items():
        t = time.perf_counter()
        con = duckdb.connect()
        con.execute(f"create table t as {query}", {"p": [str(p) for p in paths]})
        n = con.execute("select count(*) from t").fetchall()[0][0]
        con.close()
        out[name] = (time.perf_counter() - t, n)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.pull")
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--page-size", type=int, default=5000)
    ap.add_argument("--faults", default="none")
    ap.add_argument("--seed", type=int, default=20231226)
    args = ap.parse_args()

    from warehouse.config import HttpOptions, SourceConfig
    from warehouse.sources.http import land_http

    t = time.perf_counter()
    records = base_records(args.seed)
    store = replicate(records, args.records)
    build_s = time.perf_counter() - t
    del records

    ctx = mp.get_context("fork")
    port_queue, stop = ctx.Queue(), ctx.Event()
    server = ctx.Process(target=_serve, args=(store, args.faults, port_queue, stop), daemon=True)
    server.start()
    url = port_queue.get(timeout=60)
    del store

    home = Path(tempfile.mkdtemp(prefix="fazhi-pull-"))
    try:
        opts = HttpOptions(
            url=url, token_env="FAZHI_BENCH_TOKEN", page_size=args.page_size, read_timeout=1.5, backoff_base=0.05
        )
        source = SourceConfig("enforcement", "http", home / "unused", opts)
        t = time.perf_counter()
        batch = land_http(source, home / "landing", None, token=TOKEN)
        pull_s = time.perf_counter() - t
        assert batch is not None
        paths = [f.path for f in batch.files]
        landed_bytes = sum(f.bytes for f in batch.files)
        limits = duckdb_parse(paths)
    finally:
        stop.set()
        server.join(timeout=10)
        shutil.rmtree(home, ignore_errors=True)

    n = batch.extra["records_distinct"]
    print(
        f"records: {n:,} distinct ({batch.extra['records_received']:,} received) in {len(paths)} pages, "
        f"{landed_bytes / 1e6:,.1f} MB landed; faults: {args.faults}; test data built in {build_s:.1f} s"
    )
    limit_s = min(s for s, _ in limits.values())  # the physical limit: DuckDB's fastest way
    print(f"{'step':<28}{'seconds':>10}{'records/s':>14}{'x limit':>10}")
    print(f"{'pull + land (HTTP)':<28}{pull_s:>10.2f}{n / pull_s:>14,.0f}{pull_s / limit_s:>10.2f}")
    for name, (s, parsed) in limits.items():
        assert parsed == n, (name, parsed, n)
        print(f"{name:<28}{s:>10.2f}{parsed / s:>14,.0f}{s / limit_s:>10.2f}")
    print(f"retries: {len(batch.extra['retries'])}, retry waits {batch.extra['timings']['retry_wait_seconds']} s")


if __name__ == "__main__":
    main()
