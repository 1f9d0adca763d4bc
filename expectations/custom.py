"""Project expectations for GX, registered when this module is imported.

`expect_column_values_to_match_date_format`: like GX's strftime-format expectation, but the
pandas engine checks the whole column at once (pandas.to_datetime with an exact format) instead
of calling datetime.strptime once per value in Python, which was most of the suite's time.
An impossible date such as 2023-02-30 fails, as it does with strptime.

`expect_column_values_to_not_be_after`: a date or timestamp written as text ('YYYY-MM-DD' or
'YYYY-MM-DD HH:MM:SS') is not later than `latest` (the pull's clock plus a skew,
expectations/clock.py); compared as text, which orders these formats as time. A value not in
either format passes here (the column's format rule reports it).

`expect_column_values_to_be_dates_in_years`: an ISO date (`YYYY-MM-DD`, as the parsers write
dates) whose year is outside [min_year, max_year] fails; other text is left to the date-format
rule, so a row that is no date at all is not also reported as out of range. (GX's own
between-expectation compares values of one type only: not dates written as text with years.)

`expect_column_values_to_be_in_named_set`: like GX's in-set expectation, for a long set that is
the same for every run (the townships of a county, province or country). GX copies an
expectation's keyword arguments several times per expectation and run (pydantic `dict()`), so a
`value_set` of a country's township codes cost seconds per run whatever the rows
(docs/performance.md). Here the expectation holds only the set's token; the values are
registered once per process (`add_named_sets`; tokens are content-addressed, so runs with
different sets never mix) and checked with `Series.isin`.
"""

from __future__ import annotations

import hashlib
import json
from typing import Union

import pandas as pd
from great_expectations.compatibility import pydantic
from great_expectations.core.suite_parameters import SuiteParameterDict
from great_expectations.execution_engine import PandasExecutionEngine
from great_expectations.expectations.expectation import ColumnMapExpectation
from great_expectations.expectations.metrics.map_metric_provider import (
    ColumnMapMetricProvider,
    column_condition_partial,
)

_NAMED_SETS: dict[str, frozenset] = {}


def named_set(name: str, values) -> tuple[str, frozenset]:
    """A set of values as (token, values): the token is the name and a digest of the values, and
    is what the suite's `{"$PARAMETER": name}` resolves to. Register it with add_named_sets."""
    values = frozenset(str(v) for v in values)
    digest = hashlib.sha256(json.dumps(sorted(values), ensure_ascii=False).encode()).hexdigest()[:16]
    return f"{name}#{digest}", values


def add_named_sets(sets: dict[str, frozenset]) -> None:
    """Register sets (token -> values) in this process; validation workers receive them with
    their chunk."""
    for token, values in sets.items():
        _NAMED_SETS.setdefault(token, values)


class ColumnValuesMatchDateFormat(ColumnMapMetricProvider):
    condition_metric_name = "column_values.fazhi_match_date_format"
    condition_value_keys = ("date_format",)

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column, date_format, **kwargs):
        parsed = pd.to_datetime(column.astype("string"), format=date_format, exact=True, errors="coerce")
        return pd.Series(parsed.notna().to_numpy(), index=column.index)


class ExpectColumnValuesToMatchDateFormat(ColumnMapExpectation):
    """Every non-null value is a valid date (or timestamp) written in `date_format`."""

    date_format: str = pydantic.Field(description="a strftime format, e.g. %Y-%m-%d")

    map_metric = "column_values.fazhi_match_date_format"
    success_keys = ("date_format", "mostly")
    args_keys = ("column", "date_format")


class ColumnValuesDatesInYears(ColumnMapMetricProvider):
    condition_metric_name = "column_values.fazhi_dates_in_years"
    condition_value_keys = ("min_year", "max_year")

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column, min_year, max_year, **kwargs):
        year = pd.to_numeric(column.astype("string").str.extract(r"^(\d{4})-\d{2}-\d{2}$")[0], errors="coerce")
        outside = (year < int(min_year)) | (year > int(max_year))
        return pd.Series((~outside.fillna(False)).to_numpy(dtype=bool), index=column.index)


class ExpectColumnValuesToBeDatesInYears(ColumnMapExpectation):
    """Every ISO date has its year in [min_year, max_year]; other values pass."""

    min_year: Union[int, SuiteParameterDict] = pydantic.Field(description="first year accepted")  # noqa: UP007
    max_year: Union[int, SuiteParameterDict] = pydantic.Field(description="last year accepted")  # noqa: UP007

    map_metric = "column_values.fazhi_dates_in_years"
    success_keys = ("min_year", "max_year", "mostly")
    args_keys = ("column", "min_year", "max_year")


class ColumnValuesInNamedSet(ColumnMapMetricProvider):
    condition_metric_name = "column_values.fazhi_in_named_set"
    condition_value_keys = ("value_set_name",)

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column, value_set_name, **kwargs):
        if value_set_name not in _NAMED_SETS:
            raise KeyError(f"value set {value_set_name!r} is not registered in this process")
        return column.astype("string").isin(_NAMED_SETS[value_set_name])


class ExpectColumnValuesToBeInNamedSet(ColumnMapExpectation):
    """Every non-null value is in the registered set `value_set_name` (named_set)."""

    value_set_name: Union[str, SuiteParameterDict] = pydantic.Field(  # noqa: UP007 (pydantic v1 field)
        description="the token of a registered set (named_set)"
    )

    map_metric = "column_values.fazhi_in_named_set"
    success_keys = ("value_set_name", "mostly")
    args_keys = ("column", "value_set_name")


class ColumnValuesNotAfter(ColumnMapMetricProvider):
    condition_metric_name = "column_values.fazhi_not_after"
    condition_value_keys = ("latest",)

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column, latest, **kwargs):
        text = column.astype("string")
        dated = text.str.match(r"\d{4}-\d{2}-\d{2}", na=False)
        return ~(dated & (text > str(latest)).fillna(False))


class ExpectColumnValuesToNotBeAfter(ColumnMapExpectation):
    """Every non-null date or timestamp is at or before `latest` ('YYYY-MM-DD HH:MM:SS')."""

    latest: Union[str, SuiteParameterDict] = pydantic.Field(  # noqa: UP007 (pydantic v1 field)
        description="the latest allowed time, 'YYYY-MM-DD HH:MM:SS'"
    )

    map_metric = "column_values.fazhi_not_after"
    success_keys = ("latest", "mostly")
    args_keys = ("column", "latest")
