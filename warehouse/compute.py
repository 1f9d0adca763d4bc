"""Compute the annual indicator set into mart.indicator_value (SQL models in models/marts/)."""

from __future__ import annotations

import contextlib
import logging
from datetime import datetime
from pathlib import Path

import duckdb
import pandas as pd
import yaml

from warehouse.calendar import covered_years, workday_frame
from warehouse.db import rollback, sql
from warehouse.sources import registry

CATALOGUE_FILE = Path(__file__).with_name("indicator_catalogue.yaml")
# which township-years delivered their spreadsheets, which figures have records in quarantine:
# read by the evidence models and by indicator_value.sql
STATUS_MODELS = ("source_delivery", "quarantined_figure")
log = logging.getLogger("fazhi")
FAR_FUTURE = datetime(9999, 12, 31)


def catalogue_frame() -> pd.DataFrame:
    rows = yaml.safe_load(CATALOGUE_FILE.read_text(encoding="utf-8"))
    df = pd.DataFrame(rows).rename(columns={"code": "indicator_code"})
    for col in ("target_value", "target_amber_margin", "target_source"):
        if col not in df:
            df[col] = None
    df["sort_order"] = range(1, len(df) + 1)
    return df


def load_townships(con: duckdb.DuckDBPyConnection, townships_csv: Path) -> int:
    """Replace ref.township with the county's township list (code,name,kind,county_code,county_name)."""
    df = pd.read_csv(townships_csv, dtype=str)
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
) -> int:
    """Rebuild mart.indicator_value and mart.indicator_catalogue; returns the number of rows."""
    lo, hi = data_years(con)
    last = last_year or hi or first_year
    # the next year too, for decisions published early in January; only the years the installed
    # holiday calendar covers: ENF08 of a year it cannot judge is `calendar_not_covered`, the
    # other figures are computed (the calendar never stops the county)
    covered_first, covered_last = covered_years()
    workdays = workday_frame(max(min(first_year, lo or first_year), covered_first), min(last + 1, covered_last))
    catalogue = catalogue_frame()
    params = {"as_of": as_of or FAR_FUTURE}
    con.execute("begin transaction")
    try:
        con.register("catalogue", catalogue)
        con.execute("delete from ref.indicator_catalogue")
        con.execute("insert into ref.indicator_catalogue by name select * from catalogue")
        con.register("workdays", workdays)
        con.execute("delete from ref.workday")
        con.execute("insert into ref.workday select day, is_workday, workday_seq from workdays")
        for model in STATUS_MODELS:
            con.execute(f"create or replace temp table {model} as {sql(f'models/marts/{model}.sql')}", params)
        for model in registry.evidence_models():
            model_params = dict(params)
            if model == "evidence_training":
                model_params["required_hours"] = required_training_hours
            con.execute(f"create or replace temp table {model} as {sql(f'models/marts/{model}.sql')}", model_params)
        con.execute(f"create or replace table mart.indicator_evidence as {sql('models/marts/indicator_evidence.sql')}")
        for model in registry.evidence_models():
            con.execute(f"drop table {model}")
        con.execute(
            f"create or replace table mart.indicator_value as {sql('models/marts/indicator_value.sql')}",
            {"first_year": first_year, "last_year": last},
        )
        for model in STATUS_MODELS:
            con.execute(f"drop table {model}")
        con.execute(
            "create or replace table mart.indicator_catalogue as "
            "select * exclude (sort_order) from ref.indicator_catalogue order by sort_order"
        )
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
