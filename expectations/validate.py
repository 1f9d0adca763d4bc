"""Validate a parsed source table with its Great Expectations suite (expectations/<table>.json).

GX validates a pandas frame (GX cannot validate DuckDB through SQLAlchemy reliably). Each
expectation's `meta.level` says what a failure does:
- row:   the failing rows are quarantined, the rest load;
- batch: the source's load stops (nothing of the batch loads);
- warn:  reported in the results, the rows still load.
A batch in which more than `max_failing_row_fraction` of rows fail is stopped too (rule
BATCH-FAILING-ROWS: something systematic, a wrong export or mapping), but only when there is
enough to judge: a full extract (the source's whole export), or a batch of at least
`failing_fraction_min_rows` rows. A smaller batch (one re-delivered record, a township's two-row
ledger) has its failing rows quarantined one by one and the rest load. A full extract far
smaller than the source's previous full extract is stopped too (rule <P>-B02: the caller passes
`previous_full_rows`; the suite meta's `min_full_extract_fraction` sets the threshold).

List columns (penalty_kinds) cannot be validated as such: an expectation whose meta says
`list_elements: true` runs on the exploded column (one row per element, index = the row's
position), so each failing element points back at its row. GX stays the engine for both.

Cost at scale: the suite runs in parts, each on a frame of only the columns it reads; a part
whose rules judge a row by its own values alone runs on the distinct value combinations
(`_distinct`), its failures mapped back to every row, and a run on a few distinct values is
remembered for the next chunk that meets the same values (`_run_remembered`); a large table is
read in chunks of whole townships, by worker processes from POOL_MIN_CHUNKS chunks. The township
list reaches GX as a named set (expectations/custom.py), not as a value_set GX would copy for
every expectation.
"""

from __future__ import annotations

import contextlib
import gc
import json
import math
import multiprocessing
import os
import threading
from collections import OrderedDict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from expectations import configuration_memo
from expectations.clock import latest_allowed_at

SUITES_DIR = Path(__file__).parent
# every failing row's index (COMPLETE), without the filter expression GX would also write of
# them (`unexpected_index_query`, read by nothing here: its own filtering of the frame per
# expectation, 8-15 % of the validation stage: docs/performance.md)
_RESULT_FORMAT = {"result_format": "COMPLETE", "partial_unexpected_count": 0, "return_unexpected_index_query": False}
CHUNK_ROWS = 200_000  # a chunk's memory in pandas, for the widest table: docs/performance.md


class ChunkedTable(Protocol):
    """A table too large for one frame (warehouse/sources/parsed.py ParsedTable): its row count,
    row ranges of about chunk_rows rows that never split a township, the rows of a range
    (a frame indexed by row position), and the empty frame. Picklable: worker processes read
    their own ranges."""

    rows: int

    def chunk_ranges(self, chunk_rows: int | None) -> list[tuple[int, int]]: ...

    def read(self, start: int, stop: int) -> pd.DataFrame: ...

    def frame(self) -> pd.DataFrame: ...


@dataclass
class TableValidation:
    table: str
    row_count: int
    results: pd.DataFrame  # one row per expectation
    failures: pd.DataFrame  # one row per (failing row, rule): _row, rule, message_zh, message_en
    batch_errors: list[dict] = field(default_factory=list)

    @property
    def stopped(self) -> bool:
        return bool(self.batch_errors)

    @property
    def failing_rows(self) -> set[int]:
        return set(self.failures["_row"].tolist())


# suites elsewhere than expectations/<table>.json: a source registered from outside the package
# (warehouse/sources/registry.py) brings its own; validate_table records it here
_SUITES: dict[str, Path] = {}


def suite_path(table: str) -> Path:
    """The table's suite: the one registered for it, else expectations/<table>.json."""
    return _SUITES.get(table) or SUITES_DIR / f"{table}.json"


def register_suite(table: str, path: Path) -> None:
    if _SUITES.get(table, SUITES_DIR / f"{table}.json") != path:
        _SUITES[table] = path
        for cached in (_parts, _part_by_rule, _suite_and_batch_definition, _row_wise):
            cached.cache_clear()
        _REMEMBERED.clear()


def load_suite_doc(table: str) -> dict:
    return json.loads(suite_path(table).read_text(encoding="utf-8"))


_GX_IMPORT = threading.Lock()  # held while GX is imported: a second caller waits for the first
_GX_STARTED = threading.Lock()
_gx_imported = False
_gx_importer: threading.Thread | None = None


def start_importing_gx() -> None:
    """Import GX on a thread of its own, now: a batch is about to be parsed, and validated after.
    DuckDB's parse of export pages and the workers' parse of spreadsheets leave this process's
    interpreter free, so the import (~2 s) overlaps the parse instead of following it
    (docs/performance.md). Once per process; import_gx waits for it."""
    global _gx_importer
    with _GX_STARTED:
        if _gx_imported or _gx_importer is not None:
            return
        _gx_importer = threading.Thread(target=_import_in_background, name="fazhi-gx-import")
        _gx_importer.start()


def _import_in_background() -> None:
    with contextlib.suppress(Exception):  # the validation's own import_gx raises it again, where it is handled
        import_gx()


def import_gx() -> None:
    """Import GX and register the project's expectations (expectations/custom.py), once per
    process, with Python's cyclic garbage collector paused: the import builds ~300,000 objects,
    none of them garbage, and every full collection, during the import and after it, walked all
    of them (~10 % of GX's fixed cost: docs/performance.md). Two modules GX imports for an
    expectation no suite uses are imported only if something uses them (deferred_modules.py)."""
    global _gx_imported
    if _gx_imported:
        return
    with _GX_IMPORT:
        if not _gx_imported:
            _import_gx()
            _gx_imported = True


def _import_gx() -> None:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    from expectations.deferred_modules import defer

    defer()  # altair and scipy.stats, which GX imports for an expectation no suite uses
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        import great_expectations  # noqa: F401

        import expectations.custom  # noqa: F401  (registers the project's expectations)
    finally:
        gc.freeze()  # what the import built is never walked again (refcounting still frees it)
        if was_enabled:
            gc.enable()


@cache
def _context():
    import_gx()
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig
    from great_expectations.execution_engine import pandas_execution_engine

    context = gx.get_context(mode="ephemeral")
    # An ephemeral context holds its datasources in memory, yet GX serialises its whole project
    # configuration (every datasource and asset added so far) to YAML, into an in-memory store
    # nothing reads, each time a datasource, asset or batch definition is added: three times per
    # suite part, so building the suites grew with the square of their parts (docs/performance.md)
    context._save_project_config = lambda: None
    context.variables.progress_bars = ProgressBarsConfig(globally=False)  # none in run logs
    # GX fingerprints every dataframe batch under 1 GB (pandas' hash of every cell, md5) into
    # a batch marker nothing here reads: ~12 % of the validation stage (docs/performance.md)
    pandas_execution_engine.HASH_THRESHOLD = 0
    configuration_memo.install()  # each expectation's configuration built once per run, not per read
    return context


def warm_up() -> None:
    """Import GX and build every suite now (benchmarks time GX's fixed cost apart with it; runs
    build each suite on its first use)."""
    for path in sorted(SUITES_DIR.glob("*.json")):
        for part, _ in (*_parts(path.stem), (_ROWS_PART, ())):
            _suite_and_batch_definition(path.stem, part)


_TABLE_PART = "table"
# every `columns:` part of a suite at once: one GX run over a small frame (_validate_frame)
_ROWS_PART = "rows"


@cache
def _parts(table: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """The suite split into parts, each validated on a frame of just the columns it reads:
    `table` (whole-table expectations, on the batch's row count), `elements:<column>` (the
    list-element expectations of a list column, on its exploded elements), and `columns:<names>`
    (the per-row expectations reading those columns). GX copies the frame it is given for each
    expectation, so a frame of one expectation's columns instead of the whole table's makes the
    per-row rules cheaper on large chunks (docs/performance.md). (part, columns), in suite order."""
    parts: dict[str, tuple[str, ...]] = {}
    for exp in load_suite_doc(table)["expectations"]:
        part, columns = _part_of(exp)
        parts.setdefault(part, columns)
    return tuple(parts.items())


def _part_of(exp: dict) -> tuple[str, tuple[str, ...]]:
    if exp["type"].startswith("expect_table_"):
        return _TABLE_PART, ()
    kwargs = exp["kwargs"]
    if exp.get("meta", {}).get("list_elements"):
        return f"elements:{kwargs['column']}", (kwargs["column"],)
    names = [kwargs.get("column"), *kwargs.get("column_list", []), kwargs.get("column_A"), kwargs.get("column_B")]
    names += _condition_columns(kwargs.get("row_condition"))
    columns = tuple(sorted({n for n in names if n}))
    return "columns:" + ",".join(columns), columns


def _condition_columns(condition) -> list[str]:
    """Columns a row condition reads (GX's condition objects: {"column": {"name": ...}, ...})."""
    if isinstance(condition, dict):
        named = [condition["name"]] if isinstance(condition.get("name"), str) else []
        return named + [c for v in condition.values() for c in _condition_columns(v)]
    if isinstance(condition, list):
        return [c for v in condition for c in _condition_columns(v)]
    return []


@cache
def _suite_and_batch_definition(table: str, part: str):
    """One part of the table's suite (_parts), with its own dataframe asset; built on first use
    (warehouse/pipeline.py validates one table at a time in a process: GX is not thread-safe)."""
    ctx = _context()  # GX imported, the project's expectations registered
    import great_expectations as gx
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    doc = load_suite_doc(table)
    index = "rows" if part == _ROWS_PART else [p for p, _ in _parts(table)].index(part)
    name = f"{doc['name']}__{index}"
    expectations = [
        ExpectationConfiguration(**exp).to_domain_obj()
        for exp in doc["expectations"]
        if (of := _part_of(exp)[0]) == part or (part == _ROWS_PART and of.startswith("columns:"))
    ]
    suite = gx.ExpectationSuite(name=name, meta=doc.get("meta", {}), expectations=_as_a_set(expectations))
    suite = ctx.suites.add_or_update(suite)
    source = ctx.data_sources.add_or_update_pandas(f"fazhi_{name}")
    asset = source.add_dataframe_asset(name)
    return suite, asset.add_batch_definition_whole_dataframe(f"{name}_batch")


def _as_a_set(expectations: list) -> list:
    """The expectations as GX's suite keeps them: a set, an expectation equal to one before it
    (the same type and attributes, its meta aside: ExpectationSuite._expectations_are_equalish)
    left out, as add_expectation leaves it out. A second expectation of the same column and type
    with other arguments (ENF-R27 after R28) is kept: add_expectation_configuration, which
    upserts by domain, replaced the first. Each expectation's attributes are built once here;
    add_expectation built both sides' for every pair, ~0.2 s for enforcement_act's suite of
    ~100 (docs/performance.md)."""
    kept, seen = [], []
    for expectation in expectations:
        attributes = (
            expectation.expectation_type,
            expectation.dict(exclude={"id", "rendered_content", "notes", "meta"}),
        )
        if attributes not in seen:
            seen.append(attributes)
            kept.append(expectation)
    return kept


def _element_frame(df: pd.DataFrame, column: str) -> pd.DataFrame:
    """One row per element of a list column; the index is the row's position in the batch.
    Missing values and empty lists give no row (explode makes them NaN, dropped)."""
    if column not in df.columns:
        return pd.DataFrame({column: pd.Series([], dtype=object)})
    return df[column].explode().dropna().to_frame(column)


def min_full_extract_rows(doc: dict, previous_full_rows: int | None) -> int:
    """The fewest rows a full extract may hold: the suite's fraction of the previous full extract."""
    if not previous_full_rows:
        return 0
    return math.ceil(previous_full_rows * doc.get("meta", {}).get("min_full_extract_fraction", 0.5))


def validate_table(
    table: str,
    data: pd.DataFrame | ChunkedTable,
    parameters: dict | None = None,
    previous_full_rows: int | None = None,
    chunk_rows: int | None = CHUNK_ROWS,
    workers: int = 1,
    full_extract: bool = False,
    suite: Path | None = None,
) -> TableValidation:
    """Run the table's suite over every row; list every (row, rule) failure.

    `data`: a frame (rows numbered by position) or a parsed table on disk, validated in chunks
    of about `chunk_rows` rows that never split a township (the uniqueness rules are per
    township), by `workers` processes from POOL_MIN_CHUNKS chunks (or once they run); whole-table
    expectations (row count) run once on the batch's row count.
    `previous_full_rows`: the rows of this table in the source's previous full extract, when
    this batch is itself a full extract (else None: the extract-size rule does not apply).
    `full_extract`: the batch is the source's whole export (the failing-fraction rule then
    judges it whatever its size).
    `suite`: the table's suite, when it is not expectations/<table>.json."""
    if suite:
        register_suite(table, suite)
    doc = load_suite_doc(table)
    n_rows = len(data) if isinstance(data, pd.DataFrame) else data.rows
    params = {
        "min_full_extract_rows": min_full_extract_rows(doc, previous_full_rows),
        "latest_allowed_at": latest_allowed_at(datetime.now(UTC)),  # callers pass the pull's own clock
    } | (parameters or {})
    context = {
        "received": n_rows,
        "previous": previous_full_rows or 0,
        "fraction": doc.get("meta", {}).get("min_full_extract_fraction", 0.5),
    }
    params, named_sets = _named_sets(params)
    fold = _Fold()
    # the whole-table part: a frame of the batch's length and no columns costs nothing
    fold.add(_run(table, _TABLE_PART, pd.DataFrame(index=pd.RangeIndex(n_rows)), params), n_rows, context)
    if isinstance(data, pd.DataFrame):
        fold.merge(_validate_frame(table, data.reset_index(drop=True), params, context))
    else:
        ranges = data.chunk_ranges(chunk_rows)
        if not ranges:  # an empty batch: the per-row rules are still evaluated (and recorded)
            fold.merge(_validate_frame(table, data.frame(), params, context))
        elif workers > 1 and (len(ranges) >= POOL_MIN_CHUNKS or _pool_running(workers)):
            pool = _worker_pool(workers)
            suites = dict(_SUITES)
            parts = [
                pool.submit(_validate_range, table, data, a, b, params, context, named_sets, suites) for a, b in ranges
            ]
            for part in parts:
                fold.merge(part.result())
        else:
            for a, b in ranges:
                fold.merge(_validate_range(table, data, a, b, params, context, named_sets))

    failures_df = pd.DataFrame(fold.failures, columns=["_row", "rule", "message_zh", "message_en"])
    error = failing_fraction_error(doc, failures_df["_row"].nunique(), n_rows, full_extract)
    if error:
        fold.batch_errors.append(error)
    order = {(e.get("meta", {}).get("rule"), e["type"]): i for i, e in enumerate(doc["expectations"])}
    results = sorted(fold.results.values(), key=lambda r: order.get((r["rule"], r["expectation_type"]), len(order)))
    return TableValidation(table, n_rows, pd.DataFrame(results), failures_df, fold.batch_errors)


def failing_fraction_error(doc: dict, n_failing: int, n_rows: int, full_extract: bool) -> dict | None:
    """Rule BATCH-FAILING-ROWS: more than `max_failing_row_fraction` of the rows fail, in a
    full extract or a batch of at least `failing_fraction_min_rows` rows (suite meta)."""
    meta = doc.get("meta", {})
    limit, min_rows = meta.get("max_failing_row_fraction", 0.5), meta.get("failing_fraction_min_rows", 20)
    if not n_rows or n_failing / n_rows <= limit or not (full_extract or n_rows >= min_rows):
        return None
    zh_what, en_what = ("全量导出", "full extract") if full_extract else ("本批次", "batch")
    return {
        "rule": "BATCH-FAILING-ROWS",
        "message_zh": f"{zh_what} {n_failing}/{n_rows} 行未通过校验，超过 {limit:.0%}，"
        "疑似系统性问题(导出或字段映射错误)，整批停止加载；未通过的行已列入隔离清单",
        "message_en": f"{n_failing} of {n_rows} rows of the {en_what} fail validation, more than {limit:.0%}: "
        "probably systematic (a wrong export or field mapping), the batch is stopped; the failing rows are "
        "listed in the quarantine",
    }


_POOL: tuple[int, ProcessPoolExecutor] | None = None  # (workers, pool)
# Starting the worker processes (each imports GX and builds the suites) costs several chunks'
# validation (docs/performance.md): a table of a few chunks is validated here unless the workers
# already run.
POOL_MIN_CHUNKS = 8
_POOL_LOCK = threading.Lock()


def _pool_running(workers: int) -> bool:
    return _POOL is not None and _POOL[0] == workers


def _worker_pool(workers: int) -> ProcessPoolExecutor:
    """Worker processes for chunks, started once per process (each imports GX once) and kept.
    Sources are validated by concurrent threads in a flow run: one pool for all of them."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None or _POOL[0] != workers:
            if _POOL is not None:
                _POOL[1].shutdown()
            _POOL = (workers, ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")))
        return _POOL[1]


def _run(table: str, part: str, data: pd.DataFrame, params: dict) -> list:
    import logging

    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    suite, batch_definition = _suite_and_batch_definition(table, part)
    if not suite.expectations:
        return []
    batch = batch_definition.get_batch(batch_parameters={"dataframe": data})
    with configuration_memo.one_run():
        return batch.validate(suite, expectation_parameters=params, result_format=_RESULT_FORMAT).results


def _named_sets(params: dict) -> tuple[dict, dict[str, frozenset]]:
    """List-valued parameters (the township codes) become named sets (expectations/custom.py):
    GX gets each set's token, the values are registered in this process (and sent to workers)."""
    import_gx()
    from expectations.custom import add_named_sets, named_set

    sets = {k: named_set(k, v) for k, v in params.items() if isinstance(v, list | tuple | set | frozenset)}
    named_sets = dict(sets.values())
    add_named_sets(named_sets)
    return params | {k: token for k, (token, _) in sets.items()}, named_sets


def _validate_range(
    table: str,
    data: ChunkedTable,
    start: int,
    stop: int,
    params: dict,
    context: dict,
    named_sets: dict,
    suites: dict[str, Path] | None = None,
) -> _Fold:
    """One chunk (rows start..stop-1) of a parsed table; runs in a worker process or in this one
    (`suites`: the suites registered in the calling process)."""
    import_gx()
    from expectations.custom import add_named_sets

    add_named_sets(named_sets)
    for name, path in (suites or {}).items():
        register_suite(name, path)
    return _validate_frame(table, data.read(start, stop), params, context)


# A frame of at most this many rows is validated by one GX run of every `columns:` part: GX's fixed
# cost per run (~10 ms; ~35 runs for enforcement_act's parts) is most of the time of a few
# rows (a night's changes), which the parts' own frames, distinct rows and remembered runs do not
# save (docs/performance.md).
ONE_RUN_MAX_ROWS = 2_000


def _validate_frame(table: str, frame: pd.DataFrame, params: dict, context: dict) -> _Fold:
    """The per-row expectations over one frame (index: row positions in the batch), part by part:
    a small frame's `columns:` parts by one GX run, its results folded in part order."""
    fold = _Fold()
    by_part = _one_run(table, frame, params) if len(frame) <= ONE_RUN_MAX_ROWS else None
    numbered: dict[str, np.ndarray] = {}  # the frame's columns, numbered once for every part (_distinct)
    for part, columns in _parts(table):
        if part == _TABLE_PART:
            continue
        if by_part is not None and part.startswith("columns:"):
            fold.add(by_part.get(part, []), len(frame), context)
            continue
        elements = part.startswith("elements:")
        if elements:
            data = _element_frame(frame, columns[0])
        else:
            data = frame[[c for c in columns if c in frame.columns and not _is_list_column(frame[c])]]
        if _row_wise(table, part) and len(data.columns):
            distinct, of_row, digest = _distinct(data, None if elements else numbered)
            outcomes = _run_remembered(table, part, distinct, digest, params)
            fold.add(outcomes, len(data), context, (data.index.to_numpy(), of_row, distinct))
        else:
            fold.add(_run(table, part, data, params), len(data), context)
    return fold


def _one_run(table: str, frame: pd.DataFrame, params: dict) -> dict[str, list] | None:
    """Every `columns:` part's expectations run once over the frame (the columns they read, list
    columns left out as each part leaves them out), the results by part, in GX's order; None when
    the suite's results cannot be told apart by rule and type."""
    part_of = _part_by_rule(table)
    if part_of is None:
        return None
    names = dict.fromkeys(c for part, columns in _parts(table) if part.startswith("columns:") for c in columns)
    data = frame[[c for c in names if c in frame.columns and not _is_list_column(frame[c])]]
    by_part: dict[str, list] = {}
    for outcome in _run(table, _ROWS_PART, data, params):
        cfg = outcome.expectation_config
        by_part.setdefault(part_of[((cfg.meta or {}).get("rule"), cfg.type)], []).append(outcome)
    return by_part


@cache
def _part_by_rule(table: str) -> dict[tuple, str] | None:
    """The part (_parts) of each expectation of the suite by (rule, type), how a GX result names
    it; None for a suite with two expectations of one rule and type (validated part by part)."""
    suite = load_suite_doc(table)["expectations"]
    part_of = {(e.get("meta", {}).get("rule"), e["type"]): _part_of(e)[0] for e in suite}
    return part_of if len(part_of) == len(suite) else None


_NOT_ROW_WISE = {
    "expect_column_values_to_be_unique",
    "expect_column_values_to_be_increasing",
    "expect_column_values_to_be_decreasing",
}


@cache
def _row_wise(table: str, part: str) -> bool:
    """Every expectation of the part judges a row by that row's own values (no uniqueness, no
    order, no `mostly`), so GX can judge each distinct combination of the part's values once.
    A row condition is fine when _selected can tell which rows it selects: GX counts those rows
    (element_count), which the run on distinct values then weighs by how many rows each is."""
    return all(
        e["type"].startswith(("expect_column_values_to_", "expect_column_pair_values_"))
        and e["type"] not in _NOT_ROW_WISE
        and "mostly" not in e["kwargs"]
        and ("row_condition" not in e["kwargs"] or _selected(None, e["kwargs"]["row_condition"]) is not None)
        for e in load_suite_doc(table)["expectations"]
        if _part_of(e)[0] == part
    )


def _selected(frame: pd.DataFrame | None, condition) -> np.ndarray | bool | None:
    """The rows of `frame` a GX row condition selects, for the conditions the suites use: a
    column == a value, or IN a list (a missing value is never selected, as in GX). None for any
    other condition; with frame None, only whether the condition is one of these."""
    if not (isinstance(condition, dict) and condition.get("type") == "comparison"):
        return None
    column, operator, value = (
        (condition.get("column") or {}).get("name"),
        condition.get("operator"),
        condition.get("parameter"),
    )
    if not isinstance(column, str) or operator not in ("==", "IN"):
        return None
    if frame is None:
        return True
    values = frame[column].astype(object)
    chosen = values.isin(value if operator == "IN" else [value]) & values.notna()
    return chosen.to_numpy(dtype=bool)


def _distinct(data: pd.DataFrame, numbered: dict | None = None) -> tuple[pd.DataFrame, np.ndarray, bytes | None]:
    """The distinct rows of `data` (indexed 0..k-1), for each row of `data` the number of its
    distinct row, and, when there are at most REMEMBERED_ROWS distinct rows, a digest of them
    (_run_remembered). Most columns hold few values (dates, codes, categories): GX's per-value
    work then runs on hundreds of rows instead of hundreds of thousands. A digested set of
    distinct rows is put in the order of its rows' hashes, so the same values make the same
    frame in every chunk, whichever order the chunk's rows came in. `numbered`: the values of
    the columns of the frame `data` was taken from numbered so far (_numbered), by column."""
    numbered = {} if numbered is None else numbered
    of_row = _numbered(data.iloc[:, 0], numbered)
    for column in list(data.columns)[1:]:  # several columns: each row's pair of numbers numbered
        values = _numbered(data[column], numbered)
        of_row, _ = pd.factorize(of_row * (int(values.max(initial=-1)) + 1) + values)
        of_row = of_row.astype(np.int64)
    # numbered in order of first appearance: a row is its group's first when its number exceeds
    # every number before it (no sort)
    first = np.flatnonzero(np.r_[True, of_row[1:] > np.maximum.accumulate(of_row)[:-1]]) if len(of_row) else []
    digest = None
    if len(first) <= REMEMBERED_ROWS:
        hashes = pd.util.hash_pandas_object(data.iloc[first], index=False).to_numpy()
        order = np.argsort(hashes, kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        first, of_row = np.asarray(first)[order], rank[of_row]
        digest = hashes[order].tobytes()
    distinct = data.iloc[first]
    distinct.index = pd.RangeIndex(len(first))
    return distinct, of_row, digest


def _numbered(column: pd.Series, numbered: dict) -> np.ndarray:
    """Each value of the column numbered in order of first appearance, a missing value too
    (as pd.factorize(use_na_sentinel=False) numbers them), remembered in `numbered` by name: a
    column read by several parts of a suite is numbered once per chunk. A column in Arrow is
    numbered by Arrow's dictionary encoding, without the conversions pandas makes first."""
    codes = numbered.get(column.name)
    if codes is None:
        if isinstance(column.dtype, pd.StringDtype) and column.dtype.storage == "pyarrow":
            encoded = pc.dictionary_encode(pa.array(column.array), null_encoding="encode")
            chunks = encoded.chunks if isinstance(encoded, pa.ChunkedArray) else [encoded]
            codes = np.concatenate([c.indices.to_numpy(zero_copy_only=False) for c in chunks] or [[]])
        else:
            codes, _ = pd.factorize(column, use_na_sentinel=False)
        codes = numbered[column.name] = codes.astype(np.int64, copy=False)
    return codes


# GX's fixed cost per run (~10 ms, and a few ms per expectation: docs/performance.md) is most of
# a run on a few distinct values, and the chunks of a table repeat the same few values part after
# part: a run on at most REMEMBERED_ROWS distinct rows is remembered (the latest runs, holding at
# most REMEMBERED_TOTAL_ROWS rows in all), and reused when the same part meets the same rows with
# the same parameters.
REMEMBERED_ROWS = 2_000
REMEMBERED_TOTAL_ROWS = 50_000


class _Remembered:
    """GX runs by key (_run_remembered) with the frame they ran on; the oldest are forgotten
    beyond REMEMBERED_TOTAL_ROWS rows."""

    def __init__(self):
        self.runs: OrderedDict[tuple, tuple[pd.DataFrame, list]] = OrderedDict()
        self.rows = 0
        self.lock = threading.Lock()

    def get(self, key: tuple, frame: pd.DataFrame) -> list | None:
        with self.lock:
            hit = self.runs.get(key)
            if hit is None or not hit[0].equals(frame):
                return None
            self.runs.move_to_end(key)
            return hit[1]

    def put(self, key: tuple, frame: pd.DataFrame, outcomes: list) -> None:
        with self.lock:
            if key in self.runs:
                self.rows -= len(self.runs.pop(key)[0])
            self.runs[key] = (frame, outcomes)
            self.rows += len(frame)
            while self.rows > REMEMBERED_TOTAL_ROWS:
                self.rows -= len(self.runs.popitem(last=False)[1][0])

    def clear(self) -> None:
        with self.lock:
            self.runs.clear()
            self.rows = 0


_REMEMBERED = _Remembered()


def _run_remembered(table: str, part: str, distinct: pd.DataFrame, digest: bytes | None, params: dict) -> list:
    """_run on a frame of distinct rows, or the outcome of the same run remembered: the same
    suite part, parameters, columns, types and rows (by digest, then compared). A suite
    registered anew forgets every run (register_suite)."""
    if digest is None:
        return _run(table, part, distinct, params)
    key = (
        table,
        part,
        tuple(sorted((k, repr(v)) for k, v in params.items())),
        tuple(distinct.columns),
        tuple(str(t) for t in distinct.dtypes),
        digest,
    )
    outcomes = _REMEMBERED.get(key, distinct)
    if outcomes is None:
        outcomes = _run(table, part, distinct, params)
        _REMEMBERED.put(key, distinct, outcomes)
    return outcomes


@dataclass
class _Fold:
    """Expectation results folded over runs (chunks, list-element frames): counts add up, an
    expectation succeeds only if it succeeded on every run; failing rows by their position."""

    results: dict[tuple, dict] = field(default_factory=dict)
    failures: list[dict] = field(default_factory=list)
    batch_errors: list[dict] = field(default_factory=list)

    def add(self, outcomes, n_rows: int, context: dict, distinct: tuple | None = None) -> None:
        """One GX run's results. `distinct`: the run was on distinct rows (_distinct); then
        (row positions, distinct row number of each, the distinct rows) map its failures back to
        every row."""
        for r in outcomes:
            cfg = r.expectation_config
            meta = cfg.meta or {}
            level = meta.get("level", "row")
            res = r.result or {}
            if distinct is not None and "unexpected_count" in res:
                positions, of_row, rows = distinct
                failing = positions[np.isin(of_row, res.get("unexpected_index_list") or [])]
                counted = n_rows
                if cfg.kwargs.get("row_condition"):  # the rows the condition selects, as GX counts
                    counted = int(
                        np.bincount(of_row, minlength=len(rows))[_selected(rows, cfg.kwargs["row_condition"])].sum()
                    )
                res = res | {"element_count": counted, "unexpected_count": len(failing)}
                res["unexpected_index_list"] = failing.tolist()
            self._merge_result(
                (meta.get("rule"), cfg.type),
                {
                    "rule": meta.get("rule"),
                    "expectation_type": cfg.type,
                    "column": cfg.kwargs.get("column")
                    or ",".join(cfg.kwargs.get("column_list", []) or [])
                    or ",".join(v for k, v in cfg.kwargs.items() if k in ("column_A", "column_B")),
                    "level": level,
                    "success": bool(r.success),
                    "element_count": res.get("element_count", n_rows),  # elements, for list_elements
                    "unexpected_count": res.get("unexpected_count", 0 if r.success else None),
                },
            )
            if r.exception_info and r.exception_info.get("raised_exception"):
                self._add_error(
                    {
                        "rule": meta.get("rule"),
                        "message_zh": f"校验规则无法执行: {meta.get('message_zh')}",
                        "message_en": f"rule could not be evaluated ({r.exception_info.get('exception_message')})",
                    }
                )
            elif not r.success and level == "batch":
                self._add_error(
                    {
                        "rule": meta.get("rule"),
                        "message_zh": _fill(meta["message_zh"], context),
                        "message_en": _fill(meta["message_en"], context),
                    }
                )
            elif not r.success and level == "row":
                message = {"rule": meta["rule"], "message_zh": meta["message_zh"], "message_en": meta["message_en"]}
                self.failures += [
                    {"_row": int(i)} | message for i in dict.fromkeys(res.get("unexpected_index_list") or [])
                ]

    def merge(self, other: _Fold) -> None:
        """Another fold's results (a chunk validated elsewhere)."""
        for key, row in other.results.items():
            self._merge_result(key, row)
        self.failures += other.failures
        for error in other.batch_errors:
            self._add_error(error)

    def _merge_result(self, key: tuple, row: dict) -> None:
        mine = self.results.get(key)
        if mine is None:
            self.results[key] = dict(row)
            return
        mine["success"] = mine["success"] and row["success"]
        mine["element_count"] += row["element_count"]
        a, b = mine["unexpected_count"], row["unexpected_count"]
        mine["unexpected_count"] = None if a is None or b is None else a + b

    def _add_error(self, error: dict) -> None:
        if error not in self.batch_errors:
            self.batch_errors.append(error)


def _fill(message: str, context: dict) -> str:
    """A batch rule's message with its figures ({received}, {previous}, {fraction:.0%})."""
    try:
        return message.format(**context)
    except (KeyError, ValueError, IndexError):
        return message


def _is_list_column(s: pd.Series) -> bool:
    if s.dtype != object or s.empty:
        return False
    first = s.dropna()
    return (
        not first.empty
        and isinstance(first.iloc[0], list | tuple)
        or (not first.empty and hasattr(first.iloc[0], "tolist") and not isinstance(first.iloc[0], str))
    )
