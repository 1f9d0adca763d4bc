"""Mediation system (矛盾纠纷多元化解平台): dispute cases from JSON pages."""

from __future__ import annotations

import duckdb
import pandas as pd

from warehouse.sources.json_pages import json_pages_select, parse_json_pages
from warehouse.sources.landing import LandedBatch
from warehouse.sources.mapping import table_mapping

SOURCE = "mediation"
TABLE = "mediation_case"
DERIVED = {"township_code": "left(division_code, 9)"}


def parse_mediation(batch: LandedBatch, key: bytes) -> dict[str, pd.DataFrame]:
    return {TABLE: parse_json_pages(batch, table_mapping(SOURCE, TABLE, batch.extra.get("fields")), key, DERIVED)}


def mediation_select(con: duckdb.DuckDBPyConnection, batch: LandedBatch, key: bytes) -> dict[str, str]:
    mapping = table_mapping(SOURCE, TABLE, batch.extra.get("fields"))
    return {TABLE: json_pages_select(con, batch, mapping, key, DERIVED)}
