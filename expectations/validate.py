"""Validate a parsed source table with its Great Expectations suite (expectations/<table>.json).

GX validates a pandas frame (GX cannot validate DuckDB through SQLAlchemy reliably). Each
expectation's `meta.level` says what a failure does:
- row:   the failing rows are quarantined, the rest load;
- batch: the source's load stops (nothing of the batch loads);
- warn:  reported in the results, the rows still load.
A batch in which more than `max_failing_row_fraction` of rows fail is stopped too, and so is a
full extract far smaller than the source's previous full extract (rule <P>-B02: the caller
passes `previous_full_rows`; the suite meta's `min_full_extract_fraction` sets the threshold).

List columns (penalty_kinds) cannot be validated as such: an expectation whose meta says
`list_elements: true` runs on the exploded column (one row per element, index = the row's
position), so each failing element points back at its row. GX stays the engine for both.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd

SUITES_DIR = Path(__file__).parent
_RESULT_FORMAT = {"result_format": "COMPLETE", "partial_unexpected_count": 0}
CHUNK_ROWS = 200_000  # a chunk of the widest table (enforcement_act) is ~0.5 GB in pandas


class ChunkedTable(Protocol):
    """A table too large for one frame (flows/sources/parsed.py ParsedTable): its row count,
    frames of it indexed by row position that never split a township, and an empty frame."""

    rows: int

    def chunks(self, chunk_rows: int | None) -> Iterator[pd.DataFrame]: ...

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


def load_suite_doc(table: str) -> dict:
    return json.loads((SUITES_DIR / f"{table}.json").read_text(encoding="utf-8"))


@cache
def _context():
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)  # none in run logs
    return context


def _element_columns(doc: dict) -> list[str]:
    """List columns whose elements some expectation checks (meta.list_elements)."""
    cols = [e["kwargs"]["column"] for e in doc["expectations"] if e.get("meta", {}).get("list_elements")]
    return sorted(set(cols))


_TABLE_PART = "__table__"


def _is_table_expectation(exp: dict) -> bool:
    """Expectations about the whole table (row count): evaluated once per batch, not per chunk."""
    return exp["type"].startswith("expect_table_")


@cache
def _suite_and_batch_definition(table: str, part: str | None = None):
    """A part of the table's suite, each with its own dataframe asset: part None is every
    per-row expectation but the list-element ones; `__table__` the whole-table expectations;
    a column name the list-element expectations of that list column."""
    import great_expectations as gx
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    import expectations.custom  # noqa: F401  (registers the project's expectations)

    ctx = _context()
    doc = load_suite_doc(table)
    name = doc["name"] if part is None else f"{doc['name']}__{part}"
    suite = gx.ExpectationSuite(name=name, meta=doc.get("meta", {}))
    for exp in doc["expectations"]:
        if _part_of(exp) != part:
            continue
        # add_expectation, not add_expectation_configuration: the latter upserts by domain, so a
        # second expectation on the same column and type (ENF-R27 after R28) silently replaced the first
        suite.add_expectation(ExpectationConfiguration(**exp).to_domain_obj())
    suite = ctx.suites.add_or_update(suite)
    source = ctx.data_sources.add_or_update_pandas(f"fazhi_{name}")
    asset = source.add_dataframe_asset(name)
    return suite, asset.add_batch_definition_whole_dataframe(f"{name}_batch")


def _part_of(exp: dict) -> str | None:
    if _is_table_expectation(exp):
        return _TABLE_PART
    if exp.get("meta", {}).get("list_elements"):
        return exp["kwargs"]["column"]
    return None


def _element_frame(df: pd.DataFrame, column: str) -> pd.DataFrame:
    """One row per element of a list column; the index is the row's position in the batch."""
    if column not in df.columns:
        return pd.DataFrame({column: pd.Series([], dtype=object)})
    s = df[column].map(lambda v: list(v) if isinstance(v, list | tuple | np.ndarray) else [])
    return s.explode().dropna().to_frame(column)


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
) -> TableValidation:
    """Run the table's suite over every row; list every (row, rule) failure.

    `data`: a frame (rows numbered by position) or a parsed table on disk, validated in chunks
    of about `chunk_rows` rows that never split a township (the uniqueness rules are per
    township); whole-table expectations (row count) run once on the batch's row count.
    `previous_full_rows`: the rows of this table in the source's previous full extract, when
    this batch is itself a full extract (else None: the extract-size rule does not apply)."""
    import logging

    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    doc = load_suite_doc(table)
    if isinstance(data, pd.DataFrame):
        n_rows, chunks = len(data), iter([data.reset_index(drop=True)])
    else:
        n_rows, chunks = data.rows, data.chunks(chunk_rows)
    params = {"min_full_extract_rows": min_full_extract_rows(doc, previous_full_rows)} | (parameters or {})
    context = {
        "received": n_rows,
        "previous": previous_full_rows or 0,
        "fraction": doc.get("meta", {}).get("min_full_extract_fraction", 0.5),
    }
    results: dict[tuple, dict] = {}
    failures, batch_errors = [], []
    # the whole-table part: a frame of the batch's length and no columns costs nothing
    _collect(
        _run(table, _TABLE_PART, pd.DataFrame(index=pd.RangeIndex(n_rows)), params),
        n_rows,
        context,
        results,
        failures,
        batch_errors,
    )
    seen_chunk = False
    for frame in chunks:
        seen_chunk = True
        _validate_chunk(table, doc, frame, params, context, results, failures, batch_errors)
    if not seen_chunk:  # an empty batch: the per-row rules are still evaluated (and recorded)
        frame = data if isinstance(data, pd.DataFrame) else data.frame()
        _validate_chunk(table, doc, frame, params, context, results, failures, batch_errors)

    failures_df = pd.DataFrame(failures, columns=["_row", "rule", "message_zh", "message_en"])
    limit = doc.get("meta", {}).get("max_failing_row_fraction", 0.5)
    n_failing = failures_df["_row"].nunique()
    if n_rows and n_failing / n_rows > limit:
        batch_errors.append(
            {
                "rule": "BATCH-FAILING-ROWS",
                "message_zh": f"本批次 {n_failing}/{n_rows} 行未通过校验，超过 {limit:.0%}，整批停止加载",
                "message_en": f"{n_failing} of {n_rows} rows fail validation, more than {limit:.0%}: "
                "the batch is stopped",
            }
        )
    return TableValidation(table, n_rows, pd.DataFrame(list(results.values())), failures_df, batch_errors)


def _run(table: str, part: str | None, data: pd.DataFrame, params: dict) -> list:
    suite, batch_definition = _suite_and_batch_definition(table, part)
    if not suite.expectations:
        return []
    batch = batch_definition.get_batch(batch_parameters={"dataframe": data})
    return batch.validate(suite, expectation_parameters=params, result_format=_RESULT_FORMAT).results


def _validate_chunk(table, doc, frame, params, context, results, failures, batch_errors) -> None:
    columns = frame[[c for c in frame.columns if not _is_list_column(frame[c])]]
    _collect(_run(table, None, columns, params), len(frame), context, results, failures, batch_errors)
    for column in _element_columns(doc):
        elements = _element_frame(frame, column)
        _collect(_run(table, column, elements, params), len(elements), context, results, failures, batch_errors)


def _collect(outcomes, n_rows: int, context: dict, results: dict, failures: list, batch_errors: list) -> None:
    """Fold one run's expectation results into the table's: counts add up over chunks, an
    expectation succeeds only if it succeeded on every chunk; failing rows by their position."""
    for r in outcomes:
        cfg = r.expectation_config
        meta = cfg.meta or {}
        level = meta.get("level", "row")
        raised = bool(r.exception_info and r.exception_info.get("raised_exception"))
        res = r.result or {}
        key = (meta.get("rule"), cfg.type)
        unexpected = res.get("unexpected_count", 0 if r.success else None)
        row = results.get(key)
        if row is None:
            results[key] = {
                "rule": meta.get("rule"),
                "expectation_type": cfg.type,
                "column": cfg.kwargs.get("column")
                or ",".join(cfg.kwargs.get("column_list", []) or [])
                or ",".join(v for k, v in cfg.kwargs.items() if k in ("column_A", "column_B")),
                "level": level,
                "success": bool(r.success),
                "element_count": res.get("element_count", n_rows),  # elements, for list_elements
                "unexpected_count": unexpected,
            }
        else:
            row["success"] = row["success"] and bool(r.success)
            row["element_count"] += res.get("element_count", n_rows)
            row["unexpected_count"] = (
                None if row["unexpected_count"] is None or unexpected is None else row["unexpected_count"] + unexpected
            )
        if raised:
            error = {
                "rule": meta.get("rule"),
                "message_zh": f"校验规则无法执行: {meta.get('message_zh')}",
                "message_en": f"rule could not be evaluated ({r.exception_info.get('exception_message')})",
            }
            if error not in batch_errors:
                batch_errors.append(error)
        elif not r.success and level == "batch":
            batch_errors.append(
                {
                    "rule": meta.get("rule"),
                    "message_zh": _fill(meta["message_zh"], context),
                    "message_en": _fill(meta["message_en"], context),
                }
            )
        elif not r.success and level == "row":
            for idx in dict.fromkeys(res.get("unexpected_index_list") or []):
                failures.append(
                    {
                        "_row": int(idx),
                        "rule": meta["rule"],
                        "message_zh": meta["message_zh"],
                        "message_en": meta["message_en"],
                    }
                )


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
