"""Blocking audits run before publishing (write-audit-publish): any finding stops the publish."""

from __future__ import annotations

from pathlib import Path

import duckdb

from warehouse.db import sql

AUDITS = tuple(sorted(p.stem for p in (Path(__file__).parent / "audits").glob("*.sql")))


class AuditFailed(RuntimeError):
    def __init__(self, findings: list[tuple[str, str]]):
        self.findings = findings
        shown = "; ".join(f"{a}: {d}" for a, d in findings[:10])
        more = f" (+{len(findings) - 10} more)" if len(findings) > 10 else ""
        super().__init__(f"发布前审计未通过，未发布 / blocking audits failed, nothing published: {shown}{more}")


def run_audits(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    findings: list[tuple[str, str]] = []
    for name in AUDITS:
        findings += [tuple(r) for r in con.execute(sql(f"audits/{name}.sql")).fetchall()]
    return findings


def check(con: duckdb.DuckDBPyConnection) -> None:
    findings = run_audits(con)
    if findings:
        raise AuditFailed(findings)
