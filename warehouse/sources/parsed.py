"""Parsed tables on disk: what a batch's parse hands to validation and the load.

A batch is parsed into a scratch DuckDB file (`parsed/<batch_id>/parse.duckdb`, memory capped,
spilling to disk), never into one pandas frame: JSON pages in one SQL statement, spreadsheets a
group of files at a time. Each table is then written as one Parquet file sorted by township
(then file and row). A row is known by its 0-based position in that file, `_row`: it is not
stored (numbering the rows in the sort took a second sort: docs/performance.md) but read back as
the position (ParsedTable.read; DuckDB's `file_row_number`: PARSED_ROWS). Validation reads the
file in chunks that never split a township (the uniqueness rules are per township; record ids
are already unique per batch), the load reads it with SQL. Memory stays bounded whatever the
batch's size.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa

from warehouse.db import memory_limit, sql_literal

# Files parsed (and held in pandas) together for spreadsheet sources. A worker's memory grows with
# its group: groups of at most 200 files bound it whatever the batch (at most 500 were balanced to
# 275 files at province, 367 at 2x province, 500 at national: docs/performance.md).
FILES_PER_GROUP = 200

# The pandas dtypes a parsed column keeps, as DuckDB and Arrow type them; any other column is text.
_KEPT_TYPES = {
    "float64": ("DOUBLE", pa.float64()),
    "int32": ("INTEGER", pa.int32()),
    "int64": ("BIGINT", pa.int64()),
    "bool": ("BOOLEAN", pa.bool_()),
}


@dataclass(frozen=True)
class ParsedTable:
    """One parsed table of a batch: a Parquet file and its row count."""

    table: str
    path: Path
    rows: int

    def frame(self) -> pd.DataFrame:
        """The whole table (small batches and tests), indexed by `_row` (the rows' positions)."""
        return self.read(0, self.rows)

    def chunk_ranges(self, chunk_rows: int | None) -> list[tuple[int, int]]:
        """`_row` ranges [start, stop) of at least `chunk_rows` rows (None: one range), cut only
        where the township changes (the last range may be smaller)."""
        if not self.rows:
            return []
        if chunk_rows is None or self.rows <= chunk_rows:  # one range: no need to count townships
            return [(0, self.rows)]
        con = quiet_connect()
        try:
            sizes = con.execute(
                "select count(*) from read_parquet(?) group by township_code order by township_code nulls last",
                [str(self.path)],
            ).fetchall()
        finally:
            con.close()
        ranges, start, stop = [], 0, 0
        for (n,) in sizes:
            stop += n
            if stop - start >= chunk_rows:
                ranges.append((start, stop))
                start = stop
        if stop > start:
            ranges.append((start, stop))
        return ranges

    def read(self, start: int, stop: int) -> pd.DataFrame:
        """Rows start..stop-1 (only the row groups holding them are read), indexed by `_row`.
        Read with pyarrow: its conversion to pandas is faster than DuckDB's `.df()` for the text
        columns, with the same dtypes (docs/performance.md). Text is read as Arrow's large_string,
        which pandas' "string" dtype holds: read as string, every text column was copied into
        large_string by the conversion."""
        import pyarrow.parquet as pq

        parquet = pq.ParquetFile(self.path, binary_type=pa.large_binary())
        holding, offset = [], 0  # (row group, its first row) of the groups holding rows start..stop-1
        for i in range(parquet.metadata.num_row_groups):
            n = parquet.metadata.row_group(i).num_rows
            if offset < stop and offset + n > start:
                holding.append((i, offset))
            offset += n
        if not holding:  # an empty table: its columns, typed as DuckDB types them
            return _empty_frame(self.path)
        rows = parquet.read_row_groups([i for i, _ in holding])
        df = rows.slice(start - holding[0][1], stop - start).to_pandas()
        df.index = pd.RangeIndex(start, start + len(df))
        return df

    def chunks(self, chunk_rows: int | None) -> Iterator[pd.DataFrame]:
        """The table as frames of chunk_ranges (each indexed by `_row`)."""
        for start, stop in self.chunk_ranges(chunk_rows):
            yield self.read(start, stop)


def _empty_frame(path: Path) -> pd.DataFrame:
    con = quiet_connect()
    try:
        return con.execute("select * from read_parquet(?) limit 0", [str(path)]).df()
    finally:
        con.close()


class ParsedSink:
    """Collects a batch's parsed rows per table in temporary tables of a scratch DuckDB file
    (in memory up to the limit, spilled beside it beyond), as Parquet files of groups parsed by
    worker processes, or as a query on `con` (parsers that work in SQL), then writes each table's
    one sorted Parquet file (`finish`)."""

    def __init__(self, directory: Path):
        if directory.exists():
            shutil.rmtree(directory)  # a previous attempt's leftovers
        directory.mkdir(parents=True, mode=0o700)
        self.directory = directory
        self.con = quiet_connect(directory / "parse.duckdb")
        self.con.execute("set preserve_insertion_order = false")
        self.tables: list[str] = []  # in the order they came
        self.temp: set[str] = set()  # those with a temporary table
        self.parts: dict[str, list[Path]] = {}  # those with groups parsed elsewhere
        self.queries: dict[str, str] = {}  # those given as a query on `con`

    def add_sql(self, table: str, select_sql: str) -> None:
        """The rows of a query on `con` are the table (parsers that work in SQL). The query runs
        once, in `finish`, straight into the sorted Parquet file (not stored first in a temporary
        table: one write of the rows fewer); what it reads must stay on `con` until then."""
        self.queries[table] = select_sql
        self.tables.append(table)

    def add_frame(self, table: str, df: pd.DataFrame) -> None:
        """Append a group's rows; the first group fixes the columns and their types."""
        typed = _typed_arrow(df)
        self.con.register("incoming", df if typed is None else typed)
        self._append(table, f"select {_typed_columns(df)} from incoming" if typed is None else "select * from incoming")
        self.con.unregister("incoming")

    def add_parquet(self, table: str, path: Path) -> None:
        """Append a group parsed elsewhere (a worker process: write_frame). The file is read once,
        by `finish`: it must stay until then."""
        self.parts.setdefault(table, []).append(path)
        if table not in self.tables:
            self.tables.append(table)

    def _append(self, table: str, select_sql: str) -> None:
        if table not in self.temp:
            self.con.execute(f'create temp table "{table}" as {select_sql} limit 0')
            self.temp.add(table)
        if table not in self.tables:
            self.tables.append(table)
        self.con.execute(f'insert into "{table}" by name {select_sql}')

    def finish(self) -> dict[str, ParsedTable]:
        """Every table as Parquet sorted by township (then file and row): a row's position is its `_row`."""
        out = {}
        for table in self.tables:
            source = self._rows(table)
            cols = {r[0] for r in self.con.execute(f"describe select * from {source}").fetchall()}
            order = ", ".join(
                c for c in ("township_code nulls last", "_source_file", "_row_number") if c.split()[0] in cols
            )
            path = self.directory / f"{table}.parquet"
            # snappy: scratch files, read twice and deleted; written faster than zstd (docs/performance.md)
            (rows,) = self.con.execute(
                f"copy (select * from {source} order by {order}) to ? (format parquet, compression snappy)",
                [str(path)],
            ).fetchone()
            out[table] = ParsedTable(table, path, int(rows))
        self.close()
        (self.directory / "parse.duckdb").unlink(missing_ok=True)
        return out

    def _rows(self, table: str) -> str:
        """The table's rows: its query, or its temporary table and the groups parsed elsewhere
        (read directly, not copied into the scratch file first)."""
        if table in self.queries:
            return f"({self.queries[table]})"
        sources = [f'select * from "{table}"'] if table in self.temp else []
        if table in self.parts:
            files = ", ".join(sql_literal(str(p)) for p in self.parts[table])
            sources.append(f"select * from read_parquet([{files}], union_by_name = true)")
        return "(" + " union all by name ".join(sources) + ")"

    def close(self) -> None:
        self.con.close()


def _typed_columns(df: pd.DataFrame) -> str:
    """Select list giving every column its parsed type: text unless numeric or boolean, so a
    column empty in one group of files is still text (not NULL-typed) and groups stack."""
    return ", ".join(
        f'cast("{c}" as {_KEPT_TYPES.get(str(t), ("VARCHAR", None))[0]}) as "{c}"' for c, t in df.dtypes.items()
    )


def _typed_arrow(df: pd.DataFrame) -> pa.Table | None:
    """The frame in Arrow with the types _typed_columns gives it: numbers and flags as they
    are, every other column as text (text, integers spelled as DuckDB spells them, or nothing
    but missing values). None when a column holds anything else (a float or a date in a text
    column, mixed values): DuckDB's cast then decides its text. Arrow reads the frame's Arrow
    text columns without a copy, where DuckDB's scan of a pandas frame converts them, and
    needs no connection (docs/performance.md)."""
    arrays = []
    for name, dtype in df.dtypes.items():
        try:
            values = pa.array(df[name], from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            return None
        wanted = _KEPT_TYPES.get(str(dtype), ("VARCHAR", None))[1]
        if wanted is None:
            kind = values.type
            text = pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_null(kind)
            if not (text or pa.types.is_integer(kind)):
                return None
            wanted = pa.string()
        arrays.append(values.cast(wanted))
    return pa.table(arrays, names=[str(c) for c in df.columns])


def write_frame(df: pd.DataFrame, path: Path) -> Path:
    """A group's frame as Parquet with the sink's column types (parsed in a worker process):
    written by Arrow, or through DuckDB's cast when Arrow would spell a column otherwise."""
    typed = _typed_arrow(df)
    if typed is not None:
        import pyarrow.parquet as pq

        pq.write_table(typed, path, compression="snappy")  # as DuckDB's COPY writes it
        return path
    con = quiet_connect()
    try:
        con.register("incoming", df)
        con.execute(f"copy (select {_typed_columns(df)} from incoming) to ? (format parquet)", [str(path)])
    finally:
        con.close()
    return path


def quiet_connect(path: Path | None = None) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection that prints no progress bars (they would fill run logs). A scratch
    file's memory is capped (it spills beside the file); an in-memory one holds a group of
    files at most, and is a database of its own: closing it returns its memory (cursors on one
    database per process kept ~100 MB more in a province's training parse: docs/performance.md)."""
    if path is None:
        con = duckdb.connect(":memory:")
    else:
        con = duckdb.connect(str(path), config={"memory_limit": memory_limit()})
    con.execute("set enable_progress_bar = false")  # no progress bars in run logs
    return con


# A parsed table's rows with their `_row` (position in the file) first, as DuckDB reads them; the
# file's path is the parameter `path` (ParsedTable: the rows are not numbered in the file).
PARSED_ROWS = (
    "(select file_row_number as _row, * exclude (file_row_number) from read_parquet($path, file_row_number = true))"
)


def remove_parsed(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)
