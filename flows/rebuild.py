"""The year-end rebuild flow: recompute a year from the raw layer as its next edition, then
audit and publish. Runs on a January schedule for the year just ended and on demand."""

from __future__ import annotations

from warehouse.env import quiet_environment

quiet_environment()

from datetime import datetime, timedelta, timezone  # noqa: E402

from prefect import flow, task  # noqa: E402
from prefect.cache_policies import NO_CACHE  # noqa: E402

from flows import orchestration  # noqa: E402
from warehouse import pipeline, runs  # noqa: E402
from warehouse.config import Settings  # noqa: E402

CHINA = timezone(timedelta(hours=8))
orchestration.library_logs_to_prefect()


@task(cache_policy=NO_CACHE)
def rebuild(settings: Settings, year: int):
    return pipeline.rebuild_year(settings, year)


@task(cache_policy=NO_CACHE)
def audit_and_publish(settings: Settings) -> str:
    return str(pipeline.audit_and_publish(settings))


def last_year(now: datetime | None = None) -> int:
    """The year just ended, in China time (the January schedule passes no year)."""
    return (now or datetime.now(CHINA)).astimezone(CHINA).year - 1


@flow(name="year-end-rebuild", log_prints=False)
def year_end_rebuild(year: int | None = None, home: str | None = None) -> dict:
    """warehouse/runs.py run_rebuild with each step a task of this flow: recompute `year`
    (default: the year just ended) as its next edition, audit, publish. Holds the shared writer
    slot and the file lock, so it waits for a running nightly."""
    return runs.run_rebuild(orchestration.PrefectEngine(TASKS), year or last_year(), home)


TASKS = {"rebuild": rebuild, "publish": audit_and_publish}
