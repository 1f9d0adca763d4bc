"""The per-source watermark of incremental HTTP pulls (audit.watermark, migration 007)."""

from __future__ import annotations

from datetime import datetime

import duckdb


def read_watermark(con: duckdb.DuckDBPyConnection, source: str) -> dict | None:
    """{"modified_at", "ids"} of the last loaded pull of the source, or None (pull everything)."""
    row = con.execute("select modified_at, ids from audit.watermark where source = ?", [source]).fetchall()
    row = row[0] if row else None
    return {"modified_at": row[0], "ids": list(row[1])} if row else None


def save_watermark(con: duckdb.DuckDBPyConnection, source: str, watermark: dict, batch_id: str, at: datetime) -> None:
    """Advance the watermark; call inside the transaction that loads the batch."""
    con.execute(
        "insert or replace into audit.watermark values (?, ?, ?, ?, ?)",
        [source, watermark["modified_at"], list(watermark.get("ids") or []), batch_id, at],
    )
