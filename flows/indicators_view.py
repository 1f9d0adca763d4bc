"""Read indicator values from the published database and render them (table, JSON, CSV).

Imports only duckdb: `fazhi indicators` must start fast and never load Prefect or GX.
"""

from __future__ import annotations

import csv
import io
import json
import unicodedata
from pathlib import Path

import duckdb

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
    "kind",
)


class NotPublished(RuntimeError):
    pass


def read_values(published: Path, year: int, township: str | None = None) -> list[dict]:
    if not published.exists():
        raise NotPublished(
            f"尚未发布分析库 {published} / no published database at {published}: run `fazhi demo` or `fazhi run`"
        )
    con = duckdb.connect(str(published), read_only=True)
    try:
        where, params = "year = ?", [year]
        if township:
            where += " and (township_code = ? or township_name = ?)"
            params += [township, township]
        cur = con.execute(
            f"select {', '.join(COLUMNS)} from mart.indicator_value where {where} "
            "order by year, township_code, indicator_code",
            params,
        )
        names = [d[0] for d in cur.description]
        rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    finally:
        con.close()
    for r in rows:
        for k in ("numerator", "denominator"):
            if r[k] is not None:
                r[k] = int(r[k]) if r[k] == int(r[k]) else float(r[k])
        if r["value"] is not None and r["kind"] in ("count", "amount") and float(r["value"]).is_integer():
            r["value"] = int(r["value"])
    return rows


def to_json(rows: list[dict]) -> str:
    return json.dumps([{k: r[k] for k in COLUMNS if k != "kind"} for r in rows], ensure_ascii=False, indent=2)


def to_csv(rows: list[dict]) -> str:
    out = io.StringIO()
    w = csv.DictWriter(out, fieldnames=[c for c in COLUMNS if c != "kind"], extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    return out.getvalue()


def display(r: dict) -> str:
    v = r["value"]
    if v is None:
        return {"no_data": "无数据", "missing_return": "未报"}.get(r["status"], "—")
    q = "≥" if r["qualifier"] == ">=" else ""
    if r["kind"] == "rate":
        return f"{q}{v * 100:.1f}%"
    if r["kind"] in ("median", "mean"):
        return f"{q}{v:.1f}"
    return f"{q}{v:,.0f}" if r["kind"] == "amount" else f"{q}{v}"


def _width(s: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in s)


def _pad(s: str, width: int, right: bool = False) -> str:
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
        lines.append(_pad("指标 / indicator", label_w) + "".join(_pad(areas[a], col_w[a], True) for a in block))
        lines.append("-" * (label_w + sum(col_w[a] for a in block)))
        for c in indicators:
            lines.append(_pad(label[c], label_w) + "".join(_pad(cells.get((c, a), ""), col_w[a], True) for a in block))
    return "\n".join(lines)
