"""Failure alerts: one JSON message to a robot webhook (WeCom / DingTalk style) per failed or
crashed run, and the cause classes that say what kind of failure it was.

Configured in fazhi.toml (the URL usually embeds the robot's key, so it may also come from the
environment, which wins)::

    [alerts]
    webhook_url = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=..."  # or $FAZHI_ALERT_WEBHOOK_URL
    timeout_seconds = 5
    keyword = "法治指标"      # DingTalk robots with a keyword filter need it in every message

Who sends it: for runs of a deployment, the Prefect server, through the automation that
`prefect deploy` creates (flows/orchestration.py `ensure_alert_automation`): it fires on the
run's Failed *or Crashed* state, so a run killed by `kill -9` or the kernel's OOM killer alerts
too. Runs outside a deployment (`fazhi run`, `fazhi demo`) send it from their own process
(`send_failure_alert`); a flow never does both (orchestration.server_alerts_on).

What it says: the flow's failure message (`failure_summary`), which is also the run's final
state message in Prefect, built from structured facts only: flow, run id, each failed source
with its cause class (CAUSES) and rule or exception class, audit names and counts. Never
exception messages or record values, so no personal data can reach a chat group. A webhook
that is down or slow is logged and never fails the run.
"""

from __future__ import annotations

import json
import logging
import os
import re
from urllib.parse import urlsplit

import duckdb

from warehouse.config import AlertOptions, ConfigError, is_http_url
from warehouse.errors import RunFailed

log = logging.getLogger("fazhi.alerts")

URL_ENV = "FAZHI_ALERT_WEBHOOK_URL"
DEFAULT_TIMEOUT = AlertOptions.timeout_seconds
MAX_CONTENT = 1800  # WeCom text messages are limited to 2048 bytes of content
# Belt and braces: long digit runs (ID numbers, phone numbers, certificate numbers) never leave.
# Run ids (run-20261130T221054-123456) have no run of 11 digits, so they survive.
_DIGITS = re.compile(r"\d{11,}[\dXx]?")

# cause class -> its Chinese name. docs/operations.md, "Alerts and what each means", says what
# each means and what to do (a test checks that it explains every class).
CAUSES = {
    "auth": "认证失败",  # the source refused the token (HTTP 401/403), or none is configured
    "unreachable": "无法连接",  # connection refused or reset, timeouts, HTTP 429/5xx after every retry
    "bad data": "数据异常",  # a page that is not complete JSON, paging that does not advance
    "stopped batch": "整批停止",  # a batch rule stopped the source's load (the rule is named)
    "busy writer": "仓库被占用",  # another run held the working database too long
    "config": "配置错误",  # fazhi.toml, a missing key, a URL answered with 404 or another 4xx
    "audit": "审计未通过",  # blocking audits found a problem: nothing published
    "crashed": "进程被终止",  # the run's process died (kill -9, out of memory): from the server
    "memory": "内存不足",  # DuckDB ran out of memory under its cap (FAZHI_DUCKDB_MEMORY_LIMIT)
    "error": "其他错误",  # anything else (the exception class is named)
}


def cause_of(exc: BaseException) -> str:
    """The cause class (CAUSES) of an exception that failed a source or a run."""
    from warehouse.audit import AuditFailed
    from warehouse.config import ConfigError, MissingToken
    from warehouse.lock import WriterBusy
    from warehouse.sources.mapping import SourceError

    if isinstance(exc, RunFailed) and exc.__cause__ is not None:
        return cause_of(exc.__cause__)
    if isinstance(exc, SourceError):
        return {
            "http-auth": "auth",
            "http-connection": "unreachable",
            "http-status": "unreachable",  # 429 or 5xx after every retry
            "http-client-error": "config",  # 404 or another 4xx: the URL or the request is wrong
            "http-deadline": "unreachable",  # too slow, or never ends: pull_deadline_seconds
            "http-redirect": "config",  # the configured url moved: configure the final address
            # http-page-cap, http-cursor-cycle, http-paging, http-too-large: the source's answers
            # are wrong (bad data)
        }.get(exc.rule, "bad data")
    if isinstance(exc, MissingToken):
        return "auth"
    if isinstance(exc, ConfigError):
        return "config"
    if isinstance(exc, WriterBusy):
        return "busy writer"
    if isinstance(exc, AuditFailed):
        return "audit"
    if isinstance(exc, duckdb.OutOfMemoryException):
        return "memory"
    return "error"


def failed_source(exc: BaseException) -> dict:
    """A failed source's entry in the run report: its error (for the manifest and the operator)
    and its cause class."""
    entry = {"status": "failed", "error": f"{type(exc).__name__}: {exc}", "cause": cause_of(exc)}
    rule = getattr(exc, "rule", None)
    return entry | {"rule": rule} if rule else entry


def _cause(cause: str) -> str:
    return f"{CAUSES.get(cause, CAUSES['error'])} / {cause}"


def describe_failure(exc: BaseException, sources: dict | None = None) -> list[str]:
    """Personal-data-free lines saying what failed: per failed or stopped source its cause class
    and rule or exception class; blocking audits by name and count; else the run's own cause."""
    from warehouse.audit import AuditFailed

    lines = []
    for name, info in (sources or {}).items():
        status = info.get("status")
        if status == "stopped":
            lines.append(f"数据源 {name}: {_cause('stopped batch')} (rule {info.get('rule') or '?'})")
        elif status == "failed":
            kind = info.get("rule") or str(info.get("error", "")).split(":", 1)[0] or "error"
            lines.append(f"数据源 {name}: {_cause(info.get('cause') or 'error')} ({kind})")
    root = exc.__cause__ if isinstance(exc, RunFailed) and exc.__cause__ is not None else exc
    if isinstance(root, AuditFailed):
        names: dict[str, int] = {}
        for audit_name, _detail in root.findings:
            names[audit_name] = names.get(audit_name, 0) + 1
        shown = ", ".join(f"{a} ×{n}" for a, n in sorted(names.items()))
        lines.append(f"{_cause('audit')}: 未发布 / nothing published: {shown}")
    elif not lines:
        lines.append(f"{_cause(cause_of(root))} ({type(root).__name__})")
    return lines


def failure_summary(run_id: str, exc: BaseException, sources: dict | None = None) -> str:
    """The flow's failure message: its run id, then describe_failure's lines, digits filtered.
    Failed or stopped sources are introduced by "sources failed:"."""
    lines = describe_failure(exc, sources)
    head = "数据源失败 / sources failed:" if any(line.startswith("数据源 ") for line in lines) else "运行失败 / failed:"
    return _DIGITS.sub("…", f"运行 / run {run_id} {head} " + "; ".join(lines))


def webhook_config(options: AlertOptions) -> tuple[str | None, float, str]:
    """(url or None, timeout, keyword) from fazhi.toml's [alerts] and the environment."""
    url = (os.environ.get(URL_ENV) or options.webhook_url or "").strip()
    return url or None, options.timeout_seconds, options.keyword


def check_webhook(options: AlertOptions) -> None:
    """Refuse a configured webhook that is not an http(s) URL with a host (ConfigError), before a
    run starts: a failed run's alert could not be sent, and a failure nobody hears of is silent.
    The URL itself is never shown (its query carries the robot's key)."""
    url = webhook_config(options)[0]
    if not url or is_http_url(url):
        return

    where = URL_ENV if os.environ.get(URL_ENV) else "fazhi.toml [alerts] webhook_url"
    raise ConfigError(
        f"告警 webhook 地址不是 http(s) 网址({where}，取值不显示)，失败的运行将无法告警 / the alert webhook in "
        f"{where} is not an http(s) URL (its value is withheld): a failed run could not be alerted"
    )


def _title(keyword: str) -> str:
    return f"{keyword} " if keyword else ""


def build_message(flow: str, summary: str, home: str, keyword: str = "") -> dict:
    """The robot text message of a run that failed outside a deployment (`fazhi run`)."""
    content = "\n".join(
        [
            f"{_title(keyword)}【法治指标仓库 fazhi-warehouse】{flow} 运行失败 / run failed",
            "部署 / deployment: — (fazhi run)",
            summary,
            f"详情 / details: {home}/runs/<run>/manifest.json",
        ]
    )
    content = _DIGITS.sub("…", content)[:MAX_CONTENT]
    return {"msgtype": "text", "text": {"content": content}}


def automation_payload(home: str, keyword: str = "") -> str:
    """The body the Prefect server posts for a failed or crashed deployment run (a Jinja
    template the server renders: flow, deployment, flow run and its final state). A Failed
    state's message is the flow's failure_summary; a Crashed one is the server's or worker's
    own (e.g. "Flow run infrastructure exited with non-zero status code -9")."""
    template = (
        "{%- set crashed = flow_run.state.type == 'CRASHED' -%}"
        "{%- set content -%}"
        f"{_title(keyword)}【法治指标仓库 fazhi-warehouse】{{{{ flow.name }}}} "
        "{% if crashed %}运行中断 / run crashed{% else %}运行失败 / run failed{% endif %}\n"
        "部署 / deployment: {{ deployment.name }}\n"
        "Prefect 运行 / flow run: {{ flow_run.name }} {{ flow_run.id }}\n"
        "{% if crashed %}"
        f"原因类别 / cause: {_cause('crashed')}: {{{{ flow_run.state.message }}}}"
        "{% else %}{{ flow_run.state.message }}{% endif %}\n"
        f"详情 / details: prefect flow-run logs {{{{ flow_run.id }}}}; {home}/runs/"
        "{%- endset -%}"
        '{"msgtype": "text", "text": {"content": '
        f"{{{{ content | truncate({MAX_CONTENT}, True, '…', 0) | tojson }}}}}}}}"
    )
    return template


def post(url: str, message: dict, timeout: float = DEFAULT_TIMEOUT) -> bool:
    """POST the message; True when the webhook answered 2xx. Never raises, never logs the URL's
    query (it carries the robot's key)."""
    import urllib.error  # with ssl and http.client ~80 ms: imported by the run that alerts, not by every run
    import urllib.request

    data = json.dumps(message, ensure_ascii=False).encode("utf-8")
    request = urllib.request.Request(
        url, data=data, headers={"Content-Type": "application/json; charset=utf-8"}, method="POST"
    )
    where = urlsplit(url).hostname or "webhook"  # never the user:key@ part
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (configured URL)
            ok = 200 <= response.status < 300
    except (urllib.error.URLError, OSError, ValueError) as exc:
        log.warning("alert not delivered to %s: %s", where, type(exc).__name__)
        return False
    if ok:
        log.info("alert sent to %s", where)
    else:
        log.warning("alert to %s answered HTTP %s", where, response.status)
    return ok


def send_failure_alert(options: AlertOptions, flow: str, summary: str, home: str) -> bool:
    """Send the one alert of a failed run from this process (no-op without a configured
    webhook). Never raises."""
    try:
        url, timeout, keyword = webhook_config(options)
        if not url:
            return False
        check_webhook(options)  # not an http(s) URL: nothing is sent (and its text never logged)
        return post(url, build_message(flow, summary, home, keyword), timeout)
    except Exception as err:  # an alert must never mask the run's own failure
        log.warning("alert not sent: %s", type(err).__name__)
        return False
