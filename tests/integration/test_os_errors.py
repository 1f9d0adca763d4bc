"""Out of space and other operating-system errors are reported as what they are (a full disk
once read "cannot rollback - no transaction is active"). A small tmpfs is the full disk: these
tests need root (as CI runs) and skip without it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import make_mini_home
from tests.processes import fazhi


@pytest.fixture
def disk(tmp_path):
    """A 64 MB filesystem of its own, filled up by the test with `fill`."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small filesystem needs root")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "none", str(mount)], capture_output=True)
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode()[-200:]}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(mount: Path) -> None:
    free = os.statvfs(mount).f_bavail * os.statvfs(mount).f_frsize
    with (mount / "filler").open("wb") as fh:
        fh.write(b"\0" * free)


def test_a_load_on_a_full_disk_says_the_disk_is_full(disk):
    from warehouse import pipeline
    from warehouse.config import load_settings

    home = make_mini_home(disk / "home")
    settings = load_settings(home)
    pipeline.prepare_warehouse(settings)
    source = settings.sources["mediation"]
    prepared = pipeline.parse_and_validate(settings, pipeline.land_source(settings, source))
    fill(disk)
    with pytest.raises(Exception) as err:
        pipeline.load_prepared(settings, prepared, "run-full-disk")
    assert "No space left on device" in str(err.value) and "work.duckdb" in str(err.value)
    assert "cannot rollback" not in str(err.value)


def test_a_run_on_a_full_disk_exits_naming_it(disk, prefect_harness):
    from prefect.settings import PREFECT_API_URL

    home = make_mini_home(disk / "home")
    fill(disk)
    env = dict(os.environ) | {"PREFECT_API_URL": PREFECT_API_URL.value()}
    done = fazhi("run", "--home", str(home), env=env)
    assert done.returncode == 1, done.stderr[-2000:]
    assert "运行失败 / run failed" in done.stderr, done.stderr[-2000:]
    last = done.stderr.strip().splitlines()[-1].strip()  # the cause, said as what it is, with the file
    assert last.startswith("磁盘空间不足 / out of disk space: ") and str(home) in last, last


def _runs(home: Path) -> list[tuple[str, str, dict]]:
    import json

    import duckdb

    with duckdb.connect(str(home / "work.duckdb"), read_only=True) as con:
        rows = con.sql("select run_id, outcome, manifest from audit.run order by started_at").fetchall()
    return [(run_id, outcome, json.loads(manifest)) for run_id, outcome, manifest in rows]


def test_a_run_failing_in_its_own_step_is_recorded_failed_naming_the_step(tmp_path):
    """A failure after the sources (here the publish: the published folder is a file) once left
    no manifest and no audit.run row, and a year-end rebuild failing there was recorded as
    `running` for ever. Both are recorded `failed`, with the step and the error."""
    home = make_mini_home(tmp_path / "home")
    env = dict(os.environ)
    first = fazhi("run", "--home", str(home), env=env)
    assert first.returncode == 0, first.stderr[-2000:]
    published = home / "published"
    published.rename(home / "published.moved")
    published.write_text("not a folder")

    night = fazhi("run", "--home", str(home), env=env)
    assert night.returncode == 1, night.stderr[-2000:]
    assert "File exists" in night.stderr.strip().splitlines()[-1], night.stderr[-2000:]
    rebuild = fazhi("rebuild", "--year", "2023", "--home", str(home), env=env)
    assert rebuild.returncode == 1, rebuild.stderr[-2000:]

    runs = _runs(home)
    assert [outcome for _, outcome, _ in runs] == ["completed", "failed", "failed"]
    for (run_id, _, manifest), flow in zip(runs[1:], ["nightly", "year-end-rebuild"], strict=True):
        assert manifest["flow"] == flow and manifest["outcome"] == "failed"
        assert manifest["steps"]["publish"] == "failed: error", manifest["steps"]
        assert manifest["failure"]["step"] == "publish"
        assert manifest["failure"]["error"].startswith("FileExistsError"), manifest["failure"]
        assert run_id in night.stderr + rebuild.stderr  # the run the operator is told of is the one recorded
        on_disk = home / "runs" / run_id / "manifest.json"
        assert on_disk.is_file() and '"outcome": "failed"' in on_disk.read_text(encoding="utf-8")
    assert runs[2][2]["steps"]["rebuild"] == "2023 edition 1", runs[2][2]["steps"]
