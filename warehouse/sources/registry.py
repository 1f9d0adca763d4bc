"""The source registry: every source system declared once.

A source says how it may be configured (`kinds`: pulled over HTTP, JSON pages in a folder, or
spreadsheets dropped in a folder), its tables (business key, the column of the source's own
last-modified time, the year a record counts in, its GX suite), its parser and the evidence
model that turns its records into indicators. Its columns come from the field dictionary
(warehouse/fields.yaml, warehouse/sources/fields.py). Every list the pipeline keeps of sources or
tables is derived from here: the raw tables a rebuild replays, the core tables published, the
years data exists for, the evidence models, the simulator's HTTP sources, the parsers.

A source outside this package is registered with `register_source(Source(...))` (its field
dictionary, suites and parser may live anywhere), or by an installed package's entry point in
the group `fazhi.sources` naming a Source (loaded on first use, in every process). The tables of
a source the migrations do not create are generated from its field dictionary
(warehouse/sources/schema.py). docs/extending.md walks through adding one.

Imports nothing heavy (no pandas): fazhi.toml's checks use it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from importlib.metadata import entry_points
from pathlib import Path

from warehouse.read.lookup import UnknownName, unknown_message
from warehouse.sources import fields as field_dictionary
from warehouse.sources.mapping import TableMapping, with_overrides

KINDS = ("http", "json_pages", "spreadsheet_drop")  # what `kind` a fazhi.toml source may say
PAGE_KINDS = ("http", "json_pages")  # the kinds delivering JSON export pages (docs/sources.md)
ENTRY_POINTS = "fazhi.sources"
SUITES_DIR = Path(__file__).parents[2] / "expectations"
MARTS_DIR = Path(__file__).parents[1] / "models" / "marts"


@dataclass(frozen=True)
class Table:
    """One table of a source: raw.<name> and core.<name> in the warehouse."""

    name: str
    key: tuple[str, ...]  # the business key: a record's versions share it (core keeps history by it)
    year: str | None = None  # SQL over core.<name>: the year a record counts in (None: not on its own)
    # the column holding the source's own last-modified time (更新时间): incremental HTTP pulls and
    # their watermark, one version per record in a batch, older versions never replacing newer ones.
    # The watermark and the core models read it by this name (warehouse/watermark.py).
    cursor: str | None = None
    suite: Path | None = None  # its GX suite; None: expectations/<name>.json

    @property
    def suite_path(self) -> Path:
        return self.suite or SUITES_DIR / f"{self.name}.json"


@dataclass(frozen=True)
class Source:
    name: str
    label_zh: str  # what a township clerk calls it (执法平台): comments and messages
    kinds: tuple[str, ...]
    tables: tuple[Table, ...]
    # the parser (batch, key) -> {table: frame}, or "module:function"; None: a JSON page source,
    # parsed by warehouse/sources/json_pages.py from its field dictionary
    parser: str | Callable | None = None
    # its evidence model: a .sql file tagged `evidence` (warehouse/models/README.md); the built-in
    # sources' are in warehouse/models/marts/, the runner finds them there
    evidence: Path | None = None
    fields: Path = field_dictionary.FIELDS_FILE  # the field dictionary holding sources.<name>

    def table(self, name: str) -> Table:
        for t in self.tables:
            if t.name == name:
                return t
        raise UnknownName(unknown_message("数据表", "table", name, [t.name for t in self.tables]))

    def mapping(self, table: str, overrides: dict | None = None) -> TableMapping:
        """The table's columns (field dictionary) with its key, and a county's field-name
        overrides from fazhi.toml (`[sources.<s>.fields]`) applied on top."""
        t = self.table(table)
        mapping = field_dictionary.read(self.fields).sources[self.name][table]
        return with_overrides(replace(mapping, key=t.key), overrides)

    def mappings(self, overrides: dict | None = None) -> dict[str, TableMapping]:
        return {t.name: self.mapping(t.name, overrides) for t in self.tables}

    def load_parser(self) -> Callable | None:
        if isinstance(self.parser, str):
            module, name = self.parser.split(":")
            return getattr(importlib.import_module(module), name)
        return self.parser


class SourceDeclarationError(ValueError):
    """A source declaration the pipeline could not run; the message says what to fix."""


BUILT_IN = (
    Source(
        "enforcement",
        label_zh="执法平台",
        kinds=("http", "json_pages"),
        tables=(
            Table(
                "enforcement_act",
                key=("act_id",),
                year="year(coalesce(inspection_date, decision_date))",
                cursor="source_modified_at",
            ),
        ),
        evidence=MARTS_DIR / "evidence_enforcement.sql",
    ),
    Source(
        "mediation",
        label_zh="调解平台",
        kinds=("http", "json_pages"),
        tables=(Table("mediation_case", key=("case_id",), year="year(accepted_date)", cursor="source_modified_at"),),
        evidence=MARTS_DIR / "evidence_mediation.sql",
    ),
    Source(
        "training",
        label_zh="学法培训台账",
        kinds=("spreadsheet_drop",),
        tables=(
            Table("training_session", key=("township_code", "session_id"), year="year(session_date)"),
            Table("training_attendance", key=("township_code", "session_id", "person_key")),
            Table("training_staff", key=("township_code", "roster_year", "person_key")),
        ),
        parser="warehouse.sources.training:parse_training",
        evidence=MARTS_DIR / "evidence_training.sql",
    ),
    Source(
        "returns",
        label_zh="年度报表",
        kinds=("spreadsheet_drop",),
        tables=(Table("annual_return_item", key=("township_code", "report_year", "item_code"), year="report_year"),),
        parser="warehouse.sources.returns:parse_returns",
        evidence=MARTS_DIR / "evidence_returns.sql",
    ),
)
_registered: dict[str, Source] = {}
_plugins_loaded = False


def register_source(source: Source) -> Source:
    """Add a source (checked first: SourceDeclarationError says what is wrong). Its tables'
    raw and core tables are created, from its field dictionary, the next time a working
    database is opened (warehouse/db.py migrate)."""
    _load_plugins()
    check(source)
    _registered[source.name] = source
    return source


def unregister_source(name: str) -> None:
    _registered.pop(name, None)


def sources() -> tuple[Source, ...]:
    """Every source: the built-in ones, then those registered, in order."""
    _load_plugins()
    return BUILT_IN + tuple(_registered.values())


def source(name: str) -> Source:
    for s in sources():
        if s.name == name:
            return s
    raise UnknownName(unknown_message("数据源", "source", name, source_names()))


def source_names() -> list[str]:
    return [s.name for s in sources()]


def kinds_of(name: str) -> tuple[str, ...]:
    """The `kind`s fazhi.toml may give the source `name` (UnknownName for a source not registered)."""
    return source(name).kinds


def tables() -> list[tuple[Source, Table]]:
    return [(s, t) for s in sources() for t in s.tables]


def table_names() -> list[str]:
    """Every source table: raw.<name> and core.<name> exist for each."""
    return [t.name for _, t in tables()]


def table(name: str) -> tuple[Source, Table]:
    for s, t in tables():
        if t.name == name:
            return s, t
    raise UnknownName(unknown_message("数据表", "table", name, table_names()))


def table_mapping(source_name: str, table_name: str, overrides: dict | None = None) -> TableMapping:
    return source(source_name).mapping(table_name, overrides)


def load_mappings() -> dict[str, dict[str, TableMapping]]:
    """source -> table -> its columns and key, for every source."""
    return {s.name: s.mappings() for s in sources()}


def evidence_files(outside: Path) -> tuple[Path, ...]:
    """The evidence models of the sources that have one, except those in the folder `outside`
    (the runner reads that folder whole)."""
    return tuple(s.evidence for s in sources() if s.evidence and s.evidence.parent != outside)


def raw_row_counts() -> str:
    """SQL: rows per batch (batch_id) and source table (table_name) in raw (n)."""
    return " union all ".join(
        f"select _batch_id as batch_id, '{t}' as table_name, count(*) as n from raw.{t} group by 1"
        for t in table_names()
    )


def page_sources() -> dict[str, tuple[str, str]]:
    """The HTTP sources: name -> the export's id field and last-modified field (the simulator
    serves their pages, ordered by these)."""
    out = {}
    for s in sources():
        if "http" in s.kinds:
            (t,) = s.tables
            columns = {c.name: c for c in s.mapping(t.name).columns}
            out[s.name] = (columns[t.key[0]].fields[0], columns[t.cursor].fields[0])
    return out


def check_overrides(source_name: str, overrides: dict | None) -> None:
    """A field override naming no column of the source is a configuration error (a typo)."""
    tables = source(source_name).mappings()
    columns = {c.name for m in tables.values() for c in m.columns}
    for key, value in (overrides or {}).items():
        if isinstance(value, dict):
            if key not in tables:
                raise ValueError(f"[sources.{source_name}.fields.{key}]: {source_name} has no table {key!r}")
            bad = sorted(set(value) - {c.name for c in tables[key].columns})
        else:
            bad = [] if key in columns else [key]
        if bad:
            raise ValueError(f"[sources.{source_name}.fields]: unknown column(s) {bad} (see warehouse/fields.yaml)")


def check(s: Source) -> None:
    """What the pipeline needs of a declaration, checked before it is used."""

    def refuse(problem: str) -> None:
        raise SourceDeclarationError(f"数据源声明有误 / source {s.name!r} cannot be registered: {problem}")

    if not field_dictionary.NAME.fullmatch(s.name):
        refuse("a source name is lower case letters, digits and _")
    if s.name in {b.name for b in BUILT_IN} | set(_registered):
        refuse("a source of that name is already registered")
    if not s.kinds or set(s.kinds) - set(KINDS):
        refuse(f"kinds must be some of {KINDS}, not {s.kinds}")
    if s.parser is None and (set(s.kinds) - set(PAGE_KINDS) or len(s.tables) != 1):
        refuse("a source without a parser is a JSON page source (kinds http, json_pages) of one table")
    if "http" in s.kinds and (len(s.tables) != 1 or len(s.tables[0].key) != 1 or not s.tables[0].cursor):
        refuse("an HTTP source has one table, keyed by one id column, with a cursor (its 更新时间 column)")
    taken = set(table_names())
    try:
        declared = field_dictionary.read(s.fields).sources.get(s.name, {})
    except field_dictionary.FieldDictionaryError as exc:
        refuse(str(exc))
    if s.evidence and not s.evidence.is_file():
        refuse(f"its evidence model {s.evidence} does not exist")
    for t in s.tables:
        if t.name in taken:
            refuse(f"table {t.name} belongs to another source")
        if t.name not in declared:
            refuse(f"{s.fields} has no sources.{s.name}.{t.name}")
        stored = {c.name for c in declared[t.name].core_columns}
        needed = {*t.key, "township_code"} | ({t.cursor} if t.cursor else set())
        if needed - stored:
            refuse(f"{t.name} stores no column(s) {sorted(needed - stored)} in core (key, cursor, township_code)")
        if t.cursor and t.cursor != "source_modified_at":
            refuse("the cursor column is named source_modified_at (the watermark and core models read it)")
        if not t.suite_path.is_file():
            refuse(f"{t.name}'s GX suite {t.suite_path} does not exist")


def _load_plugins() -> None:
    """Register the sources installed packages declare (entry point group `fazhi.sources`: each
    names a Source), once per process."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for ep in entry_points(group=ENTRY_POINTS):
        register_source(ep.load())
