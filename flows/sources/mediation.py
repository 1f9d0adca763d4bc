"""Mediation system (矛盾纠纷多元化解平台): dispute cases from JSON pages."""

from __future__ import annotations

import pandas as pd

from flows.sources.json_pages import parse_json_pages
from flows.sources.landing import LandedBatch
from flows.sources.mapping import table_mapping

SOURCE = "mediation"


def parse_mediation(batch: LandedBatch, key: bytes) -> dict[str, pd.DataFrame]:
    df = parse_json_pages(batch, table_mapping(SOURCE, "mediation_case", batch.extra.get("fields")), key)
    df.insert(2, "township_code", df["division_code"].str.slice(0, 9))
    return {"mediation_case": df}
