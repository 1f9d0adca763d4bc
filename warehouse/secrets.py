"""Named secrets (Prefect Secret blocks) read through a reader that the orchestration layer
registers, so the library never imports Prefect: flows/__init__.py registers Prefect's Secret
block reader (importing Prefect only when a block is read). A process that names a block
without flows/ loaded gets a clear configuration error."""

from __future__ import annotations

from collections.abc import Callable

_reader: Callable[[str], str] | None = None


def register_secret_reader(reader: Callable[[str], str]) -> None:
    global _reader
    _reader = reader


def read_secret(name: str) -> str:
    """The value of the secret block `name`."""
    if _reader is None:
        from warehouse.config import ConfigError

        raise ConfigError(
            f"无法读取密钥块 {name}：未加载 Prefect / cannot read the secret block {name!r}: no secret reader "
            "(Prefect) is registered in this process"
        )
    return _reader(name)
