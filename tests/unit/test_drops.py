"""Spreadsheet drops as townships really send them (written here with xlsxwriter), the clear
errors for files that are not ledgers, a corrected file superseding its earlier version, and the
blank templates."""

from __future__ import annotations

import csv
from datetime import datetime
from pathlib import Path

import pytest
import xlsxwriter

from tests.conftest import make_mini_home, query, run_steps
from tests.fixtures import mini
from warehouse.sources.landing import LandedBatch, LandedFile, sha256_file
from warehouse.sources.mapping import SourceError
from warehouse.sources.registry import table_mapping
from warehouse.sources.returns import parse_returns
from warehouse.sources.spreadsheet import extract_table, read_workbook
from warehouse.sources.templates import RETURN_HEADER, TRAINING_SHEETS, write_template
from warehouse.sources.training import parse_training

KEY = b"test-key"
A = mini.A


def _batch(source: str, *paths: Path) -> LandedBatch:
    files = [LandedFile(p.name, p, sha256_file(p), p.stat().st_size) for p in paths]
    return LandedBatch(source, "b", paths[0].parent, files, "2024-01-01")


def messy_training(path: Path) -> Path:
    """Title row, a merged group-header row above the real header, synonyms (课时, 人员姓名),
    every date spelling, full-width digits and spaces, 合计 rows, an empty row."""
    wb = xlsxwriter.Workbook(str(path))
    date_fmt = wb.add_format({"num_format": "yyyy/m/d"})
    ws = wb.add_worksheet("活动登记")
    ws.merge_range(0, 0, 0, 5, "某镇２０２３年学法培训活动登记表")
    ws.merge_range(1, 0, 1, 2, "活动信息")  # merged header cells above the header row
    ws.merge_range(1, 3, 1, 5, "内容与学时")
    ws.write_row(2, 0, ["活动编号", "活动日期", "活动类型", "培训主题", "主办单位", "课时"])
    ws.write_row(3, 0, ["S1", "2023年3月5日", "专题培训", "宪法", "镇政府", 3])
    ws.write_row(4, 0, ["S2", "2023.3.6", "部门学法", "民法典", "镇政府", "２"])
    ws.write_row(5, 0, ["S3", "2023/3/7", "执法培训", "行政处罚法", "镇政府", 1.5])
    ws.write(6, 0, "S4")
    ws.write_datetime(6, 1, datetime(2023, 3, 8), date_fmt)
    ws.write_row(6, 2, ["法律知识测试", "测试", "镇政府", 1])
    ws.write_row(7, 0, ["Ｓ５　", 45000, "　专题培训 ", "普法", "镇政府", 2])  # Excel serial typed as a number
    ws.write_row(8, 0, ["S6", "２０２３年３月１０日", "领导干部法治课", "法治课", "镇政府", 2])
    ws.write_row(10, 0, ["合　计", None, None, None, None, 11.5])
    ws = wb.add_worksheet("参训签到")
    ws.merge_range(0, 0, 0, 8, "参训签到表")
    ws.write_row(
        1, 0, ["活动编号", "人员姓名", "工号", "身份证号", "单位", "是否领导干部", "是否执法人员", "成绩", "是否合格"]
    )
    ws.write_row(2, 0, ["S1", "张三", "G1", mini.IDS[0], "镇政府", "否", "是", None, None])
    ws.write_row(3, 0, ["S4", "李四", "G2", "３５０４８１１９８５０２０２２２３Ｘ", "镇政府", "是", "否", "９０", "是"])
    ws.write_row(4, 0, ["小计", None, None, None, None, None, None, None, None])
    ws = wb.add_worksheet("人员名册")
    ws.write_row(0, 0, ["工号", "姓名", "身份证号", "单位", "职务", "是否执法人员", "执法证号", "证件有效期"])
    ws.write_row(1, 0, ["G1", "张三", mini.IDS[0], "镇政府", "干部", "是", "35040100001", "2025.12.31"])
    ws.write_row(2, 0, ["G2", "李四", mini.IDS[1], "镇政府", "干部", "否", None, None])
    wb.close()
    return path


def test_messy_training_workbook_loads(tmp_path):
    p = messy_training(tmp_path / f"{A}_2023_学法培训台账.xlsx")
    out = parse_training(_batch("training", p), KEY)
    s = out["training_session"].set_index("session_id")
    assert list(s.index) == ["S1", "S2", "S3", "S4", "S5", "S6"]  # title, group header and 合计 rows skipped
    assert s["session_date"].tolist() == [
        "2023-03-05",
        "2023-03-06",
        "2023-03-07",
        "2023-03-08",
        "2023-03-15",  # Excel serial 45000
        "2023-03-10",
    ]
    assert s["hours"].tolist() == [3.0, 2.0, 1.5, 1.0, 2.0, 2.0]  # 课时 = 学时, full-width digits
    assert s.loc["S5", "session_type"] == "专题培训"  # full-width spaces trimmed
    att = out["training_attendance"]
    assert len(att) == 2 and "person_name" not in att.columns  # 人员姓名 recognised, then dropped
    staff = out["training_staff"].set_index("staff_number_key")
    # the full-width ID number hashes like the half-width one on the roster
    assert set(att["person_key"]) == set(staff["person_key"])
    assert sorted(out["training_staff"]["certificate_valid_until"].dropna()) == ["2025-12-31"]
    assert att["test_score"].dropna().tolist() == [90.0]


@pytest.mark.parametrize("encoding", ["gb18030", "utf-8-sig", "utf-8"])
def test_returns_csv_in_every_encoding(tmp_path, encoding):
    p = tmp_path / f"{A}_2023_年度报表.csv"
    with p.open("w", encoding=encoding, newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["贡川镇2023年度法治政府建设报表", "", "", "", ""])
        w.writerow(["指标代码", "指标名称", "数值", "单位", "备注"])
        w.writerow(["OGI03", "法律顾问审核文件份数", "２００余", "份", ""])
        w.writerow(["PUB02", "法治讲座场次", " 9 ", "场", "全角　空格"])
        w.writerow(["合计", "", "", "", ""])
        w.writerow(["填报人：王五", "", "", "", ""])
        w.writerow(["填报日期：2024年1月15日", "", "", "", ""])
    df = parse_returns(_batch("returns", p), KEY)["annual_return_item"].set_index("item_code")
    assert df.loc["OGI03", "value_number"] == 200 and df.loc["OGI03", "qualifier"] == ">="
    assert df.loc["PUB02", "value_number"] == 9 and "remark" not in df  # 备注: free text, never kept
    assert set(df["filled_date"]) == {"2024-01-15"} and len(df) == 2
    assert "王五" not in df.to_csv()


@pytest.mark.parametrize(
    "name, content, rule",
    [
        ("350481101_2023_学法培训台账.xlsx", b"", "file-empty"),
        ("350481101_2023_学法培训台账.xlsx", b"%PDF-1.7\n%binary", "file-format"),
        ("350481101_2023_学法培训台账.docx", b"PK\x03\x04not really a workbook", "file-format"),
        ("350481101_2023_学法培训台账.csv", b"\xff\xfe\x00\xd8garbage\x81\x30", "file-encoding"),
        ("350481101_2023_学法培训台账.et", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1 WPS", "file-format"),
        ("350481101_2023_学法培训台账.XLSB", b"PK\x03\x04 binary workbook", "file-format"),
    ],
)
def test_files_that_are_not_ledgers_are_refused_by_name(tmp_path, name, content, rule):
    p = tmp_path / name
    p.write_bytes(content)
    with pytest.raises(SourceError) as err:
        read_workbook(p, "training")
    assert err.value.rule == rule and name in str(err.value) and err.value.source == "training"
    if p.suffix in (".et", ".XLSB"):  # a format the parse does not read, by name, and what to do
        assert ("WPS 表格" if p.suffix == ".et" else "Excel 二进制工作簿") in err.value.message_zh
        assert "save it as an Excel workbook (.xlsx)" in err.value.message_en
    good = messy_training(tmp_path / f"{A}_2022_学法培训台账.xlsx")
    out = parse_training(_batch("training", p, good), KEY)  # refused alone: the other file loads
    (issue,) = out["file_issue"].to_dict("records")
    assert (issue["file_name"], issue["rule"], issue["level"]) == (name, rule, "refused")
    assert set(out["training_session"]["_source_file"]) == {f"{good.name}#活动登记"}


def test_a_sheet_without_a_recognisable_header_names_file_and_sheet(tmp_path):
    p = tmp_path / f"{A}_2023_年度报表.xlsx"
    wb = xlsxwriter.Workbook(str(p))
    ws = wb.add_worksheet("Sheet1")
    ws.write_row(0, 0, ["序号", "项目", "金额"])
    ws.write_row(1, 0, [1, "x", 2])
    wb.close()
    (issue,) = parse_returns(_batch("returns", p), KEY)["file_issue"].to_dict("records")
    assert issue["rule"] == "header-missing" and issue["file_name"] == p.name and "指标代码" in issue["message_zh"]


@pytest.mark.parametrize("kind", ["training", "returns"])
def test_templates_have_the_documented_headers_and_parse(tmp_path, kind):
    p = write_template(kind, tmp_path / f"{A}_2023_{kind}.xlsx")
    sheets = read_workbook(p, kind)
    assert "填表说明" in sheets and any("填表说明" in str(r[0]) for r in sheets["填表说明"] if r)
    if kind == "training":
        for sheet, header in TRAINING_SHEETS.items():
            rows = sheets[sheet]
            assert rows[0][0] and rows[1][: len(header)] == header  # a title row, then the header
        out = parse_training(_batch("training", p), KEY)  # a blank template holds no records: refused
        assert all(len(out[t]) == 0 for t in ("training_session", "training_attendance", "training_staff"))
        assert out["file_issue"]["rule"].tolist() == ["file-no-rows"]
    else:
        rows = sheets["年度报表"]
        assert rows[1][:5] == RETURN_HEADER and rows[2][0] == "示例" and rows[3][0] == "LIT01"
        df = extract_table(rows, table_mapping("returns", "annual_return_item"), "returns", p.name)
        assert len(df) == 12 and df["value_text"].isna().all()


def test_template_command(tmp_path, capsys):
    from flows.cli import main

    assert main(["template", "returns", "--out", str(tmp_path / "t.xlsx")]) == 0
    assert (tmp_path / "t.xlsx").exists() and "t.xlsx" in capsys.readouterr().out


def _write_return(path: Path, rows: list[tuple[str, str, str]]) -> None:
    wb = xlsxwriter.Workbook(str(path))
    ws = wb.add_worksheet("年度报表")
    ws.merge_range(0, 0, 0, 4, "贡川镇2023年度法治政府建设报表（更正）")
    ws.write_row(1, 0, RETURN_HEADER)
    for i, (code, name, value) in enumerate(rows, 2):
        ws.write_row(i, 0, [code, name, value, "", ""])
    ws.write(len(rows) + 3, 0, "填报日期：2024-01-15")  # as the first version: only the corrected rows differ
    wb.close()


@pytest.mark.parametrize(
    ("supersede", "corrected_name", "replaces"),
    [
        (None, f"{A}_2023_年度报表.xlsx", True),  # default file_name: the same name replaces
        ("township_year", f"{A}_2023_年度报表（更正）.xlsx", True),  # any name of the township-year
        ("file_name", f"{A}_2023_年度报表（更正）.xlsx", False),  # a new name adds to the old file
        # named in full-width digits (an input method in full-width mode): the same township-year
        ("township_year", "３５０４８１１０１＿２０２３＿年度报表（更正）.xlsx", True),
    ],
)
def test_a_corrected_delivery_supersedes_the_old_version(tmp_path, supersede, corrected_name, replaces):
    home = make_mini_home(tmp_path / "home")
    cfg = home / "fazhi.toml"
    text = cfg.read_text(encoding="utf-8")
    returns = text[text.index("[sources.returns]") :] + (f'supersede = "{supersede}"\n' if supersede else "")
    cfg.write_text(text[: text.index("[sources.")] + returns, encoding="utf-8")
    run_steps(home)
    work = home / "work.duckdb"
    current = (
        "select item_code, value_number::double from core.annual_return_item "
        "where township_code = ? and valid_to is null order by 1"
    )
    before = dict(query(work, current, [A]))
    assert before["PUB06"] == 1 and before["OGI01"] == 6 and len(before) == 12

    # the township corrects its return: OGI01 6 -> 7, PUB06 removed (reported by mistake)
    rows = [(c, n, {"OGI01": "7"}.get(c, v)) for c, n, v in mini.RETURN_ROWS if c != "PUB06"]
    _write_return(home / "data" / "returns" / corrected_name, rows)
    run = run_steps(home)
    assert run.outcomes["returns"].received_rows == 11  # only the corrected file is new
    after = dict(query(work, current, [A]))
    closed = query(
        work,
        "select item_code, value_number::double from core.annual_return_item "
        "where township_code = ? and valid_to is not null order by 1",
        [A],
    )
    if not replaces:  # the old file's PUB06 stays; OGI01's key is in the new file: versioned
        assert after["OGI01"] == 7 and after["PUB06"] == 1 and len(after) == 12
        assert closed == [("OGI01", 6.0)]
        return
    assert after["OGI01"] == 7 and "PUB06" not in after and len(after) == 11
    assert closed == [("OGI01", 6.0), ("PUB06", 1.0)]  # history kept: the old figures stay reachable
    assert query(
        work, "select count(*) from core.annual_return_item where township_code = ? and valid_to is null", [mini.B]
    ) == [(12,)]  # another file's rows untouched
    versions = query(
        work,
        "select _source_file, count(distinct _batch_id) from raw.annual_return_item "
        "where township_code = ? group by 1 order by 1",
        [A],
    )
    # raw keeps both versions of the delivery
    assert sum(n for _, n in versions) == 2 and corrected_name in {f for f, _ in versions}
    value = query(
        home / "published" / "fazhi.duckdb",
        "select value from mart.indicator_value where year = 2023 and township_code = ? and indicator_code = 'PUB06'",
        [A],
    )
    assert value in ([(None,)], [(0.0,)], [])


def test_an_unknown_supersede_setting_is_a_clear_configuration_error(tmp_path):
    from warehouse.config import ConfigError, load_settings

    home = make_mini_home(tmp_path / "home")
    with (home / "fazhi.toml").open("a", encoding="utf-8") as fh:
        fh.write('supersede = "township"\n')  # under [sources.returns], the last table
    with pytest.raises(ConfigError) as err:
        load_settings(home)
    assert '[sources.returns] supersede = "township"' in str(err.value)
    assert "did you mean township_year? 可选 / valid: file_name, township_year" in str(err.value)


def test_every_visible_sheet_is_read_by_its_header_and_what_is_not_read_is_said(tmp_path):
    """Sessions kept one sheet per half-year are both read; a sheet whose header lacks 学时 while
    the table is complete elsewhere, and a hidden sheet, are named, not read."""
    p = tmp_path / f"{A}_2023_学法培训台账.xlsx"
    wb = xlsxwriter.Workbook(str(p))
    for name, rows in (
        ("上半年", [["S1", "2023-03-01", "部门学法", 2]]),
        ("下半年", [["S2", "2023-09-01", "其他", 1]]),
    ):
        ws = wb.add_worksheet(name)
        ws.write_row(0, 0, ["活动编号", "日期", "活动类型", "学时"])
        for i, row in enumerate(rows, 1):
            ws.write_row(i, 0, row)
    draft = wb.add_worksheet("草稿")
    draft.write_row(0, 0, ["活动编号", "日期", "活动类型"])
    draft.write_row(1, 0, ["S9", "2023-12-01", "其他"])
    ws = wb.add_worksheet("参训签到")
    ws.write_row(0, 0, ["活动编号", "身份证号"])
    ws.write_row(1, 0, ["S1", mini.IDS[0]])
    ws = wb.add_worksheet("人员名册")
    ws.write_row(0, 0, ["身份证号", "姓名"])
    ws.write_row(1, 0, [mini.IDS[0], mini.NAMES[0]])
    old = wb.add_worksheet("旧名册")
    old.write_row(0, 0, ["身份证号"])
    old.write_row(1, 0, [mini.IDS[1]])
    old.hide()
    wb.close()
    out = parse_training(_batch("training", p), KEY)
    assert out["training_session"]["session_id"].tolist() == ["S1", "S2"]
    assert len(out["training_staff"]) == 1
    issues = out["file_issue"].set_index("sheet_name")
    assert issues.loc["草稿", "rule"] == "sheet-not-read" and "学时" in issues.loc["草稿", "message_zh"]
    assert issues.loc["旧名册", "rule"] == "sheet-hidden" and (issues["level"] == "warn").all()
