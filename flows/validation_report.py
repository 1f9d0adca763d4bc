"""The run's validation report (warehouse/reports/validation.py) and its Prefect markdown artifact.

Called by the nightly flow after loading and computing, before publishing (so a run whose
audits block the publish still leaves its report). A report that cannot be written is logged
and never fails the run.
"""

from __future__ import annotations

import logging

from warehouse.config import Settings


def reports_dir(settings: Settings):
    return settings.home / "reports" / "validation"


def write_and_publish(settings: Settings, run_report, logger: logging.Logger | logging.LoggerAdapter) -> str:
    """Write `reports/validation/<run_id>.html` (and latest.html); publish the summary as a
    Prefect markdown artifact. Returns the report's path, or 'failed: …'."""
    try:
        from warehouse.db import open_work_db
        from warehouse.reports.validation import render_markdown, write_report

        con = open_work_db(settings.work_db)
        try:
            path, data = write_report(con, reports_dir(settings), run_report.run_id, run_report.sources)
        finally:
            con.close()
    except Exception as exc:  # the report must never fail the run
        logger.error("validation report not written: %s: %s", type(exc).__name__, exc)
        return f"failed: {type(exc).__name__}"
    logger.info("validation report: %s", path)
    try:
        from prefect.artifacts import create_markdown_artifact

        create_markdown_artifact(
            markdown=render_markdown(data),
            key="validation-summary",
            description="数据校验汇总 / validation summary",
        )
    except Exception as exc:
        logger.warning("validation summary artifact not created: %s", type(exc).__name__)
    return str(path)
