"""Helpers for tests and benchmarks that start real servers (Prefect, the source simulator):
a free loopback port, JSON over HTTP, and stopping a process group."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import urllib.request


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def api_json(url: str, body: dict | None = None, timeout: float = 10):
    """GET `url` (POST `body` as JSON when given); the decoded JSON answer."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as r:
        return json.loads(r.read())


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
