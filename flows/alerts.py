"""Failure alerts: one JSON message to a robot webhook (WeCom / DingTalk style) per failed run.

Configured in fazhi.toml (the URL usually embeds the robot's key, so it may also come from the
environment, which wins)::

    [alerts]
    webhook_url = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=..."  # or $FAZHI_ALERT_WEBHOOK_URL
    timeout_seconds = 5
    keyword = "法治指标"      # DingTalk robots with a keyword filter need it in every message

The body is the robot's text message, `{"msgtype": "text", "text": {"content": "..."}}`. The
content is built from structured facts only (flow, run id, source names, statuses, rule ids,
exception class names, audit names and counts), never from exception messages or record values,
so no personal data can reach a chat group. A webhook that is down or slow is logged and never
fails the run. No Prefect here: the flows call `send_failure_alert` from their failure path.
"""

from __future__ import annotations

import json
import logging
import os
import re
import urllib.error
import urllib.request
from urllib.parse import urlsplit

log = logging.getLogger("fazhi.alerts")

URL_ENV = "FAZHI_ALERT_WEBHOOK_URL"
DEFAULT_TIMEOUT = 5.0
MAX_CONTENT = 1800  # WeCom text messages are limited to 2048 bytes of content
# Belt and braces: long digit runs (ID numbers, phone numbers, certificate numbers) never leave.
_DIGITS = re.compile(r"\d{11,}[\dXx]?")


def webhook_config(extra: dict) -> tuple[str | None, float, str]:
    """(url or None, timeout, keyword) from fazhi.toml's [alerts] and the environment."""
    alerts = extra.get("alerts", {}) if isinstance(extra, dict) else {}
    url = os.environ.get(URL_ENV) or alerts.get("webhook_url") or None
    timeout = float(alerts.get("timeout_seconds", DEFAULT_TIMEOUT))
    return url, timeout, str(alerts.get("keyword", ""))


def describe_failure(exc: BaseException, sources: dict | None = None) -> list[str]:
    """Personal-data-free lines saying what failed: per failed source its status and rule or
    exception class; for blocking audits their names and how many findings."""
    from warehouse.audit import AuditFailed

    lines = []
    for name, info in (sources or {}).items():
        status = info.get("status")
        if status == "stopped":
            lines.append(f"数据源 {name}: 已停止加载 / stopped by rule {info.get('rule') or '?'}")
        elif status == "failed":
            kind = str(info.get("error", "")).split(":", 1)[0] or "error"
            lines.append(f"数据源 {name}: 失败 / failed ({kind})")
    if isinstance(exc, AuditFailed):
        names: dict[str, int] = {}
        for audit_name, _detail in exc.findings:
            names[audit_name] = names.get(audit_name, 0) + 1
        shown = ", ".join(f"{a} ×{n}" for a, n in sorted(names.items()))
        lines.append(f"发布前审计未通过，未发布 / blocking audits failed, nothing published: {shown}")
    elif not lines:
        lines.append(f"运行出错 / run failed: {type(exc).__name__}")
    return lines


def build_message(flow: str, run_id: str, home: str, lines: list[str], keyword: str = "") -> dict:
    head = f"{keyword} " if keyword else ""
    content = "\n".join(
        [
            f"{head}【法治指标仓库 fazhi-warehouse】{flow} 运行失败 / run failed",
            f"运行 / run: {run_id}",
            *lines,
            f"详情 / details: {home}/runs/{run_id}/manifest.json, Prefect UI",
        ]
    )
    content = _DIGITS.sub("…", content)[:MAX_CONTENT]
    return {"msgtype": "text", "text": {"content": content}}


def post(url: str, message: dict, timeout: float = DEFAULT_TIMEOUT) -> bool:
    """POST the message; True when the webhook answered 2xx. Never raises, never logs the URL's
    query (it carries the robot's key)."""
    data = json.dumps(message, ensure_ascii=False).encode("utf-8")
    request = urllib.request.Request(
        url, data=data, headers={"Content-Type": "application/json; charset=utf-8"}, method="POST"
    )
    where = urlsplit(url).netloc or "webhook"
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


def send_failure_alert(
    extra: dict, flow: str, run_id: str, home: str, exc: BaseException, sources: dict | None = None
) -> bool:
    """Send the one alert of a failed run (no-op without a configured webhook). Never raises."""
    try:
        url, timeout, keyword = webhook_config(extra)
        if not url:
            return False
        return post(url, build_message(flow, run_id, home, describe_failure(exc, sources), keyword), timeout)
    except Exception as err:  # an alert must never mask the run's own failure
        log.warning("alert not sent: %s", type(err).__name__)
        return False
