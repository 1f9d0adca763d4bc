import csv
from datetime import datetime

import pandas as pd
import pytest
import xlsxwriter

from warehouse.sources.mapping import SourceError
from warehouse.sources.registry import table_mapping
from warehouse.sources.spreadsheet import extract_table, normalise_dates, read_workbook


def test_dates_in_every_ledger_spelling_become_iso():
    s = pd.Series(
        [
            "2023年3月5日",
            "2023.3.5",
            "2023/3/5",
            "2023-03-05",
            "４５０００",
            "45000",
            " 2023 年 3 月 5 日 ",
            "2023-02-30",
            "昨天",
            None,
        ],
        dtype="object",
    )
    assert normalise_dates(s).tolist()[:8] == [
        "2023-03-05",
        "2023-03-05",
        "2023-03-05",
        "2023-03-05",
        "2023-03-15",
        "2023-03-15",
        "2023-03-05",
        "2023-02-30",  # kept as given: validation rejects the impossible date by name
    ]
    out = normalise_dates(s)
    assert out.iloc[8] == "昨天" and pd.isna(out.iloc[9])


def _xlsx(path, rows):
    wb = xlsxwriter.Workbook(str(path))
    ws = wb.add_worksheet("活动登记")
    ws.merge_range(0, 0, 0, 5, "某镇2023年学法培训活动登记表")
    for i, row in enumerate(rows, 1):
        ws.write_row(i, 0, row)
    wb.close()


def test_title_row_synonyms_and_total_rows(tmp_path):
    p = tmp_path / "350481101_2023_x.xlsx"
    _xlsx(
        p,
        [
            ["活动编号", "活动日期", "类型", "培训主题", "组织单位", "课时"],
            ["S1", "2023年3月5日", "专题培训", "a", "b", 3],
            [None, None, None, None, None, None],
            ["合 计", None, None, None, None, 3],
        ],
    )
    rows = read_workbook(p, "training")["活动登记"]
    df = extract_table(rows, table_mapping("training", "training_session"), "training", p.name, "活动登记")
    assert df["session_id"].tolist() == ["S1"]
    assert df["hours"].tolist() == ["3"]
    assert df["_row_number"].tolist() == [3]  # as Excel numbers it: title, header, then this row


def test_gb18030_csv_is_read(tmp_path):
    p = tmp_path / "350481101_2023_年度报表.csv"
    with p.open("w", encoding="gb18030", newline="") as fh:
        csv.writer(fh).writerows([["指标代码", "指标名称", "数值"], ["OGI03", "法律顾问审核文件份数", "200余"]])
    rows = next(iter(read_workbook(p, "returns").values()))
    df = extract_table(rows, table_mapping("returns", "annual_return_item"), "returns", p.name)
    assert df["item_name"].tolist() == ["法律顾问审核文件份数"] and df["value_text"].tolist() == ["200余"]


@pytest.mark.parametrize(
    "content, rule",
    [(b"", "file-empty"), (b"%PDF-1.4 not a sheet", "file-format"), (b"PK\x03\x04broken zip", "file-format")],
)
def test_unreadable_files_name_the_file(tmp_path, content, rule):
    p = tmp_path / "350481101_2023_坏文件.xlsx"
    p.write_bytes(content)
    with pytest.raises(SourceError) as err:
        read_workbook(p, "training")
    assert err.value.rule == rule and p.name in str(err.value)


def test_sheet_without_header_is_a_clear_error(tmp_path):
    p = tmp_path / "350481101_2023_x.xlsx"
    _xlsx(p, [["随便", "什么"], [1, 2]])
    rows = read_workbook(p, "training")["活动登记"]
    with pytest.raises(SourceError) as err:
        extract_table(rows, table_mapping("training", "training_session"), "training", p.name, "活动登记")
    assert err.value.rule == "header-missing" and "活动编号" in str(err.value) and p.name in str(err.value)


def test_xlsx_dates_typed_as_dates_are_read(tmp_path):
    p = tmp_path / "350481101_2023_x.xlsx"
    wb = xlsxwriter.Workbook(str(p))
    ws = wb.add_worksheet("活动登记")
    ws.write_row(0, 0, ["活动编号", "日期", "活动类型", "学时"])
    ws.write(1, 0, "S1")
    ws.write_datetime(1, 1, datetime(2023, 11, 1), wb.add_format({"num_format": "yyyy/m/d"}))
    ws.write_row(1, 2, ["部门学法", 2])
    wb.close()
    rows = read_workbook(p, "training")["活动登记"]
    df = extract_table(rows, table_mapping("training", "training_session"), "training", p.name, "活动登记")
    assert normalise_dates(df["session_date"]).tolist() == ["2023-11-01"]


def test_numbers_as_clerks_write_them_are_read_exactly():
    from warehouse.sources.spreadsheet import normalise_text, read_numbers

    cases = {
        "1.22万": (12200.0, None),
        "3千": (3000.0, None),
        "１，０００": (1000.0, None),  # full-width digits and comma
        "２００余": (200.0, ">="),
        "8000余份": (8000.0, ">="),
        "50份以上": (50.0, ">="),
        "1万余": (10000.0, ">="),
        "约8000": (8000.0, "~"),
        "4次左右": (4.0, "~"),
        "3学时": (3.0, None),
        "1.5小时": (1.5, None),
        "90分": (90.0, None),
        "12 人": (12.0, None),
        "0.1": (0.1, None),
    }
    got = read_numbers(normalise_text(pd.Series(list(cases), dtype=object)))
    assert list(
        zip(got["value"], got["qualifier"].astype(object).where(got["qualifier"].notna(), None), strict=True)
    ) == list(cases.values())
    assert got["unreadable"].isna().all()
    bad = ["若干", "一万份", "两小时", "10-20", "1.2.3", "5万元多少", "优"]
    got = read_numbers(normalise_text(pd.Series([*bad, None], dtype=object)))
    assert got["value"].isna().all() and got["unreadable"].tolist()[:-1] == bad and pd.isna(got["unreadable"].iloc[-1])
    plain = read_numbers(pd.Series(["3学时", "约3", "1万", "200余"], dtype="string"), qualified=False)
    assert plain["value"].tolist()[0] == 3.0 and plain["value"].iloc[1:].isna().all()  # hours take no bounds


def test_headers_are_compared_without_hints_markers_and_units():
    from warehouse.sources.spreadsheet import norm_header

    assert norm_header("是否合格（是/否）") == "是否合格"
    assert norm_header(" 学时 (小时) ") == "学时"
    assert norm_header("*身份证号码：") == "身份证号码"
    assert norm_header("执法证件号【必填】") == "执法证件号"


def test_a_date_typed_beside_its_label_is_read():
    from warehouse.sources.spreadsheet import footer_value

    rows = [["填报人：某某"], ["填报日期：", None, datetime(2024, 1, 15)], ["其他"]]
    assert footer_value(rows, "填报日期") == "2024-01-15"
    assert footer_value([["填报日期：2024年1月15日"]], "填报日期") == "2024年1月15日"
    assert footer_value([["填报日期："]], "填报日期") is None


@pytest.mark.parametrize(
    "content, rule, words",
    [
        (b"<html><body><table><tr><td>1</td></tr></table></body></html>", "file-html", "另存为"),
        (
            b'<?xml version="1.0"?><Workbook xmlns="urn:schemas-microsoft-com:office:spreadsheet">',
            "file-format",
            ".xlsx",
        ),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + "EncryptedPackage".encode("utf-16-le"), "file-encrypted", "密码"),
    ],
)
def test_files_saved_wrongly_are_refused_with_what_to_do(tmp_path, content, rule, words):
    p = tmp_path / "350481101_2023_年度报表.xls"
    p.write_bytes(content)
    with pytest.raises(SourceError) as err:
        read_workbook(p, "returns")
    assert err.value.rule == rule and words in err.value.message_zh and p.name in str(err.value)
