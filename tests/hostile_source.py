"""A hostile export source on loopback, for the tests: the HTTP export contract (docs/sources.md)
served wrongly on purpose, one behaviour per server.

- `records`: the contract, over the records given (keyset paging by an opaque cursor, ordered
  by (更新时间, id), `modified_since` honoured unless `ignore_since`): hostile by its content
  (future dates, older versions, wrong types, ...);
- `trickle`: a 200 with a large Content-Length, then one byte every `interval` seconds, for ever
  (`trickle_headers`: the status line and headers themselves, one byte at a time);
- `cycle`: cursors A -> B -> A;
- `fresh_cursor`: the same records on every page, each time under a new cursor;
- `gzip_bomb`: a 1 MB gzip body that decompresses to 1 GiB of spaces;
- `huge`: a 200 MB body (`Content-Length` declared), or chunked without a length
  (`huge_chunked`), generated as it is sent;
- `redirect`: a 302 to another origin (`location`).

Every request is recorded (path, query, whether it carried a token), never its token.
"""

from __future__ import annotations

import contextlib
import json
import struct
import threading
import uuid
import zlib
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

CASES = (
    "records",
    "trickle",
    "trickle_headers",
    "cycle",
    "fresh_cursor",
    "gzip_bomb",
    "huge",
    "huge_chunked",
    "redirect",
)
MB = 2**20


@cache
def gzip_bomb(gib: int = 1) -> bytes:
    """A valid gzip body (~1 MB per GiB) of `gib` GiB of spaces: one deflate stream built from
    the same fully-flushed block repeated (compressing a GiB would take seconds)."""
    chunk = b" " * MB
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15, 9, zlib.Z_RLE)
    first = deflate.compress(chunk) + deflate.flush(zlib.Z_FULL_FLUSH)
    block = deflate.compress(chunk) + deflate.flush(zlib.Z_FULL_FLUSH)  # the same bytes for every further MB
    crc, n = 0, gib * 1024
    for _ in range(n):
        crc = zlib.crc32(chunk, crc)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    return header + first + block * (n - 1) + deflate.flush(zlib.Z_FINISH) + struct.pack("<II", crc, (n * MB) % 2**32)


class HostileSource:
    """One hostile server for every source path (`<url><source>/records`); a context manager."""

    def __init__(
        self,
        case: str,
        records: list[dict] | None = None,
        *,
        id_field: str = "行为编号",
        ignore_since: bool = False,
        interval: float = 2.0,
        location: str = "http://127.0.0.2:9/elsewhere",
    ):
        if case not in CASES:
            raise ValueError(f"unknown case {case!r}")
        self.case, self.ignore_since, self.interval, self.location = case, ignore_since, interval, location
        self.records = sorted(records or [], key=lambda r: (str(r.get("更新时间")), str(r.get(id_field))))
        self.requests: list[dict] = []
        self._stop = threading.Event()
        handler = type("Handler", (_Handler,), {"source": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="hostile-source", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/"

    def __enter__(self) -> HostileSource:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()

    def page(self, params: dict) -> dict:
        """The contract's page for the request (`records`, `cycle`, `fresh_cursor`)."""
        size = int(params.get("page_size", 500))
        since, cursor = params.get("modified_since"), params.get("cursor")
        head = {"source": "enforcement", "page_size": size, "modified_since": since, "cursor": cursor}
        if self.case == "cycle":
            nxt = {None: "A", "A": "B", "B": "A"}[cursor]
            i = {None: 0, "A": 1, "B": 2}[cursor]
            return head | {"next_cursor": nxt, "records": self.records[i : i + 1]}
        if self.case == "fresh_cursor":
            return head | {"next_cursor": uuid.uuid4().hex, "records": self.records[:2]}
        chosen = [r for r in self.records if self.ignore_since or not since or str(r.get("更新时间")) >= since]
        start = int(cursor) if cursor else 0
        end = min(len(chosen), start + size)
        return head | {
            "total_records": len(chosen),
            "next_cursor": str(end) if end < len(chosen) else None,
            "records": chosen[start:end],
        }


class _Handler(BaseHTTPRequestHandler):
    source: HostileSource
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        params = {k: v[-1] for k, v in parse_qs(url.query).items()}
        src = self.source
        src.requests.append({"path": url.path, "params": params, "token": bool(self.headers.get("Authorization"))})
        with contextlib.suppress(OSError):  # the client hung up: that is what it should do here
            getattr(self, f"_{src.case}", self._json)(params)

    def _json(self, params: dict) -> None:
        self._send(200, json.dumps(self.source.page(params), ensure_ascii=False).encode())

    _records = _cycle = _fresh_cursor = _json

    def _send(self, status: int, body: bytes, headers: dict | None = None) -> None:
        self.send_response(status)
        for k, v in ({"Content-Type": "application/json; charset=utf-8", "Content-Length": str(len(body))}).items():
            self.send_header(k, v)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _drip(self, data: bytes) -> None:
        for byte in data:
            if self.source._stop.wait(self.source.interval):
                return
            self.wfile.write(bytes([byte]))
            self.wfile.flush()

    def _trickle(self, params: dict) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(MB))
        self.end_headers()
        self.wfile.flush()
        self._drip(b'{"records": [' + b" " * MB)

    def _trickle_headers(self, params: dict) -> None:
        self._drip(b"HTTP/1.1 200 OK\r\nX-Slow: " + b"x" * MB)

    def _gzip_bomb(self, params: dict) -> None:
        self._send(200, gzip_bomb(), {"Content-Encoding": "gzip"})

    def _huge(self, params: dict, chunked: bool = False) -> None:
        self.send_response(200)
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(200 * MB))
        self.end_headers()
        piece = b'{"records": [' + b" " * (MB - 13)
        for _ in range(200):
            if self.source._stop.is_set():
                return
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
            piece = b" " * MB
        if chunked:
            self.wfile.write(b"0\r\n\r\n")

    def _huge_chunked(self, params: dict) -> None:
        self._huge(params, chunked=True)

    def _redirect(self, params: dict) -> None:
        self._send(302, b"", {"Location": self.source.location})

    def log_message(self, format: str, *args) -> None:
        pass
