"""Enforcement platform (行政执法一体化平台): acts (inspections, penalty cases) from JSON pages."""

from __future__ import annotations

import pandas as pd

from flows.sources.json_pages import parse_json_pages
from flows.sources.landing import LandedBatch
from flows.sources.mapping import table_mapping

SOURCE = "enforcement"


def parse_enforcement(batch: LandedBatch, key: bytes) -> dict[str, pd.DataFrame]:
    df = parse_json_pages(batch, table_mapping(SOURCE, "enforcement_act", batch.extra.get("fields")), key)
    df.insert(2, "township_code", df["division_code"].str.slice(0, 9))
    df["officer_count"] = (
        df["officer_certificate_keys"]
        .map(lambda v: 0 if v is None or (isinstance(v, float)) else len(v))
        .astype("int32")
    )
    return {"enforcement_act": df}
