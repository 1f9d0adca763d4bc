"""The published analyst database: older DuckDB tools open it, every table and column is
described in Chinese and English, and the same tables exist as Parquet."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from warehouse.publish import published_tables


def _duckdb_cli() -> str | None:
    beside = Path(sys.executable).with_name("duckdb")
    return str(beside) if beside.exists() else shutil.which("duckdb")


def test_opens_with_the_duckdb_cli_1_4_or_1_5(mini_run):
    cli = _duckdb_cli()
    if cli is None:
        pytest.skip("the duckdb command-line tool (pip package duckdb-cli) is not installed")
    version = subprocess.run([cli, "--version"], capture_output=True, text=True, check=True).stdout
    assert version.startswith(("v1.4", "v1.5")), version
    out = subprocess.run(
        [
            cli,
            "-readonly",
            "-csv",
            str(mini_run.settings.published_db),
            "-c",
            "SELECT year, indicator_code FROM mart.indicator_value LIMIT 1",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.splitlines()[0] == "year,indicator_code" and len(out.splitlines()) == 2


def test_every_published_table_and_column_has_a_bilingual_comment(mini_run):
    con = duckdb.connect(str(mini_run.settings.published_db), read_only=True)
    tables = con.execute("select schema_name || '.' || table_name, comment from duckdb_tables()").fetchall()
    columns = con.execute(
        "select schema_name || '.' || table_name || '.' || column_name, comment from duckdb_columns() "
        "where database_name = current_database() and not internal"
    ).fetchall()
    con.close()
    assert {t for t, _ in tables} == set(published_tables())
    missing = [name for name, comment in tables + columns if not comment or " / " not in comment]
    assert missing == []


SHORT_ENUM = 8  # a text column with at most this many distinct values in the mini county
CODE = re.compile(r"[a-z][a-z0-9_]{0,19}")  # a machine code (ok, penalty_decision), not a 32-letter pseudonym
LISTS_CODES = re.compile(r"[a-z][a-z_]*(=|\s*/\s*[a-z])")  # a comment listing values: "count/rate", "full=全量"


def _listed(value: str, comment: str) -> bool:
    return re.search(rf"(?<![A-Za-z0-9_]){re.escape(value)}(?![A-Za-z0-9_])", comment) is not None


def test_each_published_comment_agrees_with_the_columns_values(mini_run):
    """The comments say what the columns hold: a short column of machine codes lists every code
    it holds (record_table's penalty_decision included); a comment that lists values lists the
    column's (ref.township.kind is 镇/乡/街道, not count/rate); a unit of the figure holds
    catalogue units (a training attendee's work unit is not one); rates are fractions in [0, 1]."""
    con = duckdb.connect(str(mini_run.settings.published_db), read_only=True)
    try:
        columns = con.execute(
            "select schema_name, table_name, column_name, comment from duckdb_columns() "
            "where database_name = current_database() and data_type = 'VARCHAR' order by all"
        ).fetchall()
        units = {r[0] for r in con.execute("select distinct unit from mart.indicator_catalogue").fetchall()}
        unit_comment = con.execute(
            "select comment from duckdb_columns() where table_name = 'indicator_value' and column_name = 'unit'"
        ).fetchone()[0]
        wrong = []
        for schema, table, column, comment in columns:
            values = {
                r[0]
                for r in con.execute(
                    f'select distinct "{column}" from {schema}.{table} where "{column}" is not null'
                ).fetchall()
            }
            name = f"{schema}.{table}.{column}"
            if not values or len(values) > SHORT_ENUM:
                continue
            codes = all(CODE.fullmatch(v) for v in values)
            if (codes or LISTS_CODES.search(comment)) and not all(_listed(v, comment) for v in values):
                wrong.append((name, sorted(values), comment))
            if comment == unit_comment and not values <= units:
                wrong.append((name, sorted(values - units), comment))
        rates = con.execute(
            "select count(*) from mart.indicator_value where kind = 'rate' and (value < 0 or value > 1)"
        ).fetchone()[0]
        record_ids = dict(
            con.execute("select record_table, min(record_id) from mart.indicator_evidence group by all").fetchall()
        )
    finally:
        con.close()
    assert wrong == [], "\n".join(map(str, wrong))
    assert rates == 0  # `value`: rates as fractions in [0, 1]
    assert {"enforcement_act", "penalty_decision", "training_attendance", "annual_return_item"} <= set(record_ids)
    township, year, item = record_ids["annual_return_item"].split("|")  # township code|year|item code
    assert township.isdigit() and len(township) == 9 and year.isdigit() and item.isupper()
    assert record_ids["training_attendance"].count("|") == 1  # session id|person key


def test_the_same_tables_as_parquet(mini_run):
    folder = mini_run.settings.published_db.parent / "parquet"
    assert folder.is_symlink()
    con = duckdb.connect()
    con.execute(f"attach '{mini_run.settings.published_db}' as pub (read_only)")
    for table in published_tables():
        path = folder / (table + ".parquet")
        n = con.execute(f"select count(*) from '{path}'").fetchone()[0]
        assert n == con.execute(f"select count(*) from pub.{table}").fetchone()[0], table
        for a, b in ((f"'{path}'", f"pub.{table}"), (f"pub.{table}", f"'{path}'")):
            assert con.execute(f"select count(*) from (from {a} except all from {b})").fetchone()[0] == 0, table
        codecs = {r[0] for r in con.execute(f"select distinct compression from parquet_metadata('{path}')").fetchall()}
        assert codecs <= {"ZSTD"} and (codecs or n == 0), (table, codecs)  # analysts get compressed files


def test_the_data_dictionary_document_is_current(mini_run):
    from warehouse.data_dictionary import render

    doc = Path(__file__).parents[2] / "docs" / "data-dictionary.md"
    assert doc.read_text(encoding="utf-8") == render(mini_run.settings.published_db), (
        "docs/data-dictionary.md is stale: python -m warehouse.data_dictionary PUBLISHED_DB > docs/data-dictionary.md"
    )


def export_parquet(db: Path, tables: tuple[str, ...]) -> Path:
    """The publish's Parquet export (warehouse/parquet_export.py) of a database file's tables."""
    from warehouse.parquet_export import ParquetExport

    con = duckdb.connect(str(db), read_only=True)
    try:
        return ParquetExport(con, db.parent, tables).finish()
    finally:
        con.close()


def test_a_reader_that_resolved_the_parquet_link_keeps_its_files_until_the_next_publish(tmp_path):
    from warehouse.province import county_partition

    db = tmp_path / "published.duckdb"
    con = duckdb.connect(str(db))
    con.execute("create schema mart")
    con.execute("create table mart.figures as select 1 as edition")
    con.close()

    def publish(edition: int) -> None:
        con = duckdb.connect(str(db))
        con.execute("update mart.figures set edition = ?", [edition])
        con.close()
        export_parquet(db, ("mart.figures",))

    def edition(path: Path) -> int:
        return duckdb.connect().execute(f"select edition from '{path}'").fetchone()[0]

    publish(1)
    resolved = county_partition(tmp_path, "mart.figures")  # a roll-up resolves the link...
    publish(2)  # ...and the county publishes again before the roll-up reads
    assert edition(resolved) == 1
    assert edition(tmp_path / "parquet" / "mart.figures.parquet") == 2
    publish(3)
    assert not resolved.exists()  # two publishes later the old folder is gone
    assert len(list(tmp_path.glob("parquet-*"))) == 2


def test_a_failed_parquet_export_keeps_the_previous_files(tmp_path):
    db = tmp_path / "published.duckdb"
    con = duckdb.connect(str(db))
    con.execute("create schema mart")
    con.execute("create table mart.figures as select 1 as edition")
    con.execute("create table mart.more as select 2 as edition")
    con.close()
    export_parquet(db, ("mart.figures", "mart.more"))
    before = (tmp_path / "parquet").resolve()
    with pytest.raises(duckdb.CatalogException):
        export_parquet(db, ("mart.figures", "mart.missing", "mart.more"))
    assert (tmp_path / "parquet").resolve() == before
    assert sorted(p.name for p in before.iterdir()) == ["mart.figures.parquet", "mart.more.parquet"]
    assert list(tmp_path.glob("parquet-*")) == [before]  # the unfinished folder is removed


def test_a_publish_failing_before_its_swap_leaves_the_last_publication_and_no_parquet_folder(mini_run, tmp_path):
    """The Parquet copy is written while the analyst database is built: a publish that fails
    before the swap removes its half-written folder and leaves the last publication whole."""
    from warehouse.db import open_work_db
    from warehouse.publish import publish

    published = tmp_path / "published" / "fazhi.duckdb"
    shutil.copytree(mini_run.settings.published_db.parent, published.parent, symlinks=True)
    work = tmp_path / "work.duckdb"
    shutil.copyfile(mini_run.settings.work_db, work)
    before = (published.parent / "parquet").resolve()
    folders = sorted(published.parent.glob("parquet-*"))  # the current one, and any a reader may still hold
    figures = published.read_bytes()

    def fail_when_built(step: str) -> None:
        if step == "publish:built":
            raise OSError("disk went away")

    con = open_work_db(work)
    try:
        con.execute("delete from mart.indicator_value")  # what a publish would show, were it completed
        with pytest.raises(OSError, match="disk went away"):
            publish(con, published, on_step=fail_when_built)
    finally:
        con.close()
    assert published.read_bytes() == figures
    assert (published.parent / "parquet").resolve() == before
    assert before in folders and sorted(published.parent.glob("parquet-*")) == folders
    count = duckdb.connect().execute(f"select count(*) from '{before / 'mart.indicator_value.parquet'}'").fetchone()[0]
    assert count > 0


def test_a_damaged_database_is_published_again_or_built_again_from_the_sources(tmp_path):
    """A published file that no longer opens (a disk fault, a bad copy back) stayed broken for
    the analysts while every night with nothing new said "completed". The next run publishes it
    again, with the same figures; `fazhi run` as a user runs it, without Prefect."""
    import os

    from tests.conftest import make_mini_home

    home = make_mini_home(tmp_path / "home")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env |= {"PREFECT_HOME": str(tmp_path / "prefect"), "FAZHI_PREFECT": "0"}
    fazhi = [str(Path(sys.executable).with_name("fazhi")), "run", "--home", str(home)]
    published = home / "published" / "fazhi.duckdb"
    values = "select year, township_code, indicator_code, value from mart.indicator_value order by all"

    def figures() -> list:
        con = duckdb.connect(str(published), read_only=True)
        try:
            return con.execute(values).fetchall()
        finally:
            con.close()

    assert subprocess.run(fazhi, env=env, capture_output=True, text=True, timeout=300).returncode == 0
    before = figures()
    published.write_bytes(b"not a database" * 100)
    again = subprocess.run(fazhi, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "does not open (damaged?): it is published again" in again.stderr
    assert figures() == before and len(before) > 0

    # the working database damaged: the run says where to turn; moved aside, the warehouse is
    # built again from the sources, with the same figures (docs/operations.md, "A damaged database")
    work = home / "work.duckdb"
    work.write_bytes(bytes(8192) + work.read_bytes()[8192:])  # its headers zeroed
    broken = subprocess.run(fazhi, env=env, capture_output=True, text=True, timeout=300)
    assert broken.returncode == 1 and "a database file is damaged: docs/operations.md" in broken.stderr
    work.rename(home / "work.duckdb.damaged")
    rebuilt = subprocess.run(fazhi, env=env, capture_output=True, text=True, timeout=300)
    assert rebuilt.returncode == 0, rebuilt.stderr[-2000:]
    assert figures() == before
