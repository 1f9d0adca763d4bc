"""Declared SQL models: each model file says in its header what it builds and what it reads; this
runner derives the build order from those declarations, builds the models and checks their grain.

A model's header (its first comment lines; warehouse/models/README.md):

    -- model: mart.indicator_value        the relation it builds; the file is named after it
    -- materialized: table | view | temp | statement
    -- reads: mart.indicator_evidence, ref.township, ref.indicator_catalogue
    -- grain: year, township_code, indicator_code     unique and not null, checked after the build
    -- tags: evidence
    -- sorted_in_pieces: year, township_code   (a table: see below)

`reads` is checked against the SQL itself (DuckDB's parser): a relation the SQL reads and the
header does not declare, or the other way round, is an error naming the file; so is a read that
is neither a model of the run nor a table or view of the database, a cycle, and a parameter
(`$name`) the run does not give. `tag:evidence` in `reads` stands for every model tagged
`evidence`, and `{{ tagged('evidence') }}` in the SQL for their union (all rows, by column name).

A table whose SQL ends in `order by` and whose order begins with the `sorted_in_pieces` columns
is built piece by piece: rows of one value of the leading columns and a range of the last one,
as many rows each as the connection's memory cap allows (PIECE_ROW_BYTES a row), sorted and
appended in order. The table's rows and their order are those of the whole statement, but
DuckDB's sort of a large table did not spill enough (the evidence table ran out of memory under
256 MB at province scale), and where it now completes it is slower (national under 640MB: 70.0 s
whole, 59.8 s in pieces: docs/performance.md), while a piece's sort needs memory for its rows
only. Each piece reads the whole statement again (its rows are not clustered by the piece's
keys), so pieces are as large as the memory allows, not smaller.

Temp models (`temp.<name>`) hand data to the models after them and are dropped once the last of
their readers is built. `statement` models are parameterised statements run by their callers
(warehouse/load.py, supersede.py, rebuild.py): declared here, never built by the runner.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import duckdb

from warehouse.db import WAREHOUSE_DIR, memory_limit_bytes

MODELS_DIR = WAREHOUSE_DIR / "models"
MATERIALIZATIONS = ("table", "view", "temp", "statement")
_HEADER = re.compile(r"^--\s*(model|materialized|reads|grain|tags|sorted_in_pieces)\s*:\s*(.*?)\s*$")
_ORDER_BY = re.compile(r"\border\s+by\s+([^()]*?)\s*;?\s*$", re.I | re.S)
# Memory a piece's sort may take per row: mart.indicator_evidence ran out of memory in pieces of
# 8,000,000 rows under 768MB (~96 bytes a row) and in one sort of 3.7 million under 512MB (~138);
# pieces of 1,000,000 rows complete under 256MB (docs/performance.md).
PIECE_ROW_BYTES = 256
PIECE_ROWS: int | None = None  # rows sorted at once, when set; else the memory cap / PIECE_ROW_BYTES
MIN_PIECE_ROWS = 100_000
_TAGGED = re.compile(r"\{\{\s*tagged\(\s*'(\w+)'\s*\)\s*\}\}")
_NAME = re.compile(r"^[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*$")


class ModelError(ValueError):
    """A model's declaration is wrong or cannot be met; the message names the file."""


class GrainViolation(RuntimeError):
    """A built model's declared grain is not unique or not complete; the message names the model
    and shows a duplicate key."""


@dataclass(frozen=True)
class Model:
    path: Path
    name: str  # schema.relation, as the header declares it
    materialized: str
    reads: tuple[str, ...]
    grain: tuple[str, ...]
    tags: tuple[str, ...]
    text: str  # the whole file
    sorted_in_pieces: tuple[str, ...] = ()

    @property
    def relation(self) -> str:
        """The name to create: a temp model's without its `temp.` schema."""
        return self.name.removeprefix("temp.")

    @property
    def built(self) -> bool:
        return self.materialized != "statement"

    def __str__(self) -> str:
        return f"{self.name} ({_shown(self.path)})"


def parse_model(path: Path) -> Model:
    """A model file's header. The model name's relation must be the file's name."""
    text = path.read_text(encoding="utf-8")
    header: dict[str, str] = {}
    for line in text.splitlines():
        if not line.startswith("--"):
            break  # the header is the file's leading comment block
        match = _HEADER.match(line)
        if match:
            if match[1] in header:
                raise ModelError(f"{_shown(path)}: `-- {match[1]}:` is declared twice")
            header[match[1]] = match[2]
    for key in ("model", "materialized"):
        if not header.get(key):
            raise ModelError(f"{_shown(path)}: the header lacks `-- {key}:` (warehouse/models/README.md)")
    name, materialized = header["model"], header["materialized"]
    if not _NAME.match(name):
        raise ModelError(f"{_shown(path)}: model {name!r} is not schema.relation in lower case")
    if name.split(".")[1] != path.stem:
        raise ModelError(f"{_shown(path)}: the file builds {name}: name the file {name.split('.')[1]}.sql")
    if materialized not in MATERIALIZATIONS:
        raise ModelError(f"{_shown(path)}: materialized {materialized!r} is not one of {', '.join(MATERIALIZATIONS)}")
    if (materialized == "temp") != name.startswith("temp."):
        raise ModelError(f"{_shown(path)}: a temp model, and only a temp model, is named temp.<relation>")
    return Model(
        path=path,
        name=name,
        materialized=materialized,
        reads=_list(header.get("reads")),
        grain=_list(header.get("grain")),
        tags=_list(header.get("tags")),
        text=text,
        sorted_in_pieces=_list(header.get("sorted_in_pieces")),
    )


def load_models(*paths: Path) -> list[Model]:
    """The models of the given files and folders (a folder: its *.sql files), in that order.
    Two files declaring one model is an error naming both."""
    models: dict[str, Model] = {}
    for path in paths:
        for file in sorted(path.glob("*.sql")) if path.is_dir() else [path]:
            model = parse_model(file)
            if model.name in models:
                raise ModelError(f"{model.name} is declared twice: {_shown(models[model.name].path)}, {_shown(file)}")
            models[model.name] = model
    return list(models.values())


def build_order(models: list[Model]) -> list[Model]:
    """The built models in an order where each comes after every model it reads (among ties, the
    order given). A read of a tag no model carries, or a cycle, is an error naming the files."""
    built = [m for m in models if m.built]
    deps = {m.name: _dependencies(m, built) for m in built}
    done: set[str] = set()
    ordered: list[Model] = []
    while len(ordered) < len(built):
        ready = [m for m in built if m.name not in done and deps[m.name] <= done]
        if not ready:
            left = [m for m in built if m.name not in done]
            raise ModelError(f"models read each other in a cycle: {_cycle(left, deps)}")
        ordered.append(ready[0])
        done.add(ready[0].name)
    return ordered


def build(
    con: duckdb.DuckDBPyConnection, models: list[Model], params: Mapping[str, object] | None = None
) -> list[Model]:
    """Build the models (statement models excepted) in dependency order in the connection's current
    database, each given the parameters it uses; check each one's grain after building it; drop
    a temp model once its last reader is built. Every declaration is checked before anything is
    built. Runs inside the caller's transaction, if any. Returns the models in build order."""
    params = dict(params or {})
    ordered = build_order(models)
    existing = _relations(con)
    plan = []
    for m in ordered:
        body = _expand(m, ordered)
        check_reads(con, m, body, ordered, existing)
        used = _parameters(con, body)
        missing = sorted(set(used) - set(params))
        if missing:
            raise ModelError(f"{m}: needs parameter(s) {', '.join('$' + p for p in missing)}, not given by this run")
        if m.materialized == "view" and used:
            raise ModelError(f"{m}: a view cannot take parameters; materialize it as a table or temp")
        plan.append((m, body, {p: params[p] for p in used}))
    # a temp model lives until its last reader is built (at national scale the evidence models
    # are most of the memory)
    drop_after = {
        m.name: max([i for i, r in enumerate(ordered) if m.name in _dependencies(r, ordered)], default=own)
        for own, m in enumerate(ordered)
        if m.materialized == "temp"
    }
    for i, (m, body, used) in enumerate(plan):
        if m.sorted_in_pieces:
            _build_in_pieces(con, m, body, used)
        else:
            con.execute(f"{_CREATE[m.materialized]} {m.relation} as\n{body}", used or None)
        check_grain(con, m)
        for name in [name for name, last in drop_after.items() if last == i]:
            con.execute(f"drop table {name}")
    return ordered


def _build_in_pieces(con: duckdb.DuckDBPyConnection, m: Model, body: str, params: Mapping[str, object]) -> None:
    """The table of `body` (ending in `order by`), its rows sorted and appended a piece at a time
    (module docstring): the same rows in the same order as one sorted statement."""
    match = _ORDER_BY.search(body)
    order = [c.strip() for c in match[1].split(",")] if match else []
    keys = list(m.sorted_in_pieces)
    if m.materialized != "table" or order[: len(keys)] != keys:
        raise ModelError(f"{m}: sorted_in_pieces needs a table whose order by begins with {', '.join(keys)}")
    rows = body[: match.start()]
    cols = ", ".join(f'"{k}"' for k in keys)
    counts = con.execute(f"select {cols}, count(*) from ({rows}) group by all order by all", params or None).fetchall()
    if any(v is None for *key, _ in counts for v in key):  # no range holds NULL: built whole, the grain check says it
        con.execute(f"create or replace table {m.relation} as\n{body}", params or None)
        return
    con.execute(f"create or replace table {m.relation} as select * from ({rows}) limit 0", params or None)
    *leading, last = [f'"{k}"' for k in keys]
    where = " and ".join([f"{c} = $__lead{j}" for j, c in enumerate(leading)] + [f"{last} between $__lo and $__hi"])
    for lead, lo, hi in _pieces(counts, piece_rows(con)):
        piece = dict(params) | {f"__lead{j}": v for j, v in enumerate(lead)} | {"__lo": lo, "__hi": hi}
        con.execute(f"insert into {m.relation} select * from ({rows}) where {where} order by {match[1]}", piece)
    (built,) = con.execute(f"select count(*) from {m.relation}").fetchone()
    if built != sum(n for *_, n in counts):  # every row in exactly one piece
        raise RuntimeError(f"{m}: built {built} rows in pieces, the statement gives {sum(n for *_, n in counts)}")


def piece_rows(con: duckdb.DuckDBPyConnection) -> int:
    """Rows sorted at once by a model built in pieces: PIECE_ROWS when set, else as many as the
    connection's memory cap holds at PIECE_ROW_BYTES a row (at least MIN_PIECE_ROWS)."""
    if PIECE_ROWS:
        return PIECE_ROWS
    cap = memory_limit_bytes(con)
    return max(MIN_PIECE_ROWS, (cap or 0) // PIECE_ROW_BYTES)


def _pieces(counts: list[tuple], limit: int) -> list[tuple[tuple, object, object]]:
    """(leading values, first and last value of the last key) of consecutive pieces of at most
    `limit` rows (one value of every key more, if it alone is larger), from `counts`: the
    keys' values in order, each with its rows. A piece never spans two values of the leading keys."""
    pieces: list[tuple[tuple, object, object]] = []
    size = 0
    for *key, n in counts:
        lead, last = tuple(key[:-1]), key[-1]
        if pieces and pieces[-1][0] == lead and size + n <= limit:
            pieces[-1] = (lead, pieces[-1][1], last)
            size += n
        else:
            pieces.append((lead, last, last))
            size = n
    return pieces


_CREATE = {"table": "create or replace table", "view": "create or replace view", "temp": "create or replace temp table"}


def check_declarations(con: duckdb.DuckDBPyConnection, models: list[Model]) -> None:
    """Check what build() checks before building, for every model whose SQL is one select (a
    statement model too, when it is one): the header's reads against the SQL's, each read a
    model or a relation of the connection's current database."""
    existing = _relations(con)
    for m in models:
        body = _expand(m, models)
        if m.built or not _serialized(con, body).get("error"):
            check_reads(con, m, body, models, existing)


def check_reads(
    con: duckdb.DuckDBPyConnection,
    model: Model,
    body: str,
    models: list[Model],
    existing: set[str],
) -> None:
    """The header's `reads` against the relations the SQL reads: equal, each either a model of the
    run or a table or view of the database (`existing`)."""
    declared = set()
    for read in model.reads:
        declared |= {m.name for m in _tagged(model, read, models)} if read.startswith("tag:") else {read}
    actual = _reads(con, body, model)
    undeclared, unread = sorted(actual - declared), sorted(declared - actual)
    if undeclared:
        raise ModelError(f"{model}: reads {', '.join(undeclared)}, not declared in its header (-- reads:)")
    if unread:
        raise ModelError(f"{model}: declares -- reads: {', '.join(unread)}, which its SQL does not read")
    names = {m.name for m in models}
    unknown = sorted(r for r in declared if r not in names and r not in existing)
    if unknown:
        raise ModelError(
            f"{model}: reads {', '.join(unknown)}: neither a model of this run nor a table or view of the database"
        )


def check_grain(con: duckdb.DuckDBPyConnection, model: Model) -> None:
    """Unique and not null on the model's declared grain.

    One pass counts the NULLs and the distinct hashes of the grain: as many distinct hashes as
    rows proves every key unique (equal keys hash alike). Only when they fall short (a duplicate,
    or two keys whose hashes collide) is the key itself grouped, to find a duplicate or clear it:
    grouping the wide key of mart.indicator_evidence costs ~4× the hashes (docs/performance.md)."""
    if not model.grain:
        return
    quoted = [f'"{c}"' for c in model.grain]
    cols = ", ".join(quoted)
    counts = ", ".join(f"count(*) filter (where {c} is null)" for c in quoted)
    *nulls, rows, hashes = con.execute(
        f"select {counts}, count(*), count(distinct hash({cols})) from {model.name}"
    ).fetchone()
    empty = [f"{c} ({n} rows)" for c, n in zip(model.grain, nulls, strict=True) if n]
    if empty:
        raise GrainViolation(f"模型 {model} 的粒度列有空值 / model {model}: grain column(s) NULL: {', '.join(empty)}")
    if hashes == rows:
        return
    duplicate = con.execute(
        f"select count(*) over (), count(*), {cols} from {model.name} group by all having count(*) > 1 "
        f"order by {cols} limit 1"
    ).fetchone()
    if duplicate:
        keys, times, *key = duplicate
        shown = ", ".join(f"{c}={v!r}" for c, v in zip(model.grain, key, strict=True))
        raise GrainViolation(
            f"模型 {model} 的粒度 ({', '.join(model.grain)}) 不唯一 / model {model}: grain "
            f"({', '.join(model.grain)}) is not unique: {keys} key(s) occur more than once, e.g. {shown} ({times} rows)"
        )


def _dependencies(model: Model, models: Iterable[Model]) -> set[str]:
    models = list(models)
    names = {m.name for m in models}
    deps = set()
    for read in model.reads:
        if read.startswith("tag:"):
            deps |= {m.name for m in _tagged(model, read, models)}
        elif read in names:
            deps.add(read)
    return deps


def _tagged(model: Model, read: str, models: list[Model]) -> list[Model]:
    tag = read.removeprefix("tag:")
    tagged = [m for m in models if tag in m.tags and m.built]
    if not tagged:
        raise ModelError(f"{model}: reads {read}, but no model of this run is tagged {tag}")
    return sorted(tagged, key=lambda m: m.name)


def _expand(model: Model, models: list[Model]) -> str:
    """The SQL with `{{ tagged('x') }}` replaced by the union of the models tagged x."""

    def union(match: re.Match) -> str:
        parts = [f"select * from {m.name}" for m in _tagged(model, f"tag:{match[1]}", models)]
        return "(\n    " + "\n    union all by name\n    ".join(parts) + "\n)"

    return _TAGGED.sub(union, model.text)


def _serialized(con: duckdb.DuckDBPyConnection, body: str) -> dict:
    """DuckDB's parse tree of a select; {"error": true, "error_message": …} for anything else."""
    return json.loads(con.execute("select json_serialize_sql(?)", [body]).fetchone()[0])


def _parsed(con: duckdb.DuckDBPyConnection, body: str, model: Model) -> dict:
    tree = _serialized(con, body)
    if tree.get("error"):
        raise ModelError(f"{model}: DuckDB cannot parse it as one select: {tree.get('error_message')}")
    return tree


def _reads(con: duckdb.DuckDBPyConnection, body: str, model: Model) -> set[str]:
    """The relations a select reads (schema.relation; temp.relation for temp tables), CTEs aside."""
    tables: list[dict] = []
    ctes: set[str] = set()
    for node in _nodes(_parsed(con, body, model)):
        if node.get("type") == "BASE_TABLE":
            tables.append(node)
        cte_map = node.get("cte_map")
        if isinstance(cte_map, dict):
            ctes |= {entry["key"] for entry in cte_map.get("map", [])}
    reads = set()
    for t in tables:
        catalog, schema, name = t.get("catalog_name", ""), t.get("schema_name", ""), t["table_name"]
        if not catalog and not schema:
            if name in ctes:
                continue
            raise ModelError(f"{model}: reads {name} without its schema: write schema.{name} or temp.{name}")
        if catalog == "temp":
            reads.add(f"temp.{name}")
        else:
            reads.add(".".join(p for p in (catalog, schema, name) if p))
    return reads


def _parameters(con: duckdb.DuckDBPyConnection, body: str) -> list[str]:
    return sorted({n["identifier"] for n in _nodes(_serialized(con, body)) if n.get("class") == "PARAMETER"})


def _nodes(tree):
    """Every dict in a JSON tree."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            yield node
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def _relations(con: duckdb.DuckDBPyConnection) -> set[str]:
    """The persistent tables and views of the connection's current database."""
    rows = con.execute(
        """
        select schema_name || '.' || table_name from duckdb_tables()
        where database_name = current_database() and not temporary
        union all
        select schema_name || '.' || view_name from duckdb_views()
        where database_name = current_database() and not temporary and not internal
        """
    ).fetchall()
    return {r[0] for r in rows}


def _cycle(remaining: list[Model], deps: dict[str, set[str]]) -> str:
    """One cycle among the models left unordered, as file → file → … → the first again."""
    by_name = {m.name: m for m in remaining}
    path = [remaining[0].name]
    while True:
        nxt = sorted(d for d in deps[path[-1]] if d in by_name)[0]
        if nxt in path:
            cycle = path[path.index(nxt) :] + [nxt]
            return " → ".join(_shown(by_name[n].path) for n in cycle)
        path.append(nxt)


def _list(value: str | None) -> tuple[str, ...]:
    return tuple(v.strip() for v in (value or "").split(",") if v.strip())


def _shown(path: Path) -> str:
    """A model file as a user finds it: relative to the package's folder when it is there."""
    try:
        return str(path.resolve().relative_to(WAREHOUSE_DIR.parent))
    except ValueError:
        return str(path)
