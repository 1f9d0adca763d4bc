"""Retention of the landing zone (warehouse/pipeline.py purge_landing): unfinished pulls always go;
landed batch folders go once `[landing] retention_days` old — loaded ones counted from their
load, never-loaded ones (stopped, or landed by a killed run) from their folder's last change."""

from __future__ import annotations

import dataclasses
import os
import time
from datetime import UTC, datetime, timedelta

from tests.conftest import make_mini_home, run_steps
from warehouse.config import LandingOptions


def _folder(path, age_days: float):
    """A landing folder with one read-only file, last changed `age_days` ago."""
    path.mkdir(parents=True)
    (path / "page-000001.json").write_text('{"records": []}', encoding="utf-8")
    os.chmod(path / "page-000001.json", 0o400)
    then = time.time() - age_days * 86400
    os.utime(path, (then, then))
    return path


def test_retention_purges_what_is_old_or_unfinished_and_keeps_the_rest(tmp_path):
    from warehouse.pipeline import purge_landing

    run = run_steps(make_mini_home(tmp_path / "home"))
    landing = run.settings.landing_dir
    loaded = sorted(p.name for p in landing.glob("*/*"))
    assert len(loaded) == 4  # one batch per source of the mini county
    unfinished = _folder(landing / "enforcement" / ".pull-20230101T000000000000-abcdef", age_days=0)
    stopped_old = _folder(landing / "mediation" / "mediation-20230101T000000000000-11111111", age_days=40)
    stopped_new = _folder(landing / "mediation" / "mediation-20230201T000000000000-22222222", age_days=2)

    # retention off: only the unfinished pull goes
    off = dataclasses.replace(run.settings, landing=LandingOptions(retention_days=None))
    assert purge_landing(off) == [unfinished.name]
    assert not unfinished.exists() and stopped_old.exists() and stopped_new.exists()
    assert sorted(p.name for p in landing.glob("*/*") if not p.name.startswith("mediation-2023")) == loaded

    # 30 days: the never-loaded folder last changed 40 days ago goes; the batches loaded today stay
    on = dataclasses.replace(run.settings, landing=LandingOptions(retention_days=30))
    assert purge_landing(on) == [stopped_old.name]
    assert stopped_new.exists()
    assert sorted(p.name for p in landing.glob("*/*") if p != stopped_new) == loaded

    # 31 days from now: the loaded batches are 31 days old; the other folder is 33 days old
    later = datetime.now(UTC) + timedelta(days=31)
    assert sorted(purge_landing(on, now=later)) == sorted([*loaded, stopped_new.name])
    assert list(landing.glob("*/*")) == []
