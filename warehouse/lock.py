"""One writer: an exclusive lock on the working database, held for a whole run.

An OS file lock (flock) on `<home>/work.lock`: released by the kernel when the holder exits,
even on kill -9, so a crashed run never leaves a stale lock. The file says who holds it, so a
run that gives up waiting can name the run in its way. Analysts read the published database,
never the working one, so they never take or wait for this lock.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from warehouse.errors import HeldByAnother


class WriterBusy(HeldByAnother, RuntimeError):
    """Another run holds the working database for longer than we were willing to wait."""


@contextmanager
def writer_lock(home: Path, run_id: str, wait_seconds: float = 600.0, poll_seconds: float = 0.5):
    home.mkdir(parents=True, exist_ok=True)
    path = home / "work.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    deadline = time.monotonic() + wait_seconds
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = _holder(path)
                    raise WriterBusy(
                        f"另一运行正在写入仓库({holder})，等待 {wait_seconds:g} 秒后退出 / "
                        f"another run holds the working database ({holder}); gave up after {wait_seconds:g} s"
                    ) from None
                time.sleep(poll_seconds)
        holder = json.dumps({"run_id": run_id, "pid": os.getpid(), "since": datetime.now(UTC).isoformat()})
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, holder.encode(), 0)
        except OSError as exc:  # a full disk: say which file could not be written
            raise OSError(exc.errno, exc.strerror, str(path)) from None
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text() or "{}")
        return f"run {info.get('run_id')} pid {info.get('pid')} since {info.get('since')}"
    except (OSError, ValueError):
        return "unknown run"
