"""The nightly Prefect flow: every source landed, validated and loaded; indicators computed;
blocking audits; the analyst database published. One failing source does not stop the others:
what succeeded is published and the run then fails naming the source that did not."""

from __future__ import annotations

from warehouse.env import quiet_environment

quiet_environment()

from prefect import flow, task  # noqa: E402
from prefect.cache_policies import NO_CACHE  # noqa: E402
from prefect.futures import as_completed  # noqa: E402
from prefect.task_runners import ThreadPoolTaskRunner  # noqa: E402

from flows import orchestration  # noqa: E402
from warehouse import alerts, pipeline, runs  # noqa: E402
from warehouse.config import Settings, load_settings, resolve_home  # noqa: E402
from warehouse.runs import SourcesFailed  # noqa: E402, F401  (raised by the run; callers catch it here)

orchestration.library_logs_to_prefect()


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
    return runs.retry_while_db_busy(pipeline.land_source, settings, settings.sources[source])


@task(cache_policy=NO_CACHE)
def parse_and_validate(settings: Settings, batch):
    return None if batch is None else runs.retry_while_db_busy(pipeline.parse_and_validate, settings, batch)


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
    """warehouse/runs.py run_nightly with each step a task of this flow: sources landed and
    validated concurrently (the task runner's threads, or Dask worker processes with
    `[orchestration] task_runner = "dask"`), loaded one batch at a time (one writer), then
    compute, audits, publish. A failed run raises RunFailed, whose message (the run's final state
    message) names each failed source and its cause class, and alerts once."""
    return runs.run_nightly(orchestration.PrefectEngine(TASKS, _prepared_sources), home)


def _submit_sources(settings: Settings) -> tuple[dict, dict]:
    """Every source's land task and its parse + validate task, submitted to the current task
    runner: (landed, checked) futures by source."""
    land = land_source.with_options(
        retries=settings.orchestration.land_retries,
        retry_delay_seconds=runs.land_retry_delays(settings),
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


TASKS = {
    "prepare": prepare_warehouse,
    "load": load_batch,
    "compute": compute_indicators,
    "publish": audit_and_publish,
}
