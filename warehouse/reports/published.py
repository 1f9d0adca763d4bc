"""Read one year of the published database for the reports: every township's and the county's
indicator values (current, or a published edition), the catalogue, the townships, open
quarantine counts. Read-only: the pipeline may publish again while a report is written."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import duckdb

from warehouse.errors import BadInput
from warehouse.read.indicators import COLUMNS, fetch_dicts, open_published, whole_numbers

# what `fazhi indicators` reads (county rows of status `incomplete` with missing_townships), and
# the context the reports show beside a figure
VALUE_COLUMNS = (
    *COLUMNS,
    "rank_in_county",
    "previous_value",
    "change_from_previous",
    "target_value",
    "gap_to_target",
    "traffic_light",
)


class ReportInputError(BadInput, ValueError):
    """Bad input for a report (unknown township, year without data, no such edition, a broken
    template): a bilingual message for the user, never a stack trace."""

    def __init__(self, message_zh: str, message_en: str):
        super().__init__(f"{message_zh} / {message_en}")
        self.message_zh, self.message_en = message_zh, message_en


@dataclass
class YearData:
    """One year's published figures, ready for the renderers."""

    year: int
    edition: int | None
    as_of: datetime | None  # batches through (edition) or the latest loaded batch (current)
    county_code: str
    county_name: str
    townships: list[dict]  # code, name, kind; in code order
    catalogue: list[dict]  # the published catalogue, in code order
    values: dict[tuple[str, str], dict]  # (area code, indicator code) -> value row
    history: dict[tuple[int, str, str], dict] = field(default_factory=dict)  # (year, area, code) -> row
    quarantine: dict[str, dict[str, int]] = field(default_factory=dict)  # township -> source -> open rows

    def value(self, area: str, code: str) -> dict | None:
        return self.values.get((area, code))

    @property
    def years(self) -> list[int]:
        return sorted({y for y, _, _ in self.history})

    def township(self, name_or_code: str) -> dict:
        for t in self.townships:
            if name_or_code in (t["code"], t["name"]):
                return t
        known = "、".join(t["name"] for t in self.townships)
        raise ReportInputError(
            f"没有名为或代码为「{name_or_code}」的乡镇（可选：{known}）",
            f"no township named or coded {name_or_code!r} in the published database",
        )


def read_year(published: Path, year: int, edition: int | None = None, history: bool = True) -> YearData:
    """The year's figures (nightly values, or edition `edition`), with every year's values for
    trends when `history`. Raises ReportInputError for a year or edition that was not published."""
    con = open_published(Path(published))
    try:
        return read_year_from(con, year, edition, history)
    finally:
        con.close()


def read_year_from(
    con: duckdb.DuckDBPyConnection, year: int, edition: int | None = None, history: bool = True
) -> YearData:
    """read_year on an open connection to the published database (the dashboards read every year
    through one)."""
    if edition is None:
        table, where, params = "mart.indicator_value", "year = ?", [year]
        as_of = con.execute("select max(loaded_at) from audit.batch where status = 'loaded'").fetchone()[0]
    else:
        editions = [
            r[0]
            for r in con.execute(
                "select edition from mart.indicator_edition where year = ? order by edition", [year]
            ).fetchall()
        ]
        if edition not in editions:
            have = ", ".join(map(str, editions))
            raise ReportInputError(
                f"{year} 年没有第 {edition} 版（已发布的版本：{have or '无'}）",
                f"{year} has no edition {edition} (published editions: {have or 'none'})",
            )
        table, where, params = "mart.indicator_edition_value", "year = ? and edition = ?", [year, edition]
        as_of = con.execute(
            "select batches_through from mart.indicator_edition where year = ? and edition = ?", [year, edition]
        ).fetchone()[0]
    rows = fetch_dicts(
        con,
        f"select {', '.join(VALUE_COLUMNS)} from {table} where {where} order by township_code, indicator_code",
        params,
    )
    if not rows:
        have = ", ".join(
            str(r[0]) for r in con.execute("select distinct year from mart.indicator_value order by 1").fetchall()
        )
        raise ReportInputError(
            f"分析库中没有 {year} 年的指标（有数据的年份：{have or '无'}）",
            f"no indicators for {year} in the published database (years with data: {have or 'none'})",
        )
    all_years = []
    if history:
        all_years = fetch_dicts(
            con,
            f"select {', '.join(VALUE_COLUMNS)} from mart.indicator_value order by year, township_code, indicator_code",
        )
    catalogue = fetch_dicts(con, "select * from mart.indicator_catalogue order by indicator_code")
    townships = fetch_dicts(con, "select code, name, kind, county_code, county_name from ref.township order by code")
    quarantine: dict[str, dict[str, int]] = {}
    for code, source, n in con.execute(
        "select coalesce(township_code, ''), source, count(*) from audit.quarantine "
        "where resolved_at is null group by all order by all"
    ).fetchall():
        quarantine.setdefault(code, {})[source] = n
    county = next((r for r in rows if r["area_level"] == "county"), None) or {}
    county_code = county.get("township_code") or (townships[0]["county_code"] if townships else "")
    county_name = county.get("township_name") or (townships[0]["county_name"] if townships else "")
    return YearData(
        year=year,
        edition=edition,
        as_of=as_of,
        county_code=county_code,
        county_name=county_name,
        townships=[t for t in townships if t["county_code"] == county_code] or townships,
        catalogue=catalogue,
        values={(r["township_code"], r["indicator_code"]): whole_numbers(r, exact=True) for r in rows},
        history={(r["year"], r["township_code"], r["indicator_code"]): whole_numbers(r, exact=True) for r in all_years},
        quarantine=quarantine,
    )
