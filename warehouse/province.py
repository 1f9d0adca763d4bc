"""Beyond one county: roll the counties' published Parquet partitions up to a province.

Every county run publishes `published/parquet/` (warehouse/parquet_export.py), whose
`mart.indicator_evidence.parquet` holds each record counted in each figure. A province-level
run reads those files with DuckDB (no county database is opened or locked) as the views
counties.indicator_evidence and counties.indicator_catalogue, and builds the declared model
models/region/region_indicator_value.sql from them into its own DuckDB file.

A region's counties must be distinct: the same folder or the same county given twice, or a
township claimed by two counties, would count records twice; such a roll-up is refused
(RollupRefused) before anything is written. So is a partition that is damaged or lacks a column
the roll-up reads, a region code that is not a division code or is a county's own, and an output
inside a county's published folder (check_rollup). The region's file is built beside the output
and moved into place when complete; a failed roll-up leaves nothing behind.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import duckdb

from warehouse import dag
from warehouse.db import connect
from warehouse.errors import BadInput
from warehouse.publish import STORAGE_VERSION

REGION_MODELS = dag.MODELS_DIR / "region"
# What the region's models read of each county partition: the views counties.* hold only these
# columns, read by name, so a county published by another version of fazhi, with columns more or
# in another order, rolls up; one lacking any of them is refused by name (check_counties).
ROLLED_UP = {
    "mart.indicator_evidence": (
        "year",
        "county_code",
        "indicator_code",
        "numerator",
        "denominator",
        "measure",
        "qualifier",
    ),
    "mart.indicator_catalogue": ("indicator_code", "kind", "source"),
}


class RollupRefused(BadInput, ValueError):
    """The counties given cannot be rolled up together; the message names them."""


def county_partition(published_dir: Path, table: str) -> Path:
    """The partition's file behind the `parquet` link, resolved now: a county publishing during
    the roll-up switches the link, but the folder resolved here stays until its next publish."""
    path = Path(published_dir) / "parquet" / f"{table}.parquet"
    if not path.exists():
        raise RollupRefused(f"没有县级分区 {path} / no county partition at {path}: run the county first")
    return path.resolve()


def roll_up(county_published_dirs: list[Path], out_db: Path, region_code: str) -> int:
    """Write mart.region_indicator_value (counties and the region) into out_db; returns rows."""
    check_rollup(county_published_dirs, out_db, region_code)
    evidence = [str(county_partition(d, "mart.indicator_evidence")) for d in county_published_dirs]
    catalogue = str(county_partition(county_published_dirs[0], "mart.indicator_catalogue"))
    out_db.parent.mkdir(parents=True, exist_ok=True)
    building = out_db.with_name(f".{out_db.name}.building-{os.getpid()}")
    building.unlink(missing_ok=True)
    spill = building.with_name(f"{building.name}.tmp")  # a region's evidence can exceed the memory cap
    con = connect(Path(":memory:"), spill_to=spill)
    try:
        # the storage version of the published database: the DuckDB 1.4+ tools analysts use open it
        con.execute(f"attach {_literal(str(building))} as region (storage_version '{STORAGE_VERSION}')")
        con.execute("use region")
        con.execute("create schema mart")
        con.execute("create schema counties")  # the models' inputs, dropped once they are built
        for table, files in (("indicator_evidence", evidence), ("indicator_catalogue", [catalogue])):
            columns = ", ".join(f'"{c}"' for c in ROLLED_UP[f"mart.{table}"])
            paths = "[" + ", ".join(_literal(p) for p in files) + "]"
            con.execute(
                f"create view counties.{table} as select {columns} from read_parquet({paths}, union_by_name = true)"
            )
        dag.build(con, dag.load_models(REGION_MODELS), {"region_code": region_code})
        con.execute("drop schema counties cascade")
        rows = con.execute("select count(*) from mart.region_indicator_value").fetchone()[0]
        con.execute("use memory")
        con.execute("detach region")
    except BaseException:  # a failed roll-up leaves nothing beside out_db (an earlier out_db stays)
        con.close()
        for partial in (building, building.with_name(f"{building.name}.wal")):
            partial.unlink(missing_ok=True)
        raise
    finally:
        con.close()
        shutil.rmtree(spill, ignore_errors=True)
    os.replace(building, out_db)
    return rows


def check_rollup(county_published_dirs: list[Path], out_db: Path, region_code: str) -> None:
    """What roll_up refuses before it writes anything: the output (check_out), then the counties
    and the region code (check_counties)."""
    check_out(out_db, county_published_dirs)
    check_counties(county_published_dirs, region_code)


def check_out(out_db: Path, county_published_dirs: list[Path]) -> None:
    """Refuse an output that is a folder, or lies inside a county's published folder (the region's
    file would replace, or sit among, what the county publishes for its analysts)."""
    out = Path(out_db)
    if out.is_dir():
        raise RollupRefused(
            f"--out {out} 是文件夹，请给出区域数据库文件的路径 / --out {out} is a folder: "
            "give the region's database file"
        )
    where = out.parent.resolve() / out.name
    for d in county_published_dirs:
        if where.is_relative_to(Path(d).resolve()):
            raise RollupRefused(
                f"--out {out} 位于县级发布目录 {d} 之内(会覆盖该县的发布) / --out {out} is inside the county's "
                f"published folder {d}: it would overwrite what the county publishes"
            )


def check_counties(county_published_dirs: list[Path], region_code: str) -> None:
    """Refuse a region code that is not a 6-digit division code or is one of the counties' own,
    a folder given twice, a county given twice (two folders of one county code), a township
    claimed by two counties (from each county's published ref.township), and a partition the
    roll-up reads that is not a whole Parquet file."""
    if not re.fullmatch(r"\d{6}", region_code):
        raise RollupRefused(
            f"区域代码须为6位行政区划代码(如 350000、350400) / the region code must be a 6-digit division code "
            f"(e.g. 350000, 350400): {region_code!r}"
        )
    first: dict[Path, Path] = {}
    for d in county_published_dirs:
        real = Path(d).resolve()
        if real in first:
            raise RollupRefused(f"同一县级目录给了两次 / the same county folder is given twice: {first[real]}, {d}")
        first[real] = Path(d)
    files = {str(county_partition(d, "ref.township")): str(d) for d in county_published_dirs}
    con = duckdb.connect()
    try:
        for path in files:
            _check_partition(con, Path(path), ("code", "county_code", "county_name"))
        rows = con.execute(
            "select distinct filename, county_code, county_name, code from read_parquet($files, filename = true)",
            {"files": list(files)},
        ).fetchall()
        _refuse_shared(rows, files)
        if region_code in {county for _, county, _, _ in rows}:
            raise RollupRefused(
                f"区域代码 {region_code} 是所汇总的县(市)之一，请给出区域本身的代码 / the region code {region_code} "
                "is one of the counties rolled up: give the region's own code"
            )
        for d in county_published_dirs:
            for table, columns in ROLLED_UP.items():
                _check_partition(con, county_partition(d, table), columns)
    finally:
        con.close()


def _refuse_shared(rows: list[tuple], files: dict[str, str]) -> None:
    """Refuse a county given twice and a township claimed by two counties, from the counties'
    ref.township rows (filename, county code and name, township code)."""
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


def _check_partition(con: duckdb.DuckDBPyConnection, path: Path, columns: tuple[str, ...] = ()) -> None:
    """Refuse a partition that is not a whole Parquet file (damaged, cut short in a copy, or
    replaced by something else: its footer and schema must be readable), or lacks a column the
    roll-up reads."""
    try:
        names = {r[0] for r in con.execute("select name from parquet_schema(?)", [str(path)]).fetchall()}
    except duckdb.Error as exc:
        first = (str(exc).strip().splitlines() or [""])[0]
        raise RollupRefused(
            f"县级分区 {path} 不是完整的Parquet文件(损坏或未复制完) / the county partition {path} is not a "
            f"complete Parquet file (damaged or cut short): {first}"
        ) from None
    missing = ", ".join(c for c in columns if c not in names)
    if missing:
        raise RollupRefused(
            f"县级分区 {path} 缺少列 {missing}(由其他版本的 fazhi 发布？请用当前版本重新运行该县) / the county "
            f"partition {path} lacks column(s) {missing} (published by another version of fazhi? run the county "
            "again with this one)"
        )


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
