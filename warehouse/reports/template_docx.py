"""The report's Word template: the styles the township report is written with, and the checks a
county's own template must pass. The shipped template (templates/report.docx) is plain 公文 style
(GB/T 9704-2012: A4, 三号仿宋 body on a 28 pt line, 二号小标宋 title, 黑体 first-level headings,
楷体 second-level leads); regenerate it with `python -m warehouse.reports.template_docx`.

Fonts: the styles name the fonts a government office has (方正小标宋简体, 仿宋_GB2312, 黑体,
楷体_GB2312); the template's font table gives each an alternative that Windows, WPS and macOS
ship (宋体, 仿宋, 黑体, 楷体), and LibreOffice falls back to the CJK fonts of the machine."""

from __future__ import annotations

from pathlib import Path

from warehouse.reports.published import ReportInputError

SHIPPED_TEMPLATE = Path(__file__).parent / "templates" / "report.docx"

# style name -> kind; a county's template must define every one of them
PARAGRAPH_STYLES = ("发文机关标志", "发文字号", "公文标题", "一级标题", "公文正文", "落款", "附件标题", "表格文字")
CHARACTER_STYLES = ("二级标题",)

# font -> the alternative named in the font table (Word/WPS use it when the font is missing)
FONTS = {"方正小标宋简体": "宋体", "仿宋_GB2312": "仿宋", "楷体_GB2312": "楷体", "黑体": "SimHei"}


def load_template(path: Path | None):
    """python-docx Document of `path` (default: the shipped template); a missing, unreadable or
    incomplete template is a ReportInputError naming what is wrong."""
    import docx
    from docx.enum.style import WD_STYLE_TYPE

    path = Path(path) if path else SHIPPED_TEMPLATE
    if not path.is_file():
        raise ReportInputError(f"找不到报告模板 {path}", f"report template {path} not found")
    try:
        doc = docx.Document(str(path))
    except Exception as exc:  # not a zip, not a Word document, a broken part
        raise ReportInputError(
            f"报告模板 {path} 无法读取，不是有效的 Word(.docx) 文件：{type(exc).__name__}",
            f"report template {path} is not a readable Word .docx file: {type(exc).__name__}: {exc}",
        ) from None
    have = {(s.name, s.type) for s in doc.styles}
    missing = [n for n in PARAGRAPH_STYLES if (n, WD_STYLE_TYPE.PARAGRAPH) not in have]
    missing += [n for n in CHARACTER_STYLES if (n, WD_STYLE_TYPE.CHARACTER) not in have]
    if missing:
        raise ReportInputError(
            f"报告模板 {path} 缺少样式：{'、'.join(missing)}（请以随附模板为基础修改）",
            f"report template {path} lacks the styles {', '.join(missing)} (start from the shipped template)",
        )
    return doc


def _fonts(style, east_asia: str, size_pt: float, bold: bool = False, color: str | None = None) -> None:
    from docx.oxml.ns import qn
    from docx.shared import Pt, RGBColor

    font = style.font
    font.name = "Times New Roman"
    font.size = Pt(size_pt)
    font.bold = bold
    if color:
        font.color.rgb = RGBColor.from_string(color)
    rfonts = style.element.get_or_add_rPr().get_or_add_rFonts()
    rfonts.set(qn("w:eastAsia"), east_asia)


def build_shipped_template(out: Path) -> Path:
    import docx
    from docx.enum.style import WD_STYLE_TYPE
    from docx.enum.text import WD_ALIGN_PARAGRAPH, WD_LINE_SPACING
    from docx.shared import Cm, Pt

    doc = docx.Document()
    section = doc.sections[0]
    section.page_width, section.page_height = Cm(21), Cm(29.7)
    section.top_margin, section.bottom_margin = Cm(3.7), Cm(3.5)
    section.left_margin, section.right_margin = Cm(2.8), Cm(2.6)
    _page_number_footer(section)

    def paragraph(name, east_asia, size, align=None, indent_chars=0, bold=False, color=None, before=0, after=0):
        s = doc.styles.add_style(name, WD_STYLE_TYPE.PARAGRAPH)
        s.base_style = doc.styles["Normal"]
        _fonts(s, east_asia, size, bold, color)
        f = s.paragraph_format
        f.line_spacing_rule, f.line_spacing = WD_LINE_SPACING.EXACTLY, Pt(28 if size <= 16 else size + 8)
        f.space_before, f.space_after = Pt(before), Pt(after)
        f.first_line_indent = Pt(size * indent_chars) if indent_chars else None
        if align is not None:
            f.alignment = align
        s.quick_style = True
        return s

    _fonts(doc.styles["Normal"], "仿宋_GB2312", 16)
    paragraph("发文机关标志", "方正小标宋简体", 26, WD_ALIGN_PARAGRAPH.CENTER, color="C00000", before=24, after=12)
    paragraph("发文字号", "仿宋_GB2312", 16, WD_ALIGN_PARAGRAPH.CENTER, after=24)
    paragraph("公文标题", "方正小标宋简体", 22, WD_ALIGN_PARAGRAPH.CENTER, after=16)
    paragraph("一级标题", "黑体", 16, indent_chars=2)
    paragraph("公文正文", "仿宋_GB2312", 16, WD_ALIGN_PARAGRAPH.JUSTIFY, indent_chars=2)
    paragraph("落款", "仿宋_GB2312", 16, WD_ALIGN_PARAGRAPH.RIGHT)
    paragraph("附件标题", "黑体", 16, WD_ALIGN_PARAGRAPH.CENTER, after=12)
    table = paragraph("表格文字", "仿宋_GB2312", 10.5)
    table.paragraph_format.line_spacing_rule = WD_LINE_SPACING.SINGLE
    lead = doc.styles.add_style("二级标题", WD_STYLE_TYPE.CHARACTER)
    _fonts(lead, "楷体_GB2312", 16)
    _font_table(doc)
    doc.core_properties.title = "法治政府建设工作报告模板"
    doc.core_properties.author = "fazhi-warehouse"
    out.parent.mkdir(parents=True, exist_ok=True)
    _drop_thumbnail(doc)
    doc.save(str(out))
    return out


def _page_number_footer(section) -> None:
    """— 1 — centred at the foot of each page (公文 page numbers)."""
    from docx.enum.text import WD_ALIGN_PARAGRAPH
    from docx.oxml import OxmlElement
    from docx.oxml.ns import qn
    from docx.shared import Pt

    p = section.footer.paragraphs[0]
    p.alignment = WD_ALIGN_PARAGRAPH.CENTER
    runs = p.add_run("— "), p.add_run("1"), p.add_run(" —")
    for run in runs:
        run.font.size = Pt(14)
    field = OxmlElement("w:fldSimple")
    field.set(qn("w:instr"), "PAGE")
    runs[1]._r.addprevious(field)
    field.append(runs[1]._r)  # the page number's run moves inside the field


def _font_table(doc) -> None:
    """Declare the 公文 fonts with their alternatives (w:altName) and the GB2312 charset."""
    from lxml import etree

    part = next(p for p in doc.part.package.parts if str(p.partname) == "/word/fontTable.xml")
    root = etree.fromstring(part.blob)
    ns = root.nsmap["w"]
    w = lambda tag: f"{{{ns}}}{tag}"  # noqa: E731
    for name, alt in FONTS.items():
        font = etree.SubElement(root, w("font"), {w("name"): name})
        etree.SubElement(font, w("altName"), {w("val"): alt})
        etree.SubElement(font, w("charset"), {w("val"): "86"})
        etree.SubElement(font, w("family"), {w("val"): "modern" if "黑" in name else "roman"})
        etree.SubElement(font, w("pitch"), {w("val"): "variable"})
    part._blob = etree.tostring(root, xml_declaration=True, encoding="UTF-8", standalone=True)


def _drop_thumbnail(doc) -> None:
    """python-docx's default document carries a thumbnail of an empty page: not ours to ship."""
    rels = doc.part.package.rels
    for rid in [k for k, r in rels.items() if r.reltype.endswith("/metadata/thumbnail")]:
        rels.pop(rid)


if __name__ == "__main__":
    print(build_shipped_template(SHIPPED_TEMPLATE))
