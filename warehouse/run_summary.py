"""Summaries of a run for people: its indicator table and manifest as markdown (shown as Prefect
artifacts), and a fingerprint of each year's figures to tell which years a run changed."""

from __future__ import annotations

import json
from pathlib import Path

MAX_TOWNSHIP_COLUMNS = 30  # wider counties get the county column only in the indicator artifact


def _fmt(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1 or value != int(value) else f"{int(value)}"
    return str(value)


def indicator_markdown(db: Path, years: list[int], note: str = "") -> str:
    """Markdown: per year, one row per indicator, the county's value then each township's (a
    missing figure's status in words)."""
    from warehouse.db import connect
    from warehouse.read.indicators import STATUS_WORDS

    con = connect(db, warehouse=True)  # the working database, which this run holds
    try:
        rows = con.execute(
            """
            select year, indicator_code, indicator_name_zh, unit, area_level, township_code, township_name, value,
                   status
            from mart.indicator_value where year in (select unnest(?::integer[]))
            order by year, indicator_code, area_level desc, township_code
            """,
            [years],
        ).fetchall()
    finally:
        con.close()
    out = [f"# 指标 / indicators {', '.join(map(str, years))}", ""]
    if note:
        out += [note, ""]
    for year in years:
        data = [r for r in rows if r[0] == year]
        areas = list(dict.fromkeys((r[4], r[5], r[6]) for r in data))
        county = [a for a in areas if a[0] == "county"]
        towns = [a for a in areas if a[0] != "county"]
        shown = county + (towns if len(towns) <= MAX_TOWNSHIP_COLUMNS else [])
        values = {(r[1], r[5]): _fmt(r[7]) if r[7] is not None else STATUS_WORDS.get(r[8], "—") for r in data}
        indicators = list(dict.fromkeys((r[1], r[2], r[3]) for r in data))
        out += [f"## {year}", ""]
        if len(towns) > MAX_TOWNSHIP_COLUMNS:
            out += [f"{len(towns)} 个乡镇，仅列全县 / {len(towns)} townships: county column only", ""]
        out.append("| 指标 code | 名称 | 单位 | " + " | ".join(a[2] or a[1] for a in shown) + " |")
        out.append("|---|---|---|" + "---:|" * len(shown))
        for code, name, unit in indicators:
            cells = " | ".join(values.get((code, a[1]), "—") for a in shown)
            out.append(f"| {code} | {name or ''} | {unit or ''} | {cells} |")
        out.append("")
    return "\n".join(out)


def year_fingerprints(db: Path) -> dict[int, str]:
    """A hash of every year's indicator values, to tell which years a run changed."""
    import duckdb

    from warehouse.db import connect

    if not db.exists():
        return {}
    con = connect(db, warehouse=True)  # the working database, which this run holds
    try:
        rows = con.execute(
            """
            select year, md5(string_agg(concat_ws('|', township_code, indicator_code, value, numerator, denominator),
                                        ',' order by township_code, indicator_code))
            from mart.indicator_value group by year
            """
        ).fetchall()
    except duckdb.CatalogException:
        return {}
    finally:
        con.close()
    return {int(y): h for y, h in rows}


def manifest_markdown(manifest: Path) -> str:
    doc = json.loads(manifest.read_text(encoding="utf-8"))
    out = [
        f"# 运行清单 / run manifest {doc.get('run_id')}",
        "",
        f"- 结果 / outcome: **{doc.get('outcome')}**",
        f"- 代码版本 / code version: {doc.get('code_version')} ({doc.get('code_commit') or 'no commit recorded'})",
        f"- 清单文件 / manifest file: `{manifest}`",
        "",
    ]
    if doc.get("sources"):
        out += [
            "| 数据源 source | 状态 status | 批次 batch | 接收 received | 加载 loaded | 隔离 quarantined"
            " | 水位 watermark |",
            "|---|---|---|---:|---:|---:|---|",
        ]
        marks = doc.get("watermarks") or {}
        for name, info in doc["sources"].items():
            mark = (marks.get(name) or {}).get("modified_at", "")
            out.append(
                f"| {name} | {info.get('status')} | {info.get('batch_id', '')} | {info.get('received_rows', '')}"
                f" | {info.get('loaded_rows', '')} | {info.get('quarantined_rows', '')} | {mark} |"
            )
        out.append("")
    out += ["| 步骤 step | 结果 outcome |", "|---|---|"]
    out += [f"| {k} | {v} |" for k, v in doc.get("steps", {}).items()]
    out += ["", "```json", json.dumps(doc, ensure_ascii=False, indent=2, default=str), "```"]
    return "\n".join(out)
