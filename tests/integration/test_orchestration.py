"""The flows' orchestration behaviour under the session's Prefect test harness: a failing source,
one alert per failed run, the run's artifacts and manifest, two runs started together, and the
CLI without any server. The alert message itself is tested without Prefect."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from tests.conftest import make_mini_home, query
from tests.fixtures import mini
from tests.processes import free_port, prefect_servers, webhook_receiver

ENF01_A_2023 = (
    "select value from mart.indicator_value where year = 2023 and township_code = ? and indicator_code = 'ENF01'"
)
PERSONAL = [*mini.NAMES, *mini.IDS, *mini.PHONES, *(c[0] for c in mini.CERTS.values())]


def add_config(home: Path, text: str) -> None:
    cfg = home / "fazhi.toml"
    cfg.write_text(cfg.read_text(encoding="utf-8") + "\n" + text, encoding="utf-8")


# --- alerts, without Prefect -----------------------------------------------------------------


def test_alert_message_is_a_robot_text_message_without_personal_data():
    from warehouse.alerts import build_message, failure_summary
    from warehouse.audit import AuditFailed

    sources = {
        "enforcement": {"status": "loaded"},
        "mediation": {"status": "failed", "error": f"ValueError: bad id {mini.IDS[0]} of {mini.NAMES[0]}"},
        "training": {"status": "stopped", "rule": "row_count_drop", "message_en": mini.NAMES[1]},
    }
    run_id = "run-20261130T221054-123456"
    summary = failure_summary(run_id, RuntimeError(mini.PHONES[0]), sources)
    message = build_message("nightly", summary, "/srv/fazhi")
    assert message["msgtype"] == "text" and set(message["text"]) == {"content"}
    content = message["text"]["content"]
    assert run_id in content  # whole: the digit filter leaves the run id alone
    assert "mediation: 其他错误 / error (ValueError)" in content
    assert "training: 整批停止 / stopped batch (rule row_count_drop)" in content
    assert "enforcement" not in content
    assert not [p for p in PERSONAL if p in json.dumps(message, ensure_ascii=False)]

    audit = failure_summary(run_id, AuditFailed([("reconciliation", f"batch x {mini.IDS[1]}")] * 3))
    assert audit.endswith("reconciliation ×3") and mini.IDS[1] not in audit and run_id in audit


def test_each_failure_has_its_cause_class():
    """A wrong token and a source outage read differently (auth, unreachable), and so on for every
    class the alerts table of docs/operations.md explains."""
    from warehouse.alerts import CAUSES, cause_of, failure_summary
    from warehouse.audit import AuditFailed
    from warehouse.config import ConfigError, MissingToken
    from warehouse.lock import WriterBusy
    from warehouse.sources.mapping import SourceError

    def refused(rule: str) -> SourceError:
        return SourceError("enforcement", "page 1", "x", "x", rule)

    cases = {
        "auth": [refused("http-auth"), MissingToken("no token")],
        "unreachable": [refused("http-connection"), refused("http-status")],
        "bad data": [refused("page-json"), refused("http-paging")],
        "config": [refused("http-client-error"), ConfigError("no key")],
        "busy writer": [WriterBusy("held")],
        "audit": [AuditFailed([("reconciliation", "x")])],
        "memory": [duckdb.OutOfMemoryException("Out of Memory Error: could not allocate block")],
        "error": [RuntimeError("boom")],
    }
    for cause, errors in cases.items():
        assert [cause_of(e) for e in errors] == [cause] * len(errors)
    assert set(cases) | {"stopped batch", "crashed"} == set(CAUSES)
    auth = failure_summary(
        "run-1", RuntimeError(), {"enforcement": {"status": "failed", "cause": "auth", "rule": "http-auth"}}
    )
    outage = failure_summary(
        "run-1",
        RuntimeError(),
        {"enforcement": {"status": "failed", "cause": "unreachable", "rule": "http-connection"}},
    )
    assert "认证失败 / auth (http-auth)" in auth and "无法连接 / unreachable (http-connection)" in outage


def test_operations_doc_explains_every_cause_class():
    from warehouse.alerts import CAUSES

    doc = (Path(__file__).parents[2] / "docs" / "operations.md").read_text(encoding="utf-8")
    section = doc.split("### Alerts and what each means", 1)[1].split("\n#", 1)[0]
    rows = [line.split("|")[1:-1] for line in section.splitlines() if line.startswith("| `")]
    assert {r[0].strip().strip("`") for r in rows} == set(CAUSES)
    for cause, zh in CAUSES.items():
        assert any(r[0].strip().strip("`") == cause and zh in r[1] for r in rows), cause


def test_an_unreachable_webhook_is_logged_not_raised(monkeypatch):
    from warehouse.alerts import send_failure_alert
    from warehouse.config import AlertOptions

    monkeypatch.delenv("FAZHI_ALERT_WEBHOOK_URL", raising=False)
    # nothing listens on a free port: the alert cannot be delivered
    options = AlertOptions(webhook_url=f"http://127.0.0.1:{free_port()}/hook", timeout_seconds=2)
    assert send_failure_alert(options, "nightly", "run failed", "/h") is False
    assert send_failure_alert(AlertOptions(), "nightly", "run failed", "/h") is False  # none configured


# --- flows under the test harness ------------------------------------------------------------


@pytest.fixture(scope="module")
def failed_night(prefect_harness, tmp_path_factory):
    """A nightly whose mediation export is not JSON, with a webhook configured."""
    from flows.nightly import nightly

    home = make_mini_home(tmp_path_factory.mktemp("failing"))
    (home / "data" / "mediation" / "page-000001.json").write_text("<html>502 Bad Gateway</html>", encoding="utf-8")
    with webhook_receiver() as (url, received):
        add_config(home, f'[alerts]\nwebhook_url = "{url}"\ntimeout_seconds = 5\n')
        state = nightly(home=str(home), return_state=True)
    return home, state, received


def test_a_failing_source_fails_the_run_naming_it_and_the_others_are_published(failed_night):
    home, state, _ = failed_night
    assert state.is_failed()
    assert "mediation" in state.message and "enforcement" not in state.message.split("sources failed:")[1]
    assert query(home / "published" / "fazhi.duckdb", ENF01_A_2023, [mini.A]) == [(3.0,)]
    assert query(home / "published" / "fazhi.duckdb", "select count(*) from core.mediation_case") == [(0,)]
    (manifest,) = (home / "runs").glob("*/manifest.json")
    doc = json.loads(manifest.read_text(encoding="utf-8"))
    assert doc["outcome"] == "failed" and doc["failed_sources"] == ["mediation"]
    assert doc["sources"]["enforcement"]["status"] == "loaded" and doc["sources"]["enforcement"]["batch_id"]
    assert {"prefect", "duckdb", "great-expectations", "python"} <= set(doc["packages"])
    assert "watermarks" in doc and doc["code_version"]
    run = query(home / "work.duckdb", "select outcome, manifest->>'$.failed_sources[0]' from audit.run")
    assert run == [("failed", "mediation")]


def test_a_failed_run_sends_exactly_one_alert_without_personal_data(failed_night):
    home, state, received = failed_night
    assert len(received) == 1
    text = json.dumps(received[0], ensure_ascii=False)
    content = received[0]["text"]["content"]
    assert received[0]["msgtype"] == "text" and "mediation: 整批停止 / stopped batch (rule page-json)" in content
    (run_dir,) = (home / "runs").iterdir()
    assert f"运行 / run {run_dir.name} " in content and f"运行 / run {run_dir.name} " in state.message
    assert not [p for p in PERSONAL if p in text]


def test_library_log_lines_reach_the_run_logs_in_prefect(failed_night):
    import time

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    _, state, _ = failed_night
    only_this_run = LogFilter(flow_run_id=LogFilterFlowRunId(any_=[state.state_details.flow_run_id]))
    for _ in range(20):  # the log handler sends in batches
        with get_client(sync_client=True) as client:
            logs = client.read_logs(log_filter=only_this_run)
        fazhi = [log.message for log in logs if log.name.startswith("fazhi")]
        if fazhi:
            break
        time.sleep(0.5)
    assert any(m.startswith("landed enforcement: batch enforcement-") for m in fazhi), fazhi
    assert not any("Traceback" in log.message for log in logs)  # the failure is named, not dumped


def test_each_run_leaves_indicator_manifest_and_validation_artifacts(failed_night):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    _, state, _ = failed_night
    with get_client(sync_client=True) as client:
        flow_run_id = state.state_details.flow_run_id
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    by_key = {a.key: a for a in artifacts}
    assert {"indicators", "run-manifest", "validation-summary"} <= set(by_key)
    assert "ENF01" in by_key["indicators"].data and "贡川镇" in by_key["indicators"].data
    assert "mediation" in by_key["run-manifest"].data and "great-expectations" in by_key["run-manifest"].data


def test_a_refused_token_is_not_retried_and_reads_as_auth(prefect_harness, tmp_path, monkeypatch):
    """401 from the source: the HTTP client does not retry it, and neither does Prefect's task
    retry (default 2 retries, 10 s then 20 s); the run names the cause class, and the township-
    facing report says the operators are alerted instead of quoting the error."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from flows.nightly import nightly
    from warehouse.demo.simulator import Simulator

    home = make_mini_home(tmp_path / "home")
    with Simulator(home / "data", token="the-right-token") as sim:  # mediation pulled over HTTP
        cfg = home / "fazhi.toml"
        text = cfg.read_text(encoding="utf-8").replace('kind = "json_pages"\npath = "data/mediation"', "")
        cfg.write_text(text.replace("[sources.mediation]", f'[sources.mediation]\nkind = "http"\nurl = "{sim.url}"'))
        monkeypatch.setenv("FAZHI_MEDIATION_TOKEN", "a-wrong-token")
        state = nightly(home=str(home), return_state=True)
    assert state.is_failed() and "数据源 mediation: 认证失败 / auth (http-auth)" in state.message
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))
        )
    (land,) = [r for r in runs if r.name.startswith("land_source") and r.state.is_failed()]
    assert land.run_count == 1  # tried once: no Prefect retry
    report = (home / "reports" / "validation" / "latest.html").read_text(encoding="utf-8")
    assert "原因类别: auth" in report and "access refused" not in report and "HTTP 401" not in report


def test_two_runs_started_together_never_write_at_the_same_time(prefect_harness, tmp_path):
    """Both hold the shared writer limit (created here as `prefect deploy` would): the second
    waits for the first; the file lock would catch anything that slipped through."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.settings import PREFECT_API_URL

    from warehouse.config import WRITER_LIMIT

    home = make_mini_home(tmp_path / "home")
    env = dict(os.environ) | {"PREFECT_API_URL": PREFECT_API_URL.value()}
    with get_client(sync_client=True) as client:
        client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=WRITER_LIMIT, limit=1))
    try:
        cmd = [sys.executable, "-m", "flows.cli", "run", "--home", str(home)]
        procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)]
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        outs = [p.communicate(timeout=300) for p in procs]
    finally:
        with get_client(sync_client=True) as client:
            client.delete_global_concurrency_limit_by_name(WRITER_LIMIT)
    assert [p.returncode for p in procs] == [0, 0], [o[1][-1500:] for o in outs]
    assert all("holding the writer slot" in o[1] for o in outs)
    runs = query(home / "work.duckdb", "select started_at, finished_at from audit.run order by started_at")
    assert len(runs) == 2
    (s1, f1), (s2, f2) = runs
    assert f1 <= s2, f"writes overlapped: {runs}"
    # the batches were written by the first run only; the second found nothing new
    assert query(home / "work.duckdb", "select count(distinct run_id) from audit.batch") == [(1,)]


def test_fazhi_run_and_rebuild_work_without_a_server(tmp_path):
    """No Prefect server configured, as for a first-time user: the run and the rebuild go
    through warehouse/runs.py LocalEngine, without importing Prefect or starting its server. A
    year the nightly has not computed (a typo'd 2099) is refused (exit 2) before any edition is
    recorded: editions are insert-only."""
    home = make_mini_home(tmp_path / "home")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env |= {"PREFECT_HOME": str(tmp_path / "prefect"), "FAZHI_HMAC_KEY": "test-key-not-secret-0123456789abcdef"}
    script = (
        "import sys; from flows.cli import main; "
        f"r = main(['run', '--home', {str(home)!r}]); "
        f"typo = main(['rebuild', '--year', '2099', '--home', {str(home)!r}]); "
        "print('typo exit:', typo, file=sys.stderr); "
        f"r = r or main(['rebuild', '--year', '2023', '--home', {str(home)!r}]); "
        "print('prefect imported:', 'prefect' in sys.modules, file=sys.stderr); sys.exit(r)"
    )
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2023" in done.stdout and "edition 1" in done.stdout
    assert "typo exit: 2" in done.stderr and "no year 2099 to rebuild" in done.stderr
    assert "运行失败" not in done.stderr  # a typo is said as the operator's, not as a failed run (nor alerted)
    assert query(home / "published" / "fazhi.duckdb", ENF01_A_2023, [mini.A]) == [(3.0,)]
    assert query(home / "published" / "fazhi.duckdb", "select year, edition from mart.indicator_edition") == [(2023, 1)]
    flows = query(home / "work.duckdb", "select manifest->>'$.flow', outcome from audit.run order by started_at")
    assert flows == [("nightly", "completed"), ("year-end-rebuild", "completed")]
    log = done.stdout + done.stderr
    assert "telemetry" not in log.lower() and "sens-o-matic" not in log
    assert "prefect imported: False" in done.stderr
    assert prefect_servers(tmp_path / "prefect") == []
