"""The pseudonymisation key: at least 32 bytes, one source (the environment and the key file
agreeing), its fingerprint kept in the warehouse; another key stops the run, and the documented
re-key procedure (docs/operations.md) gives the figures of a warehouse built with the new key."""

from __future__ import annotations

import pytest

from tests.conftest import make_mini_home, query, run_steps
from warehouse.config import ConfigError, load_settings

KEY = "test-key-not-secret-0123456789abcdef"
OTHER_KEY = "another-key-also-not-secret-0123456789"
EDITION_TABLES = tuple(f"indicator_edition{part}" for part in ("", "_value", "_evidence", "_change"))
FIGURES = "select year, township_code, indicator_code, value, numerator, denominator from mart.indicator_value"


@pytest.fixture
def home(tmp_path):
    return make_mini_home(tmp_path / "home")


def _key_file(home, text: str) -> None:
    (home / "secrets").mkdir(exist_ok=True)
    (home / "secrets" / "hmac.key").write_text(text + "\n")
    cfg = (home / "fazhi.toml").read_text(encoding="utf-8")
    if "[pseudonymisation]" not in cfg:
        cfg += '\n[pseudonymisation]\nkey_file = "secrets/hmac.key"\n'
        (home / "fazhi.toml").write_text(cfg, encoding="utf-8")


def test_a_key_shorter_than_32_bytes_is_refused(home, monkeypatch):
    monkeypatch.setenv("FAZHI_HMAC_KEY", "k" * 31)
    with pytest.raises(ConfigError, match="31 bytes; at least 32"):
        load_settings(home).hmac_key()
    monkeypatch.setenv("FAZHI_HMAC_KEY", "k" * 32)
    assert load_settings(home).hmac_key() == b"k" * 32


def test_the_environment_and_the_key_file_must_agree(home, monkeypatch):
    _key_file(home, OTHER_KEY)
    with pytest.raises(ConfigError) as err:
        load_settings(home).hmac_key()
    message = str(err.value)
    assert "FAZHI_HMAC_KEY" in message and "hmac.key" in message and "keep one" in message
    assert KEY not in message and OTHER_KEY not in message  # fingerprints only
    _key_file(home, KEY)  # the same key in both: fine
    assert load_settings(home).hmac_key() == KEY.encode()
    monkeypatch.delenv("FAZHI_HMAC_KEY")  # the key file alone
    assert load_settings(home).hmac_key() == KEY.encode()


def test_the_demo_writes_no_key_file_beside_an_environment_key(tmp_path, monkeypatch):
    from warehouse.config import write_demo_config

    write_demo_config(tmp_path / "with-env")
    assert not (tmp_path / "with-env" / "secrets" / "hmac.key").exists()
    monkeypatch.delenv("FAZHI_HMAC_KEY")
    write_demo_config(tmp_path / "demo")
    assert len(load_settings(tmp_path / "demo").hmac_key()) == 64


def test_another_key_stops_the_run_and_the_re_key_procedure_starts_a_new_warehouse(home, monkeypatch):
    from warehouse import pipeline
    from warehouse.db import open_work_db

    run_steps(home)
    settings = load_settings(home)
    pipeline.rebuild_year(settings, 2023)
    pipeline.audit_and_publish(settings)
    published = home / "published" / "fazhi.duckdb"
    before = query(published, FIGURES + " order by all")
    (recorded,) = query(home / "work.duckdb", "select fingerprint from audit.key_fingerprint")[0]

    monkeypatch.setenv("FAZHI_HMAC_KEY", OTHER_KEY)  # re-sent rosters under a new key broke ENF09
    with pytest.raises(ConfigError) as err:
        run_steps(home)
    assert recorded in str(err.value) and "Changing the pseudonymisation key" in str(err.value)
    assert OTHER_KEY not in str(err.value)
    assert query(published, FIGURES + " order by all") == before
    assert query(home / "work.duckdb", "select count(*) from audit.key_fingerprint") == [(1,)]

    # docs/operations.md, "Changing the pseudonymisation key": archive the working database, carry
    # the editions into a new one, run (every source delivers again, pseudonymised anew)
    (home / "work.duckdb").rename(home / "work-oldkey.duckdb")
    con = open_work_db(home / "work.duckdb")
    con.execute("attach ? as old (read_only)", [str(home / "work-oldkey.duckdb")])
    for table in EDITION_TABLES:
        con.execute(f"insert into mart.{table} select * from old.mart.{table}")
    con.close()
    run_steps(home)
    assert query(published, FIGURES + " order by all") == before  # the same figures, new pseudonyms
    assert query(published, "select year, edition from mart.indicator_edition") == [(2023, 1)]
    fingerprints = query(home / "work.duckdb", "select fingerprint from audit.key_fingerprint")
    assert len(fingerprints) == 1 and fingerprints[0][0] != recorded
