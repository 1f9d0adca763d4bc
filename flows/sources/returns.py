"""Township annual returns (年度报表): one sheet or CSV per township and year."""

from __future__ import annotations

import pandas as pd

from flows.sources.landing import LandedBatch
from flows.sources.mapping import table_mapping
from flows.sources.spreadsheet import TableRows, canonicalise, footer_value, normalise_dates, read_workbook
from flows.sources.township_files import township_and_year

SOURCE = "returns"
_VALUE = r"^(?P<number>\d+(?:\.\d+)?)\s*(?P<mark>余|以上|多)?\s*(?:[^\d\s]{0,3})$"


def parse_returns(batch: LandedBatch, key: bytes) -> dict[str, pd.DataFrame]:
    mapping = table_mapping(SOURCE, "annual_return_item", batch.extra.get("fields"))
    gathered = TableRows(mapping)
    for f in batch.files:
        township, year = township_and_year(SOURCE, f.name)
        sheets = read_workbook(f.path, SOURCE)
        sheet_name, rows = next(iter(sheets.items()))
        gathered.add(
            rows,
            SOURCE,
            f.name,
            None if len(sheets) == 1 else sheet_name,
            township_code=township,
            report_year=year,
            filled_date=footer_value(rows, "填报日期"),
        )
    raw = gathered.frame()
    df = canonicalise(raw, mapping, key, ("township_code", "report_year"))
    df["report_year"] = df["report_year"].astype("int32")
    df["filled_date"] = normalise_dates(raw["filled_date"])
    parts = df["value_text"].str.replace(",", "", regex=False).str.extract(_VALUE)
    df["value_number"] = pd.to_numeric(parts["number"], errors="coerce").astype("float64")
    df["qualifier"] = parts["mark"].notna().map({True: ">=", False: None}).where(df["value_number"].notna())
    return {"annual_return_item": df}
