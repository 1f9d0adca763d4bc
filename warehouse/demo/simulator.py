"""The source simulator: serves a sample directory's pages of every HTTP source (enforcement,
mediation, and any source registered with kind http: warehouse/sources/registry.py) over
loopback HTTP with the export contract of docs/sources.md ("HTTP export contract"), with
switchable, deterministic faults.

    fazhi simulate --data DIR [--port N] [--token T] [--faults PROFILE] [--state initial|later]

Records: every record of `DIR/<source>/page-*.json`, ordered by (更新时间, id). Two states of the
source system, so incremental pulls have something to find:
- `initial`: the records as the sample wrote them;
- `later`: the same system some days on: a few records (chosen by the seed) were modified after
  they were first exported (late corrections: the case was voided, 作废 = 是) and carry a
  更新时间 after every initial record, so a `modified_since` pull at the old watermark returns
  exactly them. `POST /_sim/advance` (or `Simulator.advance()`) switches to it.

Fault profiles (comma-separated to combine); every fault is decided by the per-source count of
record requests, never by the clock or a random draw, so a test sees the same faults every time:
- `none`
- `flaky`: a repeating cycle of 429 with Retry-After, 500, a connection reset, 502, a response
  slower than the client's read timeout, 503, a body cut short once, and a page served twice
  (the previous page again); every page size varies around the requested one, so page
  boundaries shift between requests (offset paging, `page=N`, then skips or repeats records;
  the cursor does not). The data set is the same as with `none`.
- `truncated`: every page after the first is cut off mid-JSON (Content-Length matches the cut
  body, as from a broken export), on every attempt.
- `drift`: the enforcement export renames 行为类型 to 行为种类; the mediation export drops 调解结果.
"""

from __future__ import annotations

import base64
import bisect
import contextlib
import hmac
import json
import logging
import random
import socket
import struct
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from warehouse.errors import BadInput
from warehouse.sources.registry import page_sources

try:
    import orjson

    def _dumps(obj) -> bytes:
        return orjson.dumps(obj)
except ImportError:  # pragma: no cover

    def _dumps(obj) -> bytes:
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


log = logging.getLogger("fazhi.simulator")


class SimulatorRefused(BadInput, ValueError):
    """The simulator cannot serve what it was given (no sample pages, an unknown fault profile)."""


PROFILES = ("none", "flaky", "truncated", "drift")
MAX_PAGE_SIZE = 10_000
FLAKY_CYCLE = ("ok", "429", "ok", "500", "reset", "ok", "502", "slow", "ok", "dup", "ok", "cut", "503", "ok")
DRIFT = {"enforcement": ("rename", "行为类型", "行为种类"), "mediation": ("remove", "调解结果", None)}


class RecordStore:
    """One source's records in one state: sort keys `更新时间 \\0 id` and each record's JSON bytes."""

    def __init__(self, keys: list[str], lines: list[bytes]):
        self.keys, self.lines = keys, lines

    @classmethod
    def from_records(cls, records: list[dict], id_field: str, ts_field: str) -> RecordStore:
        pairs = sorted((f"{r.get(ts_field) or ''}\0{r.get(id_field) or ''}", _dumps(r)) for r in records)
        return cls([k for k, _ in pairs], [v for _, v in pairs])

    def __len__(self) -> int:
        return len(self.keys)


def read_pages(folder: Path) -> list[dict]:
    records: list[dict] = []
    for page in sorted(folder.glob("page-*.json")):
        records.extend(json.loads(page.read_text(encoding="utf-8"))["records"])
    return records


def later_state(records: list[dict], id_field: str, ts_field: str, seed: int, corrections: int) -> list[dict]:
    """The records after late corrections: `corrections` records (seeded choice among those not
    voided) voided with a 更新时间 after every record of the initial state."""
    candidates = sorted(
        (i for i, r in enumerate(records) if r.get("作废") != "是" and r.get(id_field)),
        key=lambda i: str(records[i][id_field]),
    )
    chosen = random.Random(seed).sample(candidates, min(corrections, len(candidates)))
    latest = max((r.get(ts_field) or "" for r in records), default="")
    try:
        base = datetime.strptime(latest, "%Y-%m-%d %H:%M:%S")
    except ValueError:
        base = datetime(2025, 1, 1)
    out = list(records)
    for k, i in enumerate(sorted(chosen, key=lambda i: str(records[i][id_field]))):
        stamp = (base + timedelta(days=3, minutes=k)).strftime("%Y-%m-%d %H:%M:%S")
        out[i] = dict(records[i], 作废="是", **{ts_field: stamp})
    return out


def _encode_cursor(key: str) -> str:
    return base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> str:
    return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()


@dataclass
class _Response:
    status: int
    body: bytes
    headers: dict
    action: str = "ok"  # ok | reset | slow | cut


class Simulator:
    """A loopback HTTP server for one sample directory. Use as a context manager or start()/stop()."""

    def __init__(
        self,
        data: Path | None = None,
        *,
        token: str,
        faults: str = "none",
        seed: int = 0,
        state: str = "initial",
        corrections: int = 3,
        slow_seconds: float = 6.0,
        retry_after: float = 1.0,
        stores: dict[str, dict[str, RecordStore]] | None = None,
    ):
        profile = {p.strip() for p in faults.split(",") if p.strip()} or {"none"}
        unknown = profile - set(PROFILES)
        if unknown:
            raise SimulatorRefused(
                f"未知的故障配置 {sorted(unknown)} / unknown fault profile(s) {sorted(unknown)}; "
                f"可选 / choose from {', '.join(PROFILES)}"
            )
        if not token:
            raise SimulatorRefused("模拟数据源需要访问令牌 / the simulator needs a token")
        self.token, self.faults, self.state = token, profile - {"none"}, state
        self.slow_seconds, self.retry_after = slow_seconds, retry_after
        self.stores = stores if stores is not None else self._load(Path(data), seed, corrections)
        self.requests: dict[str, int] = {}
        self.served: dict[str, int] = {}
        self._last_params: dict[str, dict] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @staticmethod
    def _load(data: Path, seed: int, corrections: int) -> dict[str, dict[str, RecordStore]]:
        stores = {}
        sources = page_sources()  # name -> the export's id and 更新时间 fields
        for source, (id_f, ts_f) in sources.items():
            folder = data / source
            if not folder.is_dir():
                continue
            records = read_pages(folder)
            stores[source] = {
                "initial": RecordStore.from_records(records, id_f, ts_f),
                "later": RecordStore.from_records(later_state(records, id_f, ts_f, seed, corrections), id_f, ts_f),
            }
        if not stores:
            folders = ", ".join(f"{s}/" for s in sources)
            raise SimulatorRefused(
                f"{data} 下没有导出页文件夹({folders})：请给出 `fazhi sample --out` 写出的目录 / no page folder "
                f"({folders}) under {data}: give a folder written by `fazhi sample --out`"
            )
        return stores

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        handler = type("Handler", (_Handler,), {"sim": self})
        self._server = _Server((host, port), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="fazhi-simulator", daemon=True)
        self._thread.start()
        return self.url

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Simulator:
        if self._server is None:
            self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def advance(self) -> None:
        """Switch to the `later` state: late corrections become visible to the next pulls."""
        self.state = "later"

    # -- the contract ------------------------------------------------------------------------
    def respond(self, path: str, query: str, auth: str | None) -> _Response:
        parts = [p for p in path.split("/") if p]
        if parts == ["health"]:
            return _Response(200, b'{"status":"ok"}', {})
        if not auth or not hmac.compare_digest(auth.encode(), f"Bearer {self.token}".encode()):
            return _json(401, {"error": "unauthorized", "message": "missing or wrong bearer token"})
        if parts == ["_sim", "advance"]:
            self.advance()
            return _json(200, {"state": self.state})
        if len(parts) != 2 or parts[1] != "records" or parts[0] not in self.stores:
            return _json(404, {"error": "not found", "sources": sorted(self.stores)})
        source = parts[0]
        params = {k: v[-1] for k, v in parse_qs(query).items()}
        with self._lock:
            n = self.requests[source] = self.requests.get(source, 0) + 1
            fault = FLAKY_CYCLE[(n - 1) % len(FLAKY_CYCLE)] if "flaky" in self.faults else "ok"
            if fault == "dup" and source in self._last_params:
                params = self._last_params[source]  # the previous page again
            self._last_params[source] = params
        if fault == "429":
            return _json(429, {"error": "too many requests"}, {"Retry-After": _num(self.retry_after)})
        if fault in ("500", "502", "503"):
            return _json(int(fault), {"error": "server error"})
        if fault == "reset":
            return _Response(0, b"", {}, "reset")
        try:
            page = self._page(source, params, n)
        except ValueError as exc:
            return _json(400, {"error": "bad request", "message": str(exc)})
        if fault == "slow":
            page.action = "slow"
        if fault == "cut" or ("truncated" in self.faults and params.get("cursor")):
            page.body = page.body[: max(1, len(page.body) // 2)]
        with self._lock:
            self.served[source] = self.served.get(source, 0) + 1
        return page

    def _page(self, source: str, params: dict, n: int) -> _Response:
        store = self.stores[source][self.state]
        size = int(params.get("page_size", 500))
        if not 1 <= size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be 1..{MAX_PAGE_SIZE}")
        since = params.get("modified_since")
        start = bisect.bisect_left(store.keys, since) if since else 0
        total = len(store) - start
        shift = (n * 7) % 5 - 2 if "flaky" in self.faults else 0  # -2..2, by request count
        if "cursor" in params:
            try:
                after = _decode_cursor(params["cursor"])
            except (ValueError, UnicodeDecodeError):
                raise ValueError("invalid cursor") from None
            i = max(start, bisect.bisect_right(store.keys, after))
        elif "page" in params:  # offset paging: not part of the contract, unstable under changes
            i = start + (int(params["page"]) - 1) * size + shift
        else:
            i = start
        i = max(start, min(i, len(store)))
        j = min(len(store), i + max(1, size + shift))
        records = store.lines[i:j]
        if source in DRIFT and "drift" in self.faults:
            records = [_drift(line, *DRIFT[source]) for line in records]
        head = {
            "source": source,
            "page": (i - start) // size + 1,
            "page_size": size,
            "total_records": total,
            "total_pages": max(1, -(-total // size)),
            "modified_since": since,
            "cursor": params.get("cursor"),
            "next_cursor": _encode_cursor(store.keys[j - 1]) if j < len(store) and j > i else None,
        }
        body = _dumps(head)[:-1] + b',"records":[' + b",".join(records) + b"]}"
        return _Response(200, body, {"Content-Type": "application/json; charset=utf-8"})


def _drift(line: bytes, how: str, field: str, new: str | None) -> bytes:
    rec = json.loads(line)
    if field in rec:
        value = rec.pop(field)
        if how == "rename" and new:
            rec[new] = value
    return _dumps(rec)


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def _json(status: int, doc: dict, headers: dict | None = None) -> _Response:
    return _Response(status, _dumps(doc), {"Content-Type": "application/json; charset=utf-8"} | (headers or {}))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address) -> None:  # a client that went away is no error here
        log.debug("simulator: connection from %s ended abruptly", client_address)


class _Handler(BaseHTTPRequestHandler):
    sim: Simulator
    protocol_version = "HTTP/1.1"
    server_version = "fazhi-simulator/1"

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self._serve()

    def _serve(self) -> None:
        url = urlsplit(self.path)
        r = self.sim.respond(url.path, url.query, self.headers.get("Authorization"))
        if r.action == "reset":  # RST instead of a response
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()
            return
        if r.action == "slow":
            time.sleep(self.sim.slow_seconds)
        try:
            self.send_response(r.status)
            for k, v in r.headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(r.body)))
            self.end_headers()
            self.wfile.write(r.body)
        except OSError:
            self.close_connection = True

    def finish(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            super().finish()

    def log_message(self, format: str, *args) -> None:  # request lines only; headers (the token) never
        log.debug("simulator: " + format, *args)


def serve(data: Path, port: int, token: str, faults: str, state: str = "initial", seed: int = 0) -> None:
    """`fazhi simulate`: serve until interrupted."""
    sim = Simulator(data, token=token, faults=faults, state=state, seed=seed)
    url = sim.start(port=port)
    counts = ", ".join(f"{s} {len(st['initial'])}" for s, st in sim.stores.items())
    print(f"模拟数据源 / simulator at {url} ({counts} records; faults: {faults}; state: {state})", flush=True)
    print(f"  GET {url}<source>/records?page_size=500[&modified_since=…][&cursor=…]", flush=True)
    print("  Authorization: Bearer <token>; POST /_sim/advance for the late corrections; Ctrl-C stops", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
