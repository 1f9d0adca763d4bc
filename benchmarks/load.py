"""Load N enforcement records into core with history, against a plain CREATE TABLE AS SELECT
of the same parsed Parquet file the load reads.

    python -m benchmarks.load [--records 1000000]

Rows are the sample's parsed enforcement acts replicated with new ids (vectorised). Three loads
are timed: the first (every record new), a replay of the same batch (nothing changes), and a
batch where 10% of the records changed (versions closed and opened).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from datetime import datetime
from pathlib import Path

from benchmarks import HMAC_KEY

os.environ.setdefault("FAZHI_HMAC_KEY", HMAC_KEY)


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.load")
    ap.add_argument("--records", type=int, default=1_000_000)
    args = ap.parse_args()

    import numpy as np
    import pandas as pd

    from benchmarks.__main__ import CACHE
    from expectations.validate import validate_table
    from warehouse.db import connect, migrate
    from warehouse.demo.sample.generate import generate_sample
    from warehouse.load import BatchInfo, TableLoad, load_batch
    from warehouse.sources.json_pages import parse_pages
    from warehouse.sources.landing import LandedBatch, LandedFile

    sample = CACHE / "county-20231226"
    if not (sample / "targets.json").exists():
        generate_sample(sample)
    pages = sorted((sample / "enforcement").glob("*.json"))
    batch = LandedBatch("enforcement", "b", sample, [LandedFile(p.name, p, "", 0) for p in pages], "")
    base = parse_pages(batch, b"k")["enforcement_act"]
    codes = pd.read_csv(sample / "townships.csv", dtype=str)["code"].tolist()
    bad = validate_table("enforcement_act", base, {"township_codes": codes}).failing_rows
    base = base.drop(index=sorted(bad)).reset_index(drop=True)  # the sample's faulty rows
    reps = -(-args.records // len(base))
    df = pd.concat([base] * reps, ignore_index=True).iloc[: args.records].copy()
    df["act_id"] = df["act_id"] + "-" + (np.arange(len(df)) // len(base)).astype(str)
    df["_row_number"] = np.arange(len(df), dtype="int32")
    no_failures = pd.DataFrame(columns=["_row", "rule", "message_zh", "message_en"])

    with tempfile.TemporaryDirectory() as tmp:
        con = connect(Path(tmp) / "bench.duckdb", warehouse=True)  # capped as the working database
        migrate(con)

        def parquet(frame, name):  # the parsed-table form the load reads (warehouse/sources/parsed.py)
            path = Path(tmp) / f"{name}.parquet"
            con.register("frame", frame)
            con.execute(f"copy frame to '{path}' (format parquet)")  # a row's `_row` is its position
            con.unregister("frame")
            return path

        df_path = parquet(df, "df")
        t = time.perf_counter()
        con.execute("create table plain as select * from read_parquet(?)", [str(df_path)])
        ctas_s = time.perf_counter() - t

        def load(path, batch_id):
            info = BatchInfo(
                batch_id,
                "enforcement",
                "bench",
                datetime.now().isoformat(),
                [{"name": batch_id, "bytes": 0, "sha256": batch_id}],
            )
            t = time.perf_counter()
            out = load_batch(
                con,
                info,
                [TableLoad("enforcement_act", path, args.records, no_failures, None, ("act_id",))],
                datetime.now(),
            )
            return time.perf_counter() - t, out.core_rows_inserted

        first_s, first_n = load(df_path, "b1")
        replay_s, replay_n = load(df_path, "b2")
        changed = df.copy()
        pick = np.arange(len(changed)) % 10 == 0
        changed.loc[pick, "source_modified_at"] = "2025-01-01 00:00:00"
        changed_s, changed_n = load(parquet(changed, "changed"), "b3")
        con.close()

    print(f"{args.records:,} enforcement records; CTAS {ctas_s:.2f} s")
    print(f"{'load':<26}{'seconds':>9}{'rows/s':>12}{'x CTAS':>8}{'versions opened':>17}")
    for name, s, n in (
        ("first load", first_s, first_n),
        ("replay (no change)", replay_s, replay_n),
        ("10% changed", changed_s, changed_n),
    ):
        print(f"{name:<26}{s:>9.2f}{args.records / s:>12,.0f}{s / ctas_s:>8.1f}{n:>17,}")


if __name__ == "__main__":
    main()
