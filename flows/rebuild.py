"""The year-end rebuild flow: recompute a year from the raw layer as its next edition, then
audit and publish. Runs on a January schedule for the year just ended and on demand."""

from __future__ import annotations

from warehouse.env import quiet_environment

quiet_environment()

from datetime import UTC, datetime, timedelta, timezone  # noqa: E402

from prefect import flow, get_run_logger, task  # noqa: E402
from prefect.cache_policies import NO_CACHE  # noqa: E402

from flows import orchestration  # noqa: E402
from warehouse import alerts, pipeline  # noqa: E402
from warehouse.audit import AuditFailed  # noqa: E402
from warehouse.config import Settings, load_settings, resolve_home  # noqa: E402
from warehouse.lock import writer_lock  # noqa: E402

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
    """Recompute `year` (default: the year just ended) as its next edition, audit, publish.
    Holds the shared writer slot and the file lock, so it waits for a running nightly."""
    year = year or last_year()
    run_id = pipeline.new_run_id()
    logger = get_run_logger()
    report = pipeline.RunReport(run_id, datetime.now(UTC).isoformat(), flow="year-end-rebuild")
    settings = None
    try:
        settings = load_settings(resolve_home(home))
        with (
            orchestration.writer_slot(settings, logger),
            writer_lock(settings.home, run_id, settings.lock_wait_seconds),
        ):
            report.started_at = datetime.now(UTC).isoformat()
            return _rebuild(settings, report, year, logger)
    except Exception as exc:
        summary = alerts.failure_summary(run_id, exc)
        orchestration.alert_failure(settings, "year-end-rebuild", summary, logger)
        raise alerts.RunFailed(summary) from exc


def _rebuild(settings: Settings, report: pipeline.RunReport, year: int, logger) -> dict:
    pipeline.prepare_warehouse(settings)
    report.steps["prepare"] = "ok"
    edition = rebuild(settings, year)
    report.steps["rebuild"] = f"{year} edition {edition.edition}"
    report.result = {
        "year": year,
        "edition": edition.edition,
        "changed_values": edition.changed_values,
        "matches_nightly": edition.matches_nightly,
        "resumed": edition.resumed,
        "note_zh": edition.note_zh,
        "note_en": edition.note_en,
    }
    try:
        published = audit_and_publish(settings)
        report.steps["publish"] = "ok"
        report.published = published
        report.outcome = "completed"
    except AuditFailed:
        report.steps["publish"] = "blocked by audits"
        report.outcome = "audit_failed"
        raise
    finally:
        manifest = pipeline.write_run_report(settings, report)
        orchestration.publish_artifact(
            "run-manifest", orchestration.manifest_markdown(manifest), "运行清单 / run manifest", logger
        )
    logger.info("%s", edition.note_en)
    note = f"{edition.note_zh} / {edition.note_en} {pipeline.dashboard_links(settings, [year])}".strip()
    orchestration.publish_artifact(
        "indicators",
        orchestration.indicator_markdown(settings.work_db, [year], note),
        f"{year} 年指标（第 {edition.edition} 版）/ {year} indicators, edition {edition.edition}",
        logger,
    )
    return report.result | {"published": published}
