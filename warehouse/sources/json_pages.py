"""Parse JSON export pages (the HTTP systems: enforcement, mediation, and any source registered
without a parser) into canonical rows.

One DuckDB statement reads every page of a batch, unnests the records, maps the Chinese field
names to canonical columns (the field dictionary, warehouse/fields.yaml), adds the columns it
derives (`derived`: township_code from the division code), hashes identifiers and drops personal
fields. Values stay as delivered (dates as text) so validation can see exactly what the source sent.

A value of the wrong JSON type is a row error, never a batch error: a list where one value is
expected, a single value where a list is expected (执法证号 "FJ123"), an amount that is not a
number. Such a value is not kept (NULL) and the column's name goes into the row's
`_type_errors` (space-separated canonical names), which the suites' type rules quarantine, with
messages that never quote the value. Amounts are read exactly in the formats people type: a
JSON number, or text with full-width digits (５００), thousands separators (1,000) and a
trailing 元 or leading ¥; anything else (1.5万, abc) is a type error, never NULL silently.
"""

from __future__ import annotations

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
# a number as JSON writes it without an exponent: read alike as a number or as text (_select)
_DIGITS = r"-?\d+(\.\d+)?"


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


def _select(col: Column, i: int, list_type: str | None = None, hashed: str | None = None) -> tuple[str, str]:
    """The column's expression, and the condition under which its value has the wrong type,
    over `v` (every kept field as text, extracted in one pass: a list or an object as its JSON
    text; `i` is the column's position), the record (a scalar field's JSON type, only where `v`
    cannot tell it: a second parse of every record costs as much as the first), `list_type`
    (a list field's JSON type) or the table `hashed` (a list of identifiers, hashed)."""
    value, json_type = f"v[{i}]", f"json_type(rec, {_quote(col.fields[0])})"
    # a list or an object where one value belongs (only their text, or a string, starts with [ or {)
    structure = f"case when left({value}, 1) in ('[', '{{') then {json_type} in ('ARRAY', 'OBJECT') else false end"
    not_a_list = f"{list_type} not in ('ARRAY', 'NULL')"
    # the type of a number field: a text of digits reads the same whether sent as a number or a string
    digits = f"regexp_full_match({value}, '{_DIGITS}')"
    t = f"case when {value} is null then null when {digits} then 'DOUBLE' else {json_type} end"
    amount = f"fazhi_amount(v[{i}])"
    match col.type:
        case "text" | "date" | "timestamp" | "bool":
            expr, wrong = f"case when not {structure} then nullif(trim(v[{i}]), '') end", structure
        case "pseudonym":
            expr, wrong = f"case when not {structure} then pseudonym(v[{i}]) end", structure
        case "number":
            expr = (
                f"case when {t} in ('BIGINT', 'UBIGINT', 'DOUBLE') then try_cast(v[{i}] as double) "
                f"when {t} = 'VARCHAR' and regexp_full_match({amount}, '{_AMOUNT}') "
                f"then cast(replace({amount}, ',', '') as double) end"
            )
            wrong = (
                f"{t} in ('ARRAY', 'OBJECT', 'BOOLEAN') "
                f"or {t} = 'VARCHAR' and {amount} <> '' and not regexp_full_match({amount}, '{_AMOUNT}')"
            )
        case "text_list":
            expr, wrong = (
                f"case when {list_type} = 'ARRAY' then cast(cast(v[{i}] as json) as varchar[]) end",
                not_a_list,
            )
        case "pseudonym_list":
            expr, wrong = f"{hashed}.keys", not_a_list
        case _:
            raise ValueError(col.type)
    return f'{expr} as "{col.name}"', wrong


_LISTS = ("text_list", "pseudonym_list")


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
    paths = [str(f.path) for f in batch.files]
    install_pseudonym_macro(con, key)
    # an amount as typed, normalised: full-width digits and punctuation, spaces, ¥ and 元 removed
    con.execute(
        "create or replace temp macro fazhi_amount(s) as regexp_replace(translate(trim(replace(s, '　', ' ')), "
        "'０１２３４５６７８９．，－＋', '0123456789.,-+'), '^[¥￥]\\s*|\\s*元$', '', 'g')"
    )
    object_size = json_object_size(paths)
    try:
        # read_json_objects + from_json, faster than read_json with a JSON[] column (docs/performance.md);
        # each page is read and parsed once (temp table: in memory, spilled to disk beyond the
        # memory limit)
        con.execute(
            f"""
            create or replace temp table pages as
            select _source_file, unnest(records) as rec, generate_subscripts(records, 1) as _row_number
            from (select parse_filename(filename) as _source_file,
                         from_json(json, '{{"records": ["JSON"]}}').records as records
                  from read_json_objects($paths, filename = true, format = 'auto',
                                         maximum_object_size = {int(object_size)}))
            where records is not null or error(_source_file || ' has no records array')
            """,
            {"paths": paths},
        )
    except duckdb.Error as exc:
        raise SourceError(
            batch.source,
            ", ".join(f.name for f in batch.files),
            "导出页不是有效的JSON或缺少records字段",
            f"an export page is not valid JSON or has no records array: {withhold_values(str(exc))}",
            "page-json",
        ) from None
    _check_drift(con, batch, mapping)
    _deduplicate(con, batch, mapping)
    scalars = [c for c in mapping.kept_columns if c.type not in _LISTS]
    lists = [c for c in mapping.kept_columns if c.type in _LISTS]
    hashed = [c for c in lists if c.type == "pseudonym_list"]
    index = {c.name: i for i, c in enumerate(scalars + lists, 1)}
    list_types = {c.name: f"lt[{k}]" for k, c in enumerate(lists, 1)}
    for k, col in enumerate(hashed):
        _hash_list(con, col, f"hashed_list_{k}")
    every_field = "[" + ", ".join(_quote(c.fields[0]) for c in scalars + lists) + "]"
    tables = {c.name: f"hashed_list_{k}" for k, c in enumerate(hashed)}
    selected = [_select(c, index[c.name], list_types.get(c.name), tables.get(c.name)) for c in mapping.kept_columns]
    cols = ", ".join(expr for expr, _ in selected)
    wrong = ", ".join(
        f"case when {cond} then '{c.name}' end" for c, (_, cond) in zip(mapping.kept_columns, selected, strict=True)
    )
    joins = "".join(f" left join hashed_list_{k} using (_rid)" for k in range(len(hashed)))
    # the lists' JSON types in one more pass (an array's text and a string's can look alike)
    list_fields = "[" + ", ".join(_quote(c.fields[0]) for c in lists) + "]"
    typed = f", json_type(rec, {list_fields}) as lt" if lists else ""
    records = f"select rowid as _rid, *, json_extract_string(rec, {every_field}) as v{typed} from pages"
    select = (
        f"select _source_file, _row_number::integer as _row_number, {cols}, "
        f"nullif(concat_ws(' ', {wrong}), '') as {TYPE_ERRORS} "
        f"from ({_in_ranges(con, records)}){joins}"
    )
    if not derived:
        return select
    extra = ", ".join(f'{expr} as "{name}"' for name, expr in derived.items())
    return f"select _source_file, _row_number, {extra}, * exclude (_source_file, _row_number) from ({select})"


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


def _hash_list(con: duckdb.DuckDBPyConnection, col: Column, table: str) -> None:
    """The table (`_rid`: the page row's rowid, `keys`) of an array of identifiers (officers'
    certificate numbers) hashed element by element, each distinct value once: the same officers
    appear on thousands of records. NULL stays NULL, [] stays [], elements keep their order; a
    value that is not an array is NULL here (and a type error of the row). The lists are gathered
    back LIST_PIECE_ROWS records at a time."""
    field = _quote(col.fields[0])
    in_list = f"case when json_type(rec->{field}) = 'ARRAY' then cast(rec->{field} as varchar[]) end"
    lists = f"select rowid as _rid, {in_list} as l from pages"
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


def _deduplicate(con: duckdb.DuckDBPyConnection, batch: LandedBatch, mapping: TableMapping) -> None:
    """A record counts once as received: per id, the version with the latest 更新时间 (a page
    served twice, or a record modified between two pages of one pull, arrives twice). Record
    versions the warehouse already holds (set by the HTTP connector: `already_loaded`, the ids
    loaded at the previous watermark; `already_quarantined`, [id, 更新时间] pairs) are not
    received again."""
    by_name = {c.name: c for c in mapping.columns}
    if len(mapping.key) != 1 or mapping.key[0] not in by_name:
        return
    id_f = _quote(by_name[mapping.key[0]].fields[0])
    ts = by_name.get("source_modified_at")
    ts_f = _quote(ts.fields[0]) if ts else "''"
    if _repeats(con, f"rec->>{id_f}"):  # the window (a sort of every record) only when there are duplicates
        con.execute(
            f"""
            create or replace temp table pages as
            select * from pages
            qualify rec->>{id_f} is null
                 or row_number() over (partition by rec->>{id_f}
                                       order by rec->>{ts_f} desc nulls last, _source_file desc, _row_number desc) = 1
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
            delete from pages where (rec->>{id_f}, trim(rec->>{ts_f})) in
                (select (h[1], h[2]) from (select unnest($held::varchar[][]) as h))
            """,
            {"held": held},
        )


def _repeats(con: duckdb.DuckDBPyConnection, expr: str) -> bool:
    """Whether a non-null value of `expr` occurs on more than one row of `pages`."""
    values = _in_ranges(con, f"select {expr} as v from pages")
    return con.execute(f"select count(v) > count(distinct v) from ({values})").fetchone()[0]


def _check_drift(con: duckdb.DuckDBPyConnection, batch: LandedBatch, mapping: TableMapping) -> None:
    """A required field absent from every record is schema drift: the whole batch stops.
    The first record of each page is looked at first; only when one of them lacks a required
    field are all records read (a field absent from all records is absent from those too)."""

    def absent(where: str) -> list:
        keys = f"select distinct unnest(json_keys(rec)) from pages {where}"
        present = {r[0] for r in con.execute(keys).fetchall()}
        return [c for c in mapping.columns if present and c.required and not any(f in present for f in c.fields)]

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
