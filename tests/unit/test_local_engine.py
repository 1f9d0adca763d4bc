"""A run without a Prefect server (warehouse/runs.py LocalEngine): a source's pull is retried as
Prefect's task retries would be (same backoff, same rule), and a failing source fails the run
alone, naming its cause, while the others are published."""

from __future__ import annotations

import pytest

from tests.conftest import make_mini_home, query
from tests.fixtures import mini
from tests.processes import free_port

ENF01 = "select value from mart.indicator_value where year = 2023 and township_code = ? and indicator_code = 'ENF01'"


def _mediation_over_http(home, url: str) -> None:
    cfg = home / "fazhi.toml"
    text = cfg.read_text(encoding="utf-8").replace('kind = "json_pages"\npath = "data/mediation"', "")
    source = f'[sources.mediation]\nkind = "http"\nurl = "{url}"\nmax_retry_seconds = 0'
    text = text.replace("[sources.mediation]", source)
    cfg.write_text(text + "\n[orchestration]\nland_retries = 2\nland_retry_delay_seconds = 10\n", encoding="utf-8")


def _run(home):
    from warehouse.runs import LocalEngine, run_nightly

    waits: list[float] = []
    with pytest.raises(Exception) as failed:
        run_nightly(LocalEngine(sleep=waits.append), str(home))
    return failed.value, waits


def test_an_unreachable_source_is_retried_with_backoff_and_fails_alone(tmp_path, monkeypatch):
    home = make_mini_home(tmp_path / "home")
    _mediation_over_http(home, f"http://127.0.0.1:{free_port()}/")  # nothing listens there
    monkeypatch.setenv("FAZHI_MEDIATION_TOKEN", "t")
    error, waits = _run(home)
    assert type(error).__name__ == "RunFailed" and "数据源 mediation: 无法连接 / unreachable" in str(error)
    assert len(waits) == 2 and 8 <= waits[0] <= 12 and 16 <= waits[1] <= 24  # 10 s, then 20 s, ±20 % jitter
    assert query(home / "published" / "fazhi.duckdb", ENF01, [mini.A]) == [(3.0,)]  # the others published


def test_a_refused_token_is_not_retried(tmp_path, monkeypatch):
    from warehouse.demo.simulator import Simulator

    home = make_mini_home(tmp_path / "home")
    with Simulator(home / "data", token="the-right-token") as sim:
        _mediation_over_http(home, sim.url)
        monkeypatch.setenv("FAZHI_MEDIATION_TOKEN", "a-wrong-token")
        error, waits = _run(home)
    assert "数据源 mediation: 认证失败 / auth (http-auth)" in str(error)
    assert waits == []
