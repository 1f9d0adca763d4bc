"""Outputs people read (issue 19), on the shipped sample published by the nightly flow: the
township report draft, the county workbook and CSV, written through the installed `fazhi`
console script and opened by LibreOffice (one headless call converting both to PDF)."""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import indicator_count
from tests.integration.test_validation_report import _png_non_white_fraction

FAZHI = str(Path(sys.executable).with_name("fazhi"))
SOFFICE = shutil.which("soffice") or shutil.which("libreoffice")
PDFTOPPM, PDFTOTEXT = shutil.which("pdftoppm"), shutil.which("pdftotext")

# Every figure of the seed report (永贡政〔2023〕69号) with its number, unit and qualifier, in the
# sentence that says it in the draft.
SEED_PHRASES = (
    "开展行政检查52件",
    "行政处罚16件",
    "依托行政执法一体化平台开展行政检查20件，行政处罚6件",
    "共受理矛盾纠纷320件",
    "调解成功率98%以上",
    "履行率达到90%以上",
    "培训讲座2次",
    "培训人数达68人次",
    "上法治课3次",
    "学习相关法律法规12次",
    "平台操作培训3次",
    "法律知识测试2次",
    "行政应诉案件1起",
    "出庭应诉率100%",
    "主动公开政府信息6条",
    "答复依申请公开信息1条",
    "审核文件200余份",
    "宣传资料8000余份",
    "法治讲座9场",
    "广告牌5面",
    "户外法治主题宣传活动12次",
    "反诈主题宣传4次",
    "新建反诈宣传阵地1个",
)


def fazhi(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([FAZHI, *args], capture_output=True, text=True, cwd=cwd, timeout=120)


@pytest.fixture(scope="module")
def outputs(sample_home, tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("outputs")
    files = {
        "report": out / "report.docx",
        "other": out / "other.docx",
        "workbook": out / "county.xlsx",
        "csv": out / "county.csv",
    }
    home = ["--home", str(sample_home)]
    for argv in (
        ["report", "--year", "2023", "--township", "贡川镇", "--out", str(files["report"])],
        ["report", "--year", "2023", "--township", "西洋镇", "--out", str(files["other"])],
        ["export", "--year", "2023", "--out", str(files["workbook"])],
        ["export", "--year", "2023", "--format", "csv", "--out", str(files["csv"])],
    ):
        done = fazhi(*argv, *home)
        assert done.returncode == 0, done.stderr
    return files


def _text(path: Path) -> str:
    import docx

    return "\n".join(p.text for p in docx.Document(str(path)).paragraphs)


def _indicators(home: Path, township: str) -> dict[str, dict]:
    done = fazhi("indicators", "--year", "2023", "--township", township, "--format", "json", "--home", str(home))
    return {r["indicator_code"]: r for r in json.loads(done.stdout)}


def test_report_states_every_seed_figure(outputs):
    text = _text(outputs["report"])
    missing = [p for p in SEED_PHRASES if p not in text]
    assert not missing, missing
    assert "永安市贡川镇人民政府关于2023年法治政府建设工作报告" in text
    for heading in (
        "一、法治政府建设主要举措和成效",
        "二、加强法治政府建设的有关情况",
        "三、问题和不足",
        "四、下阶段工作计划",
    ):
        assert heading in text
    assert text.count("【请填写") >= 10 and "None" not in text and "nan" not in text


def test_report_figures_come_from_the_township_s_own_indicators(outputs, sample_home):
    """Another township's draft says its own figures: nothing is written from constants."""
    from warehouse.reports.wording import phrase

    values = _indicators(sample_home, "西洋镇")
    text = _text(outputs["other"])
    for code, sentence in (("ENF01", "开展行政检查{}，"), ("MED02", "调解成功率{}，"), ("PUB01", "宣传资料{}，")):
        row = values[code] | {"kind": "rate" if values[code]["unit"] == "%" else "count"}
        assert sentence.format(phrase(row)) in text, code
    assert _text(outputs["report"]) != text


def test_report_problems_and_annex_are_drawn_from_the_data(outputs, sample_home):
    import docx

    values = _indicators(sample_home, "贡川镇")
    doc = docx.Document(str(outputs["report"]))
    text = "\n".join(p.text for p in doc.paragraphs)
    problems = text[text.index("三、问题和不足") : text.index("四、下阶段工作计划")]
    # ENF05 is red against its 90% target; 贡川镇 has 4 open quarantine entries
    assert "平台办案率38%以上（目标90%，红灯）" in problems
    assert "尚有4条记录未通过数据校验被隔离" in problems and "fazhi quarantine --township 贡川镇" in problems
    table = doc.tables[0]
    rows = {r.cells[0].text: [c.text for c in r.cells] for r in table.rows[1:]}
    assert set(rows) == set(values)  # every indicator of the catalogue
    assert rows["ENF05"][3:5] == ["38.2%", "26/68"] and rows["ENF05"][8] == "红灯"
    assert rows["OGI03"][3] == "≥200" and rows["ENF01"][3] == "52" and rows["ENF01"][6] == "−33"
    assert "fazhi explain --year 2023 --township 贡川镇 --indicator 代码" in text


def test_the_same_published_figures_give_the_same_document(outputs, sample_home, tmp_path):
    again = tmp_path / "again.docx"
    done = fazhi("report", "--year", "2023", "--township", "350481101", "--out", str(again), "--home", str(sample_home))
    assert done.returncode == 0, done.stderr
    assert again.read_bytes() == outputs["report"].read_bytes()


def test_workbook_numbers_are_numbers_and_county_is_sum_over_sum(outputs, sample_home):
    import openpyxl

    wb = openpyxl.load_workbook(outputs["workbook"])
    overview = wb["全部指标"]
    header = [c.value for c in overview[1]]
    catalogue = _indicators(sample_home, "贡川镇")
    for code in catalogue:  # every catalogue indicator has a column
        assert any(h and h.startswith(f"{code} ") and "（" in h for h in header), code
    last = [c for c in overview[overview.max_row]]
    assert last[1].value == "永安市" and last[0].font.b  # county row last, in bold
    gongchuan = next(r for r in overview.iter_rows(min_row=2) if r[1].value == "贡川镇")
    col = {h: i for i, h in enumerate(header)}
    enf05 = gongchuan[col["ENF05 平台办案率（%）"]]
    assert isinstance(enf05.value, float) and "%" in enf05.number_format and enf05.fill.fgColor.rgb.endswith("FFC7CE")
    ogi03 = gongchuan[col["OGI03 法律顾问审核文件份数（份）"]]
    assert ogi03.value == 200 and ogi03.number_format.startswith('"≥"')
    assert gongchuan[col["ENF01 排名 rank"]].value == 10  # 52 inspections: 10th of 15
    # group sheets: county numerator = sum of the townships', county value = sum / sum
    checked = 0
    for name in ("ENF 行政执法", "MED 矛盾纠纷化解", "TRN 学法培训", "LIT 行政应诉", "OGI 政务公开", "PUB 普法宣传"):
        ws = wb[name]
        by_code: dict[str, list] = {}
        for r in ws.iter_rows(min_row=2, values_only=True):
            by_code.setdefault(r[2], []).append(r)
        for code, rows in by_code.items():
            *towns, county = rows
            assert county[1] == "永安市" and len(towns) == 15
            if catalogue[code]["denominator"] is None or catalogue[code]["unit"] == "天":
                if catalogue[code]["unit"] != "天":
                    assert county[5] == sum(t[5] for t in towns if isinstance(t[5], int | float)), code
                continue
            num, den = sum(t[6] for t in towns), sum(t[7] for t in towns)
            assert (county[6], county[7]) == (num, den), code
            if den:
                assert county[5] == pytest.approx(num / den), code
            else:
                assert county[5] == "无数据（分母为0）", code
            checked += 1
    assert checked >= 10
    # a township without a figure says so in words, never 0 (LIT02 with no case heard)
    lit = [r for r in wb["LIT 行政应诉"].iter_rows(min_row=2, values_only=True) if r[2] == "LIT02"]
    assert any(r[5] == "无数据（分母为0）" for r in lit) and all(r[5] != 0 for r in lit)
    assert wb["指标定义"].max_row == len(catalogue) + 1
    quarantine = {r[1]: r[-1] for r in wb["待更正记录"].iter_rows(min_row=2, values_only=True)}
    assert quarantine["贡川镇"] == 4 and quarantine["燕东街道"] == 0


def test_csv_has_one_row_per_township_and_indicator(outputs, sample_home):
    rows = list(csv.DictReader(outputs["csv"].open(encoding="utf-8")))
    catalogue = _indicators(sample_home, "贡川镇")
    assert len(rows) == 16 * len(catalogue)
    enf01 = next(r for r in rows if r["township_name"] == "贡川镇" and r["indicator_code"] == "ENF01")
    assert enf01["value"] == "52" and enf01["status_zh"] == "正常"


@pytest.fixture(scope="module")
def pdfs(outputs, tmp_path_factory) -> dict[str, Path]:
    if not SOFFICE:
        pytest.skip("no LibreOffice (.ci/run installs libreoffice-writer, libreoffice-calc)")
    out = tmp_path_factory.mktemp("pdf")
    done = subprocess.run(
        [SOFFICE, "--headless", f"-env:UserInstallation={(out / 'profile').as_uri()}", "--convert-to", "pdf",
         "--outdir", str(out), str(outputs["report"]), str(outputs["workbook"])],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    pdfs = {"report": out / "report.pdf", "workbook": out / "county.pdf"}
    for path in pdfs.values():
        assert path.exists() and path.stat().st_size > 5000, (path, done.stdout, done.stderr)
    return pdfs


@pytest.mark.skipif(not (PDFTOPPM and PDFTOTEXT), reason="no poppler-utils")
def test_libreoffice_opens_the_report_and_the_workbook(pdfs, tmp_path):
    report = subprocess.run([PDFTOTEXT, str(pdfs["report"]), "-"], capture_output=True, text=True).stdout
    flat = "".join(report.split())
    assert "开展行政检查52件" in flat and "调解成功率98%以上" in flat and "附件" in flat
    workbook = subprocess.run([PDFTOTEXT, str(pdfs["workbook"]), "-"], capture_output=True, text=True).stdout
    assert "贡川镇" in workbook and "永安市" in workbook
    subprocess.run([PDFTOPPM, "-r", "40", "-png", "-f", "1", "-l", "1", str(pdfs["report"]), str(tmp_path / "p")],
                   check=True)  # fmt: skip
    page = next(tmp_path.glob("p*.png")).read_bytes()
    assert 0.01 < _png_non_white_fraction(page) < 0.5


@pytest.mark.parametrize(
    ("argv", "zh", "en"),
    [
        (["report", "--year", "2023", "--township", "无此镇"], "没有名为或代码为「无此镇」的乡镇", "no township"),
        (["report", "--year", "2019", "--township", "贡川镇"], "没有 2019 年的指标", "no indicators for 2019"),
        (["report", "--year", "2023", "--township", "贡川镇", "--edition", "7"], "没有第 7 版", "no edition 7"),
        (["export", "--year", "2019", "--out", "x.xlsx"], "没有 2019 年的指标", "no indicators for 2019"),
        (["export", "--year", "2023", "--edition", "7", "--out", "x.xlsx"], "没有第 7 版", "no edition 7"),
        (["export", "--year", "2023", "--out", "x.pdf"], "须以 .xlsx 结尾", "must end in .xlsx"),
    ],
)
def test_bad_input_is_a_bilingual_error_with_exit_2(sample_home, tmp_path, argv, zh, en):
    done = fazhi(*argv, "--home", str(sample_home), cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert zh in done.stderr and en in done.stderr and "Traceback" not in done.stderr
    assert not list(tmp_path.iterdir())  # nothing written


def test_nothing_published_yet_is_a_bilingual_error(tmp_path):
    (tmp_path / "fazhi.toml").write_text("[pipeline]\n", encoding="utf-8")
    for argv in (["report", "--township", "贡川镇"], ["export", "--out", str(tmp_path / "x.xlsx")]):
        done = fazhi(*argv, "--year", "2023", "--home", str(tmp_path))
        assert done.returncode == 2 and "尚未发布分析库" in done.stderr and "no published database" in done.stderr


def _home_with_template(sample_home: Path, tmp_path: Path, template: str) -> Path:
    """A home reading the sample's published database with `[reports] template` set."""
    home = tmp_path / "home"
    (home / "published").mkdir(parents=True)
    (home / "published" / "fazhi.duckdb").symlink_to(sample_home / "published" / "fazhi.duckdb")
    config = (sample_home / "fazhi.toml").read_text(encoding="utf-8")
    config = config.replace("[reports]\n", f'[reports]\ntemplate = "{template}"\n')
    (home / "fazhi.toml").write_text(config.replace('"sample/', f'"{sample_home}/sample/'), encoding="utf-8")
    return home


def test_a_missing_or_broken_template_is_a_bilingual_error(sample_home, tmp_path):
    import docx

    argv = ["report", "--year", "2023", "--township", "贡川镇", "--out", str(tmp_path / "r.docx")]
    home = _home_with_template(sample_home, tmp_path, "house.docx")
    done = fazhi(*argv, "--home", str(home))
    assert done.returncode == 2 and "找不到报告模板" in done.stderr and "not found" in done.stderr
    (home / "house.docx").write_text("not a word file", encoding="utf-8")
    done = fazhi(*argv, "--home", str(home))
    assert done.returncode == 2 and "无法读取" in done.stderr and "not a readable Word" in done.stderr
    docx.Document().save(str(home / "house.docx"))  # a Word file without the report's styles
    done = fazhi(*argv, "--home", str(home))
    assert done.returncode == 2 and "缺少样式" in done.stderr and "lacks the styles" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "r.docx").exists()


def test_a_county_template_replaces_the_house_style(sample_home, tmp_path):
    import docx
    from docx.shared import Pt

    from warehouse.reports.template_docx import SHIPPED_TEMPLATE

    house = docx.Document(str(SHIPPED_TEMPLATE))
    house.styles["公文正文"].font.size = Pt(14)
    home = _home_with_template(sample_home, tmp_path, "house.docx")
    house.save(str(home / "house.docx"))
    out = tmp_path / "r.docx"
    done = fazhi("report", "--year", "2023", "--township", "贡川镇", "--out", str(out), "--home", str(home))
    assert done.returncode == 0, done.stderr
    assert docx.Document(str(out)).styles["公文正文"].font.size == Pt(14)
    assert "开展行政检查52件" in _text(out)


# --- the county dashboard, written by the nightly flow's publish (sample_home) ---------------


def _chromium(page: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    from tests.integration.test_validation_report import CHROMIUM, CHROMIUM_FLAGS

    if CHROMIUM is None:
        pytest.skip("no chromium binary (.ci/run installs Debian's chromium + fonts-noto-cjk)")
    return subprocess.run(
        [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args, page.as_uri()],
        capture_output=True,
        text=True,
        timeout=90,
    )


def _network_and_console(stderr: str) -> tuple[list[str], list[str]]:
    requested = set(re.findall(r"https?://[^\s\"')]+", stderr))
    own = {u for u in requested if any(k in u for k in ("chromium", "google", "gstatic", "crbug"))}
    console = [line for line in stderr.splitlines() if "CONSOLE" in line or "Content Security Policy" in line]
    return sorted(requested - own), console


def test_every_publish_writes_a_dashboard_per_year_linked_from_the_run_artifact(sample_home):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    reports = sample_home / "published" / "reports"
    assert sorted(p.name for p in reports.glob("*.html")) == [f"dashboard-{y}.html" for y in (2022, 2023, 2024)]
    page = (reports / "dashboard-2023.html").read_text(encoding="utf-8")
    assert not re.search(r"https?://|\b(src|href|action|srcset)\s*=|@import|url\s*\(|<script|<link|<iframe", page)
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["indicators"])))
    link = (reports / "dashboard-2023.html").as_uri()
    assert any(link in (a.data or "") for a in artifacts), "the nightly's indicators artifact links the dashboard"


def test_dashboard_in_headless_chromium_shows_the_published_figures(sample_home, tmp_path):
    from html.parser import HTMLParser

    from warehouse.reports.wording import short

    page = sample_home / "published" / "reports" / "dashboard-2023.html"
    done = _chromium(page, tmp_path, "--dump-dom")
    assert done.returncode == 0 and "<html" in done.stdout, done.stderr[-2000:]
    network, console = _network_and_console(done.stderr)
    assert not network and not console, (network[:5], console[:5])

    class Figures(HTMLParser):
        """(area, indicator) -> [(data-value, data-status, text)] of every figure on the page."""

        def __init__(self):
            super().__init__()
            self.found, self.open = {}, None

        def handle_starttag(self, tag, attrs):
            a = dict(attrs)
            if "data-indicator" in a:
                self.open = [(a["data-area"], a["data-indicator"]), a["data-value"], a["data-status"], ""]

        def handle_data(self, data):
            if self.open:
                self.open[3] += data

        def handle_endtag(self, tag):
            if self.open:
                key, *rest = self.open
                self.found.setdefault(key, []).append(tuple(rest))
                self.open = None

    parser = Figures()
    parser.feed(done.stdout)
    done = fazhi("indicators", "--year", "2023", "--format", "json", "--home", str(sample_home))
    published = json.loads(done.stdout)
    assert len(published) == 16 * indicator_count() and set(parser.found) == {
        (r["township_code"], r["indicator_code"]) for r in published
    }
    for r in published:
        kind = "rate" if r["unit"] == "%" else "count"
        for value, status, text in parser.found[(r["township_code"], r["indicator_code"])]:
            assert status == r["status"]
            if r["value"] is None:
                assert value == "" and text == short(r | {"kind": kind}) and text != "0"
            else:
                assert float(value) == pytest.approx(r["value"], abs=1e-12), (r, value)
                if kind == "rate" or isinstance(r["value"], int):
                    assert text == short(r | {"kind": kind}), (r, text)
    county = [f for f in parser.found[("350481", "ENF01")]]
    assert len(county) == 2  # the headline card and the grid


def test_dashboard_screenshot_renders_chinese(sample_home, tmp_path):
    page = sample_home / "published" / "reports" / "dashboard-2023.html"
    shot = tmp_path / "dashboard.png"
    done = _chromium(page, tmp_path, f"--screenshot={shot}", "--window-size=1400,1400")
    assert shot.exists(), done.stderr[-2000:]
    assert 0.05 < _png_non_white_fraction(shot.read_bytes()) < 0.95
    network, console = _network_and_console(done.stderr)
    assert not network and not console
