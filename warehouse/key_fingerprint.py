"""The pseudonymisation key's fingerprint, kept in the warehouse so that a changed key is noticed.

Every identity pseudonym in the warehouse is an HMAC under one key. A run with another key would
give the same people other pseudonyms: joins across batches (an act's officers against the
training roster, ENF09) silently break. So the first run records the key's fingerprint, and any
later run whose key has another fingerprint stops, before anything is parsed. Changing the key
on purpose is the re-key procedure of docs/operations.md (a new working database).

The fingerprint is an HMAC of a fixed text under the key, cut to 16 hex digits: it names the key
and reveals nothing of it.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime

import duckdb

_TEXT = b"fazhi-warehouse pseudonymisation key fingerprint v1"


class KeyChanged(RuntimeError):
    """The key differs from the one the warehouse was built with (bilingual message)."""


def fingerprint(key: bytes) -> str:
    return hmac.new(key, _TEXT, hashlib.sha256).hexdigest()[:16]


def check_key(con: duckdb.DuckDBPyConnection, key: bytes, now: datetime) -> str:
    """Record the key's fingerprint on the warehouse's first run; raise KeyChanged when a later
    run's key has another. Returns the fingerprint."""
    given = fingerprint(key)
    # fetchall, not fetchone: a DuckDB 2.0 result streams until it is read to the end
    recorded = con.execute("select fingerprint from audit.key_fingerprint order by recorded_at desc limit 1").fetchall()
    if not recorded:
        con.execute("insert into audit.key_fingerprint values (?, ?, 'first run with this key')", [given, now])
    elif recorded[0][0] != given:
        raise KeyChanged(
            f"假名化密钥与本仓库所用密钥不同（仓库记录的指纹 {recorded[0][0]}，当前密钥 {given}）："
            "换用密钥会使同一人得到不同假名，指标（如 ENF09）将出错；请恢复原密钥，"
            "或按 docs/operations.md「更换假名化密钥」操作 / "
            f"the pseudonymisation key differs from the one this warehouse was built with (fingerprint "
            f"{recorded[0][0]} recorded, {given} given): with another key the same people get other "
            "pseudonyms and figures such as ENF09 go wrong. Restore the key, or follow docs/operations.md, "
            "'Changing the pseudonymisation key'"
        )
    return given
