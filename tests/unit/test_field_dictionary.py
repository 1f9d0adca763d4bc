"""The field dictionary (warehouse/fields.yaml) is the one description of every source column:
the migrations' raw and core tables and the GX suites' type rules must agree with it, and a
column it describes differently makes these tests fail (shown on a doctored dictionary)."""

from __future__ import annotations

import json
from dataclasses import replace

import duckdb
import pytest

from warehouse.db import migrate
from warehouse.sources import registry, schema
from warehouse.sources.fields import FieldDictionaryError, read
from warehouse.sources.mapping import TableMapping

DATE_FORMATS = {"date": "%Y-%m-%d", "timestamp": "%Y-%m-%d %H:%M:%S"}
YES_NO = {"是", "否"}


@pytest.fixture(scope="module")
def migrated():
    con = duckdb.connect()
    migrate(con)
    yield con
    con.close()


def _columns(con, schema_name: str, table: str) -> dict[str, str]:
    rows = con.execute(
        "select column_name, data_type from duckdb_columns() where schema_name = ? and table_name = ?",
        [schema_name, table],
    ).fetchall()
    return dict(rows)


def ddl_disagreements(con: duckdb.DuckDBPyConnection, mapping: TableMapping, key: tuple[str, ...]) -> list[str]:
    """Where the database's raw.<t> and core.<t> differ from the tables the dictionary describes."""
    problems = []
    expected = duckdb.connect()
    expected.execute("create schema raw; create schema core")
    expected.execute(schema.raw_ddl(mapping))
    expected.execute(schema.core_ddl(mapping, key))
    for layer in ("raw", "core"):
        have, want = _columns(con, layer, mapping.table), _columns(expected, layer, mapping.table)
        for column in sorted(have.keys() | want.keys()):
            if have.get(column) != want.get(column):
                problems.append(
                    f"{layer}.{mapping.table}.{column}: migrations {have.get(column)}, dictionary {want.get(column)}"
                )
    return problems


def suite_disagreements(mapping: TableMapping, suite: dict) -> list[str]:
    """Where the suite's type rules contradict the dictionary: a date-format rule on a column that
    is no date (or with another format), a date the suite never checks, a 是/否 rule on a column
    that is no bool (and a bool without one), a range or unreadable-number rule on a column that
    is no number, a rule naming a column the table does not have."""
    columns = {c.name: c for c in mapping.all_columns}
    kept = {c.name: c.type for c in mapping.kept_columns}
    problems, dates, bools = [], {}, set()
    for e in suite["expectations"]:
        kw, rule = e["kwargs"], e["meta"]["rule"]
        column = kw.get("column", "")
        named = [kw[k] for k in ("column", "column_A", "column_B") if k in kw] + kw.get("column_list", [])
        for name in named:
            base = name.removeprefix("_unreadable_")
            if name != "_type_errors" and base not in columns:
                problems.append(f"{rule}: {name} is not a column of {mapping.table}")
        number = column.removeprefix("_unreadable_")
        if column.startswith("_unreadable_") and number in columns and columns[number].type != "number":
            problems.append(f"{rule}: {number} is read as a number, but its type is not number")
        if e["type"] == "expect_column_values_to_match_date_format":
            dates[column] = kw["date_format"]
            if DATE_FORMATS.get(kept.get(column)) != kw["date_format"]:
                problems.append(f"{rule}: {column} checked as {kw['date_format']}, its type is {kept.get(column)}")
        elif e["type"] == "expect_column_values_to_be_in_set" and set(kw["value_set"]) <= YES_NO:
            bools.add(column)
            if kept.get(column) != "bool":
                problems.append(f"{rule}: {column} checked as 是/否, its type is {kept.get(column)}")
        elif e["type"] == "expect_column_values_to_be_between" and column in columns:
            raw = columns[column].raw
            problems += [] if raw in ("double", "integer") else [f"{rule}: {column} checked as a number, raw {raw}"]
    problems += [f"{c} ({t}) has no date-format rule" for c, t in kept.items() if t in DATE_FORMATS and c not in dates]
    problems += [f"{c} (bool) has no 是/否 rule" for c, t in kept.items() if t == "bool" and c not in bools]
    return problems


@pytest.mark.parametrize("table", registry.table_names())
def test_the_migrations_create_the_tables_the_dictionary_describes(migrated, table):
    source, declared = registry.table(table)
    assert ddl_disagreements(migrated, source.mapping(table), declared.key) == []


@pytest.mark.parametrize("table", registry.table_names())
def test_the_suites_type_rules_agree_with_the_dictionary(table):
    _, declared = registry.table(table)
    source, _ = registry.table(table)
    suite = json.loads(declared.suite_path.read_text(encoding="utf-8"))
    assert suite_disagreements(source.mapping(table), suite) == []


def _retyped(mapping: TableMapping, column: str, **changes) -> TableMapping:
    return replace(
        mapping, all_columns=tuple(replace(c, **changes) if c.name == column else c for c in mapping.all_columns)
    )


def test_a_column_typed_otherwise_than_the_migrations_is_reported(migrated):
    mapping = registry.table_mapping("mediation", "mediation_case")
    doctored = _retyped(mapping, "accepted_date", core="timestamp")
    assert ddl_disagreements(migrated, doctored, ("case_id",)) == [
        "core.mediation_case.accepted_date: migrations DATE, dictionary TIMESTAMP"
    ]
    renamed = replace(
        mapping,
        all_columns=tuple(replace(c, name="outcome_code") if c.name == "outcome" else c for c in mapping.all_columns),
    )
    assert ddl_disagreements(migrated, renamed, ("case_id",)) == [
        "raw.mediation_case.outcome: migrations VARCHAR, dictionary None",
        "raw.mediation_case.outcome_code: migrations None, dictionary VARCHAR",
        "core.mediation_case.outcome: migrations VARCHAR, dictionary None",
        "core.mediation_case.outcome_code: migrations None, dictionary VARCHAR",
    ]


def test_a_suite_rule_contradicting_the_dictionary_is_reported():
    _, declared = registry.table("enforcement_act")
    suite = json.loads(declared.suite_path.read_text(encoding="utf-8"))
    mapping = registry.table_mapping("enforcement", "enforcement_act")
    problems = suite_disagreements(_retyped(mapping, "decision_date", type="timestamp"), suite)
    assert len(problems) == 1 and "decision_date checked as %Y-%m-%d, its type is timestamp" in problems[0]
    problems = suite_disagreements(_retyped(mapping, "is_major_case", type="text"), suite)
    assert len(problems) == 1 and "is_major_case checked as 是/否, its type is text" in problems[0]
    problems = suite_disagreements(_retyped(mapping, "filed_date", type="text"), suite)
    assert len(problems) == 1 and "filed_date checked as %Y-%m-%d" in problems[0]
    problems = suite_disagreements(_retyped(mapping, "closed_date", name="closing_date"), suite)
    assert any("closed_date is not a column of enforcement_act" in p for p in problems)


def test_a_dictionary_entry_that_cannot_be_used_names_file_table_and_column(tmp_path):
    bad = tmp_path / "fields.yaml"
    bad.write_text(
        "sources:\n  s:\n    t:\n      zh: 表\n      en: t\n      columns:\n        c: {field: 名, type: money}\n"
    )
    with pytest.raises(FieldDictionaryError, match=r"fields.yaml: sources.s.t.c: type must be one of"):
        read(bad)
    bad.write_text("sources:\n  s:\n    t:\n      zh: 表\n      en: t\n      columns:\n        phone: {pii: drop}\n")
    with pytest.raises(FieldDictionaryError, match=r"sources.s.t.phone: pii drop is for a field of the export"):
        read(bad)
