"""Read the open quarantine entries from the published database and render them (table, JSON).

`fazhi quarantine` lists what township staff still have to fix in their source systems: rows,
and spreadsheet files refused as a whole (named, with the rule, and where known the sheet, row
and column; `table_name` is `(file)`). The entries are already free of personal data
(audit.quarantine keeps the parsed, pseudonymised row). Imports only duckdb: the command must
start fast and never load Prefect or GX.
"""

from __future__ import annotations

import json
from pathlib import Path

from warehouse.read.indicators import _width, open_published, pad
from warehouse.read.lookup import check_quarantine_filters

FIELDS = (
    "source",
    "table_name",
    "township_code",
    "township_name",
    "batch_id",
    "source_file",
    "row_number",
    "business_key",
    "rules",
    "message_zh",
    "message_en",
    "quarantined_at",
    "batch_status",
)

# Open quarantined rows, and spreadsheet files refused as a whole (audit.file_issue, level
# refused): table_name `(file)`, the file (and sheet) and the row and column where the problem is.
_QUERY = """
with entries as (
    select source, table_name, township_code, batch_id, source_file, row_number, business_key, rules,
           message_zh, message_en, quarantined_at
    from audit.quarantine
    where resolved_at is null
    union all
    select source, '(file)', township_code, batch_id,
           file_name || coalesce('#' || sheet_name, ''), row_number,
           null, [rule], message_zh, message_en, recorded_at
    from audit.file_issue
    where resolved_at is null and level = 'refused'
)
select q.source, q.table_name, q.township_code, t.name as township_name, q.batch_id, q.source_file,
       q.row_number, q.business_key, q.rules, q.message_zh, q.message_en,
       strftime(q.quarantined_at, '%Y-%m-%d %H:%M:%S') as quarantined_at, b.status as batch_status
from entries q
left join ref.township t on t.code = q.township_code
left join audit.batch b on b.batch_id = q.batch_id
where ($source is null or q.source = $source)
  and ($township is null or q.township_code = $township or t.name = $township)
order by q.township_code nulls last, q.source, q.table_name, q.source_file, q.row_number nulls first
"""


def read_open(
    published: Path, source: str | None = None, township: str | None = None, sources: tuple[str, ...] = ()
) -> list[dict]:
    """Open (unresolved) entries, by township, source, file and row. `township`: code or name.
    `batch_status` stopped: the row's whole batch was stopped by a batch rule (nothing of it
    loaded); it is listed all the same, as a row to correct. A source (none of `sources`, the
    home's, nor any in the audit trail) or township that does not exist is refused (UnknownName)."""
    con = open_published(published)
    try:
        check_quarantine_filters(con, sources, source, township)
        cur = con.execute(_QUERY, {"source": source, "township": township})
        names = [d[0] for d in cur.description]
        rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    finally:
        con.close()
    for r in rows:
        r["rules"] = list(r["rules"] or [])
    return rows


def to_json(rows: list[dict]) -> str:
    return json.dumps([{k: r[k] for k in FIELDS} for r in rows], ensure_ascii=False, indent=2)


def _stopped(r: dict) -> str:
    return "[整批已停止 / batch stopped] " if r.get("batch_status") == "stopped" else ""


def to_table(rows: list[dict]) -> str:
    """One line per entry, grouped under a heading per township; reasons in Chinese and English."""
    if not rows:
        return "没有待更正的隔离记录 / no open quarantine entries"
    header = ("数据源/source", "文件/file", "行/row", "主键/key", "规则/rules", "原因/reason")
    lines_by_area: dict[str, list[tuple[str, ...]]] = {}
    for r in rows:
        area = f"{r['township_name'] or '(未知乡镇 / unknown township)'} {r['township_code'] or ''}".strip()
        lines_by_area.setdefault(area, []).append(
            (
                f"{r['source']}/{r['table_name']}",
                r["source_file"],
                "" if r["row_number"] is None else str(r["row_number"]),
                r["business_key"] or "",
                ",".join(r["rules"]),
                _stopped(r) + f"{r['message_zh']} / {r['message_en']}",
            )
        )
    cells = [header, *(line for lines in lines_by_area.values() for line in lines)]
    widths = [max(_width(c[i]) for c in cells) for i in range(len(header) - 1)]

    def fmt(cols: tuple[str, ...]) -> str:
        return "  ".join(pad(c, w) for c, w in zip(cols[:-1], widths, strict=True)) + "  " + cols[-1]

    out = [f"待更正的隔离记录 / open quarantine entries: {len(rows)}"]
    for area, lines in lines_by_area.items():
        out += ["", f"{area} ({len(lines)})", fmt(header), "-" * (sum(widths) + 2 * len(widths) + 12)]
        out += [fmt(line) for line in lines]
    return "\n".join(out)
