"""Beyond one county: roll the counties' published Parquet partitions up to a province.

Every county run publishes `published/parquet/` (warehouse/parquet_export.py), whose
`mart.indicator_evidence.parquet` holds each record counted in each figure. A province-level
run reads those files with DuckDB (no county database is opened or locked) and aggregates them
with models/marts/province_indicator_value.sql into its own DuckDB file.
"""

from __future__ import annotations

import os
from pathlib import Path

from warehouse.db import connect, sql


def county_partition(published_dir: Path, table: str) -> Path:
    """The partition's file behind the `parquet` link, resolved now: a county publishing during
    the roll-up switches the link, but the folder resolved here stays until its next publish."""
    path = Path(published_dir) / "parquet" / f"{table}.parquet"
    if not path.exists():
        raise FileNotFoundError(f"没有县级分区 {path} / no county partition at {path}: run the county first")
    return path.resolve()


def roll_up(county_published_dirs: list[Path], out_db: Path, region_code: str) -> int:
    """Write mart.region_indicator_value (counties and the region) into out_db; returns rows."""
    evidence = [str(county_partition(d, "mart.indicator_evidence")) for d in county_published_dirs]
    catalogue = str(county_partition(county_published_dirs[0], "mart.indicator_catalogue"))
    building = out_db.with_name(f".{out_db.name}.building-{os.getpid()}")
    building.unlink(missing_ok=True)
    con = connect(building)
    try:
        con.execute("create schema mart")
        files = "[" + ", ".join(_literal(p) for p in evidence) + "]"
        con.execute(f"create view evidence as select * from read_parquet({files})")
        con.execute(f"create view catalogue as select * from read_parquet({_literal(catalogue)})")
        con.execute(
            f"create table mart.region_indicator_value as {sql('models/marts/province_indicator_value.sql')}",
            {"region_code": region_code},
        )
        con.execute("drop view evidence")
        con.execute("drop view catalogue")
        rows = con.execute("select count(*) from mart.region_indicator_value").fetchone()[0]
    finally:
        con.close()
    os.replace(building, out_db)
    return rows


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
