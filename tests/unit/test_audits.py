"""Pre-publish audits with a severity: `fail` blocks the publish, `warn` is recorded in
audit.audit_finding and logged, and the publish goes on."""

from __future__ import annotations

import hashlib
import shutil

import pytest

from tests.conftest import query
from tests.fixtures import mini

FEW_TOWNSHIPS = """\
-- severity: {severity}
-- A county with fewer than three townships (the mini county has two).
select 'few_townships' as audit, 'county ' || county_code || ': ' || count(*) || ' townships' as detail
from ref.township
group by county_code
having count(*) < 3
"""


@pytest.fixture
def settings(mini_run, tmp_path, monkeypatch):
    """A copy of the mini county's home, its audits those of the product plus `few_townships`
    (written by each test with the severity it needs)."""
    from warehouse import audit
    from warehouse.config import load_settings

    home = tmp_path / "home"
    shutil.copytree(mini_run.settings.home, home, symlinks=True)
    audits = tmp_path / "audits"
    shutil.copytree(audit.AUDITS_DIR, audits)
    monkeypatch.setattr(audit, "AUDITS_DIR", audits)
    return load_settings(home)


def _publications(settings) -> int:
    return query(settings.work_db, "select count(*) from audit.publication")[0][0]


def _findings(settings) -> list[tuple]:
    return query(settings.work_db, "select audit, severity, detail from audit.audit_finding order by all")


def test_the_product_audits_declare_their_severity():
    from warehouse.audit import load_audits

    assert {(a.name, a.severity) for a in load_audits()} == {
        ("indicator_sanity", "fail"),
        ("reconciliation", "fail"),
        ("townships_present", "fail"),
    }


def test_a_warn_audit_is_recorded_and_logged_and_does_not_block(settings, caplog):
    from warehouse import audit, pipeline

    (audit.AUDITS_DIR / "few_townships.sql").write_text(FEW_TOWNSHIPS.format(severity="warn"), encoding="utf-8")
    before = _publications(settings)
    with caplog.at_level("WARNING", logger="fazhi"):
        published = pipeline.audit_and_publish(settings)
    assert _publications(settings) == before + 1 and published.exists()
    assert _findings(settings) == [("few_townships", "warn", f"county {mini.COUNTY}: 2 townships")]
    assert any("few_townships" in m and f"county {mini.COUNTY}: 2 townships" in m for m in caplog.messages)


def test_a_fail_audit_blocks_the_publish_and_is_recorded(settings):
    from warehouse import audit, pipeline

    (audit.AUDITS_DIR / "few_townships.sql").write_text(FEW_TOWNSHIPS.format(severity="fail"), encoding="utf-8")
    before = _publications(settings)
    digest = hashlib.sha256(settings.published_db.read_bytes()).hexdigest()
    with pytest.raises(audit.AuditFailed) as err:
        pipeline.audit_and_publish(settings)
    assert err.value.findings == [("few_townships", f"county {mini.COUNTY}: 2 townships")]
    assert _publications(settings) == before
    assert hashlib.sha256(settings.published_db.read_bytes()).hexdigest() == digest
    assert _findings(settings) == [("few_townships", "fail", f"county {mini.COUNTY}: 2 townships")]


@pytest.mark.parametrize("header", ["", "-- severity: maybe\n", "-- severity: warn\n-- severity: fail\n"])
def test_an_audit_without_one_valid_severity_is_refused_naming_the_file(settings, header):
    from warehouse import audit, pipeline

    path = audit.AUDITS_DIR / "few_townships.sql"
    path.write_text(header + FEW_TOWNSHIPS.split("\n", 1)[1], encoding="utf-8")
    with pytest.raises(audit.AuditDeclarationError, match=str(path)):
        pipeline.audit_and_publish(settings)
