"""Compute the annual indicator set: load the catalogue and the working-day calendar into ref,
then build the declared models of models/marts/ (warehouse/dag.py derives their order)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import duckdb
import pandas as pd
import yaml

from warehouse import dag
from warehouse.calendar import covered_years, workday_frame
from warehouse.db import rollback
from warehouse.sources import registry
from warehouse.sources.fields import YAML_LOADER

CATALOGUE_FILE = Path(__file__).with_name("indicator_catalogue.yaml")
MARTS_DIR = dag.MODELS_DIR / "marts"
log = logging.getLogger("fazhi")
FAR_FUTURE = datetime(9999, 12, 31)


def catalogue_frame() -> pd.DataFrame:
    rows = yaml.load(CATALOGUE_FILE.read_text(encoding="utf-8"), Loader=YAML_LOADER)
    df = pd.DataFrame(rows).rename(columns={"code": "indicator_code"})
    for col in ("target_value", "target_amber_margin", "target_source"):
        if col not in df:
            df[col] = None
    df["sort_order"] = range(1, len(df) + 1)
    return df


def load_townships(con: duckdb.DuckDBPyConnection, townships_csv: Path) -> int:
    """Replace ref.township with the county's township list (code,name,kind,county_code,county_name,
    checked by warehouse/townships.py)."""
    from warehouse.townships import read_townships

    df = read_townships(townships_csv)
    con.register("townships", df)
    con.execute("begin transaction")
    con.execute("delete from ref.township")
    con.execute(
        "insert into ref.township select code, name, kind, county_code, county_name from townships order by code"
    )
    con.execute("commit")
    con.unregister("townships")
    return len(df)


def data_years(con: duckdb.DuckDBPyConnection) -> tuple[int | None, int | None]:
    """The first and last year any record counts in (each source table's `year`, registry.py)."""
    years = " union all ".join(f"select {t.year} as y from core.{t.name}" for _, t in registry.tables() if t.year)
    return con.execute(f"select min(y), max(y) from ({years}) where y is not null").fetchone()


def compute_indicators(
    con: duckdb.DuckDBPyConnection,
    *,
    first_year: int,
    required_training_hours: float = 60.0,
    as_of: datetime | None = None,
    last_year: int | None = None,
    extra_models: Sequence[Path] = (),
) -> int:
    """Rebuild the marts (mart.indicator_value, mart.indicator_evidence, mart.indicator_catalogue)
    from models/marts/, the evidence models of sources registered from outside the package
    (registry.py) and `extra_models` (files or folders: models tagged `evidence` join the union);
    returns the number of indicator values."""
    lo, hi = data_years(con)
    last = last_year or hi or first_year
    # the next year too, for decisions published early in January; only the years the installed
    # holiday calendar covers: ENF08 of a year it cannot judge is `calendar_not_covered`, the
    # other figures are computed (the calendar never stops the county)
    covered_first, covered_last = covered_years()
    workdays = workday_frame(max(min(first_year, lo or first_year), covered_first), min(last + 1, covered_last))
    catalogue = catalogue_frame()
    models = dag.load_models(MARTS_DIR, *registry.evidence_files(outside=MARTS_DIR), *extra_models)
    params = {
        "as_of": as_of or FAR_FUTURE,
        "required_hours": required_training_hours,
        "first_year": first_year,
        "last_year": last,
    }
    con.execute("begin transaction")
    try:
        con.register("catalogue", catalogue)
        con.execute("delete from ref.indicator_catalogue")
        con.execute("insert into ref.indicator_catalogue by name select * from catalogue")
        con.register("workdays", workdays)
        con.execute("delete from ref.workday")
        con.execute("insert into ref.workday select day, is_workday, workday_seq from workdays")
        dag.build(con, models, params)
        con.execute("commit")
    except Exception:
        rollback(con)
        raise
    finally:
        for name in ("catalogue", "workdays"):
            with contextlib.suppress(Exception):
                con.unregister(name)
    uncovered = [
        y for (y,) in con.execute(
            "select distinct year from mart.indicator_value where status = 'calendar_not_covered' order by year"
        ).fetchall()
    ]  # fmt: skip
    if uncovered:
        log.warning(
            "节假日日历不覆盖 %s 年部分处罚决定的公示期限，ENF08 未计算；请升级 chinese-calendar / "
            "the holiday calendar (chinese-calendar, covering %d-%d) cannot judge ENF08 for %s: "
            "status calendar_not_covered, the other figures are computed; upgrade chinese-calendar",
            "、".join(map(str, uncovered)),
            covered_first,
            covered_last,
            ", ".join(map(str, uncovered)),
        )
    return con.execute("select count(*) from mart.indicator_value").fetchone()[0]
