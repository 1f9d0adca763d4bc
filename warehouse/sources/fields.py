"""The field dictionary (warehouse/fields.yaml): every column the warehouse stores or publishes.

Per source table, each column's export field name(s), type, PII class, raw and core SQL types,
staging expression, unit and description (mapping.Column); per published table and column of
the warehouse's own, its description. Read once per file; a source registered from outside
the package (warehouse/sources/registry.py) may bring its own file of the same shape.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

from warehouse.sources.mapping import Column, TableMapping

FIELDS_FILE = Path(__file__).parents[1] / "fields.yaml"
TYPES = ("text", "date", "timestamp", "bool", "number", "text_list")
PII = ("keep", "pseudonymise", "drop")
RAW_TYPE = {"number": "double", "text_list": "varchar[]"}  # the others: varchar (as exported)
CORE_TYPE = {"date": "date", "timestamp": "timestamp", "bool": "boolean", "number": "double", "text_list": "varchar[]"}
COLUMN_KEYS = {"field", "type", "pii", "required", "derived", "raw", "core", "staging", "unit", "zh", "en"}
TABLE_KEYS = {"zh", "en", "sheet", "columns"}
NAME = re.compile(r"[a-z][a-z0-9_]*")


class FieldDictionaryError(ValueError):
    """A field dictionary entry that cannot be used; the message names the file, table and column."""


@dataclass(frozen=True)
class Description:
    zh: str
    en: str

    def __str__(self) -> str:
        return f"{self.zh} / {self.en}"


@dataclass(frozen=True)
class FieldDictionary:
    path: Path
    # source -> table -> its mapping without a key (the registry declares keys)
    sources: dict[str, dict[str, TableMapping]]
    tables: dict[str, Description]  # schema.table -> the warehouse's own published tables and views
    columns: dict[str, Description]  # column, or schema.table.column -> description


# libyaml's parser (PyYAML's wheels ship it), the same safe constructor: fields.yaml in 5 ms, not 45
# (every process that parses, validates or publishes reads it; docs/performance.md)
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@cache
def read(path: Path = FIELDS_FILE) -> FieldDictionary:
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=YAML_LOADER) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise FieldDictionaryError(f"{path}: {exc}") from None
    sources = {
        source: {table: _table(path, source, table, spec) for table, spec in (tables or {}).items()}
        for source, tables in (data.get("sources") or {}).items()
    }
    return FieldDictionary(
        path,
        sources,
        {name: _description(path, name, d) for name, d in (data.get("tables") or {}).items()},
        {name: _description(path, name, d) for name, d in (data.get("columns") or {}).items()},
    )


def _description(path: Path, where: str, d) -> Description:
    if not isinstance(d, dict) or set(d) != {"zh", "en"}:
        raise FieldDictionaryError(f"{path}: {where} needs `zh` and `en` (and nothing else), not {d!r}")
    return Description(str(d["zh"]), str(d["en"]))


def _table(path: Path, source: str, table: str, spec: dict) -> TableMapping:
    where = f"{path}: sources.{source}.{table}"
    if not isinstance(spec, dict) or "columns" not in spec or set(spec) - TABLE_KEYS:
        raise FieldDictionaryError(f"{where}: expected {sorted(TABLE_KEYS)}, got {spec!r}")
    if not NAME.fullmatch(table):
        raise FieldDictionaryError(f"{where}: a table name is lower case letters, digits and _")
    columns = tuple(_column(where, name, c or {}) for name, c in spec["columns"].items())
    description = _description(path, f"sources.{source}.{table}", {k: spec.get(k) for k in ("zh", "en")})
    return TableMapping(source, table, (), columns, spec.get("sheet"), description.zh, description.en)


def _column(where: str, name: str, spec: dict) -> Column:
    where = f"{where}.{name}"
    unknown = set(spec) - COLUMN_KEYS
    if unknown or not NAME.fullmatch(name):
        raise FieldDictionaryError(f"{where}: unknown key(s) {sorted(unknown)}" if unknown else f"{where}: bad name")
    value_type, pii = spec.get("type", "text"), spec.get("pii", "keep")
    fields = spec.get("field")
    fields = tuple(fields if isinstance(fields, list) else [fields] if fields else [])
    if value_type not in TYPES or pii not in PII:
        raise FieldDictionaryError(f"{where}: type must be one of {TYPES}, pii one of {PII}")
    if pii != "keep" and not fields:
        raise FieldDictionaryError(f"{where}: pii {pii} is for a field of the export (`field`)")
    if pii == "pseudonymise" and value_type not in ("text", "text_list"):
        raise FieldDictionaryError(f"{where}: only text and text_list fields are pseudonymised")
    if ("zh" in spec) != ("en" in spec):
        raise FieldDictionaryError(f"{where}: give both `zh` and `en`")
    if pii == "drop":  # never read, never stored
        return Column(name, fields, "personal", bool(spec.get("required", False)))
    kind = {"text": "pseudonym", "text_list": "pseudonym_list"}[value_type] if pii == "pseudonymise" else value_type
    raw = spec.get("raw") or RAW_TYPE.get(value_type, "varchar")
    core = spec.get("core", raw if "raw" in spec else CORE_TYPE.get(value_type, "varchar"))
    return Column(
        name,
        fields,
        kind,
        required=bool(spec.get("required", False)),
        derived=spec.get("derived"),
        raw=raw,
        core=core or None,
        staging=spec.get("staging") or (_cast(name, value_type, raw, core) if core else None),
        unit=spec.get("unit"),
        zh=spec.get("zh"),
        en=spec.get("en"),
    )


def _cast(name: str, value_type: str, raw: str, core: str) -> str:
    """The staging expression typing a raw value as core stores it."""
    if core == raw:
        return name
    if value_type == "bool" and core == "boolean":
        return f"{name} = '是'"  # validated: 是 or 否 (the suites' in-set rules)
    return f"cast({name} as {core})"


@dataclass(frozen=True)
class Comments:
    """The published database's comments, Chinese / English."""

    tables: dict[str, str]  # schema.table
    columns: dict[str, str]  # schema.table.column, or column (every table's column of that name)

    def table(self, name: str) -> str | None:
        return self.tables.get(name)

    def column(self, table: str, column: str) -> str | None:
        return self.columns.get(f"{table}.{column}") or self.columns.get(column)


def published_comments() -> Comments:
    """Every source table's core table and columns (the registry's sources, their dictionaries)
    and the warehouse's own tables and columns. A column is described by its `schema.table.column`
    entry, else its source table's own zh/en, else the entry of its name, else by the export field
    it comes from."""
    from warehouse.sources import registry

    own = read()
    filled = {
        "{sources}": " ".join(f"{s.name}={s.label_zh}" for s in registry.sources()),
        "{source_names}": ", ".join(registry.source_names()),
        "{tables}": " / ".join(registry.table_names()),
    }

    def text(d: Description) -> str:
        out = str(d)
        for placeholder, value in filled.items():
            out = out.replace(placeholder, value)
        return out

    tables = {name: text(d) for name, d in own.tables.items()}
    columns: dict[str, str] = {}
    mappings = [s.mapping(t.name) for s, t in registry.tables()]
    for m in mappings:
        tables[f"core.{m.table}"] = str(Description(m.zh, m.en))
        columns |= {f"core.{m.table}.{c.name}": str(Description(c.zh, c.en)) for c in m.core_columns if c.zh}
    columns |= {name: text(d) for name, d in own.columns.items()}
    for m in mappings:
        for c in m.kept_columns:
            columns.setdefault(c.name, f"源字段「{c.fields[0]}」 / source field {c.fields[0]}")
    return Comments(tables, columns)
