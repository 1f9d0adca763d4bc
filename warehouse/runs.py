"""A nightly run and a year-end rebuild as plain Python over the steps of warehouse/pipeline.py.

The Prefect flows (flows/nightly.py, flows/rebuild.py) run exactly this code, with an engine
whose steps are Prefect tasks (retries, states, artifacts, the writer slot, the UI). `fazhi run`,
`fazhi rebuild` and `fazhi demo` without a Prefect server run it with `LocalEngine`: the same
steps in the same order, sources landed, parsed and validated on threads and loaded as each is
ready, the same run report, manifest and alert, but no temporary Prefect server (which took 7-16 s
to start) and no Prefect import. docs/operations.md says which is used when.

An engine provides:
- `logger`: where the run logs (Prefect's run logger, or `fazhi.run`);
- `call(step, *args)`: one step now ("prepare", "load", "compute", "publish", "rebuild");
- `sources(settings)`: (source, prepared batch or None, error entry or None) for every source,
  each as soon as it is landed, parsed and validated (retries of the pull included);
- `writer_slot(settings)`: a context manager held for the whole write (Prefect's global
  concurrency limit; nothing locally, where the file lock alone serialises writers);
- `artifact(key, description, markdown)`: publish a summary (`markdown` is a callable, built only
  by engines that show it);
- `alert(settings, flow, summary)`: the failed run's one alert.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from datetime import UTC, datetime

from warehouse import alerts, pipeline
from warehouse.audit import AuditFailed
from warehouse.config import Settings, load_settings, resolve_home
from warehouse.lock import writer_lock
from warehouse.read.lookup import UnknownName
from warehouse.run_summary import indicator_markdown, manifest_markdown, year_fingerprints

log = logging.getLogger("fazhi.run")


class SourcesFailed(RuntimeError):
    pass


RUNNING = "running"  # a step's state in the run report while it runs


# --- the runs ----------------------------------------------------------------------------------


def run_nightly(engine, home: str | None = None) -> dict:
    """Sources landed and validated concurrently, loaded one batch at a time (one writer), then
    compute, audits, publish; the shared writer slot and the file lock held for the whole write.
    A failed run raises RunFailed, whose message names each failed source and its cause class,
    and alerts once (warehouse/alerts.py)."""
    run_id = pipeline.new_run_id()
    report = pipeline.RunReport(run_id, datetime.now(UTC).isoformat())
    settings = None
    try:
        settings = load_settings(resolve_home(home))
        settings.hmac_key()  # a missing key is a clear error before anything runs
        alerts.check_webhook(settings.alerts)  # so is an alert that could not be sent
        report.steps["task_runner"] = engine.describe(settings)
        with engine.writer_slot(settings), writer_lock(settings.home, run_id, settings.lock_wait_seconds):
            report.started_at = datetime.now(UTC).isoformat()  # audit.run: the time this run held the writer
            with _recorded(engine, settings, report):
                return _nightly(engine, settings, report)
    except Exception as exc:
        summary = alerts.failure_summary(run_id, exc, report.sources)
        engine.alert(settings, "nightly", summary)
        raise alerts.RunFailed(summary, report.sources) from exc


def _step(engine, report: pipeline.RunReport, step: str, *args):
    """One step of the run, marked in the report while it runs: a step that raises is the one
    `_recorded` names as failed."""
    report.steps[step] = RUNNING
    result = engine.call(step, *args)
    report.steps[step] = "ok"
    return result


@contextmanager
def _recorded(engine, settings: Settings, report: pipeline.RunReport):
    """A run that fails after taking the writer still leaves its manifest and audit.run row:
    outcome `failed`, the step that failed (`failed: <cause class>`) and the error. A run that
    ended itself (completed, failed sources, blocked by audits) has written them already, and
    one refused for its argument (a rebuild of a year never computed) did nothing to record."""
    try:
        yield
    except Exception as exc:
        if report.outcome == "running" and not isinstance(exc, UnknownName):
            step = next((s for s, state in report.steps.items() if state == RUNNING), "run")
            report.steps[step] = f"failed: {alerts.cause_of(exc)}"
            report.failure = {"step": step} | {k: v for k, v in alerts.failed_source(exc).items() if k != "status"}
            report.outcome = "failed"
            try:
                manifest = pipeline.write_run_report(settings, report)
                engine.logger.error("run %s failed in step %s; manifest %s", report.run_id, step, manifest)
                engine.artifact("run-manifest", "运行清单 / run manifest", lambda: manifest_markdown(manifest))
            except Exception as unwritten:  # e.g. the disk is full: the run's own error is what is said
                engine.logger.error("run manifest not written: %s", type(unwritten).__name__)
        raise


def _nightly(engine, settings: Settings, report: pipeline.RunReport) -> dict:
    logger = engine.logger
    _step(engine, report, "prepare", settings)
    # pulled and validated concurrently, loaded one batch at a time (one writer) as each is ready
    for name, prepared, error in engine.sources(settings):
        if error is not None:  # one source failing must not stop the others
            report.sources[name] = error
            logger.error("source %s failed (%s): %s", name, error["cause"], error["error"].split(":", 1)[0])
            continue
        if prepared is None:
            report.sources[name] = {"status": "unchanged"}
            continue
        batch = prepared.batch
        try:
            outcome = engine.call("load", settings, prepared, report.run_id)
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
            "refused_files": prepared.refused_files,
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
    before = year_fingerprints(settings.work_db)
    _step(engine, report, "compute", settings)
    report.steps["validation_report"] = _validation_report(engine, settings, report)
    try:
        if pipeline.needs_publish(settings):
            report.published = str(_step(engine, report, "publish", settings))
        else:
            report.steps["publish"] = "unchanged"
    except AuditFailed:
        report.steps["publish"] = "blocked by audits"
        report.outcome = "audit_failed"
        _finish(engine, settings, report, before)
        raise
    report.steps["retention"] = RUNNING  # until the landing is purged
    report.steps["retention"] = f"purged {len(pipeline.purge_landing(settings))}"
    failed = report.failed_sources
    report.outcome = "failed" if failed else "completed"
    _finish(engine, settings, report, before)
    if failed:
        details = "; ".join(
            f"{s}: {report.sources[s].get('message_en') or report.sources[s].get('error')}" for s in failed
        )
        raise SourcesFailed(f"数据源失败 / sources failed: {details}")
    return {"run_id": report.run_id, "sources": report.sources, "published": report.published}


def _validation_report(engine, settings: Settings, report: pipeline.RunReport) -> str:
    """The run's validation report (reports/validation/<run_id>.html), written after loading and
    computing, before publishing (a run whose audits block the publish still leaves it), and its
    summary as an artifact. Never fails the run: returns its path, or 'failed: …'."""
    from warehouse.reports.validation import render_markdown, write_run_report

    try:
        path, data = write_run_report(settings, report)
    except Exception as exc:  # the report must never fail the run
        engine.logger.error("validation report not written: %s: %s", type(exc).__name__, exc)
        return f"failed: {type(exc).__name__}"
    engine.logger.info("validation report: %s", path)
    engine.artifact("validation-summary", "数据校验汇总 / validation summary", lambda: render_markdown(data))
    return str(path)


def _finish(engine, settings: Settings, report: pipeline.RunReport, before: dict) -> None:
    """Manifest (file + audit.run) and the run's artifacts: indicators of the years this run
    changed, the manifest."""
    after = year_fingerprints(settings.work_db)
    changed = sorted(y for y, h in after.items() if before.get(y) != h)
    years, note = changed, ""
    if not changed and after:
        years, note = [max(after)], "本次运行没有指标值变化 / no indicator value changed in this run"
    report.steps["indicator_years"] = ",".join(map(str, changed)) or "none"
    manifest = pipeline.write_run_report(settings, report)
    engine.logger.info("run %s %s; manifest %s", report.run_id, report.outcome, manifest)
    if years:
        published = "已发布 / published" if report.steps.get("publish") == "ok" else "未发布 / not published"
        note = f"{published}. {note} {pipeline.dashboard_links(settings, years)}".strip()
        engine.artifact(
            "indicators",
            "本次运行涉及年份的指标 / indicators of the years this run changed",
            lambda: indicator_markdown(settings.work_db, years, note),
        )
    engine.artifact("run-manifest", "运行清单 / run manifest", lambda: manifest_markdown(manifest))


def run_rebuild(engine, year: int, home: str | None = None) -> dict:
    """Recompute `year` as its next edition, audit, publish; holds the writer slot and the file
    lock, so it waits for a running nightly."""
    run_id = pipeline.new_run_id()
    report = pipeline.RunReport(run_id, datetime.now(UTC).isoformat(), flow="year-end-rebuild")
    settings = None
    try:
        settings = load_settings(resolve_home(home))
        settings.hmac_key()  # a missing key is a clear error before anything runs, as for the nightly
        alerts.check_webhook(settings.alerts)
        with engine.writer_slot(settings), writer_lock(settings.home, run_id, settings.lock_wait_seconds):
            report.started_at = datetime.now(UTC).isoformat()
            with _recorded(engine, settings, report):
                return _rebuild(engine, settings, report, year)
    except UnknownName:
        raise  # a year never computed: the operator's typo, said as such; no run failed, no alert
    except Exception as exc:
        summary = alerts.failure_summary(run_id, exc)
        engine.alert(settings, "year-end-rebuild", summary)
        raise alerts.RunFailed(summary) from exc


def _rebuild(engine, settings: Settings, report: pipeline.RunReport, year: int) -> dict:
    report.steps["prepare"] = RUNNING
    pipeline.prepare_warehouse(settings)
    report.steps["prepare"] = "ok"
    edition = _step(engine, report, "rebuild", settings, year)
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
        published = str(_step(engine, report, "publish", settings))
        report.published = published
        report.outcome = "completed"
    except AuditFailed:
        report.steps["publish"] = "blocked by audits"
        report.outcome = "audit_failed"
        raise
    finally:
        if report.outcome != "running":  # else `_recorded` writes it, as failed
            manifest = pipeline.write_run_report(settings, report)
            engine.artifact("run-manifest", "运行清单 / run manifest", lambda: manifest_markdown(manifest))
    engine.logger.info("%s", edition.note_en)
    note = f"{edition.note_zh} / {edition.note_en} {pipeline.dashboard_links(settings, [year])}".strip()
    engine.artifact(
        "indicators",
        f"{year} 年指标（第 {edition.edition} 版）/ {year} indicators, edition {edition.edition}",
        lambda: indicator_markdown(settings.work_db, [year], note),
    )
    return report.result | {"published": published}


# --- the steps, shared by both engines ---------------------------------------------------------

STEPS: dict[str, Callable] = {
    "prepare": pipeline.prepare_warehouse,
    "load": pipeline.load_prepared,
    "compute": pipeline.compute,
    "publish": pipeline.audit_and_publish,
    "rebuild": pipeline.rebuild_year,
}
PERMANENT_CAUSES = ("auth", "config")


def worth_retrying(exc: BaseException | None) -> bool:
    """Whether a failed pull is retried (by Prefect's task retries, or LocalEngine's): not for an
    error another try cannot fix (the token refused or missing, a 4xx, the configuration), as the
    HTTP client does not retry it either (docs/sources.md), nor for a pull refused for its bounds
    or for hostile paging (deadline, page cap, cursor cycle, size, redirect:
    warehouse/sources/http.py NOT_RETRIED), which a retry would repeat while holding the night."""
    from warehouse.sources.http import NOT_RETRIED
    from warehouse.sources.mapping import SourceError

    if isinstance(exc, SourceError) and exc.rule in NOT_RETRIED:
        return False
    return exc is None or alerts.cause_of(exc) not in PERMANENT_CAUSES


def _db_busy(exc: BaseException) -> bool:
    """DuckDB refused to open the working database because another process has it open."""
    import duckdb

    return isinstance(exc, duckdb.IOException) and "lock" in str(exc).lower()


def retry_while_db_busy(call, *args, wait_seconds: float = 120.0):
    """`call(*args)`, repeated while another process holds the working database. DuckDB lets
    one process at a time open a file: with the Dask runner, a source's land and parse steps
    open it (to read what is loaded already) in their worker processes, so two of them may meet;
    in one process (threads) they never do. The steps read before they write, so a retry is
    safe; it is only a retry of the whole step (parse included)."""
    deadline = time.monotonic() + wait_seconds
    delay = 0.05
    while True:
        try:
            return call(*args)
        except Exception as exc:
            if not _db_busy(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(delay * (1 + random.random()))
        delay = min(delay * 2, 2.0)


def land_retry_delays(settings: Settings) -> list[float]:
    """Exponential backoff: d, 2d, 4d … for each retry of a source's pull ([orchestration]
    land_retries, land_retry_delay_seconds)."""
    first = settings.orchestration.land_retry_delay_seconds
    return [first * 2**i for i in range(settings.orchestration.land_retries)]


# --- without Prefect -------------------------------------------------------------------------


class LocalEngine:
    """The steps as plain calls; a source's pull, parse and validation on a thread of this process
    (as Prefect's thread task runner does), its pull retried with the same backoff and the same
    rule as the Prefect task's retries; failures alerted from this process."""

    def __init__(self, max_workers: int = 4, sleep: Callable[[float], None] = time.sleep):
        self.logger = log
        self.max_workers = max_workers
        self._sleep = sleep

    def describe(self, settings: Settings) -> str:
        return f"threads of this process, without a Prefect server ({self.max_workers} at most)"

    def call(self, step: str, *args):
        return STEPS[step](*args)

    def sources(self, settings: Settings) -> Iterator[tuple[str, object, dict | None]]:
        with ThreadPoolExecutor(self.max_workers, thread_name_prefix="fazhi-source") as pool:
            futures = {pool.submit(self._prepare, settings, name): name for name in settings.sources}
            for future in as_completed(futures):
                name = futures[future]
                try:
                    yield name, future.result(), None
                except Exception as exc:
                    yield name, None, alerts.failed_source(exc)

    def _prepare(self, settings: Settings, name: str):
        delays = land_retry_delays(settings)
        for attempt in range(len(delays) + 1):
            try:
                batch = pipeline.land_source(settings, settings.sources[name])
                break
            except Exception as exc:
                if attempt == len(delays) or not worth_retrying(exc):
                    raise
                wait = delays[attempt] * (1 + random.uniform(-0.2, 0.2))  # jitter, as the task's
                self.logger.warning("source %s: pull failed (%s), retry in %.0f s", name, type(exc).__name__, wait)
                self._sleep(wait)
        if batch is None:
            return None
        return pipeline.parse_and_validate(settings, batch)

    @contextmanager
    def writer_slot(self, settings: Settings):
        yield False  # no Prefect server: the file lock (warehouse/lock.py) alone serialises writers

    def artifact(self, key: str, description: str, markdown: Callable[[], str]) -> None:
        pass  # artifacts are shown by a Prefect server; the manifest and reports are on disk

    def alert(self, settings: Settings | None, flow: str, summary: str) -> None:
        from warehouse.config import AlertOptions

        options, home = (settings.alerts, str(settings.home)) if settings else (AlertOptions(), "$FAZHI_HOME")
        alerts.send_failure_alert(options, flow, summary, home)
