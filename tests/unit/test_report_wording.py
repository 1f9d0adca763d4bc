"""Figures in words (warehouse/reports/wording.py) and the report's text from indicator rows:
the phrasing township reports use, and every status said in words, never as 0."""

from __future__ import annotations

from decimal import Decimal

import pytest

from warehouse.reports import wording
from warehouse.reports.published import YearData
from warehouse.reports.township_report import build_blocks

STATUSES = ("ok", "no_data", "missing_source", "missing_return", "quarantined", "calendar_not_covered", "incomplete")


def row(code="X01", kind="count", value=None, unit="件", **kw) -> dict:
    return {
        "indicator_code": code,
        "indicator_name_zh": f"指标{code}",
        "kind": kind,
        "value": value,
        "unit": unit,
        "numerator": None,
        "denominator": None,
        "qualifier": None,
        "status": "ok",
        **kw,
    }


@pytest.mark.parametrize(
    ("r", "said"),
    [
        (row(value=52), "52件"),
        (row(value=8000, unit="份", qualifier=">="), "8000余份"),
        (row(kind="rate", value=314 / 320, numerator=314, denominator=320), "98%以上"),
        (row(kind="rate", value=282 / 313, numerator=282, denominator=313), "90%以上"),
        (row(kind="rate", value=1.0, numerator=1, denominator=1), "100%"),
        # 29/100 as a float times 100 is 28.999…: the integers say 29% exactly
        (row(kind="rate", value=0.29, numerator=29, denominator=100), "29%"),
        (row(kind="rate", value=0.29, numerator=Decimal("29.00"), denominator=Decimal("100.00")), "29%"),
        (row(kind="mean", value=9.390625, unit="天"), "9.4天"),
        (row(kind="median", value=33.0, unit="天"), "33天"),
        (row(kind="amount", value=1700.5, unit="元"), "1700.5元"),
    ],
)
def test_figures_are_phrased_as_reports_say_them(r, said):
    assert wording.phrase(r) == said


def test_a_sentence_may_count_in_its_own_measure_word():
    assert wording.phrase(row(value=2, unit="场"), "次") == "2次"


@pytest.mark.parametrize("status", STATUSES[1:])
def test_every_status_has_words_in_chinese_and_english_and_none_is_zero(status):
    r = row(status=status, value=None)
    zh, en = wording.status_words(r)
    assert zh and en and zh != en and "0" not in zh.replace("分母为0", "")
    assert wording.short(r) == zh


def test_incomplete_county_rows_count_the_missing_townships():
    assert wording.status_words(row(status="incomplete", missing_townships=3, value=12))[0].startswith("3个乡镇缺数")


def test_an_unknown_status_is_named_not_hidden():
    assert wording.status_words(row(status="surprise"))[0] == "状态 surprise"


def _year(values: dict[str, dict]) -> YearData:
    catalogue = [
        {"indicator_code": c, "name_zh": r["indicator_name_zh"], "unit": r["unit"], "direction": "higher_is_better"}
        for c, r in values.items()
    ]
    for c, r in values.items():
        r |= {"township_code": "T1", "township_name": "某镇", "area_level": "township", "indicator_code": c}
    return YearData(
        year=2023,
        edition=None,
        as_of=None,
        county_code="C",
        county_name="某县",
        townships=[{"code": "T1", "name": "某镇", "kind": "镇"}],
        catalogue=catalogue,
        values={("T1", c): r for c, r in values.items()},
    )


def test_report_text_says_missing_figures_in_words_and_never_zero():
    data = _year(
        {
            "ENF01": row("ENF01", status="missing_source"),
            "ENF02": row("ENF02", value=0),
            "LIT02": row("LIT02", kind="rate", status="no_data", numerator=0, denominator=0, unit="%"),
            "PUB01": row("PUB01", status="quarantined", unit="份"),
            "ENF08": row("ENF08", kind="rate", status="calendar_not_covered", unit="%"),
        }
    )
    text = "\n".join("".join(r.text for r in b.runs) for b in build_blocks(data, "某镇"))
    assert "开展行政检查【数据源缺失或被拒收：ENF01 指标ENF01，请核实】" in text
    assert "行政处罚0件" in text  # a real zero stays a zero
    assert "负责人出庭应诉率【无数据（分母为0）：LIT02" in text
    assert "发放各类宣传资料【输入数据被隔离，未计算：PUB01" in text
    assert "公示率【节假日历未覆盖该年，未计算：ENF08" in text
    # 三、问题和不足 names the figures that could not be computed
    assert "部分指标未能统计，请补报或更正：指标ENF01（ENF01）：数据源缺失或被拒收；" in text
    annex = next(b.table for b in build_blocks(data, "某镇") if b.table)
    assert [r[3] for r in annex[1:]] == ["数据源缺失或被拒收", "0", "无数据（分母为0）", "输入数据被隔离，未计算",
                                         "节假日历未覆盖该年，未计算"]  # fmt: skip


def test_a_county_total_with_townships_missing_keeps_its_caveat_in_workbook_and_dashboard(tmp_path):
    import openpyxl

    from warehouse.reports.county_workbook import write_workbook
    from warehouse.reports.dashboard import render

    data = _year({"ENF01": row("ENF01", value=7)})
    county = row("ENF01", value=40, status="incomplete", missing_townships=2)
    county |= {"township_code": "C", "township_name": "某县", "area_level": "county"}
    data.values[("C", "ENF01")] = county
    data.catalogue[0] |= {"name_en": "x", "source": "enforcement", "kind": "count"}
    ws = openpyxl.load_workbook(write_workbook(data, tmp_path / "w.xlsx"))["全部指标"]
    cell = ws.cell(row=3, column=3)
    assert cell.value == 40 and "2个乡镇缺数" in cell.comment.text
    assert 'data-value="40" data-status="incomplete" title="2个乡镇缺数' in render(data)


def test_a_published_county_total_names_its_missing_townships(mini_run):
    """Read from a real published database (warehouse/reports/published.py): the reports see the
    county rows' missing_townships, as `fazhi indicators` does."""
    from warehouse.read.indicators import read_values
    from warehouse.reports.published import read_year

    published = mini_run.settings.published_db
    data = read_year(published, 2023)
    incomplete = {r["indicator_code"]: r for r in read_values(published, 2023) if r["status"] == "incomplete"}
    assert incomplete, "the mini county has county figures lacking a township"
    for code, r in incomplete.items():
        county = data.value(data.county_code, code)
        assert county["missing_townships"] == r["missing_townships"] > 0
        assert wording.status_words(county)[0].startswith(f"{r['missing_townships']}个乡镇缺数")
