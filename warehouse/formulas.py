"""Text that a spreadsheet would run as a formula, escaped before it is written to CSV or XLSX.

A township name or a note beginning `=HYPERLINK(…)` (or `+`, `-`, `@`, and the tab and carriage
return some readers also honour) is a formula to Excel, WPS and LibreOffice when they open a CSV.
Every CSV and XLSX the project writes passes its text cells through `neutralise`: such a value
gets a leading apostrophe, which the spreadsheet shows as text. Numbers stay numbers (a negative
figure is a number, not text). XLSX writers also keep strings as strings
(xlsxwriter `strings_to_formulas: False`).
"""

from __future__ import annotations

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value):
    """`value`, with an apostrophe in front when it is text starting like a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def neutralise_row(row: dict) -> dict:
    return {k: neutralise(v) for k, v in row.items()}
