"""What the Prefect flows share: the writer slot, task options from fazhi.toml, the run's artifacts,
the alert automation created at deploy time (and who alerts for a run), library logs in the UI.

No two pipeline runs overlap, in three layers:

1. each deployment's own `concurrency_limit: 1` (prefect.yaml): a second nightly waits in
   Scheduled/AwaitingConcurrencySlot before a worker even starts it;
2. the global concurrency limit `fazhi-warehouse-writer` (limit 1), held by every nightly and
   rebuild for its whole write: a rebuild triggered during the nightly waits for it. It is
   created by `prefect deploy --all` (prefect.yaml build step) or by hand
   (`prefect gcl create fazhi-warehouse-writer --limit 1`, docs/operations.md). Where it does not
   exist (`fazhi run` against an ephemeral API, tests) the flows skip it quietly;
3. the OS file lock on the working database (warehouse/lock.py), the last line of defence
   for runs outside Prefect.

The `[orchestration]` table of fazhi.toml tunes it (all optional; schema and defaults:
warehouse/config.py OrchestrationOptions)::

    [orchestration]
    concurrency_limit = "fazhi-warehouse-writer"
    slot_wait_seconds = 21600     # a run waits this long for the slot, then fails
    land_retries = 2              # task-level retries of a source's pull
    land_retry_delay_seconds = 10 # first retry delay; doubles (exponential backoff)
    task_runner = "threads"       # or "dask": sources landed and validated in worker processes
    dask_workers = 2              # "dask": a local cluster of this many processes (1 thread each)
    # dask_address = "tcp://10.0.0.5:8786"   # "dask": an existing cluster instead of a local one

`concurrency_limit` is global to the Prefect server, not to a home: a province running several
county homes on one server gives each home a name of its own (for example
"fazhi-warehouse-writer-350481"), which the flows create with limit 1 on first use, so counties
run side by side while each county's nightly and rebuild still never overlap.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager, suppress
from pathlib import Path
from urllib.parse import urlsplit

from warehouse.config import WRITER_LIMIT, ConfigError, Settings

log = logging.getLogger("fazhi.orchestration")


def _limit_exists(name: str) -> bool:
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    try:
        with get_client(sync_client=True) as client:
            limit = client.read_global_concurrency_limit_by_name(name)
    except ObjectNotFound:
        return False
    return bool(limit.active)


def _create_limit(name: str) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.exceptions import ObjectAlreadyExists

    with get_client(sync_client=True) as client, suppress(ObjectAlreadyExists):  # another run created it meanwhile
        client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))


def prepare_deployment(limit: str = WRITER_LIMIT, home: str | None = None) -> dict[str, str]:
    """prefect.yaml build step, run by `prefect deploy` from the repository root: creates the
    shared writer limit (limit 1) unless it exists; creates or updates the alert automation when
    a webhook is configured (`$FAZHI_ALERT_WEBHOOK_URL`, else `[alerts] webhook_url` of the
    home's fazhi.toml: `home`, else $FAZHI_HOME); returns this checkout's directory for the pull
    step of a process worker on the same host."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(limit)
        except ObjectNotFound:
            with suppress(ObjectAlreadyExists):  # another deploy created it meanwhile
                client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=limit, limit=1))
    return {"directory": str(Path.cwd().resolve()), "limit": limit, "alerts": _deployment_alerts(home)}


def _deployment_alerts(home: str | None) -> str:
    from warehouse.alerts import URL_ENV, webhook_config
    from warehouse.config import CONFIG_NAME, AlertOptions, load_settings, resolve_home

    where = resolve_home(home)
    options = load_settings(where).alerts if (where / CONFIG_NAME).exists() else AlertOptions()
    url, _timeout, keyword = webhook_config(options)
    if not url:
        log.warning("no alert webhook (%s, or [alerts] in %s): runs alert nobody", URL_ENV, where / CONFIG_NAME)
        return "none"
    ensure_alert_automation(url, keyword, str(where))
    return ALERT_AUTOMATION


# --- alerts ----------------------------------------------------------------------------------

ALERT_AUTOMATION = "fazhi-run-alert"
ALERT_WEBHOOK_BLOCK = "fazhi-alert-webhook"
ALERTED_FLOWS = ("nightly", "year-end-rebuild", "province-rollup")


def ensure_alert_automation(url: str, keyword: str = "", home: str = "$FAZHI_HOME") -> None:
    """The server-side alert: a Webhook block holding the robot's URL (a secret: it carries the
    robot's key), and the automation `fazhi-run-alert` that posts warehouse/alerts.py's message
    through it once for every deployment run of the project's flows that ends Failed or
    Crashed. The server sends it, so a run whose process was killed alerts too. Re-running
    replaces both (a changed URL or keyword)."""
    from prefect.blocks.webhook import Webhook
    from prefect.client.orchestration import get_client
    from prefect.events.actions import CallWebhook
    from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture

    from warehouse.alerts import automation_payload

    headers = {"Content-Type": "application/json; charset=utf-8"}
    block_id = Webhook(method="POST", url=url, headers=headers).save(ALERT_WEBHOOK_BLOCK, overwrite=True)
    automation = AutomationCore(
        name=ALERT_AUTOMATION,
        description="法治指标仓库运行失败或中断时告警 / fazhi-warehouse: alert when a deployment run fails or crashes",
        trigger=EventTrigger(
            expect={"prefect.flow-run.Failed", "prefect.flow-run.Crashed"},
            match={"prefect.resource.id": "prefect.flow-run.*"},
            # runs of a deployment (outside one, `fazhi run` alerts from its own process) of
            # the project's top-level flows (not the Dask subflow, whose parent fails with it)
            match_related=[
                {"prefect.resource.role": "flow", "prefect.resource.name": list(ALERTED_FLOWS)},
                {"prefect.resource.role": "deployment"},
            ],
            posture=Posture.Reactive,
            threshold=1,
        ),
        actions=[CallWebhook(block_document_id=block_id, payload=automation_payload(home, keyword))],
    )
    with get_client(sync_client=True) as client:
        for existing in client.read_automations_by_name(ALERT_AUTOMATION):
            client.delete_automation(existing.id)
        client.create_automation(automation)
    log.info("alert automation %r posts to %s", ALERT_AUTOMATION, urlsplit(url).netloc)


def _alert_automations() -> list:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return client.read_automations_by_name(ALERT_AUTOMATION)


def server_alerts_on() -> bool:
    """True when the Prefect server alerts for this flow run (a deployment run, with the alert
    automation present and enabled): the flow then sends no alert of its own. Any doubt (no
    API, an ad-hoc run) means the flow alerts itself."""
    try:
        from prefect.context import FlowRunContext

        context = FlowRunContext.get()
        if context is None or context.flow_run is None or context.flow_run.deployment_id is None:
            return False
        return any(a.enabled for a in _alert_automations())
    except Exception as exc:  # the API unreachable: better two alerts than none
        log.warning("could not check the alert automation: %s", type(exc).__name__)
        return False


def alert_failure(settings: Settings | None, flow: str, summary: str, logger=None) -> None:
    """A failed run's one alert: left to the server's automation where it will send it, else
    sent from here (`settings` None: the configuration could not be read; the webhook may still
    come from the environment)."""
    from warehouse import alerts
    from warehouse.config import AlertOptions

    if server_alerts_on():
        (logger or log).info("the Prefect server's automation %r alerts for this run", ALERT_AUTOMATION)
        return
    options, home = (settings.alerts, str(settings.home)) if settings else (AlertOptions(), "$FAZHI_HOME")
    alerts.send_failure_alert(options, flow, summary, home)


def retry_unless_permanent(_task, _task_run, state) -> bool:
    """`retry_condition_fn` of the pull task: warehouse/runs.py worth_retrying (the rule
    LocalEngine's retries follow too)."""
    from warehouse.runs import worth_retrying

    return worth_retrying(state.data if isinstance(state.data, BaseException) else None)


class _InRunOnly(logging.Filter):
    """Passes records logged inside a flow or task run (Prefect's API handler needs one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        from prefect.context import FlowRunContext, TaskRunContext

        return bool(getattr(record, "flow_run_id", None) or FlowRunContext.get() or TaskRunContext.get())


class _NoTracebackForExpected(logging.Filter):
    """Prefect logs a failed task or flow run with its traceback. For the errors the project
    raises on purpose (a source refused, the configuration, a busy writer, blocking audits) the
    message says it all: the traceback is dropped, from the terminal and the UI alike."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], _expected()):
            record.exc_info = record.exc_text = None
        return True


def _expected() -> tuple[type[BaseException], ...]:
    from warehouse.audit import AuditFailed
    from warehouse.errors import RunFailed
    from warehouse.lock import WriterBusy
    from warehouse.sources.mapping import SourceError

    return (RunFailed, SourceError, ConfigError, WriterBusy, AuditFailed)


def library_logs_to_prefect() -> None:
    """The library's `fazhi.*` log lines (INFO and up) reach the run's logs in the Prefect UI,
    as Prefect's own do (Prefect sends only its `prefect.*` loggers by default); lines logged
    outside a run (tests calling the library) are not sent. Failures the project raises on
    purpose are logged by Prefect without a traceback."""
    from prefect.logging.handlers import APILogHandler

    logger = logging.getLogger("fazhi")
    if logger.level == logging.NOTSET or logger.level > logging.INFO:
        logger.setLevel(logging.INFO)
    if not any(isinstance(h, APILogHandler) for h in logger.handlers):
        handler = APILogHandler()
        handler.addFilter(_InRunOnly())
        logger.addHandler(handler)
    for name in ("prefect.task_runs", "prefect.flow_runs"):
        prefect_logger = logging.getLogger(name)
        if not any(isinstance(f, _NoTracebackForExpected) for f in prefect_logger.filters):
            prefect_logger.addFilter(_NoTracebackForExpected())


@contextmanager
def writer_slot(settings: Settings, logger: logging.Logger | logging.LoggerAdapter | None = None):
    """Hold the shared global concurrency limit for the whole write (waits for a running
    nightly or rebuild). The default limit is skipped when it is not defined on this Prefect API;
    a limit the home names itself (`[orchestration] concurrency_limit`, one per county on a
    shared server) is created with limit 1 on first use."""
    logger = logger or log
    name = settings.orchestration.concurrency_limit
    own = name != WRITER_LIMIT
    if own and not _limit_exists(name):
        _create_limit(name)
        logger.info("created the writer limit %r (limit 1) for this home", name)
    if not _limit_exists(name):
        logger.info("global concurrency limit %r not defined here: the file lock alone serializes writers", name)
        yield False
        return
    from prefect.concurrency.sync import concurrency

    logger.info("waiting for the writer slot %r", name)
    with concurrency(name, occupy=1, timeout_seconds=settings.orchestration.slot_wait_seconds, strict=True):
        logger.info("holding the writer slot %r", name)
        yield True


# --- task runner ---------------------------------------------------------------------------


def task_runner_choice(settings: Settings) -> dict:
    """`[orchestration] task_runner` and its options (checked by the configuration's schema):
    {"kind": "threads"} or {"kind": "dask", "workers": n} or {"kind": "dask", "address": "tcp://…"}."""
    options = settings.orchestration
    if options.task_runner == "threads":
        return {"kind": "threads"}
    if options.dask_address:
        return {"kind": "dask", "address": options.dask_address}
    return {"kind": "dask", "workers": options.dask_workers}


def describe_task_runner(choice: dict) -> str:
    if choice["kind"] == "threads":
        return "threads"
    if "address" in choice:
        return f"dask (cluster at {choice['address']})"
    return f"dask (local cluster, {choice['workers']} worker processes)"


def dask_task_runner(choice: dict):
    """The Dask task runner for a "dask" choice. A local cluster listens on loopback only (free
    ports), has no dashboard, and its worker processes (one thread each) get the quiet
    environment of warehouse/env.py explicitly."""
    from prefect_dask import DaskTaskRunner

    from warehouse.env import quiet_values

    if "address" in choice:
        return DaskTaskRunner(address=choice["address"])
    return DaskTaskRunner(
        cluster_class=local_cluster,
        cluster_kwargs={
            "n_workers": choice["workers"],
            "threads_per_worker": 1,
            "processes": True,
            "host": "127.0.0.1",
            "scheduler_port": 0,
            "dashboard_address": None,
            "worker_dashboard_address": None,
            # the scheduler's HTTP endpoint (health, metrics; no dashboard without bokeh) on a
            # free loopback port instead of 8787
            "scheduler_kwargs": {"dashboard_address": "127.0.0.1:0"},
            "env": quiet_values(),
        },
    )


@contextmanager
def api_for_other_processes():
    """Task runs in other processes (Dask workers) report to this run's Prefect API. Without
    PREFECT_API_URL (`fazhi run` with no server), Prefect serves an ephemeral API from a
    subprocess of this one and the flow's settings name no URL: each Dask worker process would
    then start an ephemeral server of its own. Within this block the settings name this one."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    if PREFECT_API_URL.value():
        yield
        return
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:  # the ephemeral server, started already
        api = str(client.api_url).rstrip("/")
    with temporary_settings({PREFECT_API_URL: api}):
        yield


def local_cluster(**kwargs):
    """A `distributed.LocalCluster` whose worker processes are not daemons: a task in one may
    start processes of its own (the validation of a large table's chunks in a process pool,
    `[performance] workers`), which a daemon process may not."""
    import dask
    from distributed import LocalCluster

    with dask.config.set({"distributed.worker.daemon": False}):  # read as the workers start
        return LocalCluster(**kwargs)


# --- the engine of warehouse/runs.py inside a flow run ---------------------------------------


class PrefectEngine:
    """warehouse/runs.py's engine inside a Prefect flow run: each step is one of the flow's
    tasks (`tasks`: step name -> task), sources come from the flow's task runner (`sources`),
    the writer slot is the server's global concurrency limit, summaries are artifacts, and the
    alert is left to the server's automation where it sends one."""

    def __init__(self, tasks: dict, sources=None):
        from prefect import get_run_logger

        self.tasks, self._sources = tasks, sources
        self.logger = get_run_logger()

    def describe(self, settings: Settings) -> str:
        return describe_task_runner(task_runner_choice(settings))

    def call(self, step: str, *args):
        return self.tasks[step](*args)

    def sources(self, settings: Settings):
        return self._sources(settings)

    def writer_slot(self, settings: Settings):
        return writer_slot(settings, self.logger)

    def artifact(self, key: str, description: str, markdown) -> None:
        publish_artifact(key, markdown(), description, self.logger)

    def alert(self, settings: Settings | None, flow: str, summary: str) -> None:
        alert_failure(settings, flow, summary, self.logger)


# --- artifacts -------------------------------------------------------------------------------


def publish_artifact(key: str, markdown: str, description: str, logger=None) -> None:
    """A Prefect markdown artifact; one that cannot be created is logged, never fails the run."""
    try:
        from prefect.artifacts import create_markdown_artifact

        create_markdown_artifact(markdown=markdown, key=key, description=description)
    except Exception as exc:
        (logger or log).warning("artifact %s not created: %s", key, type(exc).__name__)
