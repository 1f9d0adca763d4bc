"""The floor of the required work (benchmarks/floor.py) does the work it stands for: on a mini
county run by the pipeline's steps, it copies every landed byte, runs every expectation the
pipeline ran, and writes every row of the layers, the marts and the published tables."""

from __future__ import annotations

import pytest

from benchmarks.floor import kept_tables, required_work_floor
from tests.conftest import make_mini_home, query


@pytest.fixture(scope="module")
def floored(tmp_path_factory):
    from warehouse import pipeline
    from warehouse.config import load_settings
    from warehouse.publish import published_tables

    settings = load_settings(make_mini_home(tmp_path_factory.mktemp("floor")))
    pipeline.prepare_warehouse(settings)
    kept, expectations, landed_bytes = {}, 0, 0
    for source in settings.sources.values():
        batch = pipeline.land_source(settings, source)
        landed_bytes += sum(f.bytes for f in batch.files)
        prepared = pipeline.parse_and_validate(settings, batch)
        kept |= kept_tables(prepared, pipeline.suite_parameters(settings, batch), settings.home / "kept")
        expectations += sum(len(t.results) for t in prepared.tables if t.row_count)
        pipeline.load_prepared(settings, prepared, "floor-test")
    pipeline.compute(settings)
    published = pipeline.audit_and_publish(settings)
    tables = set(kept)
    floor = required_work_floor(settings.home, settings.work_db, kept)
    rows = {
        schema: sum(
            query(settings.work_db, f"select count(*) from {t}")[0][0]
            for (t,) in query(
                settings.work_db,
                "select schema_name || '.' || table_name from duckdb_tables() where schema_name = ?",
                [schema],
            )
        )
        for schema in ("raw", "core", "mart")
    }
    rows["published"] = sum(query(published, f"select count(*) from {t}")[0][0] for t in published_tables())
    return floor, tables, expectations, landed_bytes, rows, settings


def test_the_floor_copies_every_landed_byte_and_runs_every_expectation(floored):
    floor, tables, expectations, landed_bytes, _, settings = floored
    assert set(floor) == {"land", "validate", "load", "compute", "audit+publish"}
    assert all(part["seconds"] > 0 for part in floor.values())
    landing = sum(f.stat().st_size for f in (settings.home / "landing").rglob("*") if f.is_file())
    assert floor["land"]["done"] == landing > landed_bytes > 0  # the files and their manifests
    assert tables == {"enforcement_act", "mediation_case", "training_session", "training_attendance"} | {
        "training_staff",
        "annual_return_item",
    }
    assert floor["validate"]["done"] == expectations > 0
    assert not (settings.home / "floor").exists()  # its scratch folder removed
    assert not list((settings.home / "kept").iterdir())  # and the parsed tables kept for it


def test_the_floor_writes_every_row_of_the_layers_the_marts_and_the_published_tables(floored):
    floor, _, _, _, rows, _ = floored
    assert floor["load"]["done"] == rows["raw"] + rows["core"] > 0
    assert floor["compute"]["done"] == rows["mart"] > 0
    assert floor["audit+publish"]["done"] == rows["published"] > rows["core"]
