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

Every pull is bounded (a hostile or broken server fails its own source, by name, and never
holds the night): a deadline for the whole pull, enforced by a watchdog that cuts the pull's
sockets (a server trickling one byte at a time defeats any per-read timeout); a cap on pages; a
cursor seen before ends the pull (a cycle), and so do pages that bring no new record; a maximum
response size, on the wire and after decompression, read as a stream (never a whole unbounded
body); redirects are refused, not followed. None of these is retried.

The token is read when the pull starts (environment, else a Prefect Secret block), sent only in
the `Authorization` header, and never logged, stored or put into an error message. Nothing the
server sends (records, cursors, headers) goes into a message or a log either.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import socket
import threading
import time
import uuid
import weakref
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from urllib.parse import urljoin, urlsplit, urlunsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from expectations.clock import latest_allowed_at
from warehouse.config import HttpOptions, MissingToken, SourceConfig
from warehouse.sources import registry
from warehouse.sources.landing import LandedBatch, LandedFile, _private_dirs, write_manifest
from warehouse.sources.mapping import SourceError

try:  # orjson (a Prefect dependency) parses pages several times faster than json
    import orjson

    _loads = orjson.loads
except ImportError:  # pragma: no cover
    import json

    _loads = json.loads

log = logging.getLogger("fazhi.http")

RECORDS_PATH = "records"  # the endpoint, relative to the source's url: <url>/<source>/records
RETRY_STATUSES = {408, 425, 429, 500, 502, 503, 504}
MAX_STALLED_PAGES = 5  # pages in a row that answer another request or bring nothing new: paging is broken
READ_CHUNK = 64 * 1024  # bytes asked of the socket at a time while streaming a body
# refusals of a hostile or broken source: deterministic, so neither the client nor the flow retries them
NOT_RETRIED = frozenset(
    {"http-deadline", "http-page-cap", "http-cursor-cycle", "http-paging", "http-too-large", "http-redirect"}
)
_TRANSPORT_ERRORS = (requests.RequestException, urllib3.exceptions.HTTPError, OSError)


def resolve_token(source: SourceConfig) -> str:
    """The source's token: `$FAZHI_<SOURCE>_TOKEN` (or `token_env`), else the Prefect Secret block."""
    opts = source.http
    assert opts is not None
    token = os.environ.get(opts.token_env)
    if token:
        return token.strip()
    if opts.token_secret_block:
        from warehouse.secrets import read_secret

        return read_secret(opts.token_secret_block).strip()
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


def _origin(url: str) -> str:
    """scheme://host[:port] of a URL: all a message says of an address the server named."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}" + (f":{parts.port}" if parts.port else "")


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


class _CuttableAdapter(HTTPAdapter):
    """An adapter that knows the sockets of its connections, so a watchdog thread can cut them
    all at once (`cut`): a blocked read then ends at once, wherever it is (connect, status line,
    headers or body)."""

    def __init__(self):
        self.sockets: weakref.WeakSet = weakref.WeakSet()
        self.cut_off = False
        self._lock = threading.Lock()  # the watchdog's thread cuts while the pull's thread connects
        super().__init__(pool_connections=1, pool_maxsize=2, max_retries=0)

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        adapter = self

        def tracked(base):
            class Tracked(base):
                def connect(self):
                    super().connect()
                    adapter.track(self.sock)

            return Tracked

        self.poolmanager.pool_classes_by_scheme = {
            "http": type("Pool", (HTTPConnectionPool,), {"ConnectionCls": tracked(HTTPConnection)}),
            "https": type("Pool", (HTTPSConnectionPool,), {"ConnectionCls": tracked(HTTPSConnection)}),
        }

    def track(self, sock: socket.socket) -> None:
        with self._lock:
            self.sockets.add(sock)
        if self.cut_off:  # connected after the deadline
            self.cut()

    def cut(self) -> None:
        with self._lock:
            self.cut_off = True
            sockets = list(self.sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):  # already closed
                sock.shutdown(socket.SHUT_RDWR)


class HttpPuller:
    """Pulls every page of one source's export with one `requests.Session` (connections reused),
    within the source's bounds (deadline, page cap, response size)."""

    def __init__(
        self,
        source: str,
        opts: HttpOptions,
        token: str,
        *,
        sleep: Callable[[float], None] = time.sleep,
        session: requests.Session | None = None,
        id_field: str | None = None,
        ts_field: str | None = None,
    ):
        self.source, self.opts, self.sleep = source, opts, sleep
        self.id_field, self.ts_field = id_field, ts_field
        self.url = records_url(source, opts.url)
        self.session = session or requests.Session()
        self.adapter = _CuttableAdapter()
        self.session.mount("http://", self.adapter)
        self.session.mount("https://", self.adapter)
        self._headers = {
            "Authorization": f"Bearer {token}",
            "Accept": "application/json",
            "Accept-Encoding": "gzip, deflate",  # the encodings _read_body decodes (with its own limit)
        }
        self.stats = PullStats()
        self.deadline = time.monotonic() + opts.pull_deadline_seconds
        self._watchdog: threading.Timer | None = None

    def close(self) -> None:
        if self._watchdog:
            self._watchdog.cancel()
        self.session.close()

    def _error(self, n: int, zh: str, en: str, rule: str) -> SourceError:
        return SourceError(self.source, f"page {n}", zh, en, rule)

    def _remaining(self) -> float:
        return self.deadline - time.monotonic()

    def _past_deadline(self, n: int) -> SourceError:
        s = self.opts.pull_deadline_seconds
        return self._error(
            n,
            f"拉取超过时限({s:g}秒)，在第{n}页处停止(数据源响应过慢或不停止)",
            f"the pull passed its deadline (pull_deadline_seconds = {s:g}) at page {n}: the source is too slow "
            "or never ends",
            "http-deadline",
        )

    def pages(self, since: str | None):
        """Yield (page number, cursor sent, body bytes, parsed document) for every page."""
        self.deadline = time.monotonic() + self.opts.pull_deadline_seconds
        self._watchdog = threading.Timer(max(0.0, self._remaining()), self.adapter.cut)
        self._watchdog.daemon = True
        self._watchdog.start()
        cursor, n, stalled = None, 0, 0
        asked: set[str | None] = {None}  # every cursor followed (None: the first page)
        versions: set[tuple] = set()  # (id, 更新时间) of the records received in this pull
        while True:
            if n >= self.opts.max_pages:
                raise self._error(
                    n,
                    f"页数超过上限({self.opts.max_pages}页)，数据源分页异常",
                    f"more than max_pages = {self.opts.max_pages} pages: the source's paging does not end",
                    "http-page-cap",
                )
            params = {"page_size": self.opts.page_size}
            if since:
                params["modified_since"] = since
            if cursor:
                params["cursor"] = cursor
            n += 1
            body, doc = self._get(params, n)
            if self.stats.total_reported is None:
                total = doc.get("total_records")
                self.stats.total_reported = total if isinstance(total, int) and not isinstance(total, bool) else None
            yield n, cursor, body, doc
            nxt = doc.get("next_cursor")
            nxt = nxt if isinstance(nxt, str) and nxt else None
            fresh = self._new_versions(doc["records"], versions)
            if (doc.get("cursor"), doc.get("modified_since")) != (cursor, since):
                # another page than asked for (a page served twice, a stale cache): its records are
                # kept (de-duplicated at parse) but its cursor is not followed; ask again
                stalled = self._stalled(stalled + 1, n)
                continue
            if not nxt:
                return
            if nxt in asked:
                raise self._error(
                    n,
                    f"第{n}页的下一页游标此前已经请求过(游标循环)，数据源分页异常",
                    f"page {n} points back to a page already asked for (a cursor cycle): the source's paging "
                    "never ends",
                    "http-cursor-cycle",
                )
            # a page of records already received (new cursors over the same records) is no progress
            stalled = 0 if fresh else self._stalled(stalled + 1, n)
            asked.add(nxt)
            cursor = nxt

    def _stalled(self, stalled: int, n: int) -> int:
        if stalled >= MAX_STALLED_PAGES:
            raise self._error(
                n,
                f"分页连续{stalled}次没有带来新记录，数据源分页异常",
                f"paging does not advance: {stalled} pages in a row answered another request or brought no new record",
                "http-paging",
            )
        return stalled

    def _new_versions(self, records: list, seen: set[tuple]) -> bool:
        """Whether the page brings a record version (id, 更新时间) not received before in this
        pull (always, when the id field is unknown)."""
        if not self.id_field:
            return True
        before = len(seen)
        seen.update(
            (str(r.get(self.id_field)), str(r.get(self.ts_field)))
            for r in records
            if isinstance(r, dict) and r.get(self.id_field) is not None
        )
        return len(seen) > before

    def _get(self, params: dict, n: int) -> tuple[bytes, dict]:
        opts, attempt = self.opts, 0
        while True:
            attempt += 1
            retry_after, started = None, time.monotonic()
            remaining = self._remaining()
            if remaining <= 0 or self.adapter.cut_off:
                raise self._past_deadline(n)
            try:
                with self.session.get(
                    self.url,
                    params=params,
                    headers=self._headers,
                    timeout=(min(opts.connect_timeout, remaining), min(opts.read_timeout, remaining)),
                    verify=opts.verify,
                    stream=True,  # the body is read by _read_body, within max_page_bytes
                    allow_redirects=False,
                ) as r:
                    if r.status_code == 200:
                        body = self._read_body(r, n)
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
                        raise self._error(
                            n,
                            f"访问被拒绝(HTTP {r.status_code})：令牌无效或已过期",
                            f"access refused (HTTP {r.status_code}): the token is wrong or expired",
                            "http-auth",
                        )
                    elif 300 <= r.status_code < 400:
                        target = _origin(urljoin(self.url, r.headers.get("Location") or ""))
                        raise self._error(
                            n,
                            f"第{n}页被重定向(HTTP {r.status_code})到 {target}：不跟随重定向(令牌不发往其他地址)，"
                            "请在 fazhi.toml 中配置最终地址",
                            f"page {n}: HTTP {r.status_code} redirect to {target}, not followed (the token is never "
                            "sent to another address): configure the final url in fazhi.toml",
                            "http-redirect",
                        )
                    elif r.status_code in RETRY_STATUSES:
                        reason, rule = f"HTTP {r.status_code}", "http-status"
                        zh = f"第{n}页请求失败(HTTP {r.status_code})"
                        retry_after = _retry_after(r.headers.get("Retry-After"))
                    else:
                        raise self._error(
                            n,
                            f"第{n}页请求失败(HTTP {r.status_code})",
                            f"page {n}: HTTP {r.status_code} from {_public_url(self.url)}",
                            "http-client-error",  # 4xx: the URL or the request is wrong, not retried
                        )
            except _TRANSPORT_ERRORS as exc:
                if self.adapter.cut_off or self._remaining() <= 0:
                    raise self._past_deadline(n) from None
                reason, rule = _transport_reason(exc), "http-connection"
                zh = f"第{n}页请求失败(连接错误或超时：{reason})"
            wait = min(opts.backoff_max, opts.backoff_base * 2 ** (attempt - 1))
            if retry_after is not None:
                wait = max(wait, retry_after)
            event = {"page": n, "attempt": attempt, "reason": reason, "wait_s": round(wait, 3)}
            if attempt >= opts.max_attempts or self.stats.waited_s + wait > opts.max_retry_seconds:
                self.stats.retries.append(event | {"gave_up": True})
                raise self._error(
                    n,
                    f"{zh}，已尝试{attempt}次，放弃",
                    f"page {n}: {reason}; gave up after {attempt} attempt(s) and {self.stats.waited_s:.1f} s of "
                    "retry waits",
                    rule,
                )
            if wait >= self._remaining():
                self.stats.retries.append(event | {"gave_up": True})
                raise self._past_deadline(n)
            self.stats.retries.append(event)
            log.warning("pull %s page %d: %s; retry %d in %.2f s", self.source, n, reason, attempt, wait)
            self.sleep(wait)
            self.stats.waited_s += wait

    def _read_body(self, r: requests.Response, n: int) -> bytes:
        """The body, decompressed, read as a stream and refused as soon as it passes
        max_page_bytes on the wire or once decompressed (a gzip bomb expands ~1000x), or when
        the pull's deadline passes (a trickling server)."""
        limit = self.opts.max_page_bytes
        declared = (r.headers.get("Content-Length") or "").strip()
        if declared.isdigit() and int(declared) > limit:
            raise self._too_large(n, f"declares {int(declared)} bytes")
        coding = (r.headers.get("Content-Encoding") or "identity").strip().lower()
        if coding in ("gzip", "x-gzip", "deflate"):
            decoder = zlib.decompressobj(zlib.MAX_WBITS | 32)  # gzip or zlib header, detected
        elif coding == "identity":
            decoder = None
        else:
            raise self._error(
                n,
                f"第{n}页使用了不支持的压缩方式",
                f"page {n}: unsupported Content-Encoding (gzip, deflate or none expected)",
                "page-json",
            )
        out, wire = bytearray(), 0
        try:
            while chunk := r.raw.read1(READ_CHUNK, decode_content=False):
                wire += len(chunk)
                if wire > limit:
                    raise self._too_large(n, f"sends more than {limit} bytes")
                if decoder is None:
                    out += chunk
                else:
                    out += decoder.decompress(chunk, limit + 1 - len(out))
                    while decoder.unconsumed_tail and len(out) <= limit:
                        out += decoder.decompress(decoder.unconsumed_tail, limit + 1 - len(out))
                if len(out) > limit:
                    raise self._too_large(n, f"decompresses to more than {limit} bytes")
                if self._remaining() <= 0:
                    raise self._past_deadline(n)
            if decoder is not None:
                out += decoder.flush()
        except zlib.error:
            return bytes(out)  # a corrupt stream: whatever came is not valid JSON, retried as such
        if len(out) > limit:
            raise self._too_large(n, f"decompresses to more than {limit} bytes")
        return bytes(out)

    def _too_large(self, n: int, what: str) -> SourceError:
        limit = self.opts.max_page_bytes
        return self._error(
            n,
            f"第{n}页响应超过大小上限({limit}字节，含解压后)，数据源停止",
            f"page {n}: the response {what}, over max_page_bytes = {limit} (on the wire or decompressed)",
            "http-too-large",
        )


def _transport_reason(exc: BaseException) -> str:
    """A transport failure's kind, in the names of requests' exceptions (never its text: it may
    quote what the server sent)."""
    if isinstance(exc, requests.ConnectTimeout):
        return "ConnectTimeout"
    if isinstance(exc, requests.Timeout | urllib3.exceptions.TimeoutError | TimeoutError):
        return "ReadTimeout"
    if isinstance(exc, requests.RequestException):
        return type(exc).__name__
    return "ConnectionError"


def _id_and_time_fields(source: SourceConfig) -> tuple[str | None, str | None]:
    """The export's id and 更新时间 field names: the registry's key and cursor columns, named as
    the field dictionary (plus the county's overrides) says. None for a source not declared as
    an HTTP source."""
    declared = registry.source(source.name)
    if "http" not in declared.kinds:
        return None, None
    (table,) = declared.tables
    columns = {c.name: c for c in declared.mapping(table.name, source.fields).columns}
    return columns[table.key[0]].fields[0], columns[table.cursor].fields[0]


def land_http(
    source: SourceConfig,
    landing_dir: Path,
    watermark: dict | None,
    *,
    token: str | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> LandedBatch | None:
    """Pull everything modified since the watermark into a new landing batch; None when the
    source has nothing the warehouse does not already hold.

    `watermark` is the warehouse's (warehouse/watermark.py) {"modified_at", "ids",
    "quarantined"}: pulls ask `modified_since=modified_at` (inclusive, so a record saved later in
    the same second is not missed); the records already loaded at exactly that time (`ids`) and
    the record versions already quarantined (`quarantined`, [id, 更新时间] pairs) do not count as
    new. The load moves the watermark, over the records it loaded (warehouse/load.py)."""
    opts = source.http
    assert opts is not None
    token = token if token is not None else resolve_token(source)
    watermark = watermark or {}
    since = watermark.get("modified_at")
    loaded_ids = set(watermark.get("ids") or [])
    held = {(i, since) for i in loaded_ids} | {(i, ts) for i, ts in watermark.get("quarantined") or []}
    id_f, ts_f = _id_and_time_fields(source)

    started_at, t0 = datetime.now(UTC), time.perf_counter()
    base = landing_dir / source.name
    tmp = base / f".pull-{started_at:%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:6]}"
    _private_dirs(tmp, stop=landing_dir.parent)
    puller = HttpPuller(source.name, opts, token, sleep=sleep, id_field=id_f, ts_field=ts_f)
    files: list[LandedFile] = []
    received = 0
    versions: dict[str, str | None] = {}  # id -> latest 更新时间 received
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
                ts = ts.strip() if isinstance(ts, str) else None
                key = str(rid) if rid is not None else f"\0{n}:{len(versions)}"
                if key in versions and versions[key] is not None and (ts is None or ts <= versions[key]):
                    continue
                versions[key] = ts
            page_docs.append(
                {
                    "file": name,
                    # the cursor as a digest: what a server sends never reaches a manifest as such
                    "cursor_sha256": hashlib.sha256(cursor.encode()).hexdigest()[:16] if cursor else None,
                    "records": len(records),
                    "bytes": len(body),
                    "sha256": digest,
                }
                | puller.stats.pages[-1]
            )
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        puller.close()
    elapsed = time.perf_counter() - t0
    distinct = len(versions)
    quarantined = sorted([k, v] for k, v in versions.items() if (k, v) in held and not (v == since and k in loaded_ids))
    new_versions = sum(1 for k, v in versions.items() if (k, v) not in held)
    if new_versions == 0:
        shutil.rmtree(tmp, ignore_errors=True)
        log.info("pull %s: nothing new since %s (%d page(s), %.2f s)", source.name, since, len(files), elapsed)
        return None

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
            "bounds": {
                "pull_deadline_seconds": opts.pull_deadline_seconds,
                "max_pages": opts.max_pages,
                "max_page_bytes": opts.max_page_bytes,
            },
        },
        "pages": page_docs,
        "records_received": received,
        "records_distinct": distinct,
        "duplicates": received - distinct,
        "already_loaded_records": distinct - new_versions - len(quarantined),
        "already_quarantined_records": len(quarantined),
        "total_records_reported": puller.stats.total_reported,
        "retries": puller.stats.retries,
        "timings": {
            "started_at": started_at.isoformat(),
            "seconds": round(elapsed, 3),
            "retry_wait_seconds": round(puller.stats.waited_s, 3),
        },
        # dates and 更新时间 after this (the pull's clock, local time, plus clock_skew_seconds) are refused
        "latest_allowed_at": latest_allowed_at(started_at, opts.clock_skew_seconds),
        "watermark_from": {"modified_at": since, "ids": sorted(loaded_ids)} if since else None,
    }
    if since and loaded_ids:
        extra["already_loaded"] = {"modified_at": since, "ids": sorted(loaded_ids)}
    if quarantined:
        extra["already_quarantined"] = quarantined
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
