"""Validate a parsed source table with its Great Expectations suite (expectations/<table>.json).

GX validates a pandas frame (GX cannot validate DuckDB through SQLAlchemy reliably). Each
expectation's `meta.level` says what a failure does:
- row:   the failing rows are quarantined, the rest load;
- batch: the source's load stops (nothing of the batch loads);
- warn:  reported in the results, the rows still load.
A batch in which more than `max_failing_row_fraction` of rows fail is stopped too.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pandas as pd

SUITES_DIR = Path(__file__).parent
_RESULT_FORMAT = {"result_format": "COMPLETE", "partial_unexpected_count": 0}


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

    return gx.get_context(mode="ephemeral")


@cache
def _suite_and_batch_definition(table: str):
    import great_expectations as gx
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    ctx = _context()
    doc = load_suite_doc(table)
    suite = gx.ExpectationSuite(name=doc["name"], meta=doc.get("meta", {}))
    for exp in doc["expectations"]:
        suite.add_expectation_configuration(ExpectationConfiguration(**exp))
    suite = ctx.suites.add_or_update(suite)
    source = ctx.data_sources.add_or_update_pandas(f"fazhi_{table}")
    asset = source.add_dataframe_asset(table)
    return suite, asset.add_batch_definition_whole_dataframe(f"{table}_batch")


def validate_table(table: str, df: pd.DataFrame, parameters: dict | None = None) -> TableValidation:
    """Run the table's suite over the whole frame; list every (row, rule) failure."""
    import logging

    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    doc = load_suite_doc(table)
    frame = df.reset_index(drop=True)
    frame = frame[[c for c in frame.columns if not _is_list_column(frame[c])]]
    suite, batch_definition = _suite_and_batch_definition(table)
    batch = batch_definition.get_batch(batch_parameters={"dataframe": frame})
    outcome = batch.validate(suite, expectation_parameters=parameters or {}, result_format=_RESULT_FORMAT)

    results, failures, batch_errors = [], [], []
    for r in outcome.results:
        cfg = r.expectation_config
        meta = cfg.meta or {}
        level = meta.get("level", "row")
        raised = bool(r.exception_info and r.exception_info.get("raised_exception"))
        res = r.result or {}
        results.append(
            {
                "rule": meta.get("rule"),
                "expectation_type": cfg.type,
                "column": cfg.kwargs.get("column")
                or ",".join(cfg.kwargs.get("column_list", []) or [])
                or ",".join(v for k, v in cfg.kwargs.items() if k in ("column_A", "column_B")),
                "level": level,
                "success": bool(r.success),
                "element_count": res.get("element_count", len(frame)),
                "unexpected_count": res.get("unexpected_count", 0 if r.success else None),
            }
        )
        if raised:
            batch_errors.append(
                {
                    "rule": meta.get("rule"),
                    "message_zh": f"校验规则无法执行: {meta.get('message_zh')}",
                    "message_en": f"rule could not be evaluated ({r.exception_info.get('exception_message')})",
                }
            )
        elif not r.success and level == "batch":
            batch_errors.append(
                {"rule": meta.get("rule"), "message_zh": meta["message_zh"], "message_en": meta["message_en"]}
            )
        elif not r.success and level == "row":
            for idx in res.get("unexpected_index_list") or []:
                failures.append(
                    {
                        "_row": int(idx),
                        "rule": meta["rule"],
                        "message_zh": meta["message_zh"],
                        "message_en": meta["message_en"],
                    }
                )
    failures_df = pd.DataFrame(failures, columns=["_row", "rule", "message_zh", "message_en"])
    limit = doc.get("meta", {}).get("max_failing_row_fraction", 0.5)
    n_failing = failures_df["_row"].nunique()
    if len(frame) and n_failing / len(frame) > limit:
        batch_errors.append(
            {
                "rule": "BATCH-FAILING-ROWS",
                "message_zh": f"本批次 {n_failing}/{len(frame)} 行未通过校验，超过 {limit:.0%}，整批停止加载",
                "message_en": f"{n_failing} of {len(frame)} rows fail validation, more than {limit:.0%}: "
                "the batch is stopped",
            }
        )
    return TableValidation(table, len(frame), pd.DataFrame(results), failures_df, batch_errors)


def _is_list_column(s: pd.Series) -> bool:
    if s.dtype != object or s.empty:
        return False
    first = s.dropna()
    return (
        not first.empty
        and isinstance(first.iloc[0], list | tuple)
        or (not first.empty and hasattr(first.iloc[0], "tolist") and not isinstance(first.iloc[0], str))
    )
