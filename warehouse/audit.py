"""Audits run before publishing (write-audit-publish), each a query in audits/*.sql returning one
row (audit, detail) per finding, with its severity in its header: `-- severity: fail` blocks the
publish (AuditFailed), `-- severity: warn` is recorded and logged, and the publish goes on. Every
finding of a check is recorded in audit.audit_finding."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from warehouse.db import WAREHOUSE_DIR

AUDITS_DIR = WAREHOUSE_DIR / "audits"
SEVERITIES = ("fail", "warn")
_SEVERITY = re.compile(r"^--\s*severity\s*:\s*(\S*)\s*$", re.MULTILINE)
log = logging.getLogger("fazhi")


class AuditFailed(RuntimeError):
    def __init__(self, findings: list[tuple[str, str]]):
        self.findings = findings
        shown = "; ".join(f"{a}: {d}" for a, d in findings[:10])
        more = f" (+{len(findings) - 10} more)" if len(findings) > 10 else ""
        super().__init__(f"发布前审计未通过，未发布 / blocking audits failed, nothing published: {shown}{more}")


class AuditDeclarationError(ValueError):
    """An audit file without a valid `-- severity:` line; the message names the file."""


@dataclass(frozen=True)
class Audit:
    path: Path
    severity: str

    @property
    def name(self) -> str:
        return self.path.stem


@dataclass(frozen=True)
class Finding:
    audit: str
    severity: str
    detail: str


def load_audits(*extra: Path) -> list[Audit]:
    """The audits of audits/ and of `extra` (files or folders: a source's own audits)."""
    files = sorted(AUDITS_DIR.glob("*.sql"))
    for path in extra:
        files += sorted(path.glob("*.sql")) if path.is_dir() else [path]
    audits = []
    for path in files:
        severity = _SEVERITY.findall(path.read_text(encoding="utf-8"))
        if len(severity) != 1 or severity[0] not in SEVERITIES:
            raise AuditDeclarationError(
                f"{path}: declare one `-- severity: fail` or `-- severity: warn` line (found {severity or 'none'})"
            )
        audits.append(Audit(path, severity[0]))
    return audits


def run_audits(con: duckdb.DuckDBPyConnection, audits: Sequence[Audit]) -> list[Finding]:
    findings = []
    for a in audits:
        rows = con.execute(_filled(a.path.read_text(encoding="utf-8"))).fetchall()
        findings += [Finding(name, a.severity, detail) for name, detail in rows]
    return findings


def _filled(text: str) -> str:
    """The audit's SQL with `{{ raw_row_counts }}` replaced by the rows per batch and table of
    every source's raw table (the source registry)."""
    if "{{ raw_row_counts }}" not in text:
        return text
    from warehouse.sources import registry

    return text.replace("{{ raw_row_counts }}", registry.raw_row_counts())


def check(con: duckdb.DuckDBPyConnection, extra: Sequence[Path] = ()) -> list[Finding]:
    """Run every audit and record its findings; raise AuditFailed if a `fail` audit found
    anything, else return the warnings (each also logged)."""
    findings = run_audits(con, load_audits(*extra))
    _record(con, findings)
    for f in findings:
        if f.severity == "warn":
            log.warning("审计提示 / audit warning %s: %s", f.audit, f.detail)
    failed = [(f.audit, f.detail) for f in findings if f.severity == "fail"]
    if failed:
        raise AuditFailed(failed)
    return [f for f in findings if f.severity == "warn"]


def _record(con: duckdb.DuckDBPyConnection, findings: list[Finding]) -> None:
    if findings:
        con.execute(
            "insert into audit.audit_finding select $at, unnest($audits), unnest($severities), unnest($details)",
            {
                "at": datetime.now(UTC).replace(tzinfo=None),
                "audits": [f.audit for f in findings],
                "severities": [f.severity for f in findings],
                "details": [f.detail for f in findings],
            },
        )
