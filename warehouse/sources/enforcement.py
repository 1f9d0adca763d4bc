"""Enforcement platform (行政执法一体化平台): acts (inspections, penalty cases) from JSON pages."""

from __future__ import annotations

import duckdb
import pandas as pd

from warehouse.sources.json_pages import json_pages_select, parse_json_pages
from warehouse.sources.landing import LandedBatch
from warehouse.sources.mapping import table_mapping

SOURCE = "enforcement"
TABLE = "enforcement_act"
DERIVED = {
    "township_code": "left(division_code, 9)",
    "officer_count": "coalesce(len(officer_certificate_keys), 0)::integer",
}


def parse_enforcement(batch: LandedBatch, key: bytes) -> dict[str, pd.DataFrame]:
    return {TABLE: parse_json_pages(batch, table_mapping(SOURCE, TABLE, batch.extra.get("fields")), key, DERIVED)}


def enforcement_select(con: duckdb.DuckDBPyConnection, batch: LandedBatch, key: bytes) -> dict[str, str]:
    mapping = table_mapping(SOURCE, TABLE, batch.extra.get("fields"))
    return {TABLE: json_pages_select(con, batch, mapping, key, DERIVED)}
