"""Shared fixtures. The environment is quiet and offline; library code is tested without
Prefect; one Prefect test harness serves the whole session for the flow tests."""

from __future__ import annotations

import os

os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ["FAZHI_HMAC_KEY"] = "test-key-not-secret-0123456789abcdef"  # 35 bytes: >= 32

from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import duckdb  # noqa: E402
import pytest  # noqa: E402

from tests.fixtures import mini  # noqa: E402


@dataclass
class PipelineRun:
    settings: object
    outcomes: dict
    prepared: dict


def make_mini_home(root: Path) -> Path:
    (root / "data").mkdir(parents=True, exist_ok=True)
    mini.build(root / "data")
    (root / "fazhi.toml").write_text(mini.CONFIG, encoding="utf-8")
    return root


def run_steps(home: Path) -> PipelineRun:
    """Every pipeline step, in order, without Prefect."""
    from warehouse import pipeline
    from warehouse.config import load_settings

    settings = load_settings(home)
    pipeline.prepare_warehouse(settings)
    outcomes, prepared = {}, {}
    for name, source in settings.sources.items():
        batch = pipeline.land_source(settings, source)
        if batch is None:
            continue
        prepared[name] = pipeline.parse_and_validate(settings, batch)
        outcomes[name] = pipeline.load_prepared(settings, prepared[name], "run-test")
    pipeline.compute(settings)
    pipeline.audit_and_publish(settings)
    return PipelineRun(settings, outcomes, prepared)


@pytest.fixture(scope="session")
def mini_run(tmp_path_factory) -> PipelineRun:
    return run_steps(make_mini_home(tmp_path_factory.mktemp("mini")))


def indicator_count() -> int:
    """The indicators the catalogue defines: tests derive row counts from it, never from a literal."""
    from warehouse.compute import catalogue_frame

    return len(catalogue_frame())


def query(db: Path, sql: str, params=None) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


@pytest.fixture(scope="session")
def sample_home(tmp_path_factory, prefect_harness) -> Path:
    """The shipped sample through the nightly flow, once per session (贡川镇 2023 reproduces the
    seed report): shared by the end-to-end tests and the outputs' tests."""
    from flows.nightly import nightly
    from warehouse.config import write_demo_config
    from warehouse.demo.sample.generate import generate_sample

    home = tmp_path_factory.mktemp("demo")
    generate_sample(home / "sample")
    write_demo_config(home)
    result = nightly(home=str(home))
    assert {s["status"] for s in result["sources"].values()} == {"loaded"}
    return home


@pytest.fixture(scope="session")
def prefect_harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=60):
        yield
