"""Township spreadsheets as real offices write them (issue 15): a corpus of workbooks saved by
LibreOffice (headless, in this run: tests/fixtures/township_corpus.py) loaded through every
pipeline step, each file with its expected figures or refusal; the CLI read through the
installed `fazhi` console script; a scan of every output for the names in the files; the
templates printed to PDF and read back.

Phase 1: a county whose clerks sent a ledger with a two-row merged header, a hidden stale
roster and signature lines; a ledger saved as .xls; a return kept as four quarter sheets and a
year total; a return saved as HTML named .xls; a corrupt file; a file under the template's own
name; files named for 2032 and 2013; a session dated 2032; return items written `若干` and `一`.
Phase 2: the townships send corrections (a return re-sent under its name with a new bad item;
the HTML return saved again as .xlsx).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest

from tests.conftest import query, run_steps
from tests.fixtures import township_corpus as corpus
from tests.fixtures.township_corpus import COUNTY, A, B, C

FAZHI = str(Path(sys.executable).with_name("fazhi"))


def _need_office() -> None:
    missing = [t for t in ("soffice", "pdftotext", "pdfinfo") if not shutil.which(t)]
    if missing and os.environ.get("FAZHI_CI"):
        pytest.fail(f"CI must install LibreOffice Calc and poppler-utils (.ci/run): {missing} not found")
    if missing:
        pytest.skip(f"{missing} not installed (Debian: libreoffice-calc, poppler-utils)")


@pytest.fixture(scope="session")
def office_files(tmp_path_factory) -> dict[str, Path]:
    """The corpus as LibreOffice saved it, by name: three soffice calls (xlsx, xls, html)."""
    _need_office()
    root = tmp_path_factory.mktemp("corpus")
    src = corpus.write_sources(root / "src")
    profile = root / "office-profile"
    resent = src["return_c_resent"].rename(root / "src" / f"resent-{src['return_c_resent'].name}")
    names = [k for k in src if k not in ("ledger_b", "return_c_resent")]
    xlsx = corpus.office([src[k] for k in names] + [resent], "xlsx", root / "xlsx", profile)
    out = dict(zip(names, xlsx[:-1], strict=True)) | {"return_c_resent": xlsx[-1]}
    out["return_b_xlsx"] = out["return_b"]
    (out["ledger_b"],) = corpus.office([src["ledger_b"]], "xls", root / "xls", profile)
    (html,) = corpus.office([src["return_b"]], "html", root / "html", profile)
    out["return_b"] = html.rename(html.with_suffix(".xls"))  # as some systems "export to Excel"
    data = out["corrupt"].read_bytes()
    out["corrupt"].write_bytes(data[: len(data) // 2])  # cut short, as a broken upload leaves it
    return out


@dataclass
class Phase:
    home: Path
    values: dict  # (year, area, indicator) -> row of `fazhi indicators --format json`
    quarantine: list[dict]  # `fazhi quarantine --format json`
    warnings: list[tuple]


def _fazhi(*args: str) -> str:
    done = subprocess.run([FAZHI, *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _night(home: Path) -> subprocess.CompletedProcess:
    """`fazhi run` as an operator runs it without a Prefect server: the installed command, the
    key in the environment (Prefect's own home beside the home, so no profile is shared)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env |= {"FAZHI_HMAC_KEY": "test-key-not-secret-0123456789abcdef", "PREFECT_HOME": str(home.parent / "prefect")}
    done = subprocess.run([FAZHI, "run", "--home", str(home)], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def _county_home(home: Path, *training: Path) -> Path:
    """The corpus county's home (its townships, both drop folders), `training` dropped."""
    (home / "drop" / "training").mkdir(parents=True)
    (home / "drop" / "returns").mkdir()
    (home / "fazhi.toml").write_text(corpus.CONFIG, encoding="utf-8")
    corpus.townships_csv(home / "townships.csv")
    for path in training:
        shutil.copyfile(path, home / "drop" / "training" / path.name)
    return home


def _phase(home: Path) -> Phase:
    run_steps(home)
    values = {}
    for year in (2022, 2023):
        for r in json.loads(_fazhi("indicators", "--home", str(home), "--year", str(year), "--format", "json")):
            values[(r["year"], r["township_code"], r["indicator_code"])] = r
    quarantine = json.loads(_fazhi("quarantine", "--home", str(home), "--format", "json"))
    warnings = query(
        home / "published" / "fazhi.duckdb",
        "select file_name, sheet_name, row_number, column_name, rule from audit.file_issue "
        "where level = 'warn' and resolved_at is null order by all",
    )
    return Phase(home, values, quarantine, warnings)


@pytest.fixture(scope="session")
def phase1(office_files, tmp_path_factory) -> Phase:
    home = tmp_path_factory.mktemp("county")
    (home / "fazhi.toml").write_text(corpus.CONFIG, encoding="utf-8")
    corpus.townships_csv(home / "townships.csv")
    for source, names in {
        "training": ["ledger_a", "ledger_b", "ledger_c", "template_name", "year_2032", "year_2013", "corrupt"],
        "returns": ["return_a", "return_b", "return_c", "quarters_only"],
    }.items():
        drop = home / "drop" / source
        drop.mkdir(parents=True)
        for name in names:
            shutil.copyfile(office_files[name], drop / office_files[name].name)
    return _phase(home)


@pytest.fixture(scope="session")
def phase2(phase1, office_files) -> Phase:
    """小陶镇 re-sends its return under the same name (PUB06 and LIT02A corrected, OGI01 now
    `一万份`); 安砂镇 saves its HTML return again as a real .xlsx."""
    drop = phase1.home / "drop" / "returns"
    shutil.copyfile(office_files["return_c_resent"], drop / f"{C}_2023_年度报表.xlsx")
    shutil.copyfile(office_files["return_b_xlsx"], drop / f"{B}_2023_年度报表.xlsx")
    (drop / f"{B}_2023_年度报表.xls").unlink()
    return _phase(phase1.home)


def _figures(phase: Phase, year: int, area: str) -> dict[str, tuple]:
    return {
        code: (r["value"], r["status"], r["qualifier"])
        for (y, a, code), r in phase.values.items()
        if y == year and a == area
    }


OK = "ok"
EXPECTED_2023 = {
    # 贡川镇: the year-total sheet (not the first quarter's), synonyms, hours with units, the visible
    # roster (not the hidden stale one), 是否合格（是/否）, 执法证件号, 1.22万 and 约4次 read exactly
    A: {
        "TRN01": (1, OK, None), "TRN02": (3, OK, None), "TRN03": (1, OK, None), "TRN04": (1, OK, None),
        "TRN05": (1, OK, None), "TRN06": (1, OK, None), "TRN07": (5 / 6, OK, None), "TRN08": (2 / 4, OK, None),
        "TRN09": (2 / 3, OK, None), "LIT01": (1, OK, None), "LIT02": (1.0, OK, None), "OGI01": (6, OK, None),
        "OGI03": (200, OK, ">="), "PUB01": (12200, OK, None), "PUB02": (9, OK, None), "PUB05": (4, OK, "~"),
        "PUB06": (1, OK, None),
    },
    # 安砂镇: its ledger saved as .xls loads; its return, HTML named .xls, is refused
    B: {
        "TRN01": (1, OK, None), "TRN02": (2, OK, None), "TRN04": (0, OK, None), "TRN07": (1.0, OK, None),
        "TRN08": (0.0, OK, None), "TRN09": (None, "no_data", None),
        "LIT01": (None, "missing_source", None), "OGI01": (None, "missing_source", None),
        "LIT02": (None, "missing_source", None),
    },
    # 小陶镇: its 2032 session is quarantined (the ledger's figures count the rest); 若干 and 一
    # quarantine PUB06 and LIT02A, so LIT02 is not computed
    C: {
        "TRN01": (1, "quarantined", None), "TRN04": (0, "quarantined", None), "TRN02": (1, "quarantined", None),
        "LIT01": (3, OK, None), "OGI01": (13000, OK, ">="), "PUB06": (None, "quarantined", None),
        "LIT02": (None, "quarantined", None), "PUB01": (3, OK, None),
    },
    # the county: sums over the townships that have the figure, flagged incomplete
    COUNTY: {
        "TRN01": (3, "incomplete", None), "OGI01": (13006, "incomplete", ">="), "PUB06": (1, "incomplete", None),
        "LIT02": (1.0, "incomplete", None), "PUB05": (7, "incomplete", "~"), "ENF01": (0, OK, None),
    },
}  # fmt: skip


@pytest.mark.parametrize("area", [A, B, C, COUNTY])
def test_figures_of_2023_are_read_as_the_clerk_meant(phase1, area):
    got = _figures(phase1, 2023, area)
    for code, (value, status, qualifier) in EXPECTED_2023[area].items():
        g_value, g_status, g_qualifier = got[code]
        assert (g_status, g_qualifier) == (status, qualifier), code
        assert g_value == pytest.approx(value) if value is not None else g_value is None, code


def test_county_rows_count_the_townships_missing(phase1):
    missing = {code: phase1.values[(2023, COUNTY, code)]["missing_townships"] for code in ("TRN01", "OGI01", "PUB06")}
    assert missing == {"TRN01": 1, "OGI01": 1, "PUB06": 2}  # PUB06: 安砂镇 refused, 小陶镇 quarantined
    assert phase1.values[(2023, COUNTY, "ENF01")]["missing_townships"] == 0


def test_each_figure_names_the_file_it_came_from(phase1):
    files = {(a, c): phase1.values[(2023, a, c)]["source_files"] for a in (A, B, C) for c in ("TRN01", "OGI01")}
    assert files == {
        (A, "TRN01"): [f"{A}_2023_学法培训台账.xlsx"],
        (A, "OGI01"): [f"{A}_2023_年度报表.xlsx"],
        (B, "TRN01"): [f"{B}_2023_学法培训台账.xls"],
        (B, "OGI01"): None,  # refused: no figure, no file
        (C, "TRN01"): [f"{C}_2023_学法培训台账.xlsx"],
        (C, "OGI01"): [f"{C}_2023_年度报表.xlsx"],
    }


def test_a_township_year_whose_files_were_refused_is_missing_not_zero(phase1):
    got = _figures(phase1, 2022, A)  # its ledger is corrupt, its return only quarter sheets
    assert {got[c] for c in ("TRN01", "TRN07", "OGI01", "LIT02")} == {(None, "missing_source", None)}


def _entries(phase: Phase) -> set[tuple]:
    return {(e["table_name"], e["source_file"], e["row_number"], tuple(e["rules"])) for e in phase.quarantine}


def test_each_bad_file_is_refused_alone_by_name_and_listed(phase1):
    assert _entries(phase1) == {
        ("(file)", "学法培训台账模板.xlsx", None, ("file-name",)),
        ("(file)", f"{A}_2022_学法培训台账.xlsx", None, ("file-format",)),
        ("(file)", f"{C}_2032_学法培训台账.xlsx", None, ("file-year",)),
        ("(file)", f"{C}_2013_学法培训台账.xlsx", None, ("file-year",)),
        ("(file)", f"{B}_2023_年度报表.xls", None, ("file-html",)),
        ("(file)", f"{A}_2022_年度报表.xlsx", None, ("sheets-quarterly",)),
        ("training_session", f"{C}_2023_学法培训台账.xlsx#活动登记", 4, ("TRS-R11",)),
        ("annual_return_item", f"{C}_2023_年度报表.xlsx", 4, ("RET-R07",)),
        ("annual_return_item", f"{C}_2023_年度报表.xlsx", 14, ("RET-R07",)),
    }
    message = {(e["source_file"], e["row_number"]): f"{e['message_zh']} / {e['message_en']}" for e in phase1.quarantine}
    assert "模板" in message[("学法培训台账模板.xlsx", None)]
    assert f"{A}_2023_学法培训台账.xlsx" in message[("学法培训台账模板.xlsx", None)]  # the expected pattern
    assert "2032" in message[(f"{C}_2032_学法培训台账.xlsx", None)]
    html = message[(f"{B}_2023_年度报表.xls", None)]
    assert "另存为" in html and ".xlsx" in html
    assert "全年合计" in message[(f"{A}_2022_年度报表.xlsx", None)]
    assert "2032-03-29" in message[(f"{C}_2023_学法培训台账.xlsx#活动登记", 4)]  # the date, as the row names it
    some = message[(f"{C}_2023_年度报表.xlsx", 14)]
    assert "「若干」" in some and "不是数字" in some and "为空" not in some and "is empty" not in some
    assert "「一」" in message[(f"{C}_2023_年度报表.xlsx", 4)]


def test_what_was_not_read_is_said(phase1):
    assert set(phase1.warnings) == {
        (f"{A}_2023_学法培训台账.xlsx", "人员名册", None, None, "sheet-hidden"),
        (f"{A}_2023_学法培训台账.xlsx", "活动登记", 13, None, "rows-after-footer"),
        (f"{A}_2023_学法培训台账.xlsx", "签到表", 2, "J", "column-unrecognised"),
        (f"{A}_2023_年度报表.xlsx", "草稿", None, None, "sheet-hidden"),
        (f"{A}_2023_年度报表.xlsx", "全年合计", None, None, "sheets-year-total"),
        (f"{A}_2023_年度报表.xlsx", "全年合计", 20, None, "rows-after-footer"),
    }


def test_only_table_rows_become_records_and_the_filled_date_beside_its_label_is_read(phase1):
    work = phase1.home / "work.duckdb"
    assert query(work, "select session_id from raw.training_session where township_code = ? order by 1", [A]) == [
        (f"S{i}",) for i in range(1, 6)
    ]  # no 合计, signature or name row
    assert query(work, "select count(*) from raw.training_staff where township_code = ?", [A]) == [(6,)]
    assert query(
        work, "select distinct cast(filled_date as varchar) from core.annual_return_item where township_code = ?", [A]
    ) == [("2024-01-15",)]


def test_a_re_sent_return_replaces_the_earlier_one_whole(phase2):
    got = _figures(phase2, 2023, C)
    assert got["OGI01"] == (None, "quarantined", None)  # 一万份: the old 13000余 does not stand
    assert got["PUB06"] == (2, OK, None) and got["LIT02"][:2] == (pytest.approx(1 / 3), OK)
    assert _figures(phase2, 2023, B)["OGI01"] == (2, OK, None)  # the HTML return saved again as .xlsx
    county = phase2.values[(2023, COUNTY, "OGI01")]
    assert (county["value"], county["status"], county["missing_townships"]) == (8, "incomplete", 1)
    entries = _entries(phase2)
    # only the new file's failing item is open: 若干 and 一 were corrected, 一万份 is new
    assert {e for e in entries if e[0] == "annual_return_item"} == {
        ("annual_return_item", f"{C}_2023_年度报表.xlsx", 6, ("RET-R07",))
    }
    assert not [e for e in entries if e[1] == f"{B}_2023_年度报表.xls"]  # resolved by the .xlsx
    closed = query(
        phase2.home / "work.duckdb",
        "select value_number::double from core.annual_return_item where township_code = ? and item_code = 'OGI01' "
        "and valid_to is not null",
        [C],
    )
    assert closed == [(13000.0,)]  # history keeps the earlier figure


def test_no_name_or_number_from_the_files_reaches_any_output(phase1):
    from warehouse.reports.validation import write_report

    home = phase1.home
    con = duckdb.connect(str(home / "work.duckdb"))
    try:
        report, _ = write_report(con, home / "reports", "run-test")
    finally:
        con.close()
    needles = corpus.NAMES + corpus.IDS + corpus.PHONES + list(corpus.CERTS.values())
    html = report.read_text(encoding="utf-8")
    assert "学法培训台账模板.xlsx" in html and "2032-03-29" in html  # the report names files and values…
    assert not [n for n in needles if n in html]  # …never a person
    con = duckdb.connect()
    try:
        con.execute("create table needles as select unnest($n) as needle", {"n": needles})
        parquet = sorted((home / "published" / "parquet").glob("**/*.parquet"))
        assert parquet
        for db in (home / "published" / "fazhi.duckdb", home / "work.duckdb"):
            con.execute(f"attach '{db}' as scanned (read_only)")
            columns = con.execute(
                "select schema_name, table_name, column_name from duckdb_columns() where database_name = 'scanned' "
                "and (data_type like 'VARCHAR%' or data_type = 'JSON')"
            ).fetchall()
            assert len(columns) > 50
            for schema, table, column in columns:
                relation = f'(select cast("{column}" as varchar) as v from scanned.{schema}.{table})'
                assert not _hits(con, relation), f"{db.name}: {schema}.{table}.{column}"
            con.execute("detach scanned")
        for path in parquet:
            relation = f"(select cast(columns(*) as varchar) from read_parquet('{path}'))"
            names = [d[0] for d in con.execute(f"select * from {relation} limit 0").description]
            for name in names:
                assert not _hits(con, f'(select "{name}" as v from {relation})'), f"{path.name}: {name}"
    finally:
        con.close()


def _hits(con: duckdb.DuckDBPyConnection, relation: str) -> int:
    return con.execute(f"select count(*) from {relation} r, needles where contains(r.v, needle)").fetchone()[0]


# ---- the templates ----------------------------------------------------------------------------------


@dataclass
class Templates:
    training: Path
    returns: Path
    filled_pdf: Path  # the training template filled with 120 sessions, printed by LibreOffice
    returns_pdf: Path
    filled_by_office: Path  # the filled template saved again by LibreOffice
    training_by_office: Path


@pytest.fixture(scope="session")
def templates(tmp_path_factory, office_files) -> Templates:
    import openpyxl

    from warehouse.sources.templates import write_template

    root = tmp_path_factory.mktemp("templates")
    towns = corpus.townships_csv(root / "townships.csv")
    training = write_template("training", root / "学法培训台账模板.xlsx", towns)
    returns = write_template("returns", root / "年度报表模板.xlsx", towns)
    filled = root / f"{C}_2023_学法培训台账.xlsx"
    wb = openpyxl.load_workbook(training)
    for i in range(120):  # under the example row, which stays
        for j, v in enumerate([f"C{i:03d}", f"2023-{i % 12 + 1:02d}-10", "部门学法", f"第{i}次学法", "小陶镇", 2], 1):
            wb["活动登记"].cell(row=4 + i, column=j, value=v)
    for sheet, row in (
        ("参训签到", ["C000", corpus.NAMES[12], "R1", corpus.IDS[8], "小陶镇", "否", "否", None, None]),
        ("人员名册", ["R1", corpus.NAMES[12], corpus.IDS[8], "小陶镇", "干部", "否", None, None]),
    ):
        for j, v in enumerate(row, 1):
            wb[sheet].cell(row=4, column=j, value=v)
    wb.save(filled)
    profile = root / "office-profile"
    filled_pdf, returns_pdf = corpus.office([filled, returns], "pdf", root / "pdf", profile)
    by_office = corpus.office([filled, training], "xlsx", root / "office", profile)
    return Templates(training, returns, filled_pdf, returns_pdf, *by_office)


def _pages(pdf: Path) -> list[tuple[str, tuple[float, float]]]:
    """(text, (width, height) in points) of every page."""
    info = subprocess.run(["pdfinfo", "-f", "1", "-l", "999", str(pdf)], capture_output=True, text=True, check=True)
    sizes = [
        tuple(float(x) for x in line.split("size:")[1].split("pts")[0].split(" x "))
        for line in info.stdout.splitlines()
        if line.startswith("Page") and "size:" in line
    ]
    return [
        (subprocess.run(["pdftotext", "-f", str(n), "-l", str(n), str(pdf), "-"], capture_output=True, text=True,
                        check=True).stdout, size)
        for n, size in enumerate(sizes, 1)
    ]  # fmt: skip


def test_templates_print_landscape_one_page_wide_with_the_title_on_every_page(templates):
    pages = _pages(templates.filled_pdf)
    sessions = [text for text, _ in pages if "次学法" in text]  # the pages listing sessions (topics 第N次学法)
    assert len(sessions) >= 3  # 120 sessions run over several pages…
    for text in sessions:  # …each with the title, and the header from the first column to the last
        assert "学法培训台账" in text and "活动编号" in text and "主办单位" in text and "学时" in text
    assert all(width > height for _, (width, height) in pages)  # landscape
    (first, size), *_ = _pages(templates.returns_pdf)
    assert "年度法治政府建设报表" in first and "指标代码" in first and "备注" in first and size[0] > size[1]
    notes = pages[-1][0]  # 填表说明: every line whole, wrapped within the page
    assert "(不能晚于今年)" in notes.replace("\n", "") and "旧版本中删除的行会被关闭" in notes.replace("\n", "")


@pytest.mark.parametrize("which", ["training", "training_by_office"])
def test_template_drop_downs_and_input_messages_read_back(templates, which):
    import openpyxl

    wb = openpyxl.load_workbook(getattr(templates, which))
    rules = {
        (ws.title, str(dv.sqref).split(":")[0].rstrip("0123456789")): dv
        for ws in wb.worksheets
        for dv in ws.data_validations.dataValidation
    }
    kinds = {key: dv.type for key, dv in rules.items()}
    assert kinds == {
        ("活动登记", "B"): "date", ("活动登记", "C"): "list", ("活动登记", "F"): "decimal",
        ("参训签到", "D"): "textLength", ("参训签到", "F"): "list", ("参训签到", "G"): "list",
        ("参训签到", "H"): "decimal", ("参训签到", "I"): "list",
        ("人员名册", "C"): "textLength", ("人员名册", "F"): "list", ("人员名册", "H"): "date",
    }  # fmt: skip
    session_types = rules[("活动登记", "C")].formula1.strip('"').split(",")
    assert session_types == ["专题培训", "领导干部法治课", "部门学法", "执法培训", "法律知识测试", "其他"]
    assert rules[("参训签到", "I")].formula1.strip('"').split(",") == ["是", "否"]
    assert all(dv.prompt and dv.showInputMessage for dv in rules.values())  # an input message on every column
    ws = wb["活动登记"]
    assert ws.page_setup.orientation == "landscape" and ws.page_setup.fitToHeight == 0
    assert ws.print_title_rows == "$1:$2"
    codes = [[c.value for c in row] for row in wb["乡镇代码"].iter_rows(min_row=3, max_col=1)]
    assert codes == [[A], [B], [C]]


def test_returns_template_lists_item_codes_and_names_the_traps(templates):
    import openpyxl

    wb = openpyxl.load_workbook(templates.returns)
    (codes,) = [dv for dv in wb["年度报表"].data_validations.dataValidation if dv.type == "list"]
    assert codes.formula1.strip('"').split(",")[:3] == ["LIT01", "LIT02A", "LIT02B"]
    notes = "\n".join(str(c.value) for c in wb["填表说明"]["A"] if c.value)
    for trap in (".xls", "季度", "万", "原文件名"):
        assert trap in notes, trap


def test_a_filled_in_template_saved_by_libreoffice_reads_without_its_example_row(templates):
    from warehouse.sources.landing import LandedBatch, LandedFile
    from warehouse.sources.training import parse_training

    path = templates.filled_by_office
    batch = LandedBatch("training", "b", path.parent, [LandedFile(path.name, path, "x", 1)], "now")
    out = parse_training(batch, b"k")
    assert out["training_session"]["session_id"].tolist() == [f"C{i:03d}" for i in range(120)]
    assert len(out["training_attendance"]) == 1 and len(out["training_staff"]) == 1
    assert out["file_issue"].empty  # the code list and the instructions are no tables to report


def test_a_ledger_re_sent_under_its_name_and_refused_leaves_no_figure_standing(phase1, office_files):
    """贡川镇 re-sends its ledger under the same name, cut short by a broken upload: the file is
    refused by name, and its training figures are missing, not the earlier file's values as `ok`.
    (Runs last: it changes the county the other tests read.)"""
    name = office_files["ledger_a"].name
    data = office_files["ledger_a"].read_bytes()
    (phase1.home / "drop" / "training" / name).write_bytes(data[: len(data) // 2])
    phase3 = _phase(phase1.home)
    got = _figures(phase3, 2023, A)
    assert got["TRN01"] == (None, "missing_source", None) and got["TRN07"] == (None, "missing_source", None)
    assert phase3.values[(2023, A, "TRN01")]["source_files"] is None
    assert got["OGI01"] == (6, OK, None)  # its return stands
    assert ("(file)", name, None, ("file-format",)) in _entries(phase3)


def test_a_ledger_in_a_format_not_read_is_refused_by_name_until_saved_as_xlsx(office_files, tmp_path):
    """LibreOffice's own format (.ods, its default for a new file) and WPS's (.et) were passed
    over without a word: the township's figures were missing and nobody was told why. They are
    refused by name, saying to save as .xlsx, until the office does; a macro-enabled workbook
    (.xlsm) is read as a workbook, and a name written in full-width digits gives its township (its
    code as written matched no township, and its rows stopped the county's batch); a note and a
    subfolder in the drop folder are named in the run's log. Through the installed `fazhi`, the
    files written by LibreOffice."""
    home = _county_home(tmp_path / "home")
    drop = home / "drop" / "training"
    (drop / "旧版").mkdir()
    profile = tmp_path / "office-profile"
    (ods,) = corpus.office([office_files["ledger_a"]], "ods", tmp_path / "ods", profile)
    (xlsm,) = corpus.office([office_files["ledger_c"]], "xlsm:Calc MS Excel 2007 VBA XML", tmp_path / "xlsm", profile)
    shutil.copyfile(ods, drop / ods.name)
    # named in full-width digits, as an input method in full-width mode writes it
    wide = xlsm.name.translate(str.maketrans("0123456789_", "０１２３４５６７８９＿"))
    shutil.copyfile(xlsm, drop / wide)
    shutil.copyfile(office_files["ledger_b"], drop / "旧版" / office_files["ledger_b"].name)
    (drop / "填表说明.txt").write_text("按模板填写", encoding="utf-8")

    def night() -> tuple[str, dict, list[dict]]:
        done = _night(home)
        values = {}
        for year in (2023,):
            out = _fazhi("indicators", "--home", str(home), "--year", str(year), "--format", "json")
            values |= {(r["township_code"], r["indicator_code"]): r for r in json.loads(out)}
        quarantine = json.loads(_fazhi("quarantine", "--home", str(home), "--format", "json"))
        return done.stdout + done.stderr, values, quarantine

    log, values, quarantine = night()
    assert "training: 接收" in log and "拒收文件 1 / " in log and "files refused 1" in log, log[-2000:]
    refused = [q for q in quarantine if q["source_file"] == ods.name]
    assert [(q["table_name"], q["rules"]) for q in refused] == [("(file)", ["file-format"])], quarantine
    assert "OpenDocument" in refused[0]["message_zh"] and "(.xlsx)" in refused[0]["message_en"], refused
    assert (values[(A, "TRN01")]["value"], values[(A, "TRN01")]["status"]) == (None, "missing_source")
    assert (values[(C, "TRN01")]["value"], values[(C, "TRN01")]["status"]) == (1, "quarantined")  # the .xlsm, read
    assert values[(C, "TRN01")]["source_files"] == [wide]  # as the office named it
    assert "填表说明.txt" in log and "(.txt)" in log and "旧版" in log and "subfolder" in log, log[-2000:]
    assert values[(B, "TRN01")]["status"] == "missing_source"  # the ledger in the subfolder is not read

    (drop / ods.name).unlink()
    shutil.copyfile(office_files["ledger_a"], drop / office_files["ledger_a"].name)  # saved again as .xlsx
    log, values, quarantine = night()
    assert [q for q in quarantine if q["source_file"] == ods.name] == []
    assert "files refused" not in log
    assert (values[(A, "TRN01")]["value"], values[(A, "TRN01")]["status"]) == (1, "ok")


def test_a_formula_s_error_is_read_as_it_shows_not_as_a_blank(tmp_path):
    """A cell whose formula failed (`#DIV/0!`, the `#N/A` of a VLOOKUP that found no one) was
    read as blank, as calamine reads it: a number there was "empty", and had the column been
    optional, left out without a word. It is read as the error it shows, and refused as written;
    an identity number that is an error is missing, never one person shared by every such row.
    The workbook as LibreOffice saves it, through the installed `fazhi`."""
    _need_office()
    lookup = ('=VLOOKUP("R9",人员名册!A3:C4,3,FALSE)', "#N/A")
    (tmp_path / "src").mkdir()
    src = corpus.ledger_plain(
        tmp_path / "src" / f"{C}_2023_学法培训台账.xlsx",
        "小陶镇",
        [["C1", "2023-05-01", "专题培训", "安全生产法", "小陶镇", ("=1/0", "#DIV/0!")],
         ["C2", "2023-06-01", "部门学法", "宪法", "小陶镇", 2]],
        [["C2", corpus.NAMES[10], "R2", lookup, "小陶镇", "否", "否", None, None],
         ["C2", corpus.NAMES[11], "R3", lookup, "小陶镇", "否", "否", None, None],
         ["C2", corpus.NAMES[12], "R1", corpus.IDS[8], "小陶镇", "否", "否", None, None]],
        [["R1", corpus.NAMES[12], corpus.IDS[8], "小陶镇", "干部", "否", None, None]],
    )  # fmt: skip
    (saved,) = corpus.office([src], "xlsx", tmp_path / "office", tmp_path / "office-profile")
    with zipfile.ZipFile(saved) as package:  # LibreOffice kept them as error cells
        assert all(b't="e"' in package.read(f"xl/worksheets/sheet{i}.xml") for i in (1, 2))
    home = _county_home(tmp_path / "home", saved)
    _night(home)
    quarantine = json.loads(_fazhi("quarantine", "--home", str(home), "--format", "json"))
    entries = {(q["table_name"], q["row_number"]): q for q in quarantine}
    session = entries[("training_session", 3)]
    assert "「#DIV/0!」" in session["message_zh"] and "学时" in session["message_zh"], session
    for row in (3, 4):  # each #N/A row refused for its missing identity number, alone
        assert "身份证号" in entries[("training_attendance", row)]["message_zh"], entries
    assert ("training_attendance", 5) not in entries
    attended = query(
        home / "published" / "fazhi.duckdb",
        "select count(*), count(distinct person_key) from core.training_attendance where township_code = ?",
        [C],
    )
    assert attended == [(1, 1)]  # the one real person; the two lookups that failed are not a person


def test_a_workbook_refused_for_its_name_is_read_once_renamed_as_the_refusal_asks(tmp_path):
    """The refusal says to rename the file; the renamed file has the content already landed, so
    it was passed over as "nothing new" every night after: its figures never came and the
    refusal stayed open. Renamed, it is read, and the refusal resolved; then nothing is new."""
    from tests.conftest import make_mini_home

    home = make_mini_home(tmp_path / "home")
    drop = home / "data" / "training"
    right = next(drop.glob("*.xlsx"))
    wrong = right.rename(drop / "贡川镇2023年学法培训台账.xlsx")

    def night() -> str:
        return [line for line in _night(home).stdout.splitlines() if "training:" in line][0]

    def refused() -> list[str]:
        entries = json.loads(_fazhi("quarantine", "--home", str(home), "--format", "json"))
        return [q["source_file"] for q in entries if q["table_name"] == "(file)"]

    assert "files refused 1" in night() and refused() == [wrong.name]
    wrong.rename(right)  # as the refusal asks
    assert "received 20" in night(), "the renamed workbook was passed over"
    assert refused() == []
    values = json.loads(_fazhi("indicators", "--home", str(home), "--year", "2023", "--format", "json"))
    trn01 = next(r for r in values if r["indicator_code"] == "TRN01" and r["township_code"] == "350481101")
    assert trn01["status"] == "ok" and trn01["source_files"] == [right.name]
    assert "nothing new" in night()


def test_a_workbook_delivered_twice_is_read_once_and_the_copy_named(tmp_path):
    """The same ledger dropped twice (`… (1).xlsx` from a browser, `… - 副本.xlsx` from Windows):
    read twice, every record of the copy was quarantined as attending its session twice, and in
    a small county that stopped the whole batch. The copy is not read, and the log names it: as
    a warning when its name says another township, whose ledger it cannot be."""
    from tests.conftest import make_mini_home

    home = make_mini_home(tmp_path / "home")
    drop = home / "data" / "training"
    ledger = next(drop.glob("*.xlsx"))
    shutil.copyfile(ledger, drop / f"{ledger.stem} (1).xlsx")
    first = _night(home)
    assert "training: 接收 20 行" in first.stdout, first.stdout  # one ledger's records, not two
    assert f"{ledger.stem} (1).xlsx has the content of {ledger.name}, delivered with it: not read" in first.stderr
    entries = json.loads(_fazhi("quarantine", "--home", str(home), "--format", "json"))
    assert not [q for q in entries if "TRA-R04" in q["rules"]]  # no attendance "twice"
    shutil.copyfile(ledger, drop / f"{ledger.stem} - 副本.xlsx")
    second = _night(home)
    assert "training: 无新数据" in second.stdout
    said = f"{ledger.stem} - 副本.xlsx has the content of {ledger.name}, landed before: not read again"
    assert [line for line in second.stderr.splitlines() if said in line and "INFO" in line], second.stderr
    other = drop / ledger.name.replace("350481101", "350481102")  # another township's name on this content
    shutil.copyfile(ledger, other)
    said = f"{other.name} has the content of {ledger.name}, landed before: not read again"
    assert [line for line in _night(home).stderr.splitlines() if said in line and "WARNING" in line]


def test_identity_numbers_stored_as_numbers_are_missing_not_someone_else(tmp_path):
    """An 18-digit identity number typed into a cell not formatted as text: Excel keeps 15 digits
    (3.50481199001011E+17). Hashed as read, two people differing in the lost digits were one
    person, and the roster's number (text) matched neither. Such cells are missing (their rows
    quarantined for it), and a warning locates them and says what to do."""
    _need_office()
    (tmp_path / "src").mkdir()
    # as Excel stores them: 15 digits kept (two people's numbers that differ only after them)
    as_number = [float(f"{int(corpus.IDS[i]):.14e}") for i in (0, 1)]
    assert as_number[0] == as_number[1] and corpus.IDS[0] != corpus.IDS[1]
    src = corpus.ledger_plain(
        tmp_path / "src" / f"{C}_2023_学法培训台账.xlsx",
        "小陶镇",
        [["C1", "2023-05-01", "专题培训", "安全生产法", "小陶镇", 2]],
        [["C1", corpus.NAMES[10], "R2", as_number[0], "小陶镇", "否", "否", None, None],
         ["C1", corpus.NAMES[11], "R3", as_number[1], "小陶镇", "否", "否", None, None],
         ["C1", corpus.NAMES[12], "R1", corpus.IDS[8], "小陶镇", "否", "否", None, None]],
        [["R1", corpus.NAMES[12], corpus.IDS[8], "小陶镇", "干部", "否", None, None]],
    )  # fmt: skip
    (saved,) = corpus.office([src], "xlsx", tmp_path / "office", tmp_path / "office-profile")
    home = _county_home(tmp_path / "home", saved)
    _night(home)
    quarantine = json.loads(_fazhi("quarantine", "--home", str(home), "--format", "json"))
    rows = {q["row_number"]: q["message_zh"] for q in quarantine if q["table_name"] == "training_attendance"}
    assert sorted(rows) == [3, 4], quarantine  # the two numbers; the third person's text number loads
    assert all("身份证号" in message for message in rows.values()), rows  # missing, not "attended twice"
    published = home / "published" / "fazhi.duckdb"
    warning = query(
        published,
        "select sheet_name, row_number, column_name, rule, message_en, value_text from audit.file_issue "
        "where level = 'warn'",
    )
    assert [w[:4] for w in warning] == [("参训签到", 3, "D", "cell-id-as-number")], warning
    assert warning[0][4].startswith("2 cell(s) of 身份证号 hold numbers") and warning[0][5] is None
    assert query(published, "select count(*) from core.training_attendance where township_code = ?", [C]) == [(1,)]
