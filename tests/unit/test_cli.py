"""The CLI: light start-up for read-only commands, and the indicators output formats."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import indicator_count
from tests.fixtures import mini

HEAVY = ("prefect", "great_expectations", "pandas")


def _modules_after(argv: list[str]) -> dict:
    code = (
        "import sys, json\n"
        "from flows.cli import main\n"
        "try:\n"
        f"    rc = main({argv!r})\n"
        "except SystemExit as e:\n"
        "    rc = e.code\n"
        f"print(json.dumps({{m: m in sys.modules for m in {HEAVY!r}}}), file=sys.stderr)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stderr.strip().splitlines()[-1]) | {"stdout": out.stdout}


def test_help_and_indicators_do_not_import_heavy_modules(mini_run):
    assert not any(v for k, v in _modules_after(["--help"]).items() if k != "stdout")
    got = _modules_after(["indicators", "--year", "2023", "--home", str(mini_run.settings.home), "--format", "json"])
    assert not got["prefect"] and not got["great_expectations"] and not got["pandas"]
    rows = json.loads(got["stdout"])
    assert {r["township_code"] for r in rows} == {mini.A, mini.B, mini.COUNTY}


def test_report_and_export_do_not_import_heavy_modules(mini_run, tmp_path):
    home = str(mini_run.settings.home)
    argv = ["report", "--year", "2023", "--township", "贡川镇", "--out", str(tmp_path / "r.docx"), "--home", home]
    got = _modules_after(argv)
    assert not any(v for k, v in got.items() if k != "stdout") and (tmp_path / "r.docx").stat().st_size > 10_000
    for fmt in ("xlsx", "csv"):
        got = _modules_after(["export", "--year", "2023", "--out", str(tmp_path / f"c.{fmt}"), "--home", home])
        assert not any(v for k, v in got.items() if k != "stdout") and (tmp_path / f"c.{fmt}").exists()


def test_indicators_json_for_one_township(mini_run, capsys):
    from flows.cli import main

    assert (
        main(
            [
                "indicators",
                "--year",
                "2023",
                "--township",
                "贡川镇",
                "--format",
                "json",
                "--home",
                str(mini_run.settings.home),
            ]
        )
        == 0
    )
    rows = {r["indicator_code"]: r for r in json.loads(capsys.readouterr().out)}
    assert len(rows) == indicator_count()
    assert rows["ENF01"]["value"] == 3 and isinstance(rows["ENF01"]["value"], int)
    assert rows["ENF05"]["value"] == 0.6 and rows["ENF05"]["numerator"] == 3 and rows["ENF05"]["denominator"] == 5
    assert rows["OGI03"]["qualifier"] == ">=" and rows["OGI03"]["value"] == 200
    assert rows["ENF10"]["value"] == 1700.5
    for key in (
        "year",
        "township_code",
        "township_name",
        "indicator_code",
        "value",
        "numerator",
        "denominator",
        "unit",
        "qualifier",
    ):
        assert key in rows["ENF01"]


def test_indicators_table_and_csv(mini_run, capsys):
    from flows.cli import main

    home = str(mini_run.settings.home)
    assert main(["indicators", "--year", "2023", "--home", home]) == 0
    table = capsys.readouterr().out
    assert "永安市" in table and "贡川镇" in table and "60.0%" in table and "ENF05 平台办案率(%)" in table
    assert main(["indicators", "--year", "2023", "--township", mini.B, "--format", "csv", "--home", home]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("year,township_code") and len(lines) == 1 + indicator_count()


def test_missing_configuration_is_a_clear_error(tmp_path, capsys):
    from flows.cli import main

    assert main(["indicators", "--year", "2023", "--home", str(tmp_path)]) == 2
    assert "fazhi.toml" in capsys.readouterr().err


def test_quarantine_lists_open_entries_without_heavy_modules(mini_run):
    home = str(mini_run.settings.home)
    got = _modules_after(["quarantine", "--home", home, "--format", "json"])
    assert not got["prefect"] and not got["great_expectations"] and not got["pandas"]
    entries = json.loads(got["stdout"])
    assert {(e["source"], e["business_key"]) for e in entries} >= {("enforcement", k) for k in ("X1", "X2", "X3")}
    x3 = next(e for e in entries if e["business_key"] == "X3")
    assert x3["township_code"] == mini.A and x3["rules"] == ["ENF-R03"] and x3["row_number"] == 2
    assert x3["source_file"] == "page-000003.json" and x3["batch_id"].startswith("enforcement-")
    assert "行为类型" in x3["message_zh"] and "act_type" in x3["message_en"]
    argv = ["quarantine", "--home", home, "--source", "mediation", "--township", "贡川镇", "--format", "json"]
    got = _modules_after(argv)
    assert [e["business_key"] for e in json.loads(got["stdout"])] == ["X8"]
    table = _modules_after(["quarantine", "--home", home, "--township", mini.A])["stdout"]
    assert "贡川镇" in table and "X3" in table and "ENF-R03" in table and "X1" not in table


# ---- mistakes answered (issue 17): through the installed console script -------------------------

FAZHI = str(Path(sys.executable).with_name("fazhi"))


def fazhi(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([FAZHI, *args], capture_output=True, text=True, env=env, timeout=120)


NEAREST_TOWNSHIP = "no township or county 贡川; 是否指 / did you mean 贡川镇?"


def test_unknown_names_are_refused_naming_the_valid_ones_and_the_nearest(mini_run):
    home = str(mini_run.settings.home)
    cases = [
        (["indicators", "--year", "2030"], "no year 2030; 是否指 / did you mean 2023? 可选 / valid: 2022, 2023"),
        (["indicators", "--year", "2023", "--township", "贡川"], NEAREST_TOWNSHIP),
        (["indicators", "--year", "2023", "--edition", "1"], "no edition 1 of 2023: 尚无 / there is none yet"),
        (["explain", "--year", "2023", "--township", "贡川镇", "--indicator", "ENF99"], "did you mean ENF09?"),
        (["quarantine", "--township", "不存在镇"], "no township 不存在镇; 是否指 / did you mean"),
        (["quarantine", "--source", "mediaton"], "no source mediaton; 是否指 / did you mean mediation?"),
        (["accept-extract", "--source", "nosuch", "--reason", "x"], "no source nosuch in"),
    ]
    for argv, words in cases:
        done = fazhi(*argv, "--home", home)
        assert done.returncode == 2 and words in done.stderr and done.stdout == "", (argv, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1
    valid = fazhi("quarantine", "--township", "安砂镇", "--source", "mediation", "--home", home)
    assert valid.returncode == 0  # known names still answer, also with nothing open
    assert "贡川镇" in fazhi("quarantine", "--township", "不存在镇", "--home", home).stderr  # the valid ones listed


def test_run_on_a_demo_home_names_the_missing_tokens_before_any_pull(tmp_path):
    from warehouse.config import write_demo_config

    write_demo_config(tmp_path, http=True)
    env = {k: v for k, v in os.environ.items() if not k.endswith("_TOKEN")}
    done = fazhi("run", "--home", str(tmp_path), env=env)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "FAZHI_ENFORCEMENT_TOKEN" in done.stderr and "FAZHI_MEDIATION_TOKEN" in done.stderr
    assert "fazhi demo" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "landing").exists() and not (tmp_path / "work.duckdb").exists()  # nothing pulled


def test_indicators_says_in_one_line_that_a_read_write_session_holds_the_database(mini_run, tmp_path):
    import shutil

    import duckdb

    home = tmp_path / "home"
    (home / "published").mkdir(parents=True)
    shutil.copy(mini_run.settings.home / "fazhi.toml", home / "fazhi.toml")
    shutil.copy(mini_run.settings.published_db, home / "published" / "fazhi.duckdb")
    analyst = duckdb.connect(str(home / "published" / "fazhi.duckdb"))  # an analyst forgot -readonly
    try:
        done = fazhi("indicators", "--year", "2023", "--home", str(home))
    finally:
        analyst.close()
    assert done.returncode == 3 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert f"(PID {os.getpid()})" in done.stderr and "open it read-only" in done.stderr
    assert fazhi("indicators", "--year", "2023", "--home", str(home)).returncode == 0  # released: readable again


def test_exit_codes_are_chosen_in_main_only():
    """Commands raise; main() alone maps an error's kind (warehouse/errors.py) to the exit code, so
    the same condition gets the same code from every command: no command catches an error to
    return a code of its own."""
    import ast
    import inspect

    import flows.cli

    tree = ast.parse(inspect.getsource(flows.cli))
    commands = [f for f in tree.body if isinstance(f, ast.FunctionDef) and f.name.startswith(("cmd_", "_run"))]
    assert len(commands) >= 14
    catching = [f.name for f in commands for node in ast.walk(f) if isinstance(node, ast.ExceptHandler)]
    assert catching == []


def test_the_same_condition_gets_the_same_code_from_every_command(tmp_path):
    """A home without fazhi.toml: exit 2 with the same one-line message, whichever command."""
    home = str(tmp_path)
    for argv in (
        ["indicators", "--year", "2023"],
        ["quarantine"],
        ["report", "--year", "2023", "--township", "贡川镇"],
        ["export", "--year", "2023", "--out", str(tmp_path / "x.xlsx")],
        ["accept-extract", "--source", "enforcement", "--reason", "x"],
        ["check-config"],
        ["run"],
        ["rebuild", "--year", "2023"],
    ):
        done = fazhi(*argv, "--home", home)
        assert done.returncode == 2, (argv, done.stderr)
        assert (
            done.stderr.strip() == f"错误 / error: 找不到配置文件 {tmp_path / 'fazhi.toml'} / no configuration at "
            f"{tmp_path / 'fazhi.toml'}: run `fazhi demo` or write one (see README)"
        ), argv


def test_an_output_the_system_refuses_is_said_as_the_systems_error_not_unexpected(mini_run, tmp_path):
    """--out under a regular file (ENOTDIR): each command writing a file says the operating
    system's error in one line, exit 1, nothing written."""
    home = str(mini_run.settings.home)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    cases = [
        ["report", "--year", "2023", "--township", "贡川镇", "--home", home, "--out", str(blocker / "r.docx")],
        ["export", "--year", "2023", "--home", home, "--out", str(blocker / "c.xlsx")],
        ["export", "--year", "2023", "--home", home, "--out", str(blocker / "c.csv")],
        ["template", "training", "--out", str(blocker / "t.xlsx")],
    ]
    for argv in cases:
        done = fazhi(*argv)
        assert done.returncode == 1, (argv, done.stderr)
        assert "操作系统错误 / operating-system error" in done.stderr and "unexpected" not in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert blocker.read_text() == "not a folder"


def test_a_seed_port_or_demo_year_out_of_range_is_refused_before_anything_runs(tmp_path):
    """`fazhi sample --seed -1` failed in numpy as an unexpected ValueError after a start-up; a
    port beyond 65535 failed when the server bound it; `fazhi demo --year 1999` generated and ran
    the whole demo, then said there was no 1999. Each is refused first (exit 2)."""
    cases = [
        (["sample", "--out", str(tmp_path / "s"), "--seed", "-1"], "argument --seed: 应在 0 与 4294967295 之间"),
        (["demo", "--home", str(tmp_path / "d"), "--seed", "abc"], "argument --seed: 应为整数 / must be an integer"),
        (["simulate", "--data", str(tmp_path), "--port", "99999"], "a port must be from 1 to 65535: 99999"),
        # the year the demo prints, checked before it generates and runs the whole sample
        (["demo", "--home", str(tmp_path / "d"), "--year", "1999"], "no year 1999 in the sample data"),
    ]
    for argv, words in cases:
        done = fazhi(*argv)
        assert done.returncode == 2 and words in done.stderr, (argv, done.stderr)
    assert not (tmp_path / "s").exists() and not (tmp_path / "d").exists()


def test_a_template_lists_the_homes_townships_or_refuses_a_list_it_cannot_read(tmp_path):
    """`fazhi template --home H`: the codes sheet holds H's townships. A home whose township list
    was missing got the sample county's (another county's codes, handed to its townships); now it
    is refused naming the list (exit 2), nothing written."""
    from openpyxl import load_workbook

    from tests.conftest import make_mini_home

    home = make_mini_home(tmp_path / "home")
    out = tmp_path / "t.xlsx"
    done = fazhi("template", "training", "--home", str(home), "--out", str(out))
    assert done.returncode == 0, done.stderr
    cells = {str(c.value) for ws in load_workbook(out, read_only=True) for row in ws.iter_rows() for c in row}
    assert {mini.A, mini.B} <= cells
    out.unlink()
    (home / "data" / "townships.csv").unlink()
    missing = fazhi("template", "training", "--home", str(home), "--out", str(out))
    assert missing.returncode == 2 and "no township list at" in missing.stderr, missing.stderr
    assert not out.exists()
