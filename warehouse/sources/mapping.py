"""The field mapping (fields.yaml): source field names -> canonical columns, per source table."""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path

import yaml

FIELDS_FILE = Path(__file__).with_name("fields.yaml")
KEPT_TYPES = {"text", "date", "timestamp", "bool", "number", "text_list", "pseudonym", "pseudonym_list"}


@dataclass(frozen=True)
class Column:
    name: str
    fields: tuple[str, ...]  # the source's field name and its synonyms, preferred first
    type: str
    required: bool = False

    @property
    def kept(self) -> bool:
        return self.type in KEPT_TYPES


@dataclass(frozen=True)
class TableMapping:
    source: str
    table: str
    key: tuple[str, ...]
    columns: tuple[Column, ...]
    sheet: str | None = None

    @property
    def kept_columns(self) -> list[Column]:
        return [c for c in self.columns if c.kept]


class SourceError(Exception):
    """Bad input that stops one source's batch: names the source, file, row and rule."""

    def __init__(self, source: str, file: str | None, message_zh: str, message_en: str, rule: str):
        self.source, self.file, self.rule = source, file, rule
        self.message_zh, self.message_en = message_zh, message_en
        where = f"{source}" + (f" / {file}" if file else "")
        super().__init__(f"[{where}] {message_zh} / {message_en} (rule {rule})")

    def __reduce__(self):  # picklable: raised in worker processes, re-raised in the flow
        return (SourceError, (self.source, self.file, self.message_zh, self.message_en, self.rule))


@cache
def load_mappings(path: Path = FIELDS_FILE) -> dict[str, dict[str, TableMapping]]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    out: dict[str, dict[str, TableMapping]] = {}
    for source, tables in data.items():
        out[source] = {}
        for table, spec in tables.items():
            cols = []
            for name, c in spec["columns"].items():
                fields = c["field"] if isinstance(c["field"], list) else [c["field"]]
                cols.append(Column(name, tuple(fields), c["type"], bool(c.get("required", False))))
            out[source][table] = TableMapping(source, table, tuple(spec["key"]), tuple(cols), spec.get("sheet"))
    return out


def table_mapping(source: str, table: str, overrides: dict | None = None) -> TableMapping:
    """The table's mapping, with a county's overrides from fazhi.toml (`[sources.<s>.fields]`,
    canonical column -> the field name or list of names its export uses) applied on top."""
    return with_overrides(load_mappings()[source][table], overrides)


def with_overrides(mapping: TableMapping, overrides: dict | None) -> TableMapping:
    """Replace the source field names of the columns named in `overrides`. Flat entries apply to
    every table of the source that has the column; a nested table (`[sources.training.fields.
    training_session]`) applies to that table only."""
    if not overrides:
        return mapping
    mine = {k: v for k, v in overrides.items() if not isinstance(v, dict)} | dict(overrides.get(mapping.table, {}))
    cols = tuple(
        replace(c, fields=tuple(mine[c.name] if isinstance(mine[c.name], list) else [mine[c.name]]))
        if c.name in mine
        else c
        for c in mapping.columns
    )
    return replace(mapping, columns=cols)


def check_overrides(source: str, overrides: dict | None) -> None:
    """A field override naming no column of the source is a configuration error (a typo)."""
    tables = load_mappings().get(source, {})
    columns = {c.name for m in tables.values() for c in m.columns}
    for key, value in (overrides or {}).items():
        if isinstance(value, dict):
            if key not in tables:
                raise ValueError(f"[sources.{source}.fields.{key}]: {source} has no table {key!r}")
            bad = sorted(set(value) - {c.name for c in tables[key].columns})
        else:
            bad = [] if key in columns else [key]
        if bad:
            raise ValueError(f"[sources.{source}.fields]: unknown column(s) {bad} (see warehouse/sources/fields.yaml)")


def column_notes() -> dict[str, str]:
    """A Chinese/English description of every canonical column: the source field it comes from."""
    notes: dict[str, str] = {}
    for tables in load_mappings().values():
        for mapping in tables.values():
            for col in mapping.kept_columns:
                notes.setdefault(col.name, f"源字段「{col.fields[0]}」 / source field {col.fields[0]}")
    return notes
