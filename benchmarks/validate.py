"""Validation at scale: the full enforcement suite over N records vs DuckDB reading the same rows.

    python -m benchmarks.validate [--rows 1000000] [--bad-fraction 0.01]

Builds N parsed enforcement rows by replicating the mini county's valid rows (vectorised, each
with its own act_id), breaks a fraction of them (bad township codes, so the quarantine path is
exercised), writes them once as JSON lines and Parquet, then times:
- DuckDB reading the JSON (the physical limit: the exports are JSON) and the Parquet file;
- expectations.validate.validate_table on the frame (every expectation of the suite, GX engine).
Prints times, the ratio validation / DuckDB JSON read, and peak memory. Not a test: times vary.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
import warnings
from pathlib import Path

from benchmarks import HMAC_KEY

os.environ.setdefault("FAZHI_HMAC_KEY", HMAC_KEY)
from warehouse.env import quiet_environment

quiet_environment()


def _base_rows():
    from tests.fixtures import mini
    from warehouse.sources.landing import delivered_files, land
    from warehouse.sources.parse import parser_for

    root = Path(tempfile.mkdtemp(prefix="fazhi-bench-"))
    mini.build(root)
    batch = land("enforcement", delivered_files(root / "enforcement", "json_pages"), root / "landing", {})
    df = parser_for("enforcement")(batch, HMAC_KEY.encode())["enforcement_act"]
    return df[~df["act_id"].str.startswith("X")].reset_index(drop=True), [mini.A, mini.B]


def build_frame(rows: int, bad_fraction: float):
    import numpy as np

    base, townships = _base_rows()
    reps = -(-rows // len(base))
    df = base.loc[np.tile(np.arange(len(base)), reps)[:rows]].reset_index(drop=True)
    df["act_id"] = "ZF-" + pd_series_range(rows)
    df["_row_number"] = np.arange(1, rows + 1, dtype="int32")
    df["_source_file"] = (df["_row_number"] // 500).map("page-{:06d}.json".format)
    bad = np.random.default_rng(1).random(rows) < bad_fraction
    df.loc[bad, "township_code"] = "350481999"
    return df, townships, int(bad.sum())


def pd_series_range(n: int):
    import pandas as pd

    return pd.Series(range(n)).astype(str)


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.validate")
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--bad-fraction", type=float, default=0.01)
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    import duckdb

    t = time.perf_counter()
    df, townships, n_bad = build_frame(args.rows, args.bad_fraction)
    build_s = time.perf_counter() - t
    work = Path(tempfile.mkdtemp(prefix="fazhi-bench-"))
    con = duckdb.connect()
    con.register("frame", df)
    con.execute(f"copy frame to '{work / 'acts.json'}' (format json)")
    con.execute(f"copy frame to '{work / 'acts.parquet'}' (format parquet)")
    con.close()

    def duck(sql: str) -> float:
        c = duckdb.connect()
        t0 = time.perf_counter()
        c.execute(sql)
        c.close()
        return time.perf_counter() - t0

    json_s = min(duck(f"create table t as select * from read_json('{work / 'acts.json'}')") for _ in range(2))
    parquet_s = min(duck(f"create table t as select * from read_parquet('{work / 'acts.parquet'}')") for _ in range(2))

    from expectations.validate import validate_table

    validate_table("enforcement_act", df.head(100), {"township_codes": townships})  # GX context, suites: once
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    v = validate_table("enforcement_act", df, {"township_codes": townships})
    validate_s = time.perf_counter() - t
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    quarantined = v.failures["_row"].nunique()
    assert quarantined == n_bad, (quarantined, n_bad)
    print(f"rows {args.rows:,}  expectations {len(v.results)}  quarantined {quarantined:,} (expected {n_bad:,})")
    print(f"build frame           {build_s:8.2f} s")
    print(f"duckdb read JSON      {json_s:8.2f} s   ({(work / 'acts.json').stat().st_size / 1e6:,.0f} MB)")
    print(f"duckdb read Parquet   {parquet_s:8.2f} s")
    print(f"validate (GX, suite)  {validate_s:8.2f} s")
    print(f"ratio validate / duckdb JSON read     {validate_s / json_s:6.1f}x")
    print(f"ratio validate / duckdb Parquet read  {validate_s / parquet_s:6.1f}x")
    print(f"peak RSS {rss1 / 1024:,.0f} MB (before validating {rss0 / 1024:,.0f} MB)")


if __name__ == "__main__":
    main()
