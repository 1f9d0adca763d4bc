"""Each source table's warehouse tables, from the field dictionary (warehouse/fields.yaml): the
raw and core tables of a registered source the migrations do not create, and the staging query
typing a batch's accepted raw rows as core stores them.

raw.<table> keeps the parsed rows as delivered (the dictionary's `raw` types) after the batch,
file and row they came from; core.<table> the typed versions (`core` types; the business key
and township_code not null) with their hash, batch and validity. The staging query selects each
core column by its `staging` expression, in core's own column order (the row hash is computed
over it), from the batch's accepted rows (models/staging/accepted_rows.sql: the one quarantine
filter)."""

from __future__ import annotations

import duckdb

from warehouse.db import sql
from warehouse.sources import registry
from warehouse.sources.mapping import TableMapping

RAW_LINEAGE = ("_batch_id varchar not null", "_source_file varchar not null", "_row_number integer not null")
CORE_VERSION = (
    "row_hash varchar not null",
    "batch_id varchar not null",
    "valid_from timestamp not null",
    "valid_to timestamp",
)
VERSION_COLUMNS = tuple(c.split()[0] for c in CORE_VERSION)


def raw_ddl(mapping: TableMapping) -> str:
    columns = [*RAW_LINEAGE, *(f"{c.name} {c.raw}" for c in mapping.raw_columns)]
    return f"create table raw.{mapping.table} ({', '.join(columns)})"


def core_ddl(mapping: TableMapping, key: tuple[str, ...]) -> str:
    required = {*key, "township_code"}
    columns = [f"{c.name} {c.core}{' not null' if c.name in required else ''}" for c in mapping.core_columns]
    return f"create table core.{mapping.table} ({', '.join([*columns, *CORE_VERSION])})"


def create_missing_tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Create raw.<t> and core.<t> for every registered source table that has none (the built-in
    sources' come from the migrations); returns the tables created."""
    existing = {f"{s}.{t}" for s, t in con.execute("select schema_name, table_name from duckdb_tables()").fetchall()}
    created = []
    for source, table in registry.tables():
        mapping = source.mapping(table.name)
        wanted = {f"raw.{table.name}": raw_ddl(mapping), f"core.{table.name}": core_ddl(mapping, table.key)}
        for name, ddl in wanted.items():
            if name not in existing:
                con.execute(ddl)
                created.append(name)
    return created


def staging_select(con: duckdb.DuckDBPyConnection, table: str) -> str:
    """The query giving a batch's ($batch_id) accepted rows of raw.<table>, typed as
    core.<table> stores them, in core's column order."""
    source, _ = registry.table(table)
    expressions = {c.name: c.staging for c in source.mapping(table).core_columns}
    columns = [
        name
        for (name,) in con.execute(
            "select column_name from duckdb_columns() where database_name = current_database() "
            "and schema_name = 'core' and table_name = ? "
            "order by column_index",
            [table],
        ).fetchall()
        if name not in VERSION_COLUMNS
    ]
    typed = [name if expressions[name] == name else f"{expressions[name]} as {name}" for name in columns]
    accepted = sql("models/staging/accepted_rows.sql").format(table=table)
    return f"select {', '.join(typed)} from ({accepted}) as r"
