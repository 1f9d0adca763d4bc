"""Source systems: the registry of sources (registry.py), their field dictionary (fields.py), and
how what they deliver is landed (landing.py, http.py) and parsed to canonical PII-free rows
(parse.py, json_pages.py, spreadsheet.py and one module per spreadsheet source)."""
