"""The township's annual report draft (法治政府建设工作报告) as a Word document.

The text follows township_report.yaml: every figure-bearing sentence is filled from the published
indicators in the phrasing such reports use; what the data cannot know is left as highlighted
【请填写…】 placeholders; 三、问题和不足 is pre-filled with what the data suggests (targets missed,
falls against last year, figures missing, records still quarantined); an annex lists every
indicator with its code for `fazhi explain`. The same edition gives the same document, byte for
byte (fixed timestamps inside the file)."""

from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import yaml

from warehouse.reports import wording
from warehouse.reports.published import ReportInputError, YearData, read_year
from warehouse.reports.template_docx import load_template

SENTENCES = Path(__file__).with_name("township_report.yaml")
_TOKEN = re.compile(r"(\{[^}]+\}|【[^】]*】)")


@dataclass(frozen=True)
class Run:
    text: str
    kind: str = "text"  # text | lead | figure | fill (for the clerk to write) | missing (a figure without value)


@dataclass(frozen=True)
class Block:
    style: str
    runs: tuple[Run, ...] = ()
    table: tuple[tuple[str, ...], ...] = ()  # annex rows (the first is the header)


def figure_run(row: dict | None, code: str, unit: str | None = None) -> Run:
    if wording.has_value(row):
        return Run(wording.phrase(row, unit), "figure")
    if row is None:
        return Run(f"【无数据：指标 {code} 未发布】", "missing")
    zh, _ = wording.status_words(row)
    return Run(f"【{zh}：{code} {row['indicator_name_zh']}，请核实】", "missing")


def _context(data: YearData, township: dict) -> dict[str, str]:
    kind = township.get("kind") or "镇"
    return {
        "year": str(data.year),
        "township": township["name"],
        "county": data.county_name,
        "self": "我街道" if kind == "街道" else f"我{kind[-1]}",
    }


def fill(text: str, data: YearData, township: dict, context: dict[str, str]) -> tuple[Run, ...]:
    """The runs of one sentence template: context words, figures, placeholders."""
    text = re.sub(r"\s+", "", text)  # YAML folds lines with spaces; Chinese has none
    runs = []
    for part in _TOKEN.split(text):
        if not part:
            continue
        if part.startswith("【"):
            runs.append(Run(_substitute(part, context), "fill"))
        elif part.startswith("{"):
            name, _, unit = part[1:-1].partition(":")
            if name in context:
                runs.append(Run(context[name]))
            else:
                runs.append(figure_run(data.value(township["code"], name), name, unit or None))
        else:
            runs.append(Run(part))
    return tuple(runs)


def _substitute(text: str, context: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: context.get(m.group(1), m.group(0)), text)


def _listing(intro: str, items: list[tuple[Run, ...]]) -> tuple[Run, ...]:
    runs = [Run(intro)]
    for i, item in enumerate(items):
        runs += [*item, Run("；" if i < len(items) - 1 else "。")]
    return tuple(runs)


def problems(data: YearData, township: dict) -> list[Block]:
    """三、问题和不足, suggested by the data: indicators red or amber against their targets, falls
    against last year, figures without a value, records still quarantined; one paragraph each."""
    code = township["code"]
    rows = [r for r in (data.value(code, c["indicator_code"]) for c in data.catalogue) if r is not None]
    directions = {c["indicator_code"]: c["direction"] for c in data.catalogue}
    missed, fell, missing = [], [], []
    for light in ("red", "amber"):
        for r in rows:
            if r.get("traffic_light") == light and wording.has_value(r):
                words = wording.light_words(light)[0]
                missed.append(
                    (
                        Run(r["indicator_name_zh"]),
                        Run(wording.phrase(r), "figure"),
                        Run(f"（目标{wording.target(r)}，{words}）"),
                    )
                )
    for r in rows:
        change = r.get("change_from_previous")
        if r.get("traffic_light") in ("red", "amber") or change is None or not wording.has_value(r):
            continue
        if {"higher_is_better": change < 0, "lower_is_better": change > 0}.get(directions.get(r["indicator_code"])):
            unit = "" if r["kind"] == "rate" else r["unit"]
            verb = "下降" if change < 0 else "增加"
            fell.append(
                (
                    Run(r["indicator_name_zh"]),
                    Run(wording.phrase(r), "figure"),
                    Run(f"（比上年{verb}{wording.change(r).lstrip('+−')}{unit}）"),
                )
            )
    for r in rows:
        if not wording.has_value(r) and r.get("status") != "no_data":
            missing.append((Run(f"{r['indicator_name_zh']}（{r['indicator_code']}）：{wording.status_words(r)[0]}"),))
    found = []
    if missed:
        found.append(_listing("部分指标未达到目标：", missed))
    if fell:
        found.append(_listing("部分指标比上年有所下滑：", fell))
    if missing:
        found.append(_listing("部分指标未能统计，请补报或更正：", missing))
    open_rows = data.quarantine.get(code, {})
    if open_rows:
        parts = "、".join(f"{wording.SOURCE_NAMES.get(s, s)}{n}条" for s, n in sorted(open_rows.items()))
        found.append(
            (
                Run(
                    f"尚有{sum(open_rows.values())}条记录未通过数据校验被隔离（{parts}），未计入上述指标，请在源系统中"
                    f"更正后重新报送（清单：fazhi quarantine --township {township['name']}）。"
                ),
            )
        )
    blocks = [
        Block(
            "公文正文",
            (
                Run(f"{data.year}年，{township['name']}依法行政工作取得了一定成效，但也存在问题和不足。"),
                Run("【以下为根据指标数据生成的提示，定稿前请核实、修改或删除】", "fill"),
            ),
        )
    ]
    for number, runs in zip("一二三四", found, strict=False):
        blocks.append(Block("公文正文", (Run(f"（{number}）", "lead"), *runs)))
    blocks.append(Block("公文正文", (Run("【请填写：其他问题和不足，如队伍建设、培训学习、执法力度等】", "fill"),)))
    return blocks


ANNEX_HEADER = ("代码", "指标", "单位", "本年", "分子/分母", "上年", "比上年", "目标", "目标灯", "全县排名", "状态")
ANNEX_WIDTHS_CM = (1.6, 4.6, 1.1, 2.0, 2.2, 2.0, 2.9, 1.3, 1.3, 1.2, 2.3)


def annex(data: YearData, township: dict) -> list[Block]:
    edition = f"第{data.edition}版" if data.edition else "日常更新值"
    as_of = f"，数据截至{data.as_of:%Y年%m月%d日}" if isinstance(data.as_of, datetime) else ""
    rows = [ANNEX_HEADER]
    for c in data.catalogue:
        r = data.value(township["code"], c["indicator_code"])
        if r is None:
            rows.append((c["indicator_code"], c["name_zh"], c["unit"], "未发布", "", "", "", "", "", "", "未发布"))
            continue
        num, den = r["numerator"], r["denominator"]
        ratio = f"{num}/{den}" if num is not None and den is not None else "" if den is None else f"n={den}"
        previous = None if r.get("previous_value") is None else {**r, "value": r["previous_value"]}
        rows.append(
            (
                r["indicator_code"],
                r["indicator_name_zh"],
                r["unit"],
                wording.short(r),
                ratio,
                wording.short(previous) if previous else "—",
                wording.change(r),
                wording.target(r),
                wording.light_words(r.get("traffic_light"))[0] if r.get("target_value") is not None else "",
                "" if r.get("rank_in_county") is None else str(r["rank_in_county"]),
                wording.status_words(r)[0],
            )
        )
    return [
        Block("附件标题", (Run(f"附件：{township['name']}{data.year}年法治政府建设指标一览表"),)),
        Block(
            "表格文字",
            (
                Run(
                    f"数据来源：法治指标数据仓库发布库（{edition}{as_of}）。核查某项指标计入的记录："
                    f"fazhi explain --year {data.year} --township {township['name']} --indicator 代码"
                ),
            ),
        ),
        Block("表格文字", table=tuple(rows)),
    ]


def build_blocks(data: YearData, township_name: str) -> list[Block]:
    township = data.township(township_name)
    context = _context(data, township)
    blocks: list[Block] = []
    for item in yaml.safe_load(SENTENCES.read_text(encoding="utf-8")):
        if item.get("generate") == "problems":
            blocks += problems(data, township)
        elif item.get("generate") == "annex":
            blocks += annex(data, township)
        else:
            lead = (Run(_substitute(item["lead"], context), "lead"),) if item.get("lead") else ()
            blocks.append(Block(item["style"], lead + fill(item["text"], data, township, context)))
    return blocks


def render(blocks: list[Block], template: Path | None, title: str, stamp: datetime) -> bytes:
    """The .docx bytes: the template's styles, page setup and footer, our paragraphs."""
    from docx.enum.section import WD_ORIENT, WD_SECTION
    from docx.enum.text import WD_COLOR_INDEX
    from docx.oxml.ns import qn

    doc = load_template(template)
    body = doc.element.body
    for child in list(body):
        if child.tag != qn("w:sectPr"):
            body.remove(child)
    for block in blocks:
        if block.table:
            _table(doc, block)
            continue
        if block.style == "附件标题":  # the annex on its own landscape pages
            section = doc.add_section(WD_SECTION.NEW_PAGE)
            section.orientation = WD_ORIENT.LANDSCAPE
            section.page_width, section.page_height = section.page_height, section.page_width
            section.left_margin, section.right_margin = section.top_margin, section.bottom_margin
            section.top_margin = section.bottom_margin = doc.sections[0].left_margin
        p = doc.add_paragraph(style=block.style)
        for run in block.runs:
            r = p.add_run(run.text, style="二级标题" if run.kind == "lead" else None)
            if run.kind in ("fill", "missing"):
                r.font.highlight_color = WD_COLOR_INDEX.YELLOW if run.kind == "fill" else WD_COLOR_INDEX.TURQUOISE
    props = doc.core_properties
    props.title, props.author, props.last_modified_by = title, "fazhi-warehouse", "fazhi-warehouse"
    props.created = props.modified = stamp
    props.revision = 1
    buffer = io.BytesIO()
    doc.save(buffer)
    return _stable_zip(buffer.getvalue(), stamp)


def _table(doc, block: Block) -> None:
    from docx.oxml import OxmlElement
    from docx.oxml.ns import qn
    from docx.shared import Cm

    table = doc.add_table(rows=len(block.table), cols=len(block.table[0]))
    table.autofit = False
    for column, width in zip(table.columns, ANNEX_WIDTHS_CM, strict=True):
        column.width = Cm(width)  # the table grid, which LibreOffice and WPS follow
    borders = OxmlElement("w:tblBorders")
    for edge in ("top", "left", "bottom", "right", "insideH", "insideV"):
        e = OxmlElement(f"w:{edge}")
        e.set(qn("w:val"), "single")
        e.set(qn("w:sz"), "4")
        e.set(qn("w:color"), "000000")
        borders.append(e)
    table._tbl.tblPr.append(borders)
    for row, values in zip(table.rows, block.table, strict=True):
        for cell, value, width in zip(row.cells, values, ANNEX_WIDTHS_CM, strict=True):
            cell.width = Cm(width)
            p = cell.paragraphs[0]
            p.style = doc.styles[block.style]
            run = p.add_run(value)
            run.bold = row is table.rows[0]
    header = table.rows[0]._tr.get_or_add_trPr()
    repeat = OxmlElement("w:tblHeader")
    header.append(repeat)


def _stable_zip(data: bytes, stamp: datetime) -> bytes:
    """The same parts with the same timestamp: the same edition gives the same bytes."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            fixed = zipfile.ZipInfo(info.filename, date_time=(max(stamp.year, 1980), *stamp.timetuple()[1:6]))
            fixed.compress_type = zipfile.ZIP_DEFLATED
            dst.writestr(fixed, src.read(info.filename))
    return out.getvalue()


def write_township_report(
    published: Path,
    year: int,
    township: str,
    out: Path | None = None,
    edition: int | None = None,
    template: Path | None = None,
) -> Path:
    """Write the report draft; default file name `<township><year>年法治政府建设工作报告（草稿）.docx`
    in the current folder. Raises ReportInputError for bad input (before writing anything)."""
    data = read_year(published, year, edition, history=False)
    name = data.township(township)["name"]
    blocks = build_blocks(data, name)
    stamp = data.as_of if isinstance(data.as_of, datetime) else datetime(year, 12, 31)
    title = f"{data.county_name}{name}{year}年法治政府建设工作报告（草稿）"
    content = render(blocks, template, title, stamp)
    out = Path(out) if out else Path(f"{name}{year}年法治政府建设工作报告（草稿）.docx")
    if out.suffix.lower() != ".docx":
        raise ReportInputError(f"输出文件须以 .docx 结尾：{out}", f"the output file must end in .docx: {out}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_bytes(content)
    tmp.replace(out)
    return out
