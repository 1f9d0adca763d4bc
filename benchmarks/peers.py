"""The project against a peer on the same landed pages: dlt's best configuration.

    python -m benchmarks.peers [--scale county|province|province2x|national] [--rounds 3]

Both start from the same landed JSON export pages (enforcement and mediation, landed once per
round, untimed) and an empty database, and end with every record in a table, keyed and
de-duplicated (the latest 更新时间 of an id wins):
- **the project**: its own steps (warehouse/pipeline.py): the warehouse prepared, each source parsed
  (one SQL statement: identifiers hashed, personal fields dropped), validated (Great
  Expectations, imported and its suites built once before the rounds) and loaded (raw, staging,
  core with history, quarantine, the audit trail). The headline is parse + load (prepare
  included): dlt validates nothing; the time with validation is printed beside it.
- **dlt** (the `[bench]` extra, never a runtime dependency), as its documentation recommends for
  speed: one resource per source yielding whole pages (not records), write disposition `merge`
  (its default `delete-insert` strategy) with the record id as primary key and `dedup_sort` on
  更新时间, Parquet loader files, a DuckDB file as destination; its `duck_case` naming
  convention (the default snake_case makes every Chinese field name `x`), telemetry off. It
  loads the records as delivered, personal fields included, lists as child tables. Normalising
  in worker processes (dlt's NORMALIZE__WORKERS, from the environment like all its settings) was
  no faster on two cores (docs/performance.md): dlt's default, the main process, is measured.

Rounds are interleaved, the first side alternating (project then dlt, dlt then project, ...);
printed: each side's median seconds, the peak resident memory of the process tree while it ran
(one process: a side's peak includes what the process still holds), the records each received,
the median of the per-round ratios (dlt / project) and the load average at each round's start.
Without dlt installed it says how to install it and exits 2.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")  # dlt's anonymous telemetry: off (offline)
# dlt's default snake_case names are ASCII (every Chinese field name becomes `x`); duck_case keeps
# them, as its DuckDB documentation advises for such names
os.environ.setdefault("SCHEMA__NAMING", "duck_case")
os.environ.setdefault("RUNTIME__LOG_LEVEL", "ERROR")  # not dlt's notes on columns without data
from benchmarks import HMAC_KEY

os.environ.setdefault("FAZHI_HMAC_KEY", HMAC_KEY)
from warehouse.env import quiet_environment

quiet_environment()

SOURCES = ("enforcement", "mediation")
INSTALL = 'pip install -c constraints.txt -e ".[bench]"'


def land(sample: Path, home: Path) -> tuple[object, list]:
    """A fresh home whose enforcement and mediation pages are landed (the other sources are not
    configured): the settings and the landed batches."""
    from warehouse import pipeline
    from warehouse.config import load_settings, write_demo_config

    (home / "sample").symlink_to(sample.resolve())
    write_demo_config(home)
    settings = load_settings(home)
    settings = replace(settings, sources={name: s for name, s in settings.sources.items() if name in SOURCES})
    pipeline.prepare_warehouse(settings)
    batches = [pipeline.land_source(settings, s) for s in settings.sources.values()]
    return settings, [b for b in batches if b is not None]


def project(settings, batches) -> tuple[dict[str, float], int]:
    """The project's steps over the landed batches into a new warehouse: seconds of `prepare`,
    `parse`, `validate` and `load` (the pipeline's own steps, timed as `python -m benchmarks`
    times them), and the records received (loaded or quarantined)."""
    from benchmarks.__main__ import Stages, parse_and_validate
    from warehouse import pipeline

    for path in (settings.work_db, settings.work_db.with_name(settings.work_db.name + ".wal")):
        path.unlink(missing_ok=True)  # landing wrote nothing there that the load needs: a new warehouse
    stages = Stages()
    stages.run("prepare", pipeline.prepare_warehouse, settings)
    received = 0
    for batch in batches:
        prepared = parse_and_validate(stages, settings, batch)
        received += stages.run("load", pipeline.load_prepared, settings, prepared, "peers").received_rows
    return {name: s["seconds"] for name, s in stages.data.items()}, received


def dlt_load(batches, directory: Path) -> int:
    """dlt's best configuration (module docstring) over the same landed pages; returns the
    records in its two top-level tables."""
    import dlt
    from dlt.common import json

    from warehouse.sources.registry import load_mappings

    def resource(batch):
        (mapping,) = load_mappings()[batch.source].values()
        by_name = {c.name: c for c in mapping.columns}
        paths = [f.path for f in batch.files]

        def pages():
            for path in paths:
                yield json.loadb(path.read_bytes())["records"]  # a page at a time, as dlt recommends

        return dlt.resource(
            pages,
            name=mapping.table,
            write_disposition="merge",
            primary_key=by_name[mapping.key[0]].fields[0],
            columns={by_name["source_modified_at"].fields[0]: {"dedup_sort": "desc"}},
        )

    db = directory / "dlt.duckdb"
    pipe = dlt.pipeline(
        pipeline_name="fazhi_peers",
        pipelines_dir=str(directory / "pipelines"),
        destination=dlt.destinations.duckdb(str(db)),
        dataset_name="peers",
    )
    pipe.run([resource(b) for b in batches], loader_file_format="parquet")
    with pipe.sql_client() as client:
        return sum(
            client.execute_sql(f"select count(*) from {client.make_qualified_table_name(t)}")[0][0]
            for t in ("enforcement_act", "mediation_case")
        )


def main() -> None:
    import benchmarks.__main__ as benchmarks_main
    from benchmarks.__main__ import SCALES, TreeMemory, sample_dir

    ap = argparse.ArgumentParser(prog="python -m benchmarks.peers")
    ap.add_argument("--scale", choices=SCALES, default="county")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    try:
        import dlt
    except ImportError:
        print(f"benchmarks.peers needs dlt, an optional extra: {INSTALL}", file=sys.stderr)
        raise SystemExit(2) from None

    sample, _ = sample_dir(args.scale)
    benchmarks_main.MEMORY = memory = TreeMemory()
    from expectations.validate import warm_up

    warm_up()  # Great Expectations imported and its suites built once, before the rounds
    times: dict[str, list[float]] = {"project": [], "project+validate": [], "dlt": []}
    peaks = {"project": 0.0, "dlt": 0.0}
    records: dict[str, int] = {}
    loads = []
    for i in range(args.rounds):
        loads.append(os.getloadavg()[0])
        home = Path(tempfile.mkdtemp(prefix="fazhi-peers-"))
        try:
            settings, batches = land(sample, home)
            for side in ("project", "dlt") if i % 2 == 0 else ("dlt", "project"):
                memory.reset()
                t = time.perf_counter()
                if side == "project":
                    seconds, records[side] = project(settings, batches)
                    times["project"].append(seconds["prepare"] + seconds["parse"] + seconds["load"])
                    times["project+validate"].append(sum(seconds.values()))
                else:
                    records[side] = dlt_load(batches, home / "dlt")
                    times[side].append(time.perf_counter() - t)
                peaks[side] = max(peaks[side], memory.peak())
                print(f"  round {i + 1}: {side} {times[side][-1]:.1f} s", file=sys.stderr, flush=True)
        finally:
            shutil.rmtree(home, ignore_errors=True)

    print(
        f"{args.scale}: JSON pages of enforcement and mediation, {args.rounds} round(s), dlt {dlt.__version__}; "
        f"load average at each round's start: {', '.join(f'{x:.1f}' for x in loads)}"
    )
    print(f"{'':<28}{'seconds':>10}{'peak MB':>10}{'records':>12}  (median; per round)")
    labels = {
        "project": "project: parse + load",
        "project+validate": "project: parse+validate+load",
        "dlt": "dlt",
    }
    for side, label in labels.items():
        per_round = ", ".join(f"{s:.2f}" for s in times[side])
        peak = peaks["dlt" if side == "dlt" else "project"]
        count = records["dlt" if side == "dlt" else "project"]
        print(f"{label:<28}{statistics.median(times[side]):>10.2f}{peak:>10,.0f}{count:>12,}  ({per_round})")
    for side in ("project", "project+validate"):
        ratios = [d / p for d, p in zip(times["dlt"], times[side], strict=True)]
        print(
            f"dlt / {labels[side]}: {statistics.median(ratios):.2f} (median of rounds; per round "
            + ", ".join(f"{r:.2f}" for r in ratios)
            + ")"
        )


if __name__ == "__main__":
    main()
