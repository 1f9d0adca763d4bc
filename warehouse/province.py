"""Beyond one county: roll the counties' published Parquet partitions up to a province.

Every county run publishes `published/parquet/` (warehouse/parquet_export.py), whose
`mart.indicator_evidence.parquet` holds each record counted in each figure. A province-level
run reads those files with DuckDB (no county database is opened or locked) as the views
counties.indicator_evidence and counties.indicator_catalogue, and builds the declared model
models/region/region_indicator_value.sql from them into its own DuckDB file.

A region's counties must be distinct: the same folder or the same county given twice, or a
township claimed by two counties, would count records twice; such a roll-up is refused
(RollupRefused) before anything is written.
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb

from warehouse import dag
from warehouse.db import connect
from warehouse.publish import STORAGE_VERSION

REGION_MODELS = dag.MODELS_DIR / "region"


class RollupRefused(ValueError):
    """The counties given cannot be rolled up together; the message names them."""


def county_partition(published_dir: Path, table: str) -> Path:
    """The partition's file behind the `parquet` link, resolved now: a county publishing during
    the roll-up switches the link, but the folder resolved here stays until its next publish."""
    path = Path(published_dir) / "parquet" / f"{table}.parquet"
    if not path.exists():
        raise FileNotFoundError(f"没有县级分区 {path} / no county partition at {path}: run the county first")
    return path.resolve()


def roll_up(county_published_dirs: list[Path], out_db: Path, region_code: str) -> int:
    """Write mart.region_indicator_value (counties and the region) into out_db; returns rows."""
    check_counties(county_published_dirs)
    evidence = [str(county_partition(d, "mart.indicator_evidence")) for d in county_published_dirs]
    catalogue = str(county_partition(county_published_dirs[0], "mart.indicator_catalogue"))
    building = out_db.with_name(f".{out_db.name}.building-{os.getpid()}")
    building.unlink(missing_ok=True)
    con = connect(Path(":memory:"))
    try:
        # the storage version of the published database: the DuckDB 1.4+ tools analysts use open it
        con.execute(f"attach {_literal(str(building))} as region (storage_version '{STORAGE_VERSION}')")
        con.execute("use region")
        con.execute("create schema mart")
        files = "[" + ", ".join(_literal(p) for p in evidence) + "]"
        con.execute("create schema counties")  # the models' inputs, dropped once they are built
        con.execute(f"create view counties.indicator_evidence as select * from read_parquet({files})")
        con.execute(f"create view counties.indicator_catalogue as select * from read_parquet({_literal(catalogue)})")
        dag.build(con, dag.load_models(REGION_MODELS), {"region_code": region_code})
        con.execute("drop schema counties cascade")
        rows = con.execute("select count(*) from mart.region_indicator_value").fetchone()[0]
        con.execute("use memory")
        con.execute("detach region")
    finally:
        con.close()
    os.replace(building, out_db)
    return rows


def check_counties(county_published_dirs: list[Path]) -> None:
    """Refuse a folder given twice, a county given twice (two folders of one county code), and a
    township claimed by two counties (from each county's published ref.township)."""
    first: dict[Path, Path] = {}
    for d in county_published_dirs:
        real = Path(d).resolve()
        if real in first:
            raise RollupRefused(f"同一县级目录给了两次 / the same county folder is given twice: {first[real]}, {d}")
        first[real] = Path(d)
    files = {str(county_partition(d, "ref.township")): str(d) for d in county_published_dirs}
    con = duckdb.connect()
    try:
        rows = con.execute(
            "select distinct filename, county_code, county_name, code from read_parquet($files, filename = true)",
            {"files": list(files)},
        ).fetchall()
    finally:
        con.close()
    folders: dict[str, set[str]] = {}
    claims: dict[str, set[str]] = {}
    names: dict[str, str] = {}
    for filename, county, county_name, township in rows:
        folders.setdefault(county, set()).add(files[filename])
        claims.setdefault(township, set()).add(county)
        names[county] = county_name
    for county, where in sorted(folders.items()):
        if len(where) > 1:
            raise RollupRefused(
                f"县(市) {county} {names[county]} 给了两次 / county {county} is given twice: {', '.join(sorted(where))}"
            )
    shared = {t: c for t, c in sorted(claims.items()) if len(c) > 1}
    if shared:
        listed = "; ".join(f"{t}: {', '.join(sorted(c))}" for t, c in list(shared.items())[:10])
        raise RollupRefused(
            f"{len(shared)} 个乡镇同时属于两个县(市) / {len(shared)} township(s) claimed by two counties: {listed}"
        )


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
