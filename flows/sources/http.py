"""Pull an HTTP export source (enforcement, mediation) into the landing zone.

The contract is in docs/sources.md ("HTTP export contract"): bearer-token authentication,
keyset paging by an opaque `cursor` over records ordered by (更新时间, id), and incremental
pulls with `modified_since`. One pull = one landing batch: every page body is written byte for
byte as received (`page-000001.json` …, numbered in the order received, a page served twice is
kept twice) plus `manifest.json` with the request parameters (never the token), byte counts,
sha256, record counts, duplicates, retries and timings.

Retries are our own loop rather than urllib3's `Retry`: besides 429/5xx and connection errors
they must cover a 200 whose body is not complete JSON, honour `Retry-After`, stop at a cap on
the total time spent waiting, and record each retry in the manifest. Backoff is exponential and
deterministic (no jitter), so tests are repeatable.

The token is read when the pull starts (environment, else a Prefect Secret block), sent only in
the `Authorization` header, and never logged, stored or put into an error message.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from urllib.parse import urljoin, urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter

from flows.config import HttpOptions, MissingToken, SourceConfig
from flows.sources.landing import LandedBatch, LandedFile, _private_dirs, write_manifest
from flows.sources.mapping import SourceError, load_mappings, with_overrides

try:  # orjson (a Prefect dependency) parses pages several times faster than json
    import orjson

    _loads = orjson.loads
except ImportError:  # pragma: no cover
    import json

    _loads = json.loads

log = logging.getLogger("fazhi.http")

RECORDS_PATH = "records"  # the endpoint, relative to the source's url: <url>/<source>/records
RETRY_STATUSES = {408, 425, 429, 500, 502, 503, 504}
MAX_STALLED_PAGES = 5  # the same cursor served back this many times in a row: the source is broken
_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")


def resolve_token(source: SourceConfig) -> str:
    """The source's token: `$FAZHI_<SOURCE>_TOKEN` (or `token_env`), else the Prefect Secret block."""
    opts = source.http
    assert opts is not None
    token = os.environ.get(opts.token_env)
    if token:
        return token.strip()
    if opts.token_secret_block:
        from prefect.blocks.system import Secret  # only configurations naming a block need Prefect here

        return str(Secret.load(opts.token_secret_block).get()).strip()
    raise MissingToken(
        f"数据源 {source.name} 缺少访问令牌：请设置环境变量 {opts.token_env} 或配置 token_secret_block / "
        f"no token for source {source.name}: set {opts.token_env} or name a Prefect Secret block (token_secret_block)"
    )


def records_url(source: str, base: str) -> str:
    return urljoin(base if base.endswith("/") else base + "/", f"{source}/{RECORDS_PATH}")


def _public_url(url: str) -> str:
    """The URL without any user:password part, for manifests and messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header: delta-seconds (fractions tolerated) or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError):
        return None


@dataclass
class PullStats:
    pages: list[dict] = field(default_factory=list)
    retries: list[dict] = field(default_factory=list)
    waited_s: float = 0.0
    total_reported: int | None = None


class HttpPuller:
    """Pulls every page of one source's export with one `requests.Session` (connections reused)."""

    def __init__(
        self,
        source: str,
        opts: HttpOptions,
        token: str,
        *,
        sleep: Callable[[float], None] = time.sleep,
        session: requests.Session | None = None,
    ):
        self.source, self.opts, self.sleep = source, opts, sleep
        self.url = records_url(source, opts.url)
        self.session = session or requests.Session()
        self.session.mount("http://", HTTPAdapter(pool_connections=1, pool_maxsize=2, max_retries=0))
        self.session.mount("https://", HTTPAdapter(pool_connections=1, pool_maxsize=2, max_retries=0))
        self._headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        self.stats = PullStats()

    def close(self) -> None:
        self.session.close()

    def pages(self, since: str | None):
        """Yield (page number, cursor sent, body bytes, parsed document) for every page."""
        cursor, n, stalled = None, 0, 0
        while True:
            params = {"page_size": self.opts.page_size}
            if since:
                params["modified_since"] = since
            if cursor:
                params["cursor"] = cursor
            n += 1
            body, doc = self._get(params, n)
            if self.stats.total_reported is None:
                self.stats.total_reported = doc.get("total_records")
            yield n, cursor, body, doc
            nxt = doc.get("next_cursor")
            answered = (doc.get("cursor"), doc.get("modified_since"))
            if answered != (cursor, since) or (nxt is not None and nxt == cursor):
                # another page than asked for (a page served twice, a stale cache): its records are
                # kept (de-duplicated at parse) but its cursor is not followed; ask again
                stalled += 1
                if stalled >= MAX_STALLED_PAGES:
                    raise SourceError(
                        self.source,
                        f"page {n}",
                        f"分页游标连续{stalled}次未前进，数据源分页异常",
                        f"paging does not advance: the same cursor came back {stalled} times",
                        "http-paging",
                    )
                continue
            if not nxt:
                return
            stalled = 0
            cursor = nxt

    def _get(self, params: dict, n: int) -> tuple[bytes, dict]:
        opts, attempt = self.opts, 0
        while True:
            attempt += 1
            retry_after, started = None, time.monotonic()
            try:
                r = self.session.get(
                    self.url,
                    params=params,
                    headers=self._headers,
                    timeout=(opts.connect_timeout, opts.read_timeout),
                    verify=opts.verify,
                )
                if r.status_code == 200:
                    body = r.content
                    try:
                        doc = _loads(body)
                        if not isinstance(doc, dict) or not isinstance(doc.get("records"), list):
                            raise ValueError("no records array")
                        self.stats.pages.append(
                            {"attempts": attempt, "seconds": round(time.monotonic() - started, 4), "status": 200}
                        )
                        return body, doc
                    except ValueError:
                        reason = f"invalid JSON ({len(body)} bytes)"
                        rule, zh = "page-json", f"第{n}页响应不是完整的JSON(可能被截断)"
                elif r.status_code in (401, 403):
                    raise SourceError(
                        self.source,
                        f"page {n}",
                        f"访问被拒绝(HTTP {r.status_code})：令牌无效或已过期",
                        f"access refused (HTTP {r.status_code}): the token is wrong or expired",
                        "http-auth",
                    )
                elif r.status_code in RETRY_STATUSES:
                    reason, rule = f"HTTP {r.status_code}", "http-status"
                    zh = f"第{n}页请求失败(HTTP {r.status_code})"
                    retry_after = _retry_after(r.headers.get("Retry-After"))
                else:
                    raise SourceError(
                        self.source,
                        f"page {n}",
                        f"第{n}页请求失败(HTTP {r.status_code})",
                        f"page {n}: HTTP {r.status_code} from {_public_url(self.url)}",
                        "http-client-error",  # 4xx: the URL or the request is wrong, not retried
                    )
            except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
                reason, rule = type(exc).__name__, "http-connection"
                zh = f"第{n}页请求失败(连接错误或超时：{type(exc).__name__})"
            wait = min(opts.backoff_max, opts.backoff_base * 2 ** (attempt - 1))
            if retry_after is not None:
                wait = max(wait, retry_after)
            event = {"page": n, "attempt": attempt, "reason": reason, "wait_s": round(wait, 3)}
            if attempt >= opts.max_attempts or self.stats.waited_s + wait > opts.max_retry_seconds:
                self.stats.retries.append(event | {"gave_up": True})
                raise SourceError(
                    self.source,
                    f"page {n}",
                    f"{zh}，已尝试{attempt}次，放弃",
                    f"page {n} (cursor {params.get('cursor') or 'first'}): {reason}; gave up after {attempt} "
                    f"attempt(s) and {self.stats.waited_s:.1f} s of retry waits",
                    rule,
                )
            self.stats.retries.append(event)
            log.warning("pull %s page %d: %s; retry %d in %.2f s", self.source, n, reason, attempt, wait)
            self.sleep(wait)
            self.stats.waited_s += wait


def _id_and_time_fields(source: SourceConfig) -> tuple[str | None, str | None]:
    """The export's id and 更新时间 field names (fields.yaml plus the county's overrides)."""
    tables = load_mappings().get(source.name, {})
    if len(tables) != 1:
        return None, None
    mapping = with_overrides(next(iter(tables.values())), source.fields)
    cols = {c.name: c for c in mapping.columns}
    id_col = cols.get(mapping.key[0]) if len(mapping.key) == 1 else None
    ts_col = cols.get("source_modified_at")
    return (id_col.fields[0] if id_col else None), (ts_col.fields[0] if ts_col else None)


def land_http(
    source: SourceConfig,
    landing_dir: Path,
    watermark: dict | None,
    *,
    token: str | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> LandedBatch | None:
    """Pull everything modified since the watermark into a new landing batch; None when the
    source has nothing the warehouse has not loaded.

    `watermark` is the warehouse's {"modified_at", "ids"}: pulls ask `modified_since=modified_at`
    (inclusive, so a record saved later in the same second is not missed) and the records
    already loaded at exactly that time (`ids`) do not count as new. The batch carries the next
    watermark in `extra["watermark_next"]`; the warehouse stores it in the load's transaction."""
    opts = source.http
    assert opts is not None
    token = token if token is not None else resolve_token(source)
    since = watermark["modified_at"] if watermark else None
    seen_ids = set(watermark.get("ids") or []) if watermark else set()
    id_f, ts_f = _id_and_time_fields(source)

    started_at, t0 = datetime.now(UTC), time.perf_counter()
    base = landing_dir / source.name
    tmp = base / f".pull-{started_at:%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:6]}"
    _private_dirs(tmp, stop=landing_dir.parent)
    puller = HttpPuller(source.name, opts, token, sleep=sleep)
    files: list[LandedFile] = []
    received = 0
    versions: dict[str, str | None] = {}  # id -> latest 更新时间 received
    max_ts: str | None = None
    page_docs: list[dict] = []
    try:
        for n, cursor, body, doc in puller.pages(since):
            name = f"page-{n:06d}.json"
            path = tmp / name
            path.write_bytes(body)
            os.chmod(path, 0o400)
            digest = hashlib.sha256(body).hexdigest()
            files.append(LandedFile(name, path, digest, len(body)))
            records = doc["records"]
            received += len(records)
            for rec in records:
                rid = rec.get(id_f) if id_f and isinstance(rec, dict) else None
                ts = rec.get(ts_f) if ts_f and isinstance(rec, dict) else None
                ts = ts if isinstance(ts, str) and _TIMESTAMP.match(ts) else None
                key = rid if rid is not None else f"\0{n}:{len(versions)}"
                if key in versions and versions[key] is not None and (ts is None or ts <= versions[key]):
                    continue
                versions[key] = ts
                if ts is not None and (max_ts is None or ts > max_ts):
                    max_ts = ts
            page_docs.append(
                {"file": name, "cursor": cursor, "records": len(records), "bytes": len(body), "sha256": digest}
                | puller.stats.pages[-1]
            )
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        puller.close()
    elapsed = time.perf_counter() - t0
    distinct = len(versions)
    new_versions = sum(1 for k, v in versions.items() if not (v is not None and v == since and k in seen_ids))
    if new_versions == 0:
        shutil.rmtree(tmp, ignore_errors=True)
        log.info("pull %s: nothing new since %s (%d page(s), %.2f s)", source.name, since, len(files), elapsed)
        return None

    next_ids = sorted(str(k) for k, v in versions.items() if v is not None and v == max_ts)
    if max_ts is not None and max_ts == since:
        next_ids = sorted(set(next_ids) | seen_ids)
    watermark_next = {"modified_at": max_ts, "ids": next_ids} if max_ts else watermark
    content = hashlib.sha256("".join(f.sha256 for f in files).encode()).hexdigest()
    batch_id = f"{source.name}-{started_at:%Y%m%dT%H%M%S%f}-{content[:8]}"
    directory = base / batch_id
    os.rename(tmp, directory)
    files = [LandedFile(f.name, directory / f.name, f.sha256, f.bytes) for f in files]
    extra = {
        "request": {
            "url": _public_url(records_url(source.name, opts.url)),
            "method": "GET",
            "params": {"page_size": opts.page_size} | ({"modified_since": since} if since else {}),
            "paging": "keyset cursor (next_cursor)",
            "auth": f"bearer token from env {opts.token_env}"
            if os.environ.get(opts.token_env)
            else f"bearer token from secret block {opts.token_secret_block}",
            "timeouts_s": {"connect": opts.connect_timeout, "read": opts.read_timeout},
        },
        "pages": page_docs,
        "records_received": received,
        "records_distinct": distinct,
        "duplicates": received - distinct,
        "already_loaded_records": distinct - new_versions,
        "total_records_reported": puller.stats.total_reported,
        "retries": puller.stats.retries,
        "timings": {
            "started_at": started_at.isoformat(),
            "seconds": round(elapsed, 3),
            "retry_wait_seconds": round(puller.stats.waited_s, 3),
        },
        "watermark_from": watermark,
        "watermark_next": watermark_next,
    }
    if watermark and watermark.get("ids"):
        extra["already_loaded"] = {"modified_at": since, "ids": sorted(seen_ids)}
    if source.fields:
        extra["fields"] = source.fields
    batch = LandedBatch(
        source.name,
        batch_id,
        directory,
        files,
        started_at.isoformat(),
        0,
        "incremental" if since else "full",
        extra,
    )
    write_manifest(batch)
    log.info(
        "pull %s: %d page(s), %d record(s) (%d distinct, %d duplicate), %.2f s",
        source.name,
        len(files),
        received,
        distinct,
        received - distinct,
        elapsed,
    )
    return batch
