"""Parse a landed batch to canonical PII-free rows on disk, by the source's parser (registry.py)."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

import duckdb
import pandas as pd

from warehouse.sources import registry
from warehouse.sources.json_pages import withhold_values
from warehouse.sources.landing import LandedBatch
from warehouse.sources.mapping import SourceError
from warehouse.sources.parsed import FILES_PER_GROUP, ParsedSink, ParsedTable, remove_parsed, write_frame

Parser = Callable[[LandedBatch, bytes], dict[str, pd.DataFrame]]
SqlParser = Callable[[duckdb.DuckDBPyConnection, LandedBatch, bytes], dict[str, str]]


def parser_for(source: str) -> Parser:
    """The source's parser into pandas frames (a group of files, or a small batch)."""
    parser = registry.source(source).load_parser()
    if parser is None:  # a JSON page source
        from warehouse.sources.json_pages import parse_pages

        return parse_pages
    return parser


def sql_parser_for(source: str) -> SqlParser | None:
    """The source's parser in SQL (JSON page sources): the whole batch in one statement."""
    if registry.source(source).parser is None:
        from warehouse.sources.json_pages import pages_select

        return pages_select
    return None


# Spreadsheets below this many bytes are parsed in this process whatever `workers` says: starting
# a worker process (it imports pandas, DuckDB and calamine) costs more than it saves on a small
# batch, and halves the time of a large one (docs/performance.md).
PARALLEL_MIN_BYTES = 12 * 2**20


def parse_batch(
    batch: LandedBatch, key: bytes, directory: Path, files_per_group: int = FILES_PER_GROUP, workers: int = 1
) -> dict[str, ParsedTable]:
    """Parse a whole batch to Parquet files in `directory` (warehouse/sources/parsed.py): JSON pages
    in SQL, spreadsheets `files_per_group` files at a time (by `workers` processes when there
    are several groups), so memory does not grow with the batch."""
    sink = ParsedSink(directory)
    try:
        sql_parser = sql_parser_for(batch.source)
        parser = None if sql_parser else parser_for(batch.source)
        if sum(f.bytes for f in batch.files) < PARALLEL_MIN_BYTES:
            workers = 1
        size = _group_size(len(batch.files), files_per_group, workers)
        groups = [replace(batch, files=batch.files[i : i + size]) for i in range(0, len(batch.files), size)]
        if sql_parser:
            parsed = _parse_in_sql(sink, sql_parser, batch, key)
        elif workers > 1 and len(groups) > 1:
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(min(workers, len(groups)), mp_context=context) as pool:
                parts = [
                    pool.submit(_parse_group, parser, group, key, directory / f"group-{i:05d}")
                    for i, group in enumerate(groups)
                ]
                for part in parts:  # in file order, whichever worker finishes first
                    for table, path in part.result().items():
                        sink.add_parquet(table, path)
            parsed = sink.finish()
        else:
            for group in groups:
                for table, df in parser(group, key).items():
                    sink.add_frame(table, df)
            parsed = sink.finish()
        for part in directory.glob("group-*"):
            remove_parsed(part)
        return parsed
    except BaseException:
        sink.close()
        remove_parsed(directory)
        raise


def _parse_in_sql(sink: ParsedSink, sql_parser: SqlParser, batch: LandedBatch, key: bytes) -> dict[str, ParsedTable]:
    """The batch's tables by its SQL parser, written by `finish` (where the queries run)."""
    try:
        for table, select in sql_parser(sink.con, batch, key).items():
            sink.add_sql(table, select)
        return sink.finish()
    except duckdb.OutOfMemoryException:
        raise  # the memory cap, not the pages: cause class `memory`
    except duckdb.Error as exc:  # its text may quote a record's value: withheld
        raise SourceError(
            batch.source,
            None,
            f"导出页解析失败({type(exc).__name__})",
            f"the export pages could not be parsed: {withhold_values(str(exc))}",
            "page-parse",
        ) from None


def _group_size(files: int, files_per_group: int, workers: int) -> int:
    """At most files_per_group files per group; when there are several groups, a multiple of the
    workers of them, so that the workers finish together (1,100 files, 200 a group, 2 workers: 6
    groups of 184, not 5 of 200 and one of 100). One group stays one group (parsed in this
    process)."""
    groups = -(-files // max(files_per_group, 1))
    if workers > 1 and groups > 1:
        groups = -(-groups // workers) * workers
    return max(1, -(-files // max(groups, 1)))


def _parse_group(parser: Parser, group: LandedBatch, key: bytes, directory: Path) -> dict[str, Path]:
    """One group of spreadsheet files parsed in a worker process, each table as Parquet. The
    parser is passed (by reference: a module's function), so a source registered in the calling
    process only needs its module importable here."""
    directory.mkdir(mode=0o700)
    frames = parser(group, key)
    return {table: write_frame(df, directory / f"{table}.parquet") for table, df in frames.items()}
