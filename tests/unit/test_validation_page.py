"""The validation report's page (templates/validation.html.j2): every value from a source system
is escaped, a missing value shows as nothing, and the template ships with the package.
The page's content is checked on a real run in tests/integration/test_validation_report.py."""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

from warehouse.reports.validation import TEMPLATES_DIR, ReportData, render_html

ROOT = Path(__file__).parents[2]
HOSTILE = '<script>alert("x")</script>'


def _data() -> ReportData:
    source = {
        "source": "enforcement",
        "status": "stopped",
        "batch_id": None,
        "received_rows": 1200,
        "loaded_rows": None,
        "quarantined_rows": 3,
        "message_zh": f"文件 {HOSTILE}",
        "message_en": "a & b",
        "rules": ["ENF-B02"],
    }
    entry = {
        "township_code": "350481100",
        "township_name": "贡川镇",
        "rule": "ENF-R03",
        "source": "enforcement",
        "table_name": "case",
        "source_file": f"{HOSTILE}.json",
        "row_number": None,
        "business_key": "K1",
        "batch_id": "b1",
        "since": "2024-01-02",
        "is_new": True,
        "message_zh": "必填字段为空",
        "message_en": "required field empty",
    }
    return ReportData("run-1", "2024-01-02 03:04:05 +0800", [source], [entry])


def test_values_from_the_sources_are_escaped():
    page = render_html(_data())
    assert HOSTILE not in page and "<script" not in page
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;.json" in page and "a &amp; b" in page


def test_missing_values_show_as_nothing_or_a_dash():
    page = render_html(_data())
    assert "None" not in page
    assert '<td class="n">1,200</td><td class="n">—</td>' in page  # received, then loaded: None
    assert "<td>2024-01-02</td>" in page and '<td class="n"></td>' in page  # the entry's row: None


def test_the_template_ships_with_the_package():
    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["*"]
    files = [p.name for p in TEMPLATES_DIR.iterdir() if p.is_file()]
    assert "validation.html.j2" in files
    assert all(any(fnmatch.fnmatch(f, g) for g in globs) for f in files), files
