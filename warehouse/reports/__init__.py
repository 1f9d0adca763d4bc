"""Outputs people read, made from the published analyst database (read-only): the township's
annual report draft (.docx), the county workbook (.xlsx / .csv) and the county dashboard (HTML).

Imports neither Prefect nor Great Expectations nor pandas: `fazhi report` and `fazhi export` start
fast, and the dashboard is rebuilt after every publish."""
