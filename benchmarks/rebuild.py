"""Rebuild one year from the raw layer (the year-end rebuild) at a given scale.

    python -m benchmarks.rebuild --townships FILE [--year 2023]

Generates the sample for the township list (cached), runs the nightly steps once, then times
the rebuild of one year and prints wall time, peak memory and the ratio to DuckDB reading the
same landed JSON rows (the physical limit). A province is ~1,100 townships: make the list by
repeating reference/townships-yongan.csv with new codes.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

from benchmarks import HMAC_KEY

os.environ.setdefault("FAZHI_HMAC_KEY", HMAC_KEY)


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.rebuild")
    ap.add_argument("--townships", type=Path)
    ap.add_argument("--year", type=int, default=2023)
    args = ap.parse_args()

    import duckdb

    from benchmarks.__main__ import CACHE
    from tests.conftest import run_steps
    from warehouse.config import load_settings, write_demo_config
    from warehouse.demo.sample.generate import generate_sample

    sample = CACHE / f"{args.townships.stem if args.townships else 'county'}-20231226"
    if not (sample / "targets.json").exists():
        t = time.perf_counter()
        generate_sample(sample, townships_csv=args.townships)
        print(f"generated {sample} in {time.perf_counter() - t:.1f} s")
    home = Path(tempfile.mkdtemp(prefix="fazhi-rebuild-"))
    try:
        shutil.copytree(sample, home / "sample")
        write_demo_config(home)
        t = time.perf_counter()
        run_steps(home)
        nightly_s = time.perf_counter() - t
        settings = load_settings(home)
        from warehouse import pipeline

        t = time.perf_counter()
        edition = pipeline.rebuild_year(settings, args.year)
        rebuild_s = time.perf_counter() - t
        con = duckdb.connect()
        t = time.perf_counter()
        n = 0
        for source in ("enforcement", "mediation"):
            paths = [str(p) for p in sorted((home / "sample" / source).glob("*.json"))]
            n += con.execute(
                "select count(*) from (select unnest(records) from read_json($p, columns = {records: 'JSON[]'}))",
                {"p": paths},
            ).fetchone()[0]
        limit_s = time.perf_counter() - t
        rows = (
            duckdb.connect(str(settings.work_db), read_only=True)
            .execute("select sum(received_rows) from audit.batch")
            .fetchone()[0]
        )
    finally:
        shutil.rmtree(home, ignore_errors=True)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{rows:,} source rows; nightly (first load) {nightly_s:.1f} s")
    print(f"rebuild {args.year}: edition {edition.edition}, {rebuild_s:.1f} s, peak memory {peak_mb:,.0f} MB")
    print(f"DuckDB reading the {n:,} landed JSON records: {limit_s:.2f} s; rebuild / limit = {rebuild_s / limit_s:.1f}")


if __name__ == "__main__":
    main()
