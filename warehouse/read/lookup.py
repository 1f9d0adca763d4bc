"""Names given on the command line (township, source, year, edition, indicator, fault profile)
checked against the ones that exist: an unknown one is refused naming the valid ones and the
nearest match, instead of an empty answer that looks like "nothing there".

Imports only duckdb: the read-only commands use it and must start fast.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

import duckdb

from warehouse.errors import BadInput

SHOWN = 20  # valid names listed in a message; more are counted


class UnknownName(BadInput, ValueError):
    """A name that does not exist; the message (Chinese, English) lists the valid ones."""


def check(what_zh: str, what_en: str, given, valid: Iterable, within: tuple[str, str] = ("", "")) -> None:
    """Raise UnknownName unless `given` is one of `valid` (compared as text). `within`: where
    (Chinese, English) the name was looked for, e.g. ("2023 年", "of 2023") for an edition."""
    names = sorted({str(v) for v in valid if v is not None}, key=_order)
    if str(given) in names:
        return
    raise UnknownName(unknown_message(what_zh, what_en, str(given), names, within))


def unknown_message(what_zh: str, what_en: str, given: str, names: list[str], within=("", "")) -> str:
    head = f"没有{within[0]}{what_zh} {given} / no {what_en} {given}{' ' + within[1] if within[1] else ''}"
    if not names:
        return f"{head}: 尚无 / there is none yet"
    nearest = difflib.get_close_matches(given, names, n=1, cutoff=0.0)
    listed = ", ".join(names[:SHOWN]) + (f" … ({len(names)})" if len(names) > SHOWN else "")
    hint = f"; 是否指 / did you mean {nearest[0]}?" if nearest else ""
    return f"{head}{hint} 可选 / valid: {listed}"


def _order(name: str):
    return (0, int(name), "") if name.isdigit() else (1, 0, name)


def published_names(con: duckdb.DuckDBPyConnection) -> dict[str, list]:
    """What the published database holds: years, areas (township and county codes and names),
    indicator codes and the editions of each year."""
    years = [r[0] for r in con.execute("select distinct year from mart.indicator_value order by 1").fetchall()]
    areas = con.execute("select distinct township_code, township_name from mart.indicator_value").fetchall()
    indicators = [r[0] for r in con.execute("select indicator_code from mart.indicator_catalogue").fetchall()]
    editions = con.execute("select year, edition from mart.indicator_edition").fetchall()
    return {
        "years": years,
        "areas": [name for pair in areas for name in pair],
        "indicators": indicators,
        "editions": editions,
    }


def check_published(
    con: duckdb.DuckDBPyConnection,
    year: int | None = None,
    township: str | None = None,
    edition: int | None = None,
    indicator: str | None = None,
) -> None:
    """Each name given must exist in the published database (an edition within its year)."""
    names = published_names(con)
    if year is not None:
        check("年度", "year", year, names["years"] + [y for y, _ in names["editions"]])
    if township is not None:
        check("乡镇(街道)或县(市)", "township or county", township, names["areas"])
    if indicator is not None:
        check("指标", "indicator", indicator.upper(), names["indicators"])
    if edition is not None:
        editions = [e for y, e in names["editions"] if y == year]
        check("版本", "edition", edition, editions, within=(f"{year} 年", f"of {year}"))


def check_quarantine_filters(con: duckdb.DuckDBPyConnection, sources: Iterable[str], source, township) -> None:
    """`fazhi quarantine --source/--township`: the home's sources (and any in the audit trail);
    the county's townships by code or name, and any code the quarantined rows carry."""
    if source is not None:
        known = set(sources) | {r[0] for r in con.execute("select distinct source from audit.batch").fetchall()}
        check("数据源", "source", source, known)
    if township is not None:
        rows = con.execute(
            "select code, name from ref.township union select distinct township_code, null from audit.quarantine"
        ).fetchall()
        check("乡镇(街道)", "township", township, [n for pair in rows for n in pair])
