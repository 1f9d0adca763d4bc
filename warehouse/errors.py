"""The kinds of error a command expects, by what the user has to do about them: every error the
library raises on purpose for bad input or a busy database derives from one of these (besides its
own base, e.g. ValueError), a failed flow run is a RunFailed, and the CLI maps them to its
documented exit codes in one place (flows/cli.py main(); the table in docs/operations.md, "Exit
codes of `fazhi`"). Stdlib only: the read-only commands import it."""

from __future__ import annotations


class BadInput(Exception):
    """Exit 2: the input, the configuration or a name given is wrong; the message says what and
    where. `heading` (Chinese, English) introduces it on the terminal."""

    heading = ("错误", "error")


class HeldByAnother(Exception):
    """Exit 3: another process holds the database this command needs."""

    heading = ("错误", "error")


class RunFailed(RuntimeError):
    """Exit 1 (or its cause's code: 2 bad input, 3 held by another): a flow's failure, with a
    message free of personal data (warehouse/alerts.py failure_summary): it becomes the run's final
    state message in Prefect, which the server's alert quotes. `__cause__` is the original
    exception; `sources` the run's per-source report (details for the operator's terminal and
    the manifest, never for alerts)."""

    def __init__(self, summary: str, sources: dict | None = None):
        super().__init__(summary)
        self.sources = sources or {}


def exit_code(exc: BaseException | None) -> int:
    """The CLI's exit code for an error: 2 bad input, 3 held by another, else 1 (failed)."""
    if isinstance(exc, BadInput):
        return 2
    if isinstance(exc, HeldByAnother):
        return 3
    return 1
