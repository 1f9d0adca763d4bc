"""A source table's columns as the field dictionary (warehouse/fields.yaml) declares them: the
export's field names for each canonical column, its type, what happens to personal data, and how
raw, core and staging store it. warehouse/sources/fields.py reads the dictionary into these."""

from __future__ import annotations

from dataclasses import dataclass, replace

# the parse kinds (Column.type) whose values are kept: `personal` (pii: drop) is never read
KEPT_TYPES = {"text", "date", "timestamp", "bool", "number", "text_list", "pseudonym", "pseudonym_list"}


@dataclass(frozen=True)
class Column:
    name: str
    fields: tuple[str, ...]  # the source's field name and its synonyms, preferred first; () = added by the parser
    # how the parser reads it: text | date | timestamp | bool | number | text_list (kept as exported),
    # pseudonym | pseudonym_list (a keyed hash of each identifier), personal (never read)
    type: str
    required: bool = False
    derived: str | None = None  # SQL over the other columns (JSON page sources' added columns)
    raw: str | None = None  # SQL type in raw (None: not stored, a personal field)
    core: str | None = None  # SQL type in core (None: raw only)
    staging: str | None = None  # the staging expression, typing the raw value as core stores it
    unit: str | None = None
    zh: str | None = None  # what the column holds, where this table's column means something of its own
    en: str | None = None

    @property
    def kept(self) -> bool:
        """A field read from the export (not dropped, not added by the parser)."""
        return self.type in KEPT_TYPES and bool(self.fields)

    @property
    def pii(self) -> str:
        """keep | pseudonymise | drop."""
        return {"personal": "drop", "pseudonym": "pseudonymise", "pseudonym_list": "pseudonymise"}.get(
            self.type, "keep"
        )


@dataclass(frozen=True)
class TableMapping:
    source: str
    table: str
    key: tuple[str, ...]
    all_columns: tuple[Column, ...]  # in the order the parser emits them, added columns included
    sheet: str | None = None
    zh: str = ""  # what the table holds (the published table's comment)
    en: str = ""

    @property
    def columns(self) -> tuple[Column, ...]:
        """The export's fields (personal ones included), not the columns the parser adds."""
        return tuple(c for c in self.all_columns if c.fields)

    @property
    def kept_columns(self) -> list[Column]:
        return [c for c in self.all_columns if c.kept]

    @property
    def derived(self) -> dict[str, str]:
        """Columns computed in SQL from the canonical ones (name -> expression), in order."""
        return {c.name: c.derived for c in self.all_columns if c.derived}

    @property
    def raw_columns(self) -> list[Column]:
        return [c for c in self.all_columns if c.raw]

    @property
    def core_columns(self) -> list[Column]:
        return [c for c in self.all_columns if c.core]


class SourceError(Exception):
    """Bad input that stops one source's batch: names the source, file, row and rule."""

    def __init__(self, source: str, file: str | None, message_zh: str, message_en: str, rule: str):
        self.source, self.file, self.rule = source, file, rule
        self.message_zh, self.message_en = message_zh, message_en
        where = f"{source}" + (f" / {file}" if file else "")
        super().__init__(f"[{where}] {message_zh} / {message_en} (rule {rule})")

    def __reduce__(self):  # picklable: raised in worker processes, re-raised in the flow
        return (SourceError, (self.source, self.file, self.message_zh, self.message_en, self.rule))


def with_overrides(mapping: TableMapping, overrides: dict | None) -> TableMapping:
    """Replace the source field names of the columns named in `overrides` (a county's
    `[sources.<s>.fields]` in fazhi.toml: canonical column -> the field name or list of names its
    export uses). Flat entries apply to every table of the source that has the column; a nested
    table (`[sources.training.fields.training_session]`) applies to that table only."""
    if not overrides:
        return mapping
    mine = {k: v for k, v in overrides.items() if not isinstance(v, dict)} | dict(overrides.get(mapping.table, {}))
    cols = tuple(
        replace(c, fields=tuple(mine[c.name] if isinstance(mine[c.name], list) else [mine[c.name]]))
        if c.name in mine and c.fields
        else c
        for c in mapping.all_columns
    )
    return replace(mapping, all_columns=cols)
