"""The province-level flow: roll the counties' published Parquet partitions up to the region.

Each county runs its own nightly flow (on its own worker, anywhere the files can be shared);
this flow only reads their `published/parquet/` folders, so it never waits for a county's lock.
"""

from __future__ import annotations

from pathlib import Path

from warehouse.env import quiet_environment

quiet_environment()

from prefect import flow, get_run_logger  # noqa: E402

from warehouse.province import roll_up  # noqa: E402


@flow(name="province-rollup", log_prints=False)
def province_rollup(county_published_dirs: list[str], out_db: str, region_code: str) -> int:
    rows = roll_up([Path(d) for d in county_published_dirs], Path(out_db), region_code)
    get_run_logger().info("rolled up %d counties into %s (%d rows)", len(county_published_dirs), out_db, rows)
    return rows
