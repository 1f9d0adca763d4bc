"""The county dashboard: one self-contained HTML page per published year, rebuilt after every
publish (`published/reports/dashboard-<year>.html`).

Headline county figures with the change from last year, the target lights as a township ×
indicator grid, a ranking of the townships and the county's trend for every indicator, open
quarantine entries per township, and for every figure the `fazhi explain` command that lists its
records. Charts are inline SVG; the page loads nothing (its Content-Security-Policy forbids it),
has no script, and names the CJK fonts it uses. Every figure carries its area, indicator and
value as data attributes, so a test compares them with `fazhi indicators`."""

from __future__ import annotations

import html
from datetime import datetime
from pathlib import Path

import duckdb

from warehouse.reports import wording
from warehouse.reports.county_workbook import areas
from warehouse.reports.published import YearData, read_year_from
from warehouse.reports.wording import SOURCE_NAMES, explain_command

CSS = Path(__file__).with_name("dashboard.css")
CSP = "default-src 'none'; style-src 'unsafe-inline'"
esc = html.escape


def reports_dir(published: Path) -> Path:
    return Path(published).parent / "reports"


def dashboard_path(published: Path, year: int) -> Path:
    return reports_dir(published) / f"dashboard-{year}.html"


def _attrs(row: dict | None, area: str, code: str, year: int) -> str:
    """The figure's identity and value for machines; its explain command for people (tooltip)."""
    value = "" if row is None or row["value"] is None else repr(row["value"])
    status = "" if row is None else row["status"]
    caveat = "" if not value or status == "ok" else " / ".join(wording.status_words(row)) + "\n"
    return (
        f' data-area="{esc(area)}" data-indicator="{code}" data-value="{value}" data-status="{status}"'
        f' title="{esc(caveat + explain_command(year, area, code))}"'
    )


def _change_html(row: dict | None, direction: str) -> str:
    """The change from last year, green when it is better, red when worse (by the indicator's
    direction), grey when neither is better."""
    if row is None or row.get("change_from_previous") is None:
        return '<span class="flat">上年无数据 / no last year</span>'
    c = float(row["change_from_previous"])
    arrow = "▲" if c > 0 else "▼" if c < 0 else "＝"
    better = {"higher_is_better": c > 0, "lower_is_better": c < 0}.get(direction)
    cls = "flat" if better is None or c == 0 else "up" if better else "down"
    return f'<span class="{cls}">{arrow} {esc(wording.change(row))} 比上年 / vs last year</span>'


def _headline(data: YearData) -> str:
    cards = []
    for c in data.catalogue:
        code = c["indicator_code"]
        row = data.value(data.county_code, code)
        light = (row or {}).get("traffic_light") or ""
        value = wording.short(row)
        cls = "value" if wording.has_value(row) else "value words"
        cards.append(
            f'<div class="card {light}"><div class="name">{code} {esc(c["name_zh"])}（{esc(c["unit"])}）</div>'
            f'<div class="{cls}"{_attrs(row, data.county_code, code, data.year)}>{esc(value)}</div>'
            f'<div class="change">{_change_html(row, c["direction"])}</div></div>'
        )
    return '<div class="cards">' + "".join(cards) + "</div>"


def _grid(data: YearData) -> str:
    head = "".join(
        f'<th title="{esc(c["name_zh"])} / {esc(c["name_en"])}">{c["indicator_code"]}<br>{esc(c["name_zh"][:6])}</th>'
        for c in data.catalogue
    )
    rows = []
    for area, name in areas(data):
        county = area == data.county_code
        cells = []
        for c in data.catalogue:
            row = data.value(area, c["indicator_code"])
            cls = (row or {}).get("traffic_light") or ""
            if not wording.has_value(row):
                cls += " words"
            cells.append(
                f'<td class="{cls.strip()}"{_attrs(row, area, c["indicator_code"], data.year)}>'
                f"{esc(wording.short(row))}</td>"
            )
        rows.append(f'<tr class="{"county" if county else ""}"><td class="area">{esc(name)}</td>{"".join(cells)}</tr>')
    return (
        f'<div class="grid-wrap"><table><thead><tr><th class="area">乡镇 / township</th>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def _ranking_svg(data: YearData, code: str) -> str:
    """Townships by rank, one bar each; those without a value last, in words."""
    rows = [(name, data.value(area, code)) for area, name in areas(data) if area != data.county_code]
    rows.sort(key=lambda t: (t[1] is None or t[1].get("rank_in_county") is None,
                             (t[1] or {}).get("rank_in_county") or 0, t[0]))  # fmt: skip
    top = max((abs(float(r["value"])) for _, r in rows if wording.has_value(r)), default=0) or 1
    bar_h, label_w, width = 15, 96, 400
    parts = []
    for i, (name, r) in enumerate(rows):
        y = i * bar_h
        parts.append(f'<text x="{label_w - 4}" y="{y + 11}" text-anchor="end">{esc(name)}</text>')
        if wording.has_value(r):
            w = max(1.0, (width - label_w - 70) * abs(float(r["value"])) / top)
            light = r.get("traffic_light") or ""
            parts.append(
                f'<rect class="bar {light}" x="{label_w}" y="{y + 2}" width="{w:.1f}" height="{bar_h - 4}">'
                f"<title>{esc(explain_command(data.year, r['township_code'], code))}</title></rect>"
                f'<text x="{label_w + w + 4:.1f}" y="{y + 11}">{esc(wording.short(r))}</text>'
            )
        else:
            parts.append(f'<text x="{label_w}" y="{y + 11}" class="words">{esc(wording.short(r))}</text>')
    height = bar_h * len(rows)
    return _svg(width, height, "".join(parts))


def _svg(width: int, height: int, body: str) -> str:
    return f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img">{body}</svg>'


def _trend_svg(data: YearData, code: str) -> str:
    """The county's value over the published years."""
    years = data.years
    points = [(y, data.history.get((y, data.county_code, code))) for y in years]
    known = [(y, float(r["value"])) for y, r in points if wording.has_value(r)]
    width, height, pad = 400, 70, 30
    if not known:
        return '<p class="words">无趋势数据 / no trend</p>'
    lo, hi = min(v for _, v in known), max(v for _, v in known)
    span = (hi - lo) or 1

    def xy(i: int, v: float) -> tuple[float, float]:
        x = pad + i * (width - 2 * pad) / max(1, len(years) - 1)
        return x, 22 + (height - 40) * (1 - (v - lo) / span)

    line, marks = [], []
    for i, (y, r) in enumerate(points):
        x = pad + i * (width - 2 * pad) / max(1, len(years) - 1)
        marks.append(f'<text x="{x:.1f}" y="{height - 2}" text-anchor="middle">{y}</text>')
        if wording.has_value(r):
            px, py = xy(i, float(r["value"]))
            line.append(f"{px:.1f},{py:.1f}")
            marks.append(
                f'<circle class="dot" cx="{px:.1f}" cy="{py:.1f}" r="3"/>'
                f'<text x="{px:.1f}" y="{py - 6:.1f}" text-anchor="middle">{esc(wording.short(r))}</text>'
            )
        else:
            marks.append(f'<text x="{x:.1f}" y="30" text-anchor="middle" class="words">{esc(wording.short(r))}</text>')
    polyline = f'<polyline class="line" points="{" ".join(line)}"/>' if len(line) > 1 else ""
    return _svg(width, height, polyline + "".join(marks))


def _panels(data: YearData) -> str:
    years = data.years
    span = f"{years[0]}→{years[-1]}" if years else ""
    out = []
    for c in data.catalogue:
        code = c["indicator_code"]
        out.append(
            f'<div class="panel"><h3>{code} {esc(c["name_zh"])}（{esc(c["unit"])}）</h3>'
            f'<div class="note">排名 / ranking {data.year}</div>{_ranking_svg(data, code)}'
            f'<div class="note">全县趋势 / county trend {span}</div>{_trend_svg(data, code)}'
            f"<code>{esc(explain_command(data.year, '<乡镇>', code))}</code></div>"
        )
    return '<div class="panels">' + "".join(out) + "</div>"


def _quality(data: YearData) -> str:
    sources = sorted({s for per in data.quarantine.values() for s in per})
    head = "".join(f"<th>{esc(SOURCE_NAMES.get(s, s))}<br>{s}</th>" for s in sources)
    names = {t["code"]: t["name"] for t in data.townships}
    codes = [t["code"] for t in data.townships] + sorted(c for c in data.quarantine if c not in names)
    rows = []
    for code in codes:
        per = data.quarantine.get(code, {})
        cells = "".join(f"<td>{per.get(s, 0)}</td>" for s in sources)
        name = names.get(code, f"未知乡镇 {code} / unknown township")
        rows.append(
            f'<tr><td class="area">{esc(name)}</td>{cells}<td data-area="{esc(code)}" data-quarantine="'
            f'{sum(per.values())}">{sum(per.values())}</td></tr>'
        )
    return (
        f'<table><thead><tr><th class="area">乡镇 / township</th>{head}<th>合计 / total</th></tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
        '<p class="note">清单 / the entries: <code>fazhi quarantine --township &lt;乡镇&gt;</code></p>'
    )


def render(data: YearData, latest_edition: int | None = None) -> str:
    years = data.years
    nav = "".join(
        f"<span>{'<b>' if y == data.year else ''}{y}{'</b>' if y == data.year else ''}：dashboard-{y}.html</span>"
        for y in years
    )
    as_of = f"数据截至 / data as of {data.as_of:%Y-%m-%d %H:%M}" if isinstance(data.as_of, datetime) else ""
    edition = (
        f"；{data.year}年已发布第{latest_edition}版 / edition {latest_edition} published"
        if latest_edition
        else f"；{data.year}年尚无年终版本 / no year-end edition yet"
    )
    legend = "；".join(f"{zh} / {en}" for status, (zh, en) in wording.STATUS_WORDS.items() if status != "ok")
    title = f"{data.county_name}{data.year}年法治政府建设指标看板"
    return f"""<!DOCTYPE html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(title)} / rule-of-law indicators dashboard {data.year}</title>
<style>{CSS.read_text(encoding="utf-8")}</style></head>
<body>
<h1>{esc(title)}</h1>
<div class="meta">Rule-of-law indicators dashboard, {esc(data.county_name)} {data.year} · 日常更新值 / current values
（{as_of}{edition}）</div>
<nav class="meta">其他年份 / other years (same folder): {nav}</nav>
<h2>全县主要指标 / county headline figures</h2>
{_headline(data)}
<h2>目标灯 / target lights: township × indicator</h2>
<p class="note">绿：达到目标；黄：差距在允许范围内；红：未达到；无色：无目标 / green: on target; amber: within the
margin; red: off target; no colour: no target. 悬停数字可见核查命令 / hover a figure for its
<code>fazhi explain</code> command.</p>
{_grid(data)}
<h2>各指标排名与趋势 / ranking and trend per indicator</h2>
{_panels(data)}
<h2>数据质量：待更正的隔离记录 / data quality: open quarantine entries</h2>
{_quality(data)}
<p class="note">无值的指标以文字说明原因，从不显示为 0 / a figure without a value says why: {esc(legend)}</p>
</body></html>
"""


def _published(con: duckdb.DuckDBPyConnection) -> tuple[list[int], dict[int, int], int]:
    """The published years, each year's latest edition, and how many counties the database holds."""
    years = [r[0] for r in con.execute("select distinct year from mart.indicator_value order by 1").fetchall()]
    editions = dict(con.execute("select year, max(edition) from mart.indicator_edition group by year").fetchall())
    counties = con.execute("select count(distinct county_code) from ref.township").fetchone()[0]
    return years, editions, counties


def write_dashboards(published: Path) -> list[Path]:
    """Every published year's dashboard, each written beside and renamed into place (the years
    read through one connection). A database of several counties (a province's benchmark or
    roll-up) gets none: this is a county's page."""
    published = Path(published)
    con = duckdb.connect(str(published), read_only=True)
    try:
        years, editions, counties = _published(con)
        if counties != 1:
            return []
        out = []
        for year in years:
            path = dashboard_path(published, year)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_text(render(read_year_from(con, year), editions.get(year)), encoding="utf-8")
            tmp.replace(path)
            out.append(path)
        return out
    finally:
        con.close()
