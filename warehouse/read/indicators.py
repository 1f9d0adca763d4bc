"""Read indicator values from the published database and render them (table, JSON, CSV).

Imports only duckdb: `fazhi indicators` must start fast and never load Prefect or GX.
"""

from __future__ import annotations

import csv
import io
import json
import unicodedata
from decimal import Decimal
from pathlib import Path

import duckdb

from warehouse.errors import BadInput, HeldByAnother
from warehouse.formulas import neutralise_row
from warehouse.read.lookup import check_published

COLUMNS = (
    "year",
    "township_code",
    "township_name",
    "area_level",
    "indicator_code",
    "indicator_name_zh",
    "indicator_name_en",
    "value",
    "numerator",
    "denominator",
    "unit",
    "qualifier",
    "status",
    "missing_townships",
    "source_files",
    "kind",
)
# every status in words (docs/indicators.md), shown where a figure has no value
STATUS_WORDS = {
    "no_data": "无数据",
    "missing_source": "未报送",
    "quarantined": "已隔离",
    "calendar_not_covered": "日历未覆盖",
    "incomplete": "缺乡镇",
}


class NotPublished(BadInput, RuntimeError):
    pass


class PublishedBusy(HeldByAnother, RuntimeError):
    """A read-write connection (an analyst's tool opened without read-only) holds the file."""


def open_published(published: Path) -> duckdb.DuckDBPyConnection:
    """The analyst database, read-only (as analysts should open it too: docs/operations.md)."""
    if not published.exists():
        raise NotPublished(
            f"尚未发布分析库 {published} / no published database at {published}: run `fazhi demo` or `fazhi run`"
        )
    try:
        return duckdb.connect(str(published), read_only=True)
    except duckdb.IOException as exc:
        if "lock" not in str(exc).lower():
            raise
        # "... Conflicting lock is held in /usr/bin/python3 (PID 4242) by user x. See also https://…"
        holder = str(exc).partition("Conflicting lock is held in")[2].split(". See also")[0].strip() or "?"
        raise PublishedBusy(
            f"分析库 {published} 正被一个读写连接占用({holder})，请以只读方式打开 / the analyst database is held by "
            f"a read-write connection ({holder}): open it read-only (duckdb -readonly, read_only=True, DBeaver: "
            "read-only connection)"
        ) from None


def fetch_dicts(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> list[dict]:
    """The query's rows as dicts (column name -> value), fetched whole."""
    cur = con.execute(sql, params or [])
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def whole_numbers(row: dict, exact: bool = False) -> dict:
    """A row's numbers as people read them, in place: numerator and denominator as int where
    whole, else float (the DECIMAL kept when `exact`); a count's or an amount's value (and its
    previous value and change, where the row has them) as int where whole."""
    for k in ("numerator", "denominator"):
        v = row.get(k)
        if v is not None:
            row[k] = int(v) if v == int(v) else v if exact and isinstance(v, Decimal) else float(v)
    if row.get("kind") in ("count", "amount"):
        for k in ("value", "previous_value", "change_from_previous"):
            v = row.get(k)
            if v is not None and float(v).is_integer():
                row[k] = int(v)
    return row


def read_values(published: Path, year: int, township: str | None = None, edition: int | None = None) -> list[dict]:
    """The nightly (current) values, or those of a published edition of the year. A year,
    township or edition that is not published is refused (warehouse/read/lookup.py UnknownName)."""
    con = open_published(published)
    try:
        check_published(con, year, township, edition)
        table, where, params = "mart.indicator_value", "year = ?", [year]
        if edition is not None:
            table, where, params = "mart.indicator_edition_value", "year = ? and edition = ?", [year, edition]
        if township:
            where += " and (township_code = ? or township_name = ?)"
            params += [township, township]
        rows = fetch_dicts(
            con,
            f"select {', '.join(COLUMNS)} from {table} where {where} order by year, township_code, indicator_code",
            params,
        )
    finally:
        con.close()
    return [whole_numbers(r) for r in rows]


def read_editions(published: Path, year: int) -> list[dict]:
    con = open_published(published)
    try:
        return fetch_dicts(con, "select * from mart.indicator_edition where year = ? order by edition", [year])
    finally:
        con.close()


def read_evidence(published: Path, year: int, township: str, indicator: str) -> tuple[list[dict], list[dict]]:
    """The value (one row) and the records counted in it; a county code lists all its townships' records."""
    con = open_published(published)
    try:
        check_published(con, indicator=indicator)
        values = read_values(published, year, township)
        values = [v for v in values if v["indicator_code"] == indicator.upper()]
        if not values:
            return [], []
        code = values[0]["township_code"]
        records = fetch_dicts(
            con,
            "select township_code, record_table, record_id, cast(record_date as varchar) as record_date, "
            "numerator, denominator, measure, qualifier from mart.indicator_evidence "
            "where year = ? and indicator_code = ? and (township_code = ? or county_code = ?) "
            "order by township_code, record_table, record_id",
            [year, indicator.upper(), code, code],
        )
    finally:
        con.close()
    return values, [whole_numbers(r) for r in records]


def to_json(rows: list[dict]) -> str:
    return json.dumps([{k: r[k] for k in COLUMNS if k != "kind"} for r in rows], ensure_ascii=False, indent=2)


def to_csv(rows: list[dict]) -> str:
    """The rows as CSV for a spreadsheet: text that would run as a formula is escaped."""
    out = io.StringIO()
    w = csv.DictWriter(out, fieldnames=[c for c in COLUMNS if c != "kind"], extrasaction="ignore")
    w.writeheader()
    w.writerows(neutralise_row({**r, "source_files": "; ".join(r.get("source_files") or [])}) for r in rows)
    return out.getvalue()


def display(r: dict) -> str:
    v = r["value"]
    if v is None:
        return STATUS_WORDS.get(r["status"], "—")
    q = {">=": "≥", "~": "约"}.get(r["qualifier"], "")
    if r["kind"] == "rate":
        text = f"{q}{v * 100:.1f}%"
    elif r["kind"] in ("median", "mean"):
        text = f"{q}{v:.1f}"
    else:
        text = f"{q}{v:,.0f}" if r["kind"] == "amount" else f"{q}{v}"
    if r["status"] == "incomplete":  # a county figure lacking townships
        return f"{text}(缺{r.get('missing_townships')}乡镇)"
    return f"{text}(有隔离)" if r["status"] == "quarantined" else text


def _width(s: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in s)


def pad(s: str, width: int, right: bool = False) -> str:
    fill = " " * max(0, width - _width(s))
    return fill + s if right else s + fill


def to_table(rows: list[dict], max_width: int = 160) -> str:
    """Indicators down, areas across (county first), split into blocks that fit the width."""
    if not rows:
        return "没有数据 / no rows"
    areas: dict[str, str] = {}
    for r in sorted(rows, key=lambda r: (r["area_level"] != "county", r["township_code"])):
        areas.setdefault(r["township_code"], r["township_name"])
    indicators: dict[str, dict] = {}
    cells: dict[tuple[str, str], str] = {}
    for r in rows:
        indicators.setdefault(r["indicator_code"], r)
        cells[(r["indicator_code"], r["township_code"])] = display(r)
    label = {c: f"{c} {r['indicator_name_zh']}({r['unit']})" for c, r in indicators.items()}
    label_w = max(_width(s) for s in label.values())
    col_w = {a: max(_width(n), *(_width(cells.get((c, a), "")) for c in indicators)) + 2 for a, n in areas.items()}
    codes = list(areas)
    blocks, current, used = [], [], label_w
    for a in codes:
        if current and used + col_w[a] > max_width:
            blocks.append(current)
            current, used = [], label_w
        current.append(a)
        used += col_w[a]
    blocks.append(current)
    year = rows[0]["year"]
    lines = [f"{year}年度法治政府建设指标 / rule-of-law indicators {year}"]
    for block in blocks:
        lines.append("")
        lines.append(pad("指标 / indicator", label_w) + "".join(pad(areas[a], col_w[a], True) for a in block))
        lines.append("-" * (label_w + sum(col_w[a] for a in block)))
        for c in indicators:
            lines.append(pad(label[c], label_w) + "".join(pad(cells.get((c, a), ""), col_w[a], True) for a in block))
    return "\n".join(lines)
