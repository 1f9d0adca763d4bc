"""The nightly Prefect flow: every source landed, validated and loaded; indicators computed;
blocking audits; the analyst database published. One failing source does not stop the others:
what succeeded is published and the run then fails naming the source that did not."""

from __future__ import annotations

from datetime import UTC, datetime

from flows.env import quiet_environment

quiet_environment()

from prefect import flow, get_run_logger, task  # noqa: E402
from prefect.cache_policies import NO_CACHE  # noqa: E402

from flows import pipeline  # noqa: E402
from flows.config import Settings, load_settings, resolve_home  # noqa: E402
from warehouse.lock import writer_lock  # noqa: E402


class SourcesFailed(RuntimeError):
    pass


@task(cache_policy=NO_CACHE)
def prepare_warehouse(settings: Settings) -> None:
    pipeline.prepare_warehouse(settings)


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[2, 10])
def land_source(settings: Settings, source: str):
    return pipeline.land_source(settings, settings.sources[source])


@task(cache_policy=NO_CACHE)
def parse_and_validate(settings: Settings, batch):
    return pipeline.parse_and_validate(settings, batch)


@task(cache_policy=NO_CACHE)
def load_batch(settings: Settings, prepared, run_id: str):
    return pipeline.load_prepared(settings, prepared, run_id)


@task(cache_policy=NO_CACHE)
def compute_indicators(settings: Settings) -> int:
    return pipeline.compute(settings)


@task(cache_policy=NO_CACHE)
def audit_and_publish(settings: Settings) -> str:
    return str(pipeline.audit_and_publish(settings))


@flow(name="nightly", log_prints=False)
def nightly(home: str | None = None) -> dict:
    settings = load_settings(resolve_home(home))
    settings.hmac_key()  # a missing key is a clear error before anything runs
    run_id = pipeline.new_run_id()
    with writer_lock(settings.home, run_id, settings.lock_wait_seconds):
        return _nightly(settings, run_id)


def _nightly(settings: Settings, run_id: str) -> dict:
    logger = get_run_logger()
    report = pipeline.RunReport(run_id, datetime.now(UTC).isoformat())
    prepare_warehouse(settings)
    report.steps["prepare"] = "ok"
    for name in settings.sources:
        try:
            batch = land_source(settings, name)
            if batch is None:
                report.sources[name] = {"status": "unchanged"}
                continue
            prepared = parse_and_validate(settings, batch)
            outcome = load_batch(settings, prepared, report.run_id)
            report.sources[name] = {
                "status": outcome.status,
                "batch_id": outcome.batch_id,
                "files": [{"name": f.name, "bytes": f.bytes, "sha256": f.sha256} for f in batch.files],
                "received_rows": outcome.received_rows,
                "loaded_rows": outcome.loaded_rows,
                "quarantined_rows": outcome.quarantined_rows,
                "core_rows_inserted": outcome.core_rows_inserted,
            }
            if outcome.status == "stopped":
                report.sources[name] |= {
                    "message_zh": prepared.stop_zh,
                    "message_en": prepared.stop_en,
                    "rule": prepared.stop_rule,
                }
                logger.error("source %s stopped: %s", name, prepared.stop_en)
        except Exception as exc:  # one source failing must not stop the others
            report.sources[name] = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
            logger.error("source %s failed: %s", name, type(exc).__name__)
    compute_indicators(settings)
    report.steps["compute"] = "ok"
    if pipeline.needs_publish(settings):
        report.published = audit_and_publish(settings)
        report.steps["publish"] = "ok"
    else:
        report.steps["publish"] = "unchanged"
    report.steps["retention"] = f"purged {len(pipeline.purge_landing(settings))}"
    failed = report.failed_sources
    report.outcome = "failed" if failed else "completed"
    manifest = pipeline.write_run_report(settings, report)
    logger.info("run %s %s; manifest %s", report.run_id, report.outcome, manifest)
    if failed:
        details = "; ".join(
            f"{s}: {report.sources[s].get('message_en') or report.sources[s].get('error')}" for s in failed
        )
        raise SourcesFailed(f"数据源失败 / sources failed: {details}")
    return {"run_id": report.run_id, "sources": report.sources, "published": report.published}
