"""The year-end rebuild flow: recompute a year from the raw layer as its next edition, then
audit and publish. Runs on a January schedule for the year just ended and on demand."""

from __future__ import annotations

from flows.env import quiet_environment

quiet_environment()

from prefect import flow, get_run_logger, task  # noqa: E402
from prefect.cache_policies import NO_CACHE  # noqa: E402

from flows import pipeline  # noqa: E402
from flows.config import Settings, load_settings, resolve_home  # noqa: E402
from warehouse.lock import writer_lock  # noqa: E402


@task(cache_policy=NO_CACHE)
def rebuild(settings: Settings, year: int):
    return pipeline.rebuild_year(settings, year)


@task(cache_policy=NO_CACHE)
def audit_and_publish(settings: Settings) -> str:
    return str(pipeline.audit_and_publish(settings))


@flow(name="year-end-rebuild", log_prints=False)
def year_end_rebuild(year: int, home: str | None = None) -> dict:
    settings = load_settings(resolve_home(home))
    run_id = pipeline.new_run_id()
    with writer_lock(settings.home, run_id, settings.lock_wait_seconds):
        pipeline.prepare_warehouse(settings)
        edition = rebuild(settings, year)
        published = audit_and_publish(settings)
    get_run_logger().info("%s", edition.note_en)
    return {
        "year": year,
        "edition": edition.edition,
        "changed_values": edition.changed_values,
        "matches_nightly": edition.matches_nightly,
        "note_zh": edition.note_zh,
        "note_en": edition.note_en,
        "published": published,
    }
