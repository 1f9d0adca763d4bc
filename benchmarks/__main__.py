"""Time each pipeline stage and compare the whole with the physical limit.

The physical limit is DuckDB alone reading the same landed files into a table in the same
process (JSON pages with read_json_objects, its fastest reader; spreadsheets with calamine,
since DuckDB needs a downloaded extension for xlsx). Interpreter start and imports are
reported separately.

    python -m benchmarks [--scale county|province|national] [--townships FILE] [--json OUT]

county: the sample county (15 townships, 2022-2024); province: 1,100 townships, 2023;
national: 38,000 townships, 2023. Samples are generated once and cached in benchmarks/.cache.
Per stage: wall time, records per second, peak resident memory of the process and its worker
processes (sampled, reset before each stage) and the ratio to the limit; then the nightly
incremental run after one day of changes (county scale; `--incremental` at other scales, where
it recomputes and republishes the whole warehouse). Progress goes to stderr as stages finish;
the JSON also keeps each stage's seconds per source or table (`parts`).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

T0 = time.perf_counter()
from benchmarks import HMAC_KEY  # noqa: E402

os.environ.setdefault("FAZHI_HMAC_KEY", HMAC_KEY)
from flows.env import quiet_environment  # noqa: E402

quiet_environment()

CACHE = Path(__file__).parent / ".cache"
SCALES = {"county": (None, (2022, 2023, 2024)), "province": (1_100, (2023,)), "national": (38_000, (2023,))}


class TreeMemory:
    """Peak resident memory of this process and its children (validation worker processes),
    sampled every 0.2 s from /proc; `reset` starts a new peak."""

    def __init__(self):
        import threading

        self.peak_mb = 0.0
        self._stop = threading.Event()
        threading.Thread(target=self._sample, daemon=True).start()

    def reset(self) -> None:
        self.peak_mb = self.current_mb()

    def current_mb(self) -> float:
        me = os.getpid()
        parents, rss = {}, {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                fields = stat.read_text().rsplit(")", 1)[1].split()
                pid = int(stat.parent.name)
                parents[pid] = int(fields[1])
                rss[pid] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
        tree, changed = {me}, True
        while changed:
            grown = {pid for pid, ppid in parents.items() if ppid in tree} | tree
            changed, tree = grown != tree, grown
        return sum(rss.get(pid, 0) for pid in tree) / 2**20

    def _sample(self) -> None:
        while not self._stop.wait(0.2):
            self.peak_mb = max(self.peak_mb, self.current_mb())


MEMORY: TreeMemory | None = None
LIMIT_S: float | None = None  # the DuckDB limit, once measured


def timed(stages: dict, name: str, fn, *args, part: str | None = None, **kwargs):
    """Run a stage (of `part`: a source or table, whose seconds are also kept apart)."""
    MEMORY.reset()
    t = time.perf_counter()
    out = fn(*args, **kwargs)
    elapsed = time.perf_counter() - t
    s = stages.setdefault(name, {"seconds": 0.0, "peak_mb": 0.0})
    s["seconds"] += elapsed
    s["peak_mb"] = max(s["peak_mb"], MEMORY.peak_mb, MEMORY.current_mb())
    if part:
        s.setdefault("parts", {})[part] = s.get("parts", {}).get(part, 0.0) + elapsed
    ratio = f", {s['seconds'] / LIMIT_S:.1f}x limit so far" if LIMIT_S else ""
    label = f"{name} {part}" if part else name
    print(f"  {label} {elapsed:.1f} s, peak {s['peak_mb']:,.0f} MB{ratio}", file=sys.stderr, flush=True)  # progress
    return out


def township_list(n: int, out: Path) -> Path:
    """n synthetic townships: the sample county's list repeated over synthetic counties."""
    import pandas as pd

    base = pd.read_csv(Path(__file__).parents[1] / "warehouse" / "townships_yongan.csv", dtype=str)
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


def duckdb_limit(batches, scratch: Path) -> float:
    """DuckDB reading the landed pages into a table of a database file (as the pipeline's own
    tables are: memory capped like the warehouse's), calamine reading every workbook. Measured
    right after landing, before the pipeline's stages (so progress lines can show ratios)."""
    from python_calamine import CalamineWorkbook

    from warehouse.db import connect

    t = time.perf_counter()
    con = connect(scratch / "limit.duckdb")
    for b in batches:
        if b is None:
            continue
        if b.source in ("enforcement", "mediation"):
            # DuckDB's fastest read of the pages (read_json with a JSON[] column is ~8x slower)
            con.execute(
                f"create table {b.source} as select unnest(cast(json_extract(json, '$.records') as json[])) as rec "
                "from read_json_objects($p, format = 'auto')",
                {"p": [str(f.path) for f in b.files]},
            )
        else:
            for f in b.files:
                if f.path.suffix == ".xlsx":
                    wb = CalamineWorkbook.from_path(str(f.path))
                    for name in wb.sheet_names:
                        wb.get_sheet_by_name(name).to_python()
                else:  # DuckDB reads GB18030 only with a downloaded extension
                    list(csv.reader(io.StringIO(f.path.read_bytes().decode("gb18030"))))
    con.close()
    elapsed = time.perf_counter() - t
    (scratch / "limit.duckdb").unlink(missing_ok=True)
    return elapsed


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


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks")
    ap.add_argument("--scale", choices=SCALES, default="county")
    ap.add_argument("--townships", type=Path, help="a township list instead of the scale's")
    ap.add_argument("--seed", type=int, default=20231226)
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument(
        "--incremental",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="time the nightly run after one day of changes (default: at county scale only)",
    )
    args = ap.parse_args()
    global MEMORY, LIMIT_S
    MEMORY = TreeMemory()

    from flows import pipeline
    from flows.config import load_settings, write_demo_config
    from flows.sample.generate import generate_sample
    from flows.sources import parse_batch
    from flows.sources.mapping import load_mappings

    imports_s = time.perf_counter() - T0
    t = time.perf_counter()
    import great_expectations  # noqa: F401  (imported once; reported apart from the stages)

    from expectations.validate import validate_table, warm_up

    warm_up()  # suites built once per process, as the flow does at import

    gx_import_s = time.perf_counter() - t

    count, years = SCALES[args.scale]
    name = args.townships.stem if args.townships else args.scale
    sample = CACHE / f"{name}-{args.seed}"
    generate_s = None
    if not (sample / "targets.json").exists():
        CACHE.mkdir(exist_ok=True)
        townships = args.townships or (township_list(count, CACHE / f"{name}.csv") if count else None)
        t = time.perf_counter()
        generate_sample(sample, seed=args.seed, townships_csv=townships, years=years)
        generate_s = time.perf_counter() - t

    home = Path(tempfile.mkdtemp(prefix="fazhi-bench-"))
    try:
        incremental = args.incremental or (args.incremental is None and args.scale == "county")
        if incremental:  # the day of changes is written into the home's copy, never the cache
            shutil.copytree(sample, home / "sample")
        else:
            (home / "sample").symlink_to(sample.resolve())
        write_demo_config(home)
        settings = load_settings(home)
        stages: dict[str, dict] = {}
        rows = 0
        timed(stages, "prepare", pipeline.prepare_warehouse, settings)
        codes = {"township_codes": pipeline.township_codes(settings)}
        chunk_rows, workers, files_per_group = (
            pipeline.performance_option(settings, o) for o in ("chunk_rows", "workers", "files_per_group")
        )
        batches = {
            name: timed(stages, "land", pipeline.land_source, settings, s, part=name)
            for name, s in settings.sources.items()
        }
        limit_s = LIMIT_S = duckdb_limit(batches.values(), home)
        print(f"  duckdb limit {limit_s:.1f} s", file=sys.stderr, flush=True)
        for source_name, batch in batches.items():
            directory = pipeline.parsed_dir(settings, batch)
            parsed = timed(
                stages,
                "parse",
                parse_batch,
                batch,
                settings.hmac_key(),
                directory,
                files_per_group,
                workers,
                part=source_name,
            )
            tables = []
            for table, pt in parsed.items():
                rows += pt.rows
                res = timed(stages, "validate", validate_table, table, pt, codes, None, chunk_rows, workers, part=table)
                key = load_mappings()[source_name][table].key
                tables.append(pipeline.TableLoad(table, pt.path, pt.rows, res.failures, res.results, key))
            prepared = pipeline.PreparedBatch(batch, tables, sum(t.row_count for t in tables))
            timed(stages, "load", pipeline.load_prepared, settings, prepared, "bench", part=source_name)
            del prepared, tables
        timed(stages, "compute", pipeline.compute, settings)
        timed(stages, "audit+publish", pipeline.audit_and_publish, settings)

        changed = incremental_s = None
        if incremental:
            changed = one_day_of_changes(sample, home)
            from tests.conftest import run_steps

            t = time.perf_counter()
            run_steps(home)
            incremental_s = time.perf_counter() - t
    finally:
        shutil.rmtree(home, ignore_errors=True)

    total = sum(s["seconds"] for s in stages.values())
    print(f"scale {name}: {rows:,} source rows" + (f"; generated in {generate_s:.1f} s" if generate_s else ""))
    print(f"imports {imports_s:.2f} s, Great Expectations import + suites {gx_import_s:.2f} s (not in the stages)")
    print(f"{'stage':<16}{'seconds':>10}{'rows/s':>14}{'peak MB':>10}{'x limit':>10}")
    for stage, s in stages.items():
        sec = s["seconds"]
        print(f"{stage:<16}{sec:>10.3f}{rows / sec if sec else 0:>14,.0f}{s['peak_mb']:>10,.0f}{sec / limit_s:>10.1f}")
    peak = max(s["peak_mb"] for s in stages.values())
    print(f"{'pipeline':<16}{total:>10.3f}{rows / total:>14,.0f}{peak:>10,.0f}{total / limit_s:>10.1f}")
    print(f"{'duckdb limit':<16}{limit_s:>10.3f}{rows / limit_s:>14,.0f}{'':>10}{1:>10.1f}")
    if incremental_s is not None:
        print(
            f"nightly incremental run after one day ({changed:,} corrected records): {incremental_s:.2f} s "
            "(library steps, no Prefect server)"
        )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "scale": name,
                    "rows": rows,
                    "stages": stages,
                    "pipeline_s": total,
                    "limit_s": limit_s,
                    "ratio": total / limit_s,
                    "peak_mb": peak,
                    "imports_s": imports_s,
                    "gx_import_s": gx_import_s,
                    "incremental_s": incremental_s,
                    "incremental_records": changed,
                    "generate_s": generate_s,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
