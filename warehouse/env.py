"""Environment for the project's processes: offline and quiet (no telemetry, no analytics)."""

from __future__ import annotations

import os

QUIET = {
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "GX_ANALYTICS_ENABLED": "false",
    "PREFECT_UI_ENABLED": "false",
    "PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT": "false",  # no Prefect Cloud promotions fetched by the UI
    "PREFECT_CLOUD_ENABLE_ORCHESTRATION_TELEMETRY": "false",  # (Cloud only) never send orchestration telemetry
    # the ephemeral API server needs more than the default 20 s on a busy 2-core machine
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
}


def quiet_environment() -> None:
    for k, v in QUIET.items():
        os.environ.setdefault(k, v)


def quiet_values() -> dict[str, str]:
    """The quiet settings as this process has them (an operator's own value wins), for child
    processes given an environment explicitly (the Dask runner's local worker processes)."""
    return {k: os.environ.get(k, v) for k, v in QUIET.items()}
