"""The physical limit: the fastest way DuckDB gets the landed files into typed columns.

The pipeline is compared with this, stage by stage (`python -m benchmarks`). For every source the
limit reads the same landed files into a table of a DuckDB database file (memory capped like a
parse's scratch file, warehouse.db.connect), one column per field the pipeline keeps (fields.yaml), typed
as the parsed tables type it: a number as DOUBLE, a list as VARCHAR[], everything else VARCHAR
(the parse keeps dates and flags as the source wrote them, for validation to judge); a value
that does not convert is NULL. It does nothing the pipeline must do beyond that: no hashing, no
type-error flags, no de-duplication, no normalised header matching, no dropped total or footer
rows (so it reads a few rows more than the parse keeps: 0.3 % at county scale).

- **JSON export pages**: read_json_objects, then from_json with the records' structure and one
  unnest; the fastest of the alternatives in JSON_METHODS (measure them all with
  `python -m benchmarks.limit`). Each run of `python -m benchmarks` times the FAST_JSON ones and
  takes the fastest per source; `one_json_column` (every record as one JSON value, the limit
  before issue 20) is timed too, for comparison, never as the limit.
- **Workbooks** (xlsx, xls; CSV): python-calamine, the fastest reader here (DuckDB's xlsx reader is
  a download), every visible sheet, the rows under the first row that names a field (blank rows
  skipped) into Arrow columns, inserted into DuckDB `files_per_group` files at a time; in this
  process, and also in `workers` worker processes where the pipeline's parse would use them (a
  batch of PARALLEL_MIN_BYTES or more, warehouse/sources/__init__.py): the faster counts.

    python -m benchmarks.limit [--scale county] [--rounds 3]

prints each JSON alternative's median seconds per source (and the workbooks', in one process and
in workers), interleaved over rounds.
"""

from __future__ import annotations

import csv
import io
import json
import multiprocessing
import os
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

if TYPE_CHECKING:
    from warehouse.sources.mapping import TableMapping

JSON_SOURCES = ("enforcement", "mediation")
# DuckDB types of the parsed tables (warehouse/sources/json_pages.py); other kept types are VARCHAR
TYPES = {"number": "DOUBLE", "text_list": "VARCHAR[]", "pseudonym_list": "VARCHAR[]"}
HEADER_SCAN_ROWS = 15


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _type(col) -> str:
    return TYPES.get(col.type, "VARCHAR")


def _pages(paths_param: str = "$paths") -> str:
    return f"read_json_objects({paths_param}, format = 'auto', maximum_object_size = $object_size)"


# ---- JSON pages: the alternatives ---------------------------------------------------------------


def _from_json(mapping: TableMapping) -> str:
    """Each page parsed once into a list of typed structs (from_json ignores fields not named,
    and gives NULL where a value does not convert), one unnest."""
    cols = mapping.kept_columns
    shape = {"records": [{c.fields[0]: ["VARCHAR"] if _type(c) == "VARCHAR[]" else _type(c) for c in cols}]}
    structure = _literal(json.dumps(shape, ensure_ascii=False))
    names = ", ".join(f"r.{_ident(c.fields[0])} as {_ident(c.name)}" for c in cols)
    return f"select {names} from (select unnest(from_json(json, {structure}).records) as r from {_pages()})"


def _extract_list(mapping: TableMapping) -> str:
    """Records unnested as JSON values; the scalar fields extracted as text in one call per
    record (json_extract_string with a list of paths, as the pipeline's parse did until 2026-12-01), numbers
    and lists cast."""
    cols = mapping.kept_columns
    paths = "[" + ", ".join(_literal(c.fields[0]) for c in cols) + "]"

    def select(i: int, c) -> str:
        if _type(c) == "DOUBLE":
            return f"try_cast(v[{i}] as double) as {_ident(c.name)}"
        if _type(c) == "VARCHAR[]":
            return f"try_cast(rec->{_literal(c.fields[0])} as varchar[]) as {_ident(c.name)}"
        return f"v[{i}] as {_ident(c.name)}"

    names = ", ".join(select(i, c) for i, c in enumerate(cols, 1))
    records = f"select unnest(cast(json_extract(json, '$.records') as json[])) as rec from {_pages()}"
    return f"select {names} from (select rec, json_extract_string(rec, {paths}) as v from ({records}))"


def _extract_each(mapping: TableMapping) -> str:
    """Records unnested as JSON values, one ->> (or ->) per field."""

    def select(c) -> str:
        field = _literal(c.fields[0])
        if _type(c) == "DOUBLE":
            return f"try_cast(rec->>{field} as double) as {_ident(c.name)}"
        if _type(c) == "VARCHAR[]":
            return f"try_cast(rec->{field} as varchar[]) as {_ident(c.name)}"
        return f"rec->>{field} as {_ident(c.name)}"

    names = ", ".join(select(c) for c in mapping.kept_columns)
    records = f"select unnest(cast(json_extract(json, '$.records') as json[])) as rec from {_pages()}"
    return f"select {names} from ({records})"


def _read_json(mapping: TableMapping) -> str:
    """read_json with the page's `records` given as a list of typed structs (no detection)."""
    cols = mapping.kept_columns
    struct = "STRUCT(" + ", ".join(f"{_ident(c.fields[0])} {_type(c)}" for c in cols) + ")[]"
    names = ", ".join(f"r.{_ident(c.fields[0])} as {_ident(c.name)}" for c in cols)
    reader = (
        f"read_json($paths, columns = {{records: {_literal(struct)}}}, format = 'auto', "
        f"maximum_object_size = $object_size)"
    )
    return f"select {names} from (select unnest(records) as r from {reader})"


def _read_json_auto(mapping: TableMapping) -> str:
    """read_json detecting the records' structure itself (every field, its own types: dates as
    DATE): not the same columns, shown for reference."""
    return "select unnest(records, recursive := true) from read_json($paths, maximum_object_size = $object_size)"


def _one_json_column(mapping: TableMapping) -> str:
    """The limit before issue 20: each record as one JSON value, no columns."""
    return f"select unnest(cast(json_extract(json, '$.records') as json[])) as rec from {_pages()}"


JSON_METHODS = {
    "from_json": _from_json,
    "extract_list": _extract_list,
    "extract_each": _extract_each,
    "read_json": _read_json,
    "read_json_auto": _read_json_auto,
    "one_json_column": _one_json_column,
}
# timed by every run of `python -m benchmarks` (the others were several times slower: docs/performance.md)
FAST_JSON = ("from_json", "extract_list")
COMPARISON = "one_json_column"  # timed by every run, reported, never the limit


def json_select(source: str, method: str) -> str:
    """The query reading the source's pages (parameter `$paths`) by `method`."""
    from warehouse.sources.registry import load_mappings

    (mapping,) = load_mappings()[source].values()
    return JSON_METHODS[method](mapping)


def read_json_pages(con: duckdb.DuckDBPyConnection, source: str, paths: list[Path], method: str) -> int:
    """The source's pages into the table `<source>` on `con`; returns the rows."""
    from warehouse.sources.json_pages import json_object_size

    con.execute(
        f"create or replace table {source} as {json_select(source, method)}",
        # maximum_object_size sized to the largest page, as the parse sizes it (DuckDB allocates
        # buffers of twice that size: a fixed 256 MB made it allocate 512 MB and read slower)
        {"paths": [str(p) for p in paths], "object_size": json_object_size(paths)},
    )
    return con.execute(f"select count(*) from {source}").fetchone()[0]


# ---- workbooks ---------------------------------------------------------------------------------


def _cell_text(v) -> str | None:
    if v is None or v == "":
        return None
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, datetime | date):
        return v.isoformat()
    return str(v)


def _column(values: list, duck_type: str):
    import pyarrow as pa

    if duck_type == "DOUBLE":
        return pa.array([float(v) if type(v) in (float, int) else None for v in values], pa.float64())
    return pa.array([(v or None) if type(v) is str else _cell_text(v) for v in values], pa.string())


def _sheets(path: Path):
    """Every visible sheet of a workbook (or the one of a CSV) as rows of cell values."""
    if path.suffix.lower() == ".csv":
        data = path.read_bytes()
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:  # DuckDB reads GB18030 only with a downloaded extension
            text = data.decode("gb18030")
        yield list(csv.reader(io.StringIO(text)))
        return
    from python_calamine import CalamineWorkbook, SheetTypeEnum, SheetVisibleEnum

    wb = CalamineWorkbook.from_path(str(path))
    for meta in wb.sheets_metadata:
        if meta.typ == SheetTypeEnum.WorkSheet and meta.visible == SheetVisibleEnum.Visible:
            yield wb.get_sheet_by_name(meta.name).to_python()


def read_workbook_group(tables: dict[str, list[tuple[str, tuple[str, ...], str]]], paths: list[Path]) -> dict:
    """A group of files as one Arrow table per table (`tables`: table -> its kept columns as
    (name, field names, DuckDB type)): each sheet's rows under the first of its first rows naming
    two fields or more of a table (the table naming the most), blank rows skipped. Runs in a
    worker process too, which then imports neither pandas nor the warehouse."""
    import pyarrow as pa

    names = {t: {f: name for name, fields, _ in cols for f in fields} for t, cols in tables.items()}
    gathered = {t: {name: [] for name, _, _ in cols} for t, cols in tables.items()}
    for path in paths:
        for rows in _sheets(path):
            found = None
            for i, row in enumerate(rows[:HEADER_SCAN_ROWS]):
                best = max(
                    (
                        ({names[t][v]: j for j, v in enumerate(row) if type(v) is str and v in names[t]}, t)
                        for t in names
                    ),
                    key=lambda pair: len(pair[0]),
                )
                if len(best[0]) >= 2:
                    found = i, *best
                    break
            if found is None:
                continue
            i, positions, table = found
            body = [r for r in rows[i + 1 :] if any(v not in ("", None) for v in r)]
            columns = list(zip(*body, strict=False)) if body else []
            width = len(columns)
            for name, values in gathered[table].items():
                j = positions.get(name)
                values.extend(columns[j] if j is not None and j < width else [None] * len(body))
    return {
        t: pa.table([_column(gathered[t][name], duck_type) for name, _, duck_type in cols], names=[c[0] for c in cols])
        for t, cols in tables.items()
    }


def read_workbooks(
    con: duckdb.DuckDBPyConnection, source: str, paths: list[Path], files_per_group: int, workers: int
) -> dict[str, int]:
    """The source's workbooks into one table per table of the source on `con` (`<table>`);
    `workers` processes when there are several groups. Returns the rows per table."""
    from warehouse.sources.registry import load_mappings

    columns = {t: [(c.name, c.fields, _type(c)) for c in m.kept_columns] for t, m in load_mappings()[source].items()}
    groups = [paths[i : i + files_per_group] for i in range(0, len(paths), files_per_group)] or [[]]
    created: set[str] = set()

    def insert(arrow_tables: dict) -> None:
        for t, arrow in arrow_tables.items():
            con.register("incoming", arrow)
            if t in created:
                con.execute(f"insert into {t} select * from incoming")
            else:
                con.execute(f"create or replace table {t} as select * from incoming")
                created.add(t)
            con.unregister("incoming")

    if workers > 1 and len(groups) > 1:
        context = multiprocessing.get_context("spawn")  # as the pipeline's parse
        with ProcessPoolExecutor(min(workers, len(groups)), mp_context=context) as pool:
            futures = [pool.submit(read_workbook_group, columns, g) for g in groups]
            for future in futures:  # in file order
                insert(future.result())
    else:
        for g in groups:
            insert(read_workbook_group(columns, g))
    return {t: con.execute(f"select count(*) from {t}").fetchone()[0] for t in sorted(created)}


# ---- the limit ---------------------------------------------------------------------------------


@dataclass
class Limit:
    """The limit of one run: `seconds` summed over the sources, each source's fastest reading
    (`sources[s]`: method, seconds, rows, and every alternative timed), and the one-JSON-column
    reading of the pages (`one_json_column_s`, the previous definition) for comparison."""

    seconds: float = 0.0
    sources: dict[str, dict] = field(default_factory=dict)
    one_json_column_s: float = 0.0
    cpu_s: float = 0.0  # CPU time of the fastest readings (this process and its workers)

    @property
    def with_one_json_column_s(self) -> float:
        """The limit had the pages been read as one JSON column (the definition before issue 20)."""
        typed_pages_s = sum(v["seconds"] for s, v in self.sources.items() if s in JSON_SOURCES)
        return self.seconds - typed_pages_s + self.one_json_column_s

    def add(self, source: str, timings: dict[str, tuple[float, int, float]]) -> None:
        method = min(timings, key=lambda m: timings[m][0])
        seconds, rows, cpu_s = timings[method]
        self.seconds += seconds
        self.cpu_s += cpu_s
        self.sources[source] = {
            "method": method,
            "seconds": seconds,
            "cpu_s": cpu_s,
            "rows": rows,
            "alternatives": {m: s for m, (s, _, _) in timings.items()},
        }


def duckdb_limit(batches, scratch: Path, files_per_group: int, workers: int) -> Limit:
    """The limit for landed batches (warehouse.sources.landing.LandedBatch, None for a source with
    nothing landed): each source read by every FAST_JSON method (pages) or by calamine
    (workbooks: in this process, and in `workers` processes too where the pipeline's parse would
    use them), each into a fresh database file; the fastest reading of each source counts."""
    from warehouse.sources.parse import PARALLEL_MIN_BYTES

    limit = Limit()
    for batch in batches:
        if batch is None:
            continue
        paths = [f.path for f in batch.files]
        timings = {}
        if batch.source in JSON_SOURCES:
            for method in (*FAST_JSON, COMPARISON):
                timings[method] = _timed(scratch, read_json_pages, batch.source, paths, method)
            limit.one_json_column_s += timings.pop(COMPARISON)[0]
        else:
            timings["calamine"] = _timed(scratch, read_workbooks, batch.source, paths, files_per_group, 1)
            if workers > 1 and sum(f.bytes for f in batch.files) >= PARALLEL_MIN_BYTES:  # as the pipeline would
                timings[f"calamine_{workers}_processes"] = _timed(
                    scratch, read_workbooks, batch.source, paths, files_per_group, workers
                )
        limit.add(batch.source, timings)
    return limit


def _timed(scratch: Path, read, *args) -> tuple[float, int, float]:
    """Seconds, rows and CPU seconds (this process and the workers it waited for) of
    `read(con, *args)` (rows, or rows per table) into a new database file, opened and closed in
    the time."""
    from warehouse.db import connect

    path = scratch / "limit.duckdb"
    path.unlink(missing_ok=True)
    cpu, t = cpu_s(), time.perf_counter()
    con = connect(path)
    try:
        rows = read(con, *args)
    finally:
        con.close()
    elapsed, cpu = time.perf_counter() - t, cpu_s() - cpu
    path.unlink(missing_ok=True)
    return elapsed, sum(rows.values()) if isinstance(rows, dict) else rows, cpu


def cpu_s() -> float:
    """CPU seconds of this process and of the children it waited for."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


# ---- python -m benchmarks.limit: the alternatives side by side --------------------------------


def main() -> None:
    import argparse
    import tempfile

    from benchmarks.__main__ import SCALES, sample_dir
    from warehouse.sources.parsed import FILES_PER_GROUP

    ap = argparse.ArgumentParser(prog="python -m benchmarks.limit")
    ap.add_argument("--scale", choices=SCALES, default="county")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1))
    ap.add_argument("--files-per-group", type=int, default=FILES_PER_GROUP)
    args = ap.parse_args()
    sample, _ = sample_dir(args.scale)
    runs: dict[tuple[str, str], list[float]] = {}
    rows: dict[tuple[str, str], int] = {}
    with tempfile.TemporaryDirectory(prefix="fazhi-limit-") as tmp:
        scratch = Path(tmp)
        for _ in range(args.rounds):
            for source in JSON_SOURCES:
                paths = sorted((sample / source).glob("page-*.json"))
                for method in JSON_METHODS:
                    s, rows[source, method], _ = _timed(scratch, read_json_pages, source, paths, method)
                    runs.setdefault((source, method), []).append(s)
            for source in ("training", "returns"):
                paths = sorted(p for p in (sample / source).iterdir() if p.suffix.lower() in (".xlsx", ".xls", ".csv"))
                for workers in (1, args.workers):
                    label = f"calamine, {workers} process" + ("es" if workers > 1 else "")
                    s, rows[source, label], _ = _timed(
                        scratch, read_workbooks, source, paths, args.files_per_group, workers
                    )
                    runs.setdefault((source, label), []).append(s)
    print(f"{args.scale}: median of {args.rounds} rounds, load average {os.getloadavg()[0]:.1f}")
    print(f"{'source':<13}{'reading':<28}{'rows':>12}{'seconds':>10}")
    for (source, method), seconds in runs.items():
        print(f"{source:<13}{method:<28}{rows[source, method]:>12,}{statistics.median(seconds):>10.3f}")


if __name__ == "__main__":
    main()
