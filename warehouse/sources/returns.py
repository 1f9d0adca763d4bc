"""Township annual returns (年度报表): one sheet or CSV per township and year.

A return kept as several sheets is read by one declared rule: the year-total sheet (全年 / 合计 /
汇总 / 年度 in its name) when there is exactly one, the others named in a warning; quarter or
month sheets without a year total, or several return sheets none of which is the year total,
refuse the file (the quarters are never summed, and never is the first sheet read alone).
"""

from __future__ import annotations

import re

import pandas as pd

from warehouse.sources import registry
from warehouse.sources.landing import LandedBatch
from warehouse.sources.mapping import SourceError
from warehouse.sources.spreadsheet import (
    FileIssue,
    FileRefused,
    SheetTable,
    TableRows,
    canonicalise,
    footer_value,
    normalise_dates,
    read_numbers,
    read_workbook,
)
from warehouse.sources.township_files import FileLog, name_parts, no_records, tables_in, township_and_year, years_of

SOURCE = "returns"
TABLE = "annual_return_item"
_YEAR_SHEET = re.compile(r"全年|合计|汇总|年度|总表|本年")
_PART_SHEET = re.compile(r"季度|[一二三四1-4]季|Q[1-4]|[上下]半年|\d{1,2}月", re.IGNORECASE)


def parse_returns(batch: LandedBatch, key: bytes) -> dict[str, pd.DataFrame]:
    mapping = registry.table_mapping(SOURCE, TABLE, batch.extra.get("fields"))
    gathered = TableRows(mapping, ("township_code", "report_year", "filled_date"))
    log = FileLog(SOURCE)
    years = years_of(batch.extra)
    for f in batch.files:
        try:
            township, year = township_and_year(SOURCE, f.name, years)
            sheets = read_workbook(f.path, SOURCE)
            found, warnings = tables_in(sheets, {TABLE: mapping}, SOURCE, f.name)
            table, more = year_table(found[TABLE], f.name)
            if not table.rows:
                raise no_records(SOURCE, f.name)
        except SourceError as exc:
            log.refused(f.name, exc, *name_parts(f.name))
            continue
        one_sheet = len(sheets) == 1
        gathered.extend(
            table if not one_sheet else SheetTable(None, table.header, table.rows, table.numbers),
            f.name,
            township_code=township,
            report_year=year,
            filled_date=footer_value(sheets[table.sheet], "填报日期"),
        )
        log.parsed(f.name, township, year, len(table.rows), warnings + more + table.warnings)
    raw = gathered.frame()
    df = canonicalise(raw, mapping, key, ("township_code", "report_year"))
    df["report_year"] = df["report_year"].astype("int32")
    df["filled_date"] = normalise_dates(raw["filled_date"])
    numbers = read_numbers(df["value_text"])
    df["value_number"] = numbers["value"]
    df["qualifier"] = numbers["qualifier"]
    df["_unreadable_value_number"] = numbers["unreadable"]  # validated (RET-R07), never loaded
    return {TABLE: df} | log.frames()


def year_table(tables: list[SheetTable], file: str) -> tuple[SheetTable, list[FileIssue]]:
    """The sheet whose figures are the year's (module docstring), and the warning naming the
    sheets not read."""
    if len(tables) == 1:
        return tables[0], []
    names = "、".join(f"「{t.sheet}」" for t in tables)
    totals = [t for t in tables if _YEAR_SHEET.search(t.sheet) and not _PART_SHEET.search(t.sheet)]
    if len(totals) == 1:
        others = "、".join(f"「{t.sheet}」" for t in tables if t is not totals[0])
        return totals[0], [
            FileIssue(
                "sheets-year-total",
                "warn",
                f"工作簿有多张报表工作表：按「{totals[0].sheet}」读取全年数，{others}未读取",
                f"several return sheets: the year total {totals[0].sheet!r} was read, "
                f"the others ({', '.join(t.sheet for t in tables if t is not totals[0])}) were not",
                totals[0].sheet,
            )
        ]
    if all(_PART_SHEET.search(t.sheet) for t in tables):
        raise FileRefused(
            SOURCE,
            file,
            f"报表按季度或月份分成了多张工作表({names})，没有全年合计表：系统不会把各表相加，也不会只读其中一张。"
            "请在一张工作表中填写全年数(或增加一张「全年合计」工作表)后重新提交",
            f"the return is split into quarter or month sheets ({', '.join(t.sheet for t in tables)}) with no "
            "year-total sheet: they are neither summed nor read one alone; fill in the year's figures on one "
            "sheet (or add a sheet named 全年合计) and deliver the file again",
            "sheets-quarterly",
        )
    raise FileRefused(
        SOURCE,
        file,
        f"工作簿中有多张报表工作表({names})，无法确定哪一张是全年数：请只保留全年报表一张工作表",
        f"several sheets hold a return ({', '.join(t.sheet for t in tables)}) and none is the year total: "
        "keep only the year's return",
        "sheets-ambiguous",
    )
