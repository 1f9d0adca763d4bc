"""The validation report of a run: one self-contained HTML page a township clerk can act on.

Written to `<reports_dir>/<run_id>.html` and `latest.html` (reports_dir is
`$FAZHI_HOME/reports/validation`). Inline CSS only — no script, no font or image file, no link
to any other host — so it opens offline and prints. Chinese first, English beside. It lists:
- per source: rows received / loaded / quarantined in this run, and any batch stopped, with why;
- per township, then per rule: every open quarantine entry (source, file or page, row, business
  key), i.e. the records to correct in the source system. Quarantine rows hold no personal data,
  and the report shows only their location and key, never their content.

The page is templates/validation.html.j2, rendered by Jinja2 with autoescape (every value from a
source system is escaped). Also renders the run's summary as Markdown (the flow publishes it as a
Prefect artifact). No Prefect and no GX here: only duckdb, Jinja2 and the suites' JSON.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

import duckdb
import jinja2

SUITES_DIR = Path(__file__).parents[2] / "expectations"  # the GX suites' rule texts
TEMPLATES_DIR = Path(__file__).parent / "templates"
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


def _entry_key(e: dict) -> tuple:
    return (e["batch_id"], e["table_name"], e["source_file"], e["row_number"])


def _num(v) -> str:
    return "—" if v is None else f"{v:,}"


def _status_words(status: str) -> tuple[str, str]:
    return _STATUS.get(status, (status, status))


@cache
def _template() -> jinja2.Template:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,  # every value is escaped: file names and messages come from the source systems
        undefined=jinja2.StrictUndefined,
        finalize=lambda v: "" if v is None else v,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(num=_num, status_words=_status_words)
    return env.get_template("validation.html.j2")


def _areas(entries: list[dict]) -> list[dict]:
    """Open entries per township (in the entries' order), then per rule, with the township's
    count of entries and of entries new in this run (an entry failing two rules counts once)."""
    by_area: dict[tuple, dict[str, list[dict]]] = {}
    for e in entries:
        by_area.setdefault((e["township_code"] or "", e["township_name"]), {}).setdefault(e["rule"], []).append(e)
    areas = []
    for (code, name), rules in by_area.items():
        rows = [x for v in rules.values() for x in v]
        areas.append(
            {
                "code": code,
                "name": name or UNKNOWN_TOWNSHIP,
                "rules": rules,
                "entries": len({_entry_key(x) for x in rows}),
                "new": len({_entry_key(x) for x in rows if x["is_new"]}),
            }
        )
    return areas


def render_html(data: ReportData) -> str:
    """The report page, from templates/validation.html.j2."""
    return _template().render(
        data=data,
        messages=rule_messages(),
        stops=[s for s in data.sources if s["status"] in ("stopped", "failed")],
        areas=_areas(data.entries),
    )


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
