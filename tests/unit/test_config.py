"""fazhi.toml read into its schema (warehouse/config.py): every table typed, defaults filled in, and
anything the schema does not know refused naming the file, the key and the nearest valid name;
`fazhi check-config` prints the effective settings with every secret masked."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.conftest import make_mini_home, query
from tests.fixtures import mini
from warehouse.config import (
    SECTIONS,
    ConfigError,
    PerformanceOptions,
    load_settings,
    source_kinds,
    write_demo_config,
)

FAZHI = str(Path(sys.executable).with_name("fazhi"))


def fazhi(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([FAZHI, *args], capture_output=True, text=True, env=env, timeout=120)


def _home(tmp_path: Path, text: str) -> Path:
    (tmp_path / "fazhi.toml").write_text(text, encoding="utf-8")
    return tmp_path


def _refusal(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as err:
        load_settings(_home(tmp_path, text))
    message = str(err.value)
    assert message.startswith(f"{tmp_path / 'fazhi.toml'}: "), message  # the file, first
    return message


def test_an_empty_file_gives_every_default(tmp_path):
    s = load_settings(_home(tmp_path, ""))
    assert s.sources == {} and s.townships_csv == tmp_path / "townships.csv" and s.first_year == 2022
    assert s.lock_wait_seconds == 600.0 and s.landing_retention_days is None and s.report_template is None
    assert s.orchestration.task_runner == "threads" and s.orchestration.land_retries == 2
    assert s.orchestration.concurrency_limit == "fazhi-warehouse-writer"
    assert s.alerts.webhook_url is None and s.alerts.timeout_seconds == 5.0
    assert s.performance.workers == min(4, os.cpu_count() or 1)


def test_the_schema_defaults_are_the_library_defaults():
    """[performance] defaults are those the parse and validation steps use when called directly."""
    from expectations.validate import CHUNK_ROWS
    from warehouse.sources.parsed import FILES_PER_GROUP

    assert (PerformanceOptions().chunk_rows, PerformanceOptions().files_per_group) == (CHUNK_ROWS, FILES_PER_GROUP)


def test_values_are_typed(tmp_path):
    text = (
        "[pipeline]\nfirst_year = 2023\nrequired_training_hours = 40\n[landing]\nretention_days = 90\n"
        '[reports]\ntemplate = "t.docx"\n'
        '[orchestration]\ntask_runner = "dask"\ndask_address = "tcp://127.0.0.1:8786"\nslot_wait_seconds = 60\n'
        '[performance]\nworkers = 1\n[alerts]\nkeyword = "法治指标"\n'
        '[sources.enforcement]\nkind = "http"\nurl = "https://a.example/x/"\nread_timeout = 9\nverify = "ca.pem"\n'
        '[sources.returns]\nkind = "spreadsheet_drop"\nsupersede = "township_year"\n'
    )
    (tmp_path / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n", encoding="utf-8")
    s = load_settings(_home(tmp_path, text))
    assert s.required_training_hours == 40.0 and isinstance(s.required_training_hours, float)
    assert s.landing_retention_days == 90 and s.report_template == tmp_path / "t.docx"
    assert s.orchestration.dask_address == "tcp://127.0.0.1:8786" and s.orchestration.slot_wait_seconds == 60.0
    assert s.performance.workers == 1 and s.alerts.keyword == "法治指标"
    enforcement = s.sources["enforcement"]
    assert enforcement.http.read_timeout == 9.0 and enforcement.http.verify == str(tmp_path / "ca.pem")
    assert enforcement.path == tmp_path / "landing" / "enforcement"
    assert s.sources["returns"].supersede == "township_year"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        # the example: a drop folder silently became a full-extract source
        (
            '[sources.training]\nkind = "spreadsheet_drops"\npath = "t"\n',
            '[sources.training] kind = "spreadsheet_drops": 未知的数据源类型 spreadsheet_drops / unknown source kind '
            "spreadsheet_drops; 是否指 / did you mean spreadsheet_drop? 可选 / valid: spreadsheet_drop",
        ),
        ('[sources.trainng]\nkind = "spreadsheet_drop"\n', "unknown source trainng; 是否指 / did you mean training?"),
        ('[sources.training]\npath = "t"\n', "[sources.training] 缺少 kind / needs `kind`"),
        (
            '[orchestration]\ntask_runer = "dask"\n',
            "[orchestration] 未知的设置 task_runer / unknown setting task_runer; 是",
        ),
        ('[orchestration]\ntask_runner = "dsak"\n', 'task_runner = "dsak": 未知的取值 dsak / unknown value dsak; 是否'),
        ("[alert]\ntimeout_seconds = 5\n", "未知的配置节 alert / unknown section alert; 是否指 / did you mean alerts?"),
        ("first_year = 2022\n", "first_year 应写在 [pipeline] 下 / first_year belongs under [pipeline]"),
        ('[pipeline]\nfirst_year = "2022"\n', '[pipeline] first_year = "2022": 应为整数 / must be an integer'),
        ("[performance]\nworkers = 0\n", "[performance] workers = 0: 应不小于 1 / must be at least 1"),
        ("[landing]\nretention_days = -1\n", "[landing] retention_days = -1: 应不小于 0 / must be at least 0"),
        ('[sources.enforcement]\nkind = "http"\nurl = "u"\npage_sise = 9\n', "did you mean page_size?"),
        (
            '[sources.enforcement]\nkind = "http"\nurl = "u"\nverify = 0\n',
            "verify = 0: 应为布尔值 true 或 false 或 文本",
        ),
        ('[sources.mediation]\nkind = "json_pages"\n', "[sources.mediation] 缺少 path / needs `path`"),
        (
            '[sources.mediation]\nkind = "json_pages"\npath = "m"\nsupersede = "township_year"\n',
            "supersede applies to kind spreadsheet_drop only, not json_pages",
        ),
        (
            '[sources.enforcement]\nkind = "json_pages"\npath = "e"\n[sources.enforcement.fields]\nact_type = 1\n',
            "[sources.enforcement.fields] act_type: 应为字段名或字段名列表 / must be a field name or a list",
        ),
        (
            '[orchestration]\ndask_address = "tcp://h:1"\ndask_workers = 2\n',
            "set dask_address (an existing cluster) or dask_workers (a local one), not both",
        ),
        (
            '[orchestration]\ndask_address = "h:1"\n',
            "dask_address 应形如 tcp://主机:端口 / must look like tcp://host:port",
        ),
        # values the schema's types allow that no run can use (each once ran: 15 s of retries of
        # an "unreachable" source, a night of nothing published, minutes computing 2,000 years)
        (
            '[sources.enforcement]\nkind = "http"\nurl = "127.0.0.1:8765/"\n',
            '[sources.enforcement] url = "127.0.0.1:8765/": 应为 http(s) 网址(如 https://主机/路径) / must be '
            "an http(s) URL",
        ),
        (
            '[sources.enforcement]\nkind = "http"\nurl = "https://h/x"\nverify = "/nonexistent/ca.pem"\n',
            '[sources.enforcement] verify = "/nonexistent/ca.pem": 找不到该CA证书文件 /nonexistent/ca.pem / no CA',
        ),
        ("[pipeline]\nfirst_year = 0\n", "[pipeline] first_year = 0: 应在 2000 与今年("),
        ("[pipeline]\nfirst_year = 2099\n", "first_year = 2099: 应在 2000 与今年("),
        ("[pipeline]\nrequired_training_hours = -1\n", "required_training_hours = -1: 应不小于 0 / must be at least 0"),
    ],
)
def test_what_the_schema_does_not_know_is_refused_naming_it_and_the_nearest_name(tmp_path, text, words):
    assert words in _refusal(tmp_path, text)


def test_a_secret_value_is_never_quoted_in_a_refusal(tmp_path):
    message = _refusal(tmp_path, "[alerts]\nwebhook_url = 1234567\n")
    assert "webhook_url = …" in message and "1234567" not in message


def test_the_valid_sources_and_kinds_come_from_one_place():
    """The source registry's sources, each with the kinds its declaration allows."""
    from warehouse.sources import registry

    assert sorted(source_kinds()) == sorted(registry.source_names())
    assert source_kinds()["training"] == ("spreadsheet_drop",)
    assert set(source_kinds()["enforcement"]) == {"http", "json_pages"}


def test_every_shipped_configuration_fits_the_schema(tmp_path):
    """The demo's two configurations and the mini county's, as written."""
    for http, home in ((True, tmp_path / "http"), (False, tmp_path / "folders")):
        write_demo_config(home, http=http)
        assert set(load_settings(home).sources) == {"enforcement", "mediation", "training", "returns"}
    assert set(load_settings(_home(tmp_path, mini.CONFIG)).sources) == set(source_kinds())


def test_check_config_prints_the_effective_settings_with_secrets_masked(tmp_path):
    """Defaults filled in, secrets never shown (only where they are set and a fingerprint), and the
    printed settings are themselves a fazhi.toml that loads into the same settings."""
    from warehouse.demo.sample.generate import default_townships_csv

    home = tmp_path / "home"
    write_demo_config(home, http=True)
    for folder in ("training", "returns"):  # what check-config checks exists: the drop folders, the township list
        (home / "sample" / folder).mkdir(parents=True)
    shutil.copy(default_townships_csv(), home / "sample" / "townships.csv")
    with (home / "fazhi.toml").open("a", encoding="utf-8") as fh:
        fh.write('\n[sources.training.fields]\nhours = ["学分", "学时"]\n')
    hook_key, token = "robot-key-not-to-be-shown", "enforcement-token-not-to-be-shown"
    env = {k: v for k, v in os.environ.items() if not k.endswith("_TOKEN")} | {
        "FAZHI_ALERT_WEBHOOK_URL": f"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key={hook_key}",
        "FAZHI_ENFORCEMENT_TOKEN": token,
    }
    done = fazhi("check-config", "--home", str(home), env=env)
    assert done.returncode == 0, done.stderr
    shown = done.stdout
    for secret in (hook_key, token, os.environ["FAZHI_HMAC_KEY"]):
        assert secret not in shown
    from warehouse.key_fingerprint import fingerprint

    hook = fingerprint(env["FAZHI_ALERT_WEBHOOK_URL"].encode())
    assert f"set (FAZHI_ALERT_WEBHOOK_URL), host qyapi.weixin.qq.com, fingerprint {hook}" in shown
    assert f"set (env FAZHI_ENFORCEMENT_TOKEN), fingerprint {fingerprint(token.encode())}" in shown
    assert "未设置 / not set (FAZHI_MEDIATION_TOKEN)" in shown
    assert f"FAZHI_HMAC_KEY (fingerprint {fingerprint(os.environ['FAZHI_HMAC_KEY'].encode())}" in shown
    for default in ("chunk_rows = 200000", 'task_runner = "threads"', "max_pages = 20000", "lock_wait_seconds = 600.0"):
        assert default in shown

    again = tmp_path / "again"
    again.mkdir()
    (again / "fazhi.toml").write_text(shown, encoding="utf-8")
    tomllib.loads(shown)
    before, after = load_settings(home), load_settings(again)
    for section in SECTIONS:
        if section != "alerts":  # the webhook is shown masked, as a comment
            assert getattr(after, section) == getattr(before, section), section
    relocated = {n: dataclasses.replace(s, path=s.path.relative_to(again)) for n, s in after.sources.items()}
    assert relocated == {n: dataclasses.replace(s, path=s.path.relative_to(home)) for n, s in before.sources.items()}


def test_an_alert_webhook_that_is_not_an_http_url_stops_the_run_before_it_starts(tmp_path):
    """A failed run's alert could not reach a webhook like `ftp://…` or a pasted fragment: found at
    the next failure, too late. `check-config` and `run` refuse it (exit 2), naming where it is
    set and never its value (it carries the robot's key); a run with an http(s) URL goes on."""
    from tests.conftest import make_mini_home

    home = make_mini_home(tmp_path / "home")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env |= {"PREFECT_HOME": str(tmp_path / "prefect"), "FAZHI_PREFECT": "0"}
    for wrong in ("qyapi.weixin.qq.com/cgi-bin/webhook/send?key=secret-robot-key", "ftp://secret-robot-key"):
        for command in ("check-config", "run"):
            done = fazhi(command, "--home", str(home), env=env | {"FAZHI_ALERT_WEBHOOK_URL": wrong})
            assert done.returncode == 2, done.stderr
            assert "the alert webhook in FAZHI_ALERT_WEBHOOK_URL is not an http(s) URL" in done.stderr
            assert "secret-robot-key" not in done.stdout + done.stderr
    assert not (home / "published").exists()
    with (home / "fazhi.toml").open("a", encoding="utf-8") as fh:
        fh.write('\n[alerts]\nwebhook_url = "webhook"\n')
    done = fazhi("check-config", "--home", str(home), env=env)
    assert done.returncode == 2 and "the alert webhook in fazhi.toml [alerts] webhook_url" in done.stderr
    good = env | {"FAZHI_ALERT_WEBHOOK_URL": " http://127.0.0.1:9/robot "}  # env wins; spaces around are dropped
    assert fazhi("run", "--home", str(home), env=good).returncode == 0


@pytest.mark.parametrize(
    ("typo", "words"),
    [
        (
            ('kind = "spreadsheet_drop"', 'kind = "spreadsheet_drops"'),
            "未知的数据源类型 spreadsheet_drops / unknown source kind spreadsheet_drops; 是否指 / did you mean "
            "spreadsheet_drop?",
        ),
        (
            ("first_year = 2022", "frist_year = 2022"),
            "[pipeline] 未知的设置 frist_year / unknown setting frist_year; 是否指 / did you mean first_year?",
        ),
    ],
)
def test_a_typo_exits_2_in_one_bilingual_line_naming_it_the_file_and_the_nearest_name(tmp_path, typo, words):
    """Through the installed console script, from check-config and from the commands that load the
    configuration: nothing runs, nothing lands."""
    home = _home(tmp_path, mini.CONFIG.replace(*typo, 1))
    for command in (("check-config",), ("run",), ("indicators", "--year", "2023")):
        done = fazhi(*command, "--home", str(home))
        assert done.returncode == 2 and done.stdout == "", (command, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1 and words in done.stderr, done.stderr
        assert str(home / "fazhi.toml") in done.stderr
    assert not (home / "work.duckdb").exists() and not (home / "landing").exists()  # nothing landed


def _rows_of(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def _saved_by_libreoffice_as_gbk(townships: Path) -> None:
    """The list opened in a spreadsheet and saved as CSV in the Chinese Windows code page (GBK,
    LibreOffice's text encoding 56), as an office's Excel or Calc saves "CSV" by default."""
    from openpyxl import Workbook

    from tests.fixtures.township_corpus import office, soffice

    if soffice() is None:
        pytest.skip("no LibreOffice (.ci/run installs libreoffice-calc)")
    book, work = Workbook(), townships.parent / "office"
    for row in _rows_of(townships):
        book.active.append(row.split(","))
    work.mkdir()
    book.save(work / "townships.xlsx")
    (saved,) = office([work / "townships.xlsx"], "csv:Text - txt - csv (StarCalc):44,34,56", work / "out", work)
    shutil.copyfile(saved, townships)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda t: t.write_bytes(t.read_text(encoding="utf-8").encode("gbk")), "is not UTF-8 text (saved as GBK/ANSI?"),
        (_saved_by_libreoffice_as_gbk, "is not UTF-8 text (saved as GBK/ANSI?"),
        (
            lambda t: t.write_text(t.read_text(encoding="utf-8").replace("county_name", "县名"), encoding="utf-8"),
            "lacks column(s) county_name: its first row must name code,name,kind,county_code,county_name",
        ),
        (
            lambda t: t.write_text("\n".join([*_rows_of(t), _rows_of(t)[1]]) + "\n", encoding="utf-8"),
            "repeated on rows 2, ",
        ),
        (lambda t: t.write_text(_rows_of(t)[0] + "\n", encoding="utf-8"), "has no townships"),
        (
            lambda t: t.write_text(t.read_text(encoding="utf-8").replace(mini.A, mini.A[:-1], 1), encoding="utf-8"),
            f"第2行 / row 2: code '{mini.A[:-1]}' 应为9位乡镇代码 / is not a 9-digit township code",
        ),
    ],
)
def test_a_township_list_no_run_can_use_is_refused_naming_the_file_and_row(tmp_path, change, words):
    """An office-edited township list saved as GBK, a renamed header, a township twice, no rows,
    a code missing a digit: each failed the night deep inside (UnicodeDecodeError, DuckDB's binder
    or constraint errors) or, empty, quarantined every record. check-config and run refuse it
    (exit 2) naming the file and what is wrong; nothing lands."""
    home = make_mini_home(tmp_path)
    townships = home / "data" / "townships.csv"
    change(townships)
    for command in ("check-config", "run"):
        done = fazhi(command, "--home", str(home))
        assert done.returncode == 2 and words in done.stderr and str(townships) in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
    assert not (home / "landing").exists()


def test_a_source_folder_that_is_not_there_fails_its_source_not_nothing_new(tmp_path):
    """A mistyped `path` landed nothing every night and the source said "nothing new". Now
    check-config refuses it and the run fails that source by name (cause config), the others
    loaded; a spreadsheet drop left at its default folder (drop/<name>) gets the folder made."""
    home = _home(make_mini_home(tmp_path), mini.CONFIG.replace('path = "data/training"', 'path = "data/trainnig"'))
    said = "数据源 training 的文件夹 {} 不存在 / does not exist (fazhi.toml [sources.training] path)"
    done = fazhi("check-config", "--home", str(home))
    assert done.returncode == 2 and said.format(home / "data" / "trainnig") in done.stderr, done.stderr
    run = fazhi("run", "--home", str(home))
    assert run.returncode == 1 and "数据源 training: 配置错误 / config (ConfigError)" in run.stderr, run.stderr
    loaded = query(home / "work.duckdb", "select source from audit.batch where status = 'loaded' order by 1")
    assert [s for (s,) in loaded] == ["enforcement", "mediation", "returns"]

    default = _home(make_mini_home(tmp_path / "default"), mini.CONFIG.replace('path = "data/training"\n', ""))
    assert fazhi("check-config", "--home", str(default)).returncode == 0
    assert (default / "drop" / "training").is_dir()


def test_check_config_refuses_a_field_override_naming_no_column(tmp_path):
    home = _home(tmp_path, mini.CONFIG + '\n[sources.training.fields.training_session]\nhuors = "学分"\n')
    done = fazhi("check-config", "--home", str(home))
    assert done.returncode == 2, done.stderr
    assert "[sources.training.fields.training_session] 未知的列 huors / unknown column huors" in done.stderr
    assert "did you mean hours?" in done.stderr
