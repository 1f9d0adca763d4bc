"""Helpers for tests and benchmarks that start real servers (Prefect, the source simulator):
a free loopback port, JSON over HTTP, stopping a process group, a robot webhook on loopback."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# what the Prefect server answers when the client may retry (its SQLite database busy, say);
# Prefect's own client retries these, so a test talking to the server must too
RETRY_STATUSES = {408, 429, 502, 503}


def api_json(url: str, body: dict | None = None, method: str | None = None, timeout: float = 10, attempts: int = 6):
    """GET `url` (POST `body` as JSON when given, or `method`); the decoded JSON answer (None for
    an empty one). Retried with backoff on the statuses Prefect's client retries."""
    data = None if body is None else json.dumps(body).encode()
    for attempt in range(attempts):
        request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"}, method=method)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as r:
                answer = r.read()
            return json.loads(answer) if answer else None
        except urllib.error.HTTPError as exc:
            if exc.code not in RETRY_STATUSES or attempt == attempts - 1:
                raise
            time.sleep(0.5 * 2**attempt)


def stop(proc: subprocess.Popen, timeout: float = 30) -> None:
    """Terminate the process group (started with start_new_session: a worker's flow-run
    subprocesses included); killed if it has not ended after `timeout` seconds."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    except ProcessLookupError:
        pass


def fazhi(*args: str, env: dict, memory_cap_bytes: int | None = None, timeout: float = 300, cwd=None):
    """The installed `fazhi` console script in a subprocess, as a user runs it; with
    `memory_cap_bytes`, under that address-space limit (resource.setrlimit, RLIMIT_AS)."""
    import resource
    import sys
    from pathlib import Path

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory_cap_bytes, memory_cap_bytes))

    return subprocess.run(
        [str(Path(sys.executable).with_name("fazhi")), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=cap if memory_cap_bytes else None,
        cwd=cwd,
    )


@contextmanager
def webhook_receiver():
    """A loopback robot webhook that records every JSON body it is sent: (its URL, the bodies)."""
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            received.append(json.loads(body))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"errcode":0,"errmsg":"ok"}')

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/cgi-bin/webhook/send?key=test", received
    finally:
        server.shutdown()
        server.server_close()


def prefect_servers(prefect_home: Path) -> list[int]:
    """Processes serving a Prefect API from this Prefect home (the temporary server included)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if b"prefect.server" in cmdline and f"PREFECT_HOME={prefect_home}".encode() in environ.split(b"\0"):
            pids.append(int(entry.name))
    return pids
