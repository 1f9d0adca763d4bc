"""Parse JSON export pages (the HTTP systems: enforcement, mediation, and any source registered
without a parser) into canonical rows.

One DuckDB statement reads every page of a batch once into a row per record and a column per
field it needs (personal fields that are dropped are never read); one more maps them to canonical
columns (the field dictionary, warehouse/fields.yaml), adds the columns it derives (`derived`:
township_code from the division code) and hashes identifiers. Values stay as delivered (dates
as text) so validation can see exactly what the source sent.

A value of the wrong JSON type is a row error, never a batch error: a list where one value is
expected, a single value where a list is expected (执法证号 "FJ123"), an amount that is not a
number. Such a value is not kept (NULL) and the column's name goes into the row's
`_type_errors` (space-separated canonical names), which the suites' type rules quarantine, with
messages that never quote the value. Amounts are read exactly in the formats people type: a
JSON number, or text with full-width digits (５００), thousands separators (1,000) and a
trailing 元 or leading ¥; anything else (1.5万, abc) is a type error, never NULL silently.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from itertools import pairwise
from pathlib import Path

import duckdb
import pandas as pd

from expectations.clock import latest_allowed_at
from warehouse.sources.landing import LandedBatch
from warehouse.sources.mapping import Column, SourceError, TableMapping
from warehouse.sources.pseudonym import install_pseudonym_macro

TYPE_ERRORS = "_type_errors"
JSON_OBJECT_SIZE = 16 * 2**20  # DuckDB's default maximum_object_size; raised to the batch's largest page
# an amount as text once normalised: digits, optionally grouped by thousands, optional decimals
_AMOUNT = r"[-+]?(\d+|\d{1,3}(,\d{3})+)(\.\d+)?"


def batch_latest_allowed_at(batch: LandedBatch) -> str:
    """The latest date or 更新时间 the batch's records may carry (expectations/clock.py): the
    pull's clock plus its skew (HTTP sources), else the landing time plus the default skew."""
    return batch.extra.get("latest_allowed_at") or latest_allowed_at(datetime.fromisoformat(batch.landed_at))


def withhold_values(text: str) -> str:
    """An error text that can be shown, logged and stored: the first line, with quoted spans
    (DuckDB quotes the values it could not convert) and runs of 6+ digits (ID and phone numbers)
    withheld; a quoted path of a landed page keeps its file name."""

    def quoted(m: re.Match) -> str:
        inner = m.group(0)[1:-1]
        return f'"{inner.rsplit("/", 1)[-1]}"' if "/" in inner and inner.endswith(".json") else "«…»"

    first = (text.strip().splitlines() or [""])[0]
    first = re.sub(r'"[^"]*"|\'[^\']*\'', quoted, first)
    return re.sub(r"(?<!page-)\d{6,}[Xx]?", "…", first)  # landed page names (page-000002.json) stay


def _quote(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _text(j: str) -> str:
    """A field's value as text, from its JSON text `j`, as json_extract_string gives it: a string
    unquoted (unescaped only when it holds an escape: most hold none), anything else its JSON text."""
    string = f"case when contains({j}, '\\') then {j}::json->>'$' else {j}[2:-2] end"
    return f"case when left({j}, 1) = '\"' then {string} else {j} end"


def _select(col: Column, j: str, hashed: str | None = None) -> tuple[str, str]:
    """The column's expression, and the condition under which its value has the wrong type, over
    `j` (the field's JSON text: its first character tells its JSON type) or the table `hashed`
    (a list of identifiers, hashed)."""
    first, value = f"left({j}, 1)", _text(j)
    structure = f"{first} in ('[', '{{')"  # a list or an object where one value belongs
    amount = f"fazhi_amount({value})"
    match col.type:
        case "text" | "date" | "timestamp" | "bool":
            expr, wrong = f"case when not {structure} then nullif(trim({value}), '') end", structure
        case "pseudonym":
            expr, wrong = f"case when not {structure} then pseudonym({value}) end", structure
        case "number":
            # a number, or a text of an amount as people type it (in JSON a string starts with ")
            expr = (
                f"case when {first} = '\"' then case when regexp_full_match({amount}, '{_AMOUNT}') "
                f"then cast(replace({amount}, ',', '') as double) end "
                f"when {first} not in ('[', '{{', 't', 'f') then try_cast({j} as double) end"
            )
            wrong = (
                f"{first} in ('[', '{{', 't', 'f') "
                f"or {first} = '\"' and {amount} <> '' and not regexp_full_match({amount}, '{_AMOUNT}')"
            )
        case "text_list":
            expr, wrong = f"case when {first} = '[' then cast({j}::json as varchar[]) end", f"{first} <> '['"
        case "pseudonym_list":
            expr, wrong = f"{hashed}.keys", f"{first} <> '['"
        case _:
            raise ValueError(col.type)
    return f'{expr} as "{col.name}"', wrong


def page_mapping(batch: LandedBatch) -> TableMapping:
    """A JSON page source's one table (the registry's), with the county's field-name overrides."""
    from warehouse.sources import registry

    (table,) = registry.source(batch.source).tables
    return registry.table_mapping(batch.source, table.name, batch.extra.get("fields"))


def parse_pages(batch: LandedBatch, key: bytes) -> dict[str, pd.DataFrame]:
    """The batch's records in memory (tests, small batches), as {table: frame}."""
    mapping = page_mapping(batch)
    return {mapping.table: parse_json_pages(batch, mapping, key, mapping.derived)}


def pages_select(con: duckdb.DuckDBPyConnection, batch: LandedBatch, key: bytes) -> dict[str, str]:
    """The query giving the batch's records on `con` (the pipeline's parse), as {table: query}."""
    mapping = page_mapping(batch)
    return {mapping.table: json_pages_select(con, batch, mapping, key, mapping.derived)}


def parse_json_pages(
    batch: LandedBatch, mapping: TableMapping, key: bytes, derived: dict[str, str] | None = None
) -> pd.DataFrame:
    """All records of the batch's pages, one row each, with `_source_file` and `_row_number`
    (in memory: tests and small batches; the pipeline writes the same rows to disk)."""
    con = duckdb.connect()
    try:
        select = json_pages_select(con, batch, mapping, key, derived)
        return con.execute(f"{select} order by _source_file, _row_number").df()
    finally:
        con.close()


def json_object_size(paths: list[Path]) -> int:
    """read_json_objects' maximum_object_size for these pages: the largest page (a page of the
    contract's 10,000 records can exceed DuckDB's 16 MB default for one JSON value), no larger
    (DuckDB allocates buffers of twice this size, counted against the memory limit)."""
    return max([JSON_OBJECT_SIZE] + [Path(p).stat().st_size + 1024 for p in paths])


def json_pages_select(
    con: duckdb.DuckDBPyConnection,
    batch: LandedBatch,
    mapping: TableMapping,
    key: bytes,
    derived: dict[str, str] | None = None,
) -> str:
    """Read the batch's pages into the table `pages` on `con` (checked for drift, de-duplicated)
    and return the query giving the canonical rows; `derived` adds columns computed in SQL from
    the canonical ones (name -> expression)."""
    install_pseudonym_macro(con, key)
    # an amount as typed, normalised: full-width digits and punctuation, spaces, ¥ and 元 removed
    con.execute(
        "create or replace temp macro fazhi_amount(s) as regexp_replace(translate(trim(replace(s, '　', ' ')), "
        "'０１２３４５６７８９．，－＋', '0123456789.,-+'), '^[¥￥]\\s*|\\s*元$', '', 'g')"
    )
    columns = _read_pages(con, batch, mapping)
    _check_drift(con, batch, mapping, columns)
    _deduplicate(con, batch, mapping, columns)
    identifier_lists = [c for c in mapping.kept_columns if c.type == "pseudonym_list"]
    hashed = {c.name: f"hashed_list_{k}" for k, c in enumerate(identifier_lists)}
    for col in identifier_lists:
        _hash_list(con, columns[col.fields[0]], hashed[col.name])
    selected = [_select(c, columns[c.fields[0]], hashed.get(c.name)) for c in mapping.kept_columns]
    cols = ", ".join(expr for expr, _ in selected)
    wrong = ", ".join(
        f"case when {cond} then '{c.name}' end" for c, (_, cond) in zip(mapping.kept_columns, selected, strict=True)
    )
    joins = "".join(f" left join {table} using (_rid)" for table in hashed.values())
    select = (
        f"select _source_file, _row_number::integer as _row_number, {cols}, "
        f"nullif(concat_ws(' ', {wrong}), '') as {TYPE_ERRORS} "
        f"from ({_in_ranges(con, 'select rowid as _rid, * from pages')}){joins}"
    )
    if not derived:
        return select
    extra = ", ".join(f'{expr} as "{name}"' for name, expr in derived.items())
    return f"select _source_file, _row_number, {extra}, * exclude (_source_file, _row_number) from ({select})"


def _read_pages(con: duckdb.DuckDBPyConnection, batch: LandedBatch, mapping: TableMapping) -> dict[str, str]:
    """Read every page of the batch once into the temp table `pages` (in memory, spilled to disk
    beyond the memory limit): a row per record (`_source_file`, `_row_number`) and a column per
    field read, holding the field's JSON text (NULL when absent or null); returns {field: column}.
    The fields read are the kept columns' and the de-duplication's; a required field that is not
    kept (a personal one) is only marked present (true) or not (NULL), for the drift check.
    from_json with the records' structure reads each page once into these columns, where records
    kept as JSON text were parsed again by every later step (docs/performance.md)."""
    by_name = {c.name: c for c in mapping.columns}
    dedup = [by_name[n].fields[0] for n in (*mapping.key, "source_modified_at") if n in by_name]
    read = list(dict.fromkeys([c.fields[0] for c in mapping.kept_columns] + dedup))
    marked = [c.fields[0] for c in mapping.columns if c.required and c.fields[0] not in read]
    fields = read + list(dict.fromkeys(marked))
    columns = {f: f"j{k}" for k, f in enumerate(fields)}
    values = ", ".join(
        f"r[{_quote(f)}]::varchar as {columns[f]}"
        if f in read
        else f"r[{_quote(f)}] is not null or null as {columns[f]}"
        for f in fields
    )
    shape = {"records": [dict.fromkeys(fields, "JSON")]}
    try:
        con.execute(
            f"create or replace temp table pages as select _source_file, _row_number, {values} "
            f"from ({_records(batch, shape)})",
            {"paths": [str(f.path) for f in batch.files]},
        )
    except duckdb.OutOfMemoryException:
        raise  # the memory cap, not the pages: cause class `memory` (it was reported as a bad page)
    except duckdb.Error as exc:
        # the page DuckDB names (a malformed page, one without records), else every page of the batch
        named = [f.name for f in batch.files if f.name in str(exc)] or [f.name for f in batch.files]
        raise SourceError(
            batch.source,
            ", ".join(named),
            "导出页不是有效的JSON或缺少records字段",
            f"an export page is not valid JSON or has no records array: {withhold_values(str(exc))}",
            "page-json",
        ) from None
    return columns


def _records(batch: LandedBatch, shape: dict) -> str:
    """The query giving every record of the batch's pages (parameter `$paths`) as `r`, parsed by
    from_json with `shape`, with `_source_file` and `_row_number`; a page without a records array
    is an error naming it. read_json_objects + from_json parse each page once, faster than
    read_json with a JSON[] column (docs/performance.md)."""
    object_size = json_object_size([f.path for f in batch.files])
    return f"""
        select _source_file, unnest(records) as r, generate_subscripts(records, 1) as _row_number
        from (select parse_filename(filename) as _source_file,
                     from_json(json, {_quote(json.dumps(shape, ensure_ascii=False))}).records as records
              from read_json_objects($paths, filename = true, format = 'auto', maximum_object_size = {object_size}))
        where records is not null or error(_source_file || ' has no records array')"""


def _in_ranges(con: duckdb.DuckDBPyConnection, query: str, start: int = 0, stop: int | None = None) -> str:
    """`query` (over `pages`, ending in `from pages`) as a union of rowid ranges, two per thread
    (over rowids start..stop-1; stop None: to the end): a table of fewer than 122,880 rows is one
    row group, which DuckDB scans on one thread, so the per-record work (JSON extraction, hashing)
    would use one core (docs/performance.md)."""
    (rows, parts) = con.execute(
        "select coalesce(max(rowid) + 1, 0), 2 * current_setting('threads') from pages"
    ).fetchone()
    stop = rows if stop is None else min(stop, rows)
    bounds = [start + (stop - start) * k // parts for k in range(parts + 1)]
    return " union all ".join(f"{query} where rowid >= {lo} and rowid < {hi}" for lo, hi in pairwise(bounds))


# Records whose identifier lists are gathered back in one statement: the ordered list aggregate
# holds every record's list in memory (it does not spill); at national (3.5 million enforcement
# records) all at once ran out of memory under a 768MB cap (docs/performance.md).
LIST_PIECE_ROWS = 500_000


def _hash_list(con: duckdb.DuckDBPyConnection, j: str, table: str) -> None:
    """The table (`_rid`: the page row's rowid, `keys`) of an array of identifiers (officers'
    certificate numbers; `j`: the field's JSON text) hashed element by element, each distinct
    value once: the same officers appear on thousands of records. NULL stays NULL, [] stays [],
    elements keep their order; a value that is not an array is NULL here (and a type error of
    the row). The lists are gathered back LIST_PIECE_ROWS records at a time."""
    lists = f"select rowid as _rid, case when left({j}, 1) = '[' then cast({j}::json as varchar[]) end as l from pages"
    elements = "select _rid, unnest(l) as x, generate_subscripts(l, 1) as i from lists"
    con.execute(
        f"""
        create or replace temp table {table}_hashes as
        with lists as ({_in_ranges(con, lists)})
        select x, pseudonym(x) as h from (select distinct x from ({elements}) where x is not null)
        """
    )
    con.execute(f"create or replace temp table {table} (_rid bigint, keys varchar[])")
    (rows,) = con.execute("select coalesce(max(rowid) + 1, 0) from pages").fetchone()
    for start in range(0, rows, LIST_PIECE_ROWS):
        con.execute(
            f"""
            insert into {table}
            with lists as ({_in_ranges(con, lists, start, start + LIST_PIECE_ROWS)}),
            hashed as (select _rid, list(h order by i) as keys
                       from ({elements}) left join {table}_hashes using (x) group by _rid)
            select _rid, case when l is not null then coalesce(keys, []) end as keys
            from lists left join hashed using (_rid)
            """
        )


def _deduplicate(con: duckdb.DuckDBPyConnection, batch: LandedBatch, mapping: TableMapping, columns: dict) -> None:
    """A record counts once as received: per id, the version with the latest 更新时间 (a page
    served twice, or a record modified between two pages of one pull, arrives twice); without
    更新时间, the last received. Record versions the warehouse already holds (set by the HTTP
    connector: `already_loaded`, the ids loaded at the previous watermark; `already_quarantined`,
    [id, 更新时间] pairs) are not received again."""
    by_name = {c.name: c for c in mapping.columns}
    if len(mapping.key) != 1 or mapping.key[0] not in by_name:
        return
    record_id = _text(columns[by_name[mapping.key[0]].fields[0]])
    ts = by_name.get("source_modified_at")
    modified = _text(columns[ts.fields[0]]) if ts else "null"
    if _repeats(con, record_id):  # the window (a sort of every record) only when there are duplicates
        con.execute(
            f"""
            create or replace temp table pages as
            select * from pages
            qualify {record_id} is null
                 or row_number() over (partition by {record_id}
                                       order by {modified} desc nulls last, _source_file desc, _row_number desc) = 1
            """
        )
    if not ts:
        return
    loaded = batch.extra.get("already_loaded") or {}
    held = [[i, loaded["modified_at"]] for i in loaded.get("ids") or []]
    held += batch.extra.get("already_quarantined") or []
    if held:
        con.execute(
            f"""
            delete from pages where ({record_id}, trim({modified})) in
                (select (h[1], h[2]) from (select unnest($held::varchar[][]) as h))
            """,
            {"held": held},
        )


def _repeats(con: duckdb.DuckDBPyConnection, expr: str) -> bool:
    """Whether a non-null value of `expr` occurs on more than one row of `pages`."""
    values = _in_ranges(con, f"select {expr} as v from pages")
    return con.execute(f"select count(v) > count(distinct v) from ({values})").fetchone()[0]


def _check_drift(con: duckdb.DuckDBPyConnection, batch: LandedBatch, mapping: TableMapping, columns: dict) -> None:
    """A required field absent from every record is schema drift: the whole batch stops.
    A required field with a value in the first record of some page is present. Only when one has
    none are the pages read again for their field names: those of each page's first record, then
    (when one of them lacks a required field) those of all records."""
    required = [c for c in mapping.columns if c.required]
    with_value = ", ".join(f"count({columns[c.fields[0]]}) > 0" for c in required)
    if not required or all(con.execute(f"select {with_value} from pages where _row_number = 1").fetchone()):
        return
    params = {"paths": [str(f.path) for f in batch.files]}

    def absent(where: str) -> list:
        keys = f"select distinct unnest(json_keys(r)) from ({_records(batch, {'records': ['JSON']})}) {where}"
        present = {row[0] for row in con.execute(keys, params).fetchall()}
        return [c for c in required if present and not any(f in present for f in c.fields)]

    if not absent("where _row_number = 1"):
        return
    for col in absent(""):
        raise SourceError(
            batch.source,
            ", ".join(f.name for f in batch.files),
            f"导出缺少必填字段「{col.fields[0]}」(字段改名或被删除)",
            f"the export lacks required field {col.fields[0]!r} ({col.name}): renamed or removed",
            "schema-drift",
        )
