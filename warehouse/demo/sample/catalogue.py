"""The indicator codes the sample generator builds data for, and what kind of figure each is.

This mirrors ../shared/reference/indicators.md (the warehouse keeps its own catalogue in
warehouse/); the generator only needs each code's kind to parse a calibration profile and to
write targets.json.
"""

from __future__ import annotations

from warehouse.sources.templates import RETURN_ITEMS as TEMPLATE_RETURN_ITEMS

# kind: count | rate | amount (yuan, 2 decimals) | median_days | mean_days
INDICATORS: dict[str, str] = {
    "ENF01": "count",
    "ENF02": "count",
    "ENF03": "count",
    "ENF04": "count",
    "ENF05": "rate",
    "ENF06": "count",
    "ENF07": "rate",
    "ENF08": "rate",
    "ENF09": "rate",
    "ENF10": "amount",
    "ENF11": "median_days",
    "MED01": "count",
    "MED02": "rate",
    "MED03": "rate",
    "MED04": "count",
    "MED05": "mean_days",
    "TRN01": "count",
    "TRN02": "count",
    "TRN03": "count",
    "TRN04": "count",
    "TRN05": "count",
    "TRN06": "count",
    "TRN07": "rate",
    "TRN08": "rate",
    "TRN09": "rate",
    "LIT01": "count",
    "LIT02": "rate",
    "OGI01": "count",
    "OGI02": "count",
    "OGI03": "count",
    "PUB01": "count",
    "PUB02": "count",
    "PUB03": "count",
    "PUB04": "count",
    "PUB05": "count",
    "PUB06": "count",
}

# Counts a township reports on its annual return: ">=N" there means the return says "N余".
RETURN_COUNTS = ("LIT01", "OGI01", "OGI02", "OGI03", "PUB01", "PUB02", "PUB03", "PUB04", "PUB05", "PUB06")

# The return's rows (item code, name, unit): the template townships fill in defines them.
RETURN_ITEMS: tuple[tuple[str, str, str], ...] = tuple(TEMPLATE_RETURN_ITEMS)

REQUIRED_TRAINING_HOURS = 60
