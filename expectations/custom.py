"""Project expectations for GX, registered when this module is imported.

`expect_column_values_to_match_date_format`: like GX's strftime-format expectation, but the
pandas engine checks the whole column at once (pandas.to_datetime with an exact format) instead
of calling datetime.strptime once per value in Python, which was most of the suite's time.
An impossible date such as 2023-02-30 fails, as it does with strptime.
"""

from __future__ import annotations

import pandas as pd
from great_expectations.compatibility import pydantic
from great_expectations.execution_engine import PandasExecutionEngine
from great_expectations.expectations.expectation import ColumnMapExpectation
from great_expectations.expectations.metrics.map_metric_provider import (
    ColumnMapMetricProvider,
    column_condition_partial,
)


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
