"""Time each pipeline stage on the sample and compare the whole with the physical limit.

The physical limit is DuckDB alone reading the same landed files into a table in the same
process (JSON pages with read_json; spreadsheets with calamine, since DuckDB needs a
downloaded extension for xlsx). Interpreter start and imports are reported separately.

    python -m benchmarks [--townships FILE] [--seed N] [--json OUT]
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

T0 = time.perf_counter()
os.environ.setdefault("FAZHI_HMAC_KEY", "benchmark-key")
from flows.env import quiet_environment  # noqa: E402

quiet_environment()

CACHE = Path(__file__).parent / ".cache"


def timed(results: dict, name: str, fn, *args, **kwargs):
    t = time.perf_counter()
    out = fn(*args, **kwargs)
    results[name] = results.get(name, 0.0) + time.perf_counter() - t
    return out


def duckdb_limit(batches) -> float:
    import duckdb
    from python_calamine import CalamineWorkbook

    t = time.perf_counter()
    con = duckdb.connect()
    for b in batches:
        if b.source in ("enforcement", "mediation"):
            con.execute(
                f"create table {b.source} as select unnest(records) as rec "
                "from read_json($p, columns = {records: 'JSON[]'})",
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
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks")
    ap.add_argument("--townships", type=Path)
    ap.add_argument("--seed", type=int, default=20231226)
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()

    from flows import pipeline
    from flows.config import load_settings, write_demo_config
    from flows.sample.generate import generate_sample
    from flows.sources import parser_for
    from flows.sources.mapping import load_mappings

    imports_s = time.perf_counter() - T0
    t = time.perf_counter()
    import great_expectations  # noqa: F401  (imported once; reported apart from the stages)

    from expectations.validate import validate_table

    gx_import_s = time.perf_counter() - t

    key = f"{args.townships.stem if args.townships else 'county'}-{args.seed}"
    sample = CACHE / key
    generate_s = None
    if not (sample / "targets.json").exists():
        t = time.perf_counter()
        generate_sample(sample, seed=args.seed, townships_csv=args.townships)
        generate_s = time.perf_counter() - t

    home = Path(tempfile.mkdtemp(prefix="fazhi-bench-"))
    try:
        shutil.copytree(sample, home / "sample")
        write_demo_config(home)
        settings = load_settings(home)
        stages: dict[str, float] = {}
        rows = 0
        timed(stages, "prepare", pipeline.prepare_warehouse, settings)
        batches, prepared_all = [], []
        codes = {"township_codes": pipeline.township_codes(settings)}
        for name, source in settings.sources.items():
            batch = timed(stages, "land", pipeline.land_source, settings, source)
            batches.append(batch)
            frames = timed(stages, "parse", parser_for(name), batch, settings.hmac_key())
            tables = []
            for table, df in frames.items():
                rows += len(df)
                res = timed(stages, "validate", validate_table, table, df, codes)
                tables.append(
                    pipeline.TableLoad(table, df, res.failures, res.results, load_mappings()[name][table].key)
                )
            prepared = pipeline.PreparedBatch(batch, tables, sum(len(t.rows) for t in tables))
            prepared_all.append(prepared)
            timed(stages, "load", pipeline.load_prepared, settings, prepared, "bench")
        timed(stages, "compute", pipeline.compute, settings)
        timed(stages, "audit+publish", pipeline.audit_and_publish, settings)
        limit_s = duckdb_limit(batches)
    finally:
        shutil.rmtree(home, ignore_errors=True)

    total = sum(stages.values())
    print(f"sample: {sample} ({rows:,} source rows)" + (f", generated in {generate_s:.2f} s" if generate_s else ""))
    print(f"imports: {imports_s:.2f} s, Great Expectations import: {gx_import_s:.2f} s (not in the stages)")
    print(f"{'stage':<16}{'seconds':>10}{'rows/s':>14}{'x limit':>10}")
    for name, s in stages.items():
        print(f"{name:<16}{s:>10.3f}{rows / s if s else 0:>14,.0f}{s / limit_s:>10.1f}")
    print(f"{'pipeline':<16}{total:>10.3f}{rows / total:>14,.0f}{total / limit_s:>10.1f}")
    print(f"{'duckdb limit':<16}{limit_s:>10.3f}{rows / limit_s:>14,.0f}{1:>10.1f}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "rows": rows,
                    "stages_s": stages,
                    "pipeline_s": total,
                    "limit_s": limit_s,
                    "ratio": total / limit_s,
                    "imports_s": imports_s,
                    "gx_import_s": gx_import_s,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
