"""The nightly Prefect flow: every source landed, validated and loaded; indicators computed;
blocking audits; the analyst database published. One failing source does not stop the others:
what succeeded is published and the run then fails naming the source that did not."""

from __future__ import annotations

from datetime import UTC, datetime

from warehouse.env import quiet_environment

quiet_environment()

from prefect import flow, get_run_logger, task  # noqa: E402
from prefect.cache_policies import NO_CACHE  # noqa: E402
from prefect.futures import as_completed  # noqa: E402
from prefect.task_runners import ThreadPoolTaskRunner  # noqa: E402

from expectations.validate import warm_up  # noqa: E402
from flows import orchestration, validation_report  # noqa: E402
from warehouse import alerts, pipeline  # noqa: E402
from warehouse.audit import AuditFailed  # noqa: E402
from warehouse.config import Settings, load_settings, resolve_home  # noqa: E402
from warehouse.lock import writer_lock  # noqa: E402

# Great Expectations' import and suites (docs/performance.md) are paid once when this module is imported (the
# worker's flow process), not inside each run's first validation task; GX is not thread-safe,
# and here it is still alone in the process.
warm_up()
orchestration.library_logs_to_prefect()


class SourcesFailed(RuntimeError):
    pass


@task(cache_policy=NO_CACHE)
def prepare_warehouse(settings: Settings) -> None:
    pipeline.prepare_warehouse(settings)


# Network task: retried with exponential backoff (tuned per home in fazhi.toml [orchestration],
# flows/orchestration.py, through `with_options`), except refusals that a retry would repeat.
# Its timeouts are the HTTP client's own (connect/read timeout per request, a cap on the time
# spent retrying, a deadline for the whole pull: fazhi.toml per source): a Prefect task timeout
# cannot interrupt a blocking call in a worker thread.
#
# Both run on the task runner's workers: threads of the flow's process, or Dask worker processes
# (`[orchestration] task_runner = "dask"`), where they may find the working database open in
# another worker for a moment (retry_while_db_busy).
@task(
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=[10, 20],
    retry_jitter_factor=0.2,
    retry_condition_fn=orchestration.retry_unless_permanent,  # a refused token or a bounded pull is not retried
)
def land_source(settings: Settings, source: str):
    return orchestration.retry_while_db_busy(pipeline.land_source, settings, settings.sources[source])


@task(cache_policy=NO_CACHE)
def parse_and_validate(settings: Settings, batch):
    return None if batch is None else orchestration.retry_while_db_busy(pipeline.parse_and_validate, settings, batch)


@task(cache_policy=NO_CACHE)
def load_batch(settings: Settings, prepared, run_id: str):
    return pipeline.load_prepared(settings, prepared, run_id)


@task(cache_policy=NO_CACHE)
def compute_indicators(settings: Settings) -> int:
    return pipeline.compute(settings)


@task(cache_policy=NO_CACHE)
def audit_and_publish(settings: Settings) -> str:
    return str(pipeline.audit_and_publish(settings))


@flow(name="nightly", log_prints=False, task_runner=ThreadPoolTaskRunner(max_workers=4))
def nightly(home: str | None = None) -> dict:
    """Sources are landed and validated concurrently (the task runner's threads, or Dask worker
    processes with `[orchestration] task_runner = "dask"`), loaded one batch at a time (one
    writer), then compute, audits, publish. Holds the shared writer slot and the file lock for
    the whole write. A failed run raises RunFailed, whose message (the run's final state
    message) names each failed source and its cause class, and alerts once (warehouse/alerts.py)."""
    run_id = pipeline.new_run_id()
    logger = get_run_logger()
    report = pipeline.RunReport(run_id, datetime.now(UTC).isoformat())
    settings = None
    try:
        settings = load_settings(resolve_home(home))
        settings.hmac_key()  # a missing key is a clear error before anything runs
        report.steps["task_runner"] = orchestration.describe_task_runner(orchestration.task_runner_choice(settings))
        with (
            orchestration.writer_slot(settings, logger),
            writer_lock(settings.home, run_id, settings.lock_wait_seconds),
        ):
            report.started_at = datetime.now(UTC).isoformat()  # audit.run: the time this run held the writer
            return _nightly(settings, report)
    except Exception as exc:
        summary = alerts.failure_summary(run_id, exc, report.sources)
        orchestration.alert_failure(settings, "nightly", summary, logger)
        raise alerts.RunFailed(summary, report.sources) from exc


def _submit_sources(settings: Settings) -> tuple[dict, dict]:
    """Every source's land task and its parse + validate task, submitted to the current task
    runner: (landed, checked) futures by source."""
    land = land_source.with_options(
        retries=settings.orchestration.land_retries,
        retry_delay_seconds=orchestration.land_retry_delays(settings),
    )
    landed = {name: land.submit(settings, name) for name in settings.sources}
    checked = {name: parse_and_validate.submit(settings, landed[name]) for name in settings.sources}
    return landed, checked


def _outcome(landed, checked) -> tuple[pipeline.PreparedBatch | None, dict | None]:
    """A source's prepared batch (None: nothing new), or the report entry of its failure."""
    try:
        return checked.result(), None
    except Exception as exc:
        return None, _source_error(landed, checked, exc)


def _prepared_sources(settings: Settings):
    """(source, prepared batch, error) for every source.

    threads (default): the tasks run in this process and each source is yielded as soon as it is
    ready, in the order they finish: loading one overlaps parsing another, and a slow, stuck or
    failed source holds back no other source's load (a stuck pull ends at its deadline).
    dask: every source is landed, parsed and validated on the Dask workers (subflow
    `nightly-sources`) before the first load, because the worker processes open the working
    database to read what is already loaded, and DuckDB lets one process at a time open it: the
    flow's loads wait until the workers are done with it (a stuck pull: until its deadline)."""
    choice = orchestration.task_runner_choice(settings)
    if choice["kind"] == "threads":
        landed, checked = _submit_sources(settings)
        names = {future: name for name, future in checked.items()}
        for future in as_completed(list(checked.values())):
            name = names[future]
            yield (name, *_outcome(landed[name], future))
        return
    runner = orchestration.dask_task_runner(choice)
    # the subflow's only parameter is the home: fazhi.toml may hold a robot key, and flow-run
    # parameters are stored by the Prefect server
    with orchestration.api_for_other_processes():
        outcomes = nightly_sources.with_options(task_runner=runner)(str(settings.home))
    for name in settings.sources:
        yield (name, *outcomes[name])


@flow(name="nightly-sources", log_prints=False)
def nightly_sources(home: str) -> dict:
    """The nightly's sources landed, parsed and validated concurrently on the task runner chosen
    by the caller (`with_options(task_runner=…)`: the Dask runner); nothing is loaded here."""
    settings = load_settings(resolve_home(home))
    landed, checked = _submit_sources(settings)
    return {name: _outcome(landed[name], checked[name]) for name in settings.sources}


def _source_error(landed, checked, exc: BaseException) -> dict:
    """The report entry of a source whose land or parse task failed, from its root error (the
    land task's own error when the parse task never ran): error and cause class."""
    landed.wait()  # its final state (a Dask future learns it only by waiting)
    if landed.state.is_failed() or landed.state.is_crashed():
        root = landed.result(raise_on_failure=False)
        if isinstance(root, BaseException):
            exc = root
    return alerts.failed_source(exc)


def _nightly(settings: Settings, report: pipeline.RunReport) -> dict:
    logger = get_run_logger()
    prepare_warehouse(settings)
    report.steps["prepare"] = "ok"
    # pulled and validated concurrently, loaded one batch at a time (one writer) as each is ready
    for name, prepared, error in _prepared_sources(settings):
        if error is not None:  # one source failing must not stop the others
            report.sources[name] = error
            logger.error("source %s failed (%s): %s", name, error["cause"], error["error"].split(":", 1)[0])
            continue
        if prepared is None:
            report.sources[name] = {"status": "unchanged"}
            continue
        batch = prepared.batch
        try:
            outcome = load_batch(settings, prepared, report.run_id)
        except Exception as exc:
            report.sources[name] = alerts.failed_source(exc)
            logger.error("source %s failed to load (%s): %s", name, report.sources[name]["cause"], type(exc).__name__)
            continue
        report.sources[name] = {
            "status": outcome.status,
            "batch_id": outcome.batch_id,
            "files": [{"name": f.name, "bytes": f.bytes, "sha256": f.sha256} for f in batch.files],
            "received_rows": outcome.received_rows,
            "loaded_rows": outcome.loaded_rows,
            "quarantined_rows": outcome.quarantined_rows,
            "stale_rows": outcome.stale_rows,
            "core_rows_inserted": outcome.core_rows_inserted,
        }
        if outcome.status == "stopped":
            report.sources[name] |= {
                "message_zh": prepared.stop_zh,
                "message_en": prepared.stop_en,
                "rule": prepared.stop_rule,
            }
            logger.error("source %s stopped: %s", name, prepared.stop_en)
    before = orchestration.year_fingerprints(settings.work_db)
    compute_indicators(settings)
    report.steps["compute"] = "ok"
    report.steps["validation_report"] = validation_report.write_and_publish(settings, report, logger)
    try:
        if pipeline.needs_publish(settings):
            report.published = audit_and_publish(settings)
            report.steps["publish"] = "ok"
        else:
            report.steps["publish"] = "unchanged"
    except AuditFailed:
        report.steps["publish"] = "blocked by audits"
        report.outcome = "audit_failed"
        _finish(settings, report, before, logger)
        raise
    report.steps["retention"] = f"purged {len(pipeline.purge_landing(settings))}"
    failed = report.failed_sources
    report.outcome = "failed" if failed else "completed"
    _finish(settings, report, before, logger)
    if failed:
        details = "; ".join(
            f"{s}: {report.sources[s].get('message_en') or report.sources[s].get('error')}" for s in failed
        )
        raise SourcesFailed(f"数据源失败 / sources failed: {details}")
    return {"run_id": report.run_id, "sources": report.sources, "published": report.published}


def _finish(settings: Settings, report: pipeline.RunReport, before: dict, logger) -> None:
    """Manifest (file + audit.run) and the run's artifacts: indicators of the years this run
    changed, the manifest. (The validation summary is published by flows/validation_report.py.)"""
    after = orchestration.year_fingerprints(settings.work_db)
    changed = sorted(y for y, h in after.items() if before.get(y) != h)
    years, note = changed, ""
    if not changed and after:
        years, note = [max(after)], "本次运行没有指标值变化 / no indicator value changed in this run"
    report.steps["indicator_years"] = ",".join(map(str, changed)) or "none"
    manifest = pipeline.write_run_report(settings, report)
    logger.info("run %s %s; manifest %s", report.run_id, report.outcome, manifest)
    if years:
        published = "已发布 / published" if report.steps.get("publish") == "ok" else "未发布 / not published"
        note = f"{published}. {note} {pipeline.dashboard_links(settings, years)}".strip()
        orchestration.publish_artifact(
            "indicators",
            orchestration.indicator_markdown(settings.work_db, years, note),
            "本次运行涉及年份的指标 / indicators of the years this run changed",
            logger,
        )
    orchestration.publish_artifact(
        "run-manifest", orchestration.manifest_markdown(manifest), "运行清单 / run manifest", logger
    )
