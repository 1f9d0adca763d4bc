"""Keyed pseudonyms for identifiers, computed in bulk inside DuckDB.

HMAC-SHA256 (RFC 2104) written with DuckDB's sha256 over blobs, so a whole column is hashed in
one statement. The hex digest is re-spelled with letters only (0-9 -> g-p) and cut to 32
characters (128 bits): a pseudonym never contains a digit, so it cannot be mistaken for an ID
or phone number. The key lives only inside a temporary macro of the connection given.
"""

from __future__ import annotations

import hashlib
import hmac

import duckdb

_BLOCK = 64
PSEUDONYM_LENGTH = 32
_DIGITS, _LETTERS = "0123456789", "ghijklmnop"


def install_pseudonym_macro(con: duckdb.DuckDBPyConnection, key: bytes) -> None:
    """Define `pseudonym(v)` on this connection: NULL for empty input, else the keyed hash."""
    if not key:
        raise ValueError("empty pseudonymisation key")
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(_BLOCK, b"\0")
    ipad = _blob(bytes(b ^ 0x36 for b in key))
    opad = _blob(bytes(b ^ 0x5C for b in key))
    # the pads as blob literals (folded once; unhex of a constant is evaluated per row) and the
    # digest cut before it is re-spelled: translate costs per character (docs/performance.md)
    con.execute(
        f"""
        create or replace temp macro pseudonym(v) as
        case when v is null or trim(cast(v as varchar)) = '' then null
        else translate(left(sha256({opad} || unhex(sha256({ipad}
             || encode(upper(trim(cast(v as varchar))))))), {PSEUDONYM_LENGTH}), '{_DIGITS}', '{_LETTERS}')
        end
        """
    )


def _blob(data: bytes) -> str:
    """A DuckDB blob literal of `data`."""
    return "'" + "".join(f"\\x{b:02x}" for b in data) + "'::blob"


def pseudonym(value: str, key: bytes) -> str:
    """The same pseudonym computed in Python (tests and single look-ups)."""
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    digest = hmac.new(key, value.strip().upper().encode(), hashlib.sha256).hexdigest()
    return digest.translate(str.maketrans(_DIGITS, _LETTERS))[:PSEUDONYM_LENGTH]
