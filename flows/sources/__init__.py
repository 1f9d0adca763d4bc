"""Source systems: land what they deliver, parse it to canonical PII-free rows."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import duckdb
import pandas as pd

from flows.sources.landing import LandedBatch
from flows.sources.parsed import FILES_PER_GROUP, ParsedSink, ParsedTable, remove_parsed

Parser = Callable[[LandedBatch, bytes], dict[str, pd.DataFrame]]
SqlParser = Callable[[duckdb.DuckDBPyConnection, LandedBatch, bytes], dict[str, str]]


def parser_for(source: str) -> Parser:
    """The source's parser into pandas frames (a group of files, or a small batch)."""
    from flows.sources.enforcement import parse_enforcement
    from flows.sources.mediation import parse_mediation
    from flows.sources.returns import parse_returns
    from flows.sources.training import parse_training

    parsers: dict[str, Parser] = {
        "enforcement": parse_enforcement,
        "mediation": parse_mediation,
        "training": parse_training,
        "returns": parse_returns,
    }
    return parsers[source]


def sql_parser_for(source: str) -> SqlParser | None:
    """The source's parser in SQL (JSON page sources): the whole batch in one statement."""
    from flows.sources.enforcement import enforcement_select
    from flows.sources.mediation import mediation_select

    return {"enforcement": enforcement_select, "mediation": mediation_select}.get(source)


def parse_batch(
    batch: LandedBatch, key: bytes, directory: Path, files_per_group: int = FILES_PER_GROUP
) -> dict[str, ParsedTable]:
    """Parse a whole batch to Parquet files in `directory` (flows/sources/parsed.py): JSON pages
    in SQL, spreadsheets `files_per_group` files at a time, so memory does not grow with the batch."""
    sink = ParsedSink(directory)
    try:
        sql_parser = sql_parser_for(batch.source)
        if sql_parser:
            for table, select in sql_parser(sink.con, batch, key).items():
                sink.add_sql(table, select)
        else:
            parser = parser_for(batch.source)
            for start in range(0, len(batch.files), files_per_group):
                group = replace(batch, files=batch.files[start : start + files_per_group])
                for table, df in parser(group, key).items():
                    sink.add_frame(table, df)
        return sink.finish()
    except BaseException:
        sink.close()
        remove_parsed(directory)
        raise
