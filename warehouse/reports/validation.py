"""The validation report of a run: one self-contained HTML page a township clerk can act on.

Written to `<reports_dir>/<run_id>.html` and `latest.html` (reports_dir is
`$FAZHI_HOME/reports/validation`). Inline CSS only — no script, no font or image file, no link
to any other host — so it opens offline and prints. Chinese first, English beside. It lists:
- per source: rows received / loaded / quarantined in this run, and any batch stopped, with why;
- per township, then per rule: every open quarantine entry (source, file or page, row, business
  key), i.e. the records to correct in the source system. Quarantine rows hold no personal data,
  and the report shows only their location and key, never their content.

Also renders the run's summary as Markdown (the flow publishes it as a Prefect artifact).
No Prefect and no GX here: only duckdb and the suites' JSON.
"""

from __future__ import annotations

import html
import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

import duckdb

SUITES_DIR = (
    Path(__file__).parents[2] / "expectations"
)  # the GX suites' rule textss[2] / "expectations"  # the GX suites' rule texts
UNKNOWN_TOWNSHIP = "(不在本县乡镇代码表 / not one of the county's townships)"


@dataclass
class ReportData:
    run_id: str
    generated_at: str
    sources: list[dict]  # source, status, batch_id, received/loaded/quarantined, message_zh/en, rules
    entries: list[dict]  # open quarantine entries, one per (entry, rule)
    warnings: list[dict] = field(default_factory=list)  # warn-level rules that failed in this run
    file_warnings: list[dict] = field(default_factory=list)  # parts of this run's spreadsheet files not read


@cache
def rule_messages() -> dict[str, tuple[str, str, str]]:
    """rule -> (level, message_zh, message_en), from every suite in expectations/."""
    out = {}
    for path in sorted(SUITES_DIR.glob("*.json")):
        for exp in json.loads(path.read_text(encoding="utf-8"))["expectations"]:
            m = exp.get("meta", {})
            if "rule" in m:
                out[m["rule"]] = (m.get("level", "row"), m.get("message_zh", ""), m.get("message_en", ""))
    return out


def collect(con: duckdb.DuckDBPyConnection, run_id: str, run_sources: dict | None = None) -> ReportData:
    """What the report shows, read from the working (or published) database's audit tables.

    `run_sources`: the run manifest's per-source dict (adds sources that were unchanged or failed
    before loading, and the rule that stopped a batch)."""
    run_sources = run_sources or {}
    batches = con.execute(
        """
        select source, batch_id, status, received_rows, loaded_rows, quarantined_rows, message_zh, message_en
        from audit.batch where run_id = ? order by source, loaded_at
        """,
        [run_id],
    ).fetchall()
    failed_rules = {
        (b, r)
        for b, r in con.execute(
            """
            select v.batch_id, v.rule from audit.validation_result v
            join audit.batch b using (batch_id)
            where b.run_id = ? and v.level = 'batch' and not v.success
            """,
            [run_id],
        ).fetchall()
    }
    sources, seen = [], set()
    for source, batch_id, status, received, loaded, quarantined, zh, en in batches:
        rules = sorted(r for b, r in failed_rules if b == batch_id)
        extra = run_sources.get(source, {})
        if extra.get("rule") and extra["rule"] not in rules:
            rules.append(extra["rule"])
        sources.append(
            {
                "source": source,
                "status": status,
                "batch_id": batch_id,
                "received_rows": received,
                "loaded_rows": loaded,
                "quarantined_rows": quarantined,
                "message_zh": zh,
                "message_en": en,
                "rules": rules,
            }
        )
        seen.add(source)
    for source, info in run_sources.items():
        if source not in seen:
            zh, en = info.get("message_zh"), info.get("message_en") or info.get("error")
            if info.get("status") == "failed":  # an operator's matter (token, network): its class, not its text
                cause = info.get("cause") or "error"
                zh = f"本次未能获取该数据源(原因类别: {cause})，已告警运维人员；乡镇无需处理"
                en = (
                    f"the source could not be pulled this run (cause: {cause}); the operators are alerted, "
                    "nothing for townships to do"
                )
            sources.append(
                {
                    "source": source,
                    "status": info.get("status", "unknown"),
                    "batch_id": info.get("batch_id"),
                    "received_rows": info.get("received_rows"),
                    "loaded_rows": info.get("loaded_rows"),
                    "quarantined_rows": info.get("quarantined_rows"),
                    "message_zh": zh,
                    "message_en": en,
                    "rules": [info["rule"]] if info.get("rule") else [],
                }
            )
    cur = con.execute(
        """
        with open_entries as (  -- quarantined rows, and spreadsheet files refused as a whole
            select township_code, rules, source, table_name, source_file, row_number, business_key, batch_id,
                   quarantined_at, message_zh, message_en
            from audit.quarantine where resolved_at is null
            union all
            select township_code, [rule], source, '(file)', file_name || coalesce('#' || sheet_name, ''),
                   row_number, null, batch_id, recorded_at, message_zh, message_en
            from audit.file_issue where resolved_at is null and level = 'refused'
        )
        select q.township_code, t.name as township_name, unnest(q.rules) as rule, q.source, q.table_name,
               q.source_file, q.row_number, q.business_key, q.batch_id,
               strftime(q.quarantined_at, '%Y-%m-%d') as since, b.run_id = ? as is_new,
               q.message_zh, q.message_en
        from open_entries q
        left join ref.township t on t.code = q.township_code
        left join audit.batch b on b.batch_id = q.batch_id
        order by q.township_code nulls last, rule, q.source, q.source_file, q.row_number nulls first
        """,
        [run_id],
    )
    names = [d[0] for d in cur.description]
    entries = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    # what was not read of the files this run loaded (hidden sheets, unrecognised columns, …)
    file_warnings = [
        dict(zip(("source", "file", "sheet", "row", "column", "rule", "message_zh", "message_en"), r, strict=True))
        for r in con.execute(
            """
            select i.source, i.file_name, i.sheet_name, i.row_number, i.column_name, i.rule, i.message_zh,
                   i.message_en
            from audit.file_issue i join audit.batch b using (batch_id)
            where b.run_id = ? and i.level = 'warn'
            order by i.source, i.file_name, i.sheet_name nulls first, i.row_number nulls first
            """,
            [run_id],
        ).fetchall()
    ]
    warnings = [
        {"table_name": t, "rule": r, "rows": int(n or 0)}
        for t, r, n in con.execute(
            """
            select v.table_name, v.rule, sum(v.unexpected_count) from audit.validation_result v
            join audit.batch b using (batch_id)
            where b.run_id = ? and v.level = 'warn' and not v.success
            group by all order by all
            """,
            [run_id],
        ).fetchall()
    ]
    now = datetime.now(UTC).astimezone().strftime("%Y-%m-%d %H:%M:%S %z")
    return ReportData(run_id, now, sources, entries, warnings, file_warnings)


_STATUS = {
    "loaded": ("已加载", "loaded"),
    "stopped": ("已停止", "stopped"),
    "unchanged": ("无新数据", "nothing new"),
    "failed": ("失败", "failed"),
}

_CSS = """
body{font-family:"Noto Sans CJK SC","Noto Sans SC","Source Han Sans SC","Microsoft YaHei","PingFang SC",sans-serif;
margin:24px;color:#1f2328;background:#fff;font-size:14px;line-height:1.5}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:2px solid #d0d7de;padding-bottom:4px}
h3{font-size:16px;margin:20px 0 6px;color:#0b4f8a}h4{font-size:14px;margin:12px 0 4px}
.en{color:#57606a;font-weight:normal}.meta{color:#57606a;margin:0 0 16px}
table{border-collapse:collapse;margin:4px 0 12px;min-width:60%}
th,td{border:1px solid #d0d7de;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f6f8fa}td.n{text-align:right;font-variant-numeric:tabular-nums}
.stopped{background:#ffebe9}.failed{background:#ffebe9}.loaded{background:#fff}
.badge{display:inline-block;padding:0 6px;border-radius:8px;font-size:12px;background:#ddf4ff;color:#0969da}
.stop{color:#cf222e;font-weight:bold}.ok{color:#1a7f37}.rule{font-family:monospace}
.box{border:1px solid #d0d7de;border-radius:6px;padding:8px 12px;margin:8px 0;background:#f6f8fa}
"""


def _e(v) -> str:
    return "" if v is None else html.escape(str(v))


def _entry_key(e: dict) -> tuple:
    return (e["batch_id"], e["table_name"], e["source_file"], e["row_number"])


def _num(v) -> str:
    return "—" if v is None else f"{v:,}"


def render_html(data: ReportData) -> str:
    messages = rule_messages()
    out = [
        "<!DOCTYPE html>",
        '<html lang="zh-CN"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>数据校验报告 / Validation report {_e(data.run_id)}</title>",
        f"<style>{_CSS}</style></head><body>",
        '<h1>数据校验报告 <span class="en">/ Validation report</span></h1>',
        f'<p class="meta">运行 / run <b>{_e(data.run_id)}</b> · 生成于 / generated {_e(data.generated_at)}</p>',
        '<div class="box">请各乡镇(街道)在源系统中更正下列记录；更正后的记录在下次运行时自动入库，隔离随之解除。'
        '<br><span class="en">Township staff: correct the records below in the source system. A corrected '
        "record loads at the next run and its quarantine entry is resolved.</span></div>",
        '<h2>各数据源汇总 <span class="en">/ Summary per source</span></h2>',
        "<table><tr><th>数据源<br><span class=en>source</span></th><th>状态<br><span class=en>status</span></th>"
        "<th>接收<br><span class=en>received</span></th><th>加载<br><span class=en>loaded</span></th>"
        "<th>隔离<br><span class=en>quarantined</span></th><th>批次<br><span class=en>batch</span></th></tr>",
    ]
    for s in data.sources:
        zh, en = _STATUS.get(s["status"], (s["status"], s["status"]))
        out.append(
            f'<tr class="{_e(s["status"])}"><td>{_e(s["source"])}</td><td>{_e(zh)} <span class=en>{_e(en)}</span></td>'
            f'<td class="n">{_num(s["received_rows"])}</td><td class="n">{_num(s["loaded_rows"])}</td>'
            f'<td class="n">{_num(s["quarantined_rows"])}</td><td>{_e(s["batch_id"])}</td></tr>'
        )
    if not data.sources:
        out.append('<tr><td colspan="6">本次运行没有处理数据源 / no source was processed in this run</td></tr>')
    out.append("</table>")
    stops = [s for s in data.sources if s["status"] in ("stopped", "failed")]
    if stops:
        out.append('<h2>停止加载的数据源 <span class="en">/ Sources stopped</span></h2>')
        for s in stops:
            rules = ", ".join(s["rules"])
            out.append(
                f'<div class="box"><span class="stop">{_e(s["source"])}</span>'
                f"{f' · 规则 / rule <span class=rule>{_e(rules)}</span>' if rules else ''}"
                f"<br>{_e(s['message_zh'])}<br><span class=en>{_e(s['message_en'])}</span><br>"
                "本批次未加载，已发布数据保持不变；其中未通过校验的行列在下方“待更正的记录”中；"
                "源系统更正后下次运行将重新处理。<br><span class=en>Nothing of this batch was loaded and the "
                "published data of this source is unchanged; its rows that fail a rule are listed below, under "
                "the records to correct; the batch is tried again at the next run.</span></div>"
            )
    if data.warnings:
        out.append('<h2>提示(不影响入库) <span class="en">/ Warnings (rows still load)</span></h2><table>')
        out.append("<tr><th>规则 / rule</th><th>数据表 / table</th><th>行数 / rows</th><th>说明 / note</th></tr>")
        for w in data.warnings:
            _, zh, en = messages.get(w["rule"], ("", "", ""))
            out.append(
                f'<tr><td class="rule">{_e(w["rule"])}</td><td>{_e(w["table_name"])}</td>'
                f'<td class="n">{_num(w["rows"])}</td><td>{_e(zh)}<br><span class=en>{_e(en)}</span></td></tr>'
            )
        out.append("</table>")

    if data.file_warnings:
        out.append('<h2>文件中未读取的部分 <span class="en">/ Parts of the files not read</span></h2><table>')
        out.append("<tr><th>数据源 / source</th><th>文件 / file</th><th>工作表 / sheet</th><th>行 / row</th>"
                   "<th>列 / column</th><th>说明 / note</th></tr>")  # fmt: skip
        for w in data.file_warnings:
            out.append(
                f"<tr><td>{_e(w['source'])}</td><td>{_e(w['file'])}</td><td>{_e(w['sheet'])}</td>"
                f'<td class="n">{_e(w["row"])}</td><td>{_e(w["column"])}</td>'
                f"<td>{_e(w['message_zh'])}<br><span class=en>{_e(w['message_en'])}</span></td></tr>"
            )
        out.append("</table>")
    out.append('<h2>待更正的记录 <span class="en">/ Records to correct in the source system</span></h2>')
    if not data.entries:
        out.append('<p class="ok">没有待更正的记录 / nothing to correct</p>')
    by_area: dict[tuple, dict[str, list[dict]]] = {}
    for e in data.entries:
        area = (e["township_code"] or "", e["township_name"])
        by_area.setdefault(area, {}).setdefault(e["rule"], []).append(e)
    if by_area:
        out.append("<table><tr><th>乡镇(街道) / township</th><th>待更正记录 / entries</th><th>本次新增 / new</th></tr>")
        for (code, name), rules in by_area.items():
            rows = [x for v in rules.values() for x in v]
            keys = {_entry_key(x) for x in rows}
            new = {_entry_key(x) for x in rows if x["is_new"]}
            out.append(
                f"<tr><td>{_e(name or UNKNOWN_TOWNSHIP)} {_e(code)}</td>"
                f'<td class="n">{len(keys)}</td><td class="n">{len(new)}</td></tr>'
            )
        out.append("</table>")
    for (code, name), rules in by_area.items():
        out.append(f"<h3>{_e(name or UNKNOWN_TOWNSHIP)} <span class=en>{_e(code)}</span></h3>")
        for rule, rows in rules.items():
            _, zh, en = messages.get(rule, ("", rows[0]["message_zh"], rows[0]["message_en"]))
            out.append(
                f'<h4><span class="rule">{_e(rule)}</span> {_e(zh)} <span class="en">/ {_e(en)}</span>'
                f" ({len(rows)})</h4>"
            )
            out.append(
                "<table><tr><th>数据源 / source</th><th>文件或页 / file or page</th><th>行 / row</th>"
                "<th>业务主键 / business key</th><th>隔离日期 / since</th><th>原因 / reason</th></tr>"
            )
            for r in rows:
                badge = ' <span class="badge">新 / new</span>' if r["is_new"] else ""
                out.append(
                    f"<tr><td>{_e(r['source'])} · {_e(r['table_name'])}</td><td>{_e(r['source_file'])}</td>"
                    f'<td class="n">{_e(r["row_number"])}</td><td>{_e(r["business_key"])}{badge}</td>'
                    f"<td>{_e(r['since'])}</td><td>{_e(r['message_zh'])}<br>"
                    f"<span class=en>{_e(r['message_en'])}</span></td></tr>"
                )
            out.append("</table>")
    out.append(
        '<p class="meta">行号从1开始，按导出页或工作表中的数据行计。 / Row numbers count data rows from 1 within '
        "the export page or sheet.</p></body></html>"
    )
    return "\n".join(out)


def render_markdown(data: ReportData) -> str:
    """The run's validation summary (for the Prefect artifact)."""
    lines = [
        f"# 数据校验汇总 / Validation summary — {data.run_id}",
        "",
        "| 数据源 source | 状态 status | 接收 received | 加载 loaded | 隔离 quarantined |",
        "|---|---|---:|---:|---:|",
    ]
    for s in data.sources:
        zh, en = _STATUS.get(s["status"], (s["status"], s["status"]))
        lines.append(
            f"| {s['source']} | {zh} {en} | {_num(s['received_rows'])} | {_num(s['loaded_rows'])} "
            f"| {_num(s['quarantined_rows'])} |"
        )
    for s in data.sources:
        if s["status"] in ("stopped", "failed"):
            lines.append(
                f"\n**{s['source']} 停止 / stopped** ({', '.join(s['rules'])}): {s['message_zh']} / {s['message_en']}"
            )
    open_entries = {_entry_key(e) for e in data.entries}
    per_rule: dict[str, int] = {}
    for e in data.entries:
        per_rule[e["rule"]] = per_rule.get(e["rule"], 0) + 1
    lines += ["", f"待更正记录 / open quarantine entries: **{len(open_entries)}**"]
    if per_rule:
        lines += ["", "| 规则 rule | 记录 entries |", "|---|---:|"]
        lines += [f"| {r} | {n} |" for r, n in sorted(per_rule.items())]
    return "\n".join(lines) + "\n"


def write_report(
    con: duckdb.DuckDBPyConnection, reports_dir: Path, run_id: str, run_sources: dict | None = None
) -> tuple[Path, ReportData]:
    """Write `<run_id>.html` and `latest.html` (each replaced atomically); returns the run's path."""
    data = collect(con, run_id, run_sources)
    page = render_html(data)
    reports_dir.mkdir(parents=True, exist_ok=True)
    path = reports_dir / f"{run_id}.html"
    for target in (path, reports_dir / "latest.html"):
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_text(page, encoding="utf-8")
        os.replace(tmp, target)
    return path, data


def write_run_report(settings, run_report) -> tuple[Path, ReportData]:
    """The run's report in `<home>/reports/validation/` (warehouse/runs.py, after loading and
    computing, before publishing)."""
    from warehouse.db import open_work_db

    con = open_work_db(settings.work_db)
    try:
        return write_report(con, settings.home / "reports" / "validation", run_report.run_id, run_report.sources)
    finally:
        con.close()
