"""TOML tables read into frozen dataclasses: the dataclass is the schema.

Each field of the dataclass is a key of the table: its annotation is the type the value must
have, its default the value when the key is absent (a field without one is a required key), and
`field(metadata={"min": n})` a lower bound; `metadata={"secret": True}` keeps the value out of
every message. A key the dataclass does not have, a value of another type or below its bound is
refused (SchemaError) naming the table, the key and, for a misspelt name, the nearest valid one.

Stdlib only, no pydantic: the read-only CLI commands load the configuration and must start fast
(pydantic's import and model building would be half of `fazhi indicators`' time: docs/performance.md).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import types
import typing
from functools import cache
from typing import Literal, Union

SHOWN = 30  # valid names listed in a message


class SchemaError(ValueError):
    """A table that does not fit its schema; the message (Chinese / English) says where and why."""


def unknown(what_zh: str, what_en: str, given: str, valid, place: str = "") -> SchemaError:
    """`given` is not one of `valid`: the error names the nearest valid name and lists them.
    `place` starts the message (the table, e.g. "[orchestration] ")."""
    names = sorted(valid)
    nearest = difflib.get_close_matches(given, names, n=1, cutoff=0.0)
    hint = f"; 是否指 / did you mean {nearest[0]}?" if nearest else ""
    listed = ", ".join(names[:SHOWN]) + (f" … ({len(names)})" if len(names) > SHOWN else "")
    head = f"{place}未知的{what_zh} {given} / unknown {what_en} {given}"
    return SchemaError(f"{head}{hint} 可选 / valid: {listed or '—'}")


def read_table(cls: type, table: object, where: str):
    """An instance of the dataclass `cls` from the TOML table found at `[where]`."""
    if not isinstance(table, dict):
        raise SchemaError(f"[{where}] 应为一个表 / must be a table ([{where}] and its keys), not {as_written(table)}")
    known = {f.name: f for f in dataclasses.fields(cls)}
    for key in table:
        if key not in known:
            raise unknown("设置", "setting", key, known, f"[{where}] ")
    hints = _hints(cls)
    values = {}
    for name, f in known.items():
        if name not in table:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise SchemaError(f"[{where}] 缺少 {name} / needs `{name}`")
            continue
        values[name] = _checked(table[name], hints[name], f, where)
    return cls(**values)


@cache
def _hints(cls: type) -> dict:
    return typing.get_type_hints(cls)


_INVALID = object()


def _checked(value, hint, f: dataclasses.Field, where: str):
    converted = _convert(value, hint)
    shown = "…" if f.metadata.get("secret") else as_written(value)
    if converted is _INVALID:
        choices = _choices(hint)
        if choices and isinstance(value, str):
            raise unknown("取值", "value", value, choices, f"[{where}] {f.name} = {shown}: ")
        zh, en = _words(hint)
        raise SchemaError(f"[{where}] {f.name} = {shown}: 应为{zh} / must be {en}")
    low = f.metadata.get("min")
    if low is not None and converted is not None and converted < low:
        raise SchemaError(f"[{where}] {f.name} = {shown}: 应不小于 {low} / must be at least {low}")
    return converted


def _convert(value, hint):
    """`value` as the annotation `hint` wants it (an integer where a number is wanted becomes a
    float), or _INVALID. TOML has no null: `X | None` only means the default is None."""
    origin = typing.get_origin(hint)
    if origin is Literal:
        return value if value in typing.get_args(hint) else _INVALID
    if origin in (Union, types.UnionType):
        for arm in typing.get_args(hint):
            converted = _convert(value, arm)
            if converted is not _INVALID:
                return converted
        return _INVALID
    if hint is bool:
        return value if isinstance(value, bool) else _INVALID
    if hint is int:
        return value if isinstance(value, int) and not isinstance(value, bool) else _INVALID
    if hint is float:
        return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else _INVALID
    if hint is str:
        return value if isinstance(value, str) else _INVALID
    if (origin or hint) is dict:
        return value if isinstance(value, dict) else _INVALID
    return _INVALID


def _choices(hint) -> tuple:
    """The values a Literal annotation allows (within a union too)."""
    if typing.get_origin(hint) is Literal:
        return typing.get_args(hint)
    return tuple(c for arm in typing.get_args(hint) for c in _choices(arm))


_WORDS = {
    bool: ("布尔值 true 或 false", "true or false"),
    int: ("整数", "an integer"),
    float: ("数值", "a number"),
    str: ("文本(加引号)", 'a text ("quoted")'),
    dict: ("一个表", "a table"),
}


def _words(hint) -> tuple[str, str]:
    arms = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
    if typing.get_origin(hint) is Literal:
        arms = [hint]
    words = [
        ("、".join(map(str, typing.get_args(a))) + " 之一", "one of " + ", ".join(map(str, typing.get_args(a))))
        if typing.get_origin(a) is Literal
        else _WORDS.get(typing.get_origin(a) or a, (str(a), str(a)))
        for a in arms
    ]
    return " 或 ".join(w[0] for w in words), " or ".join(w[1] for w in words)


def as_written(value) -> str:
    """A value as written in TOML (strings quoted), for messages and `fazhi check-config`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(as_written(v) for v in value) + "]"
    if isinstance(value, dict):
        return "a table"
    return repr(value)
