"""`fazhi check-config`: a home's effective settings, as TOML, every default filled in.

Secrets never appear: the pseudonymisation key, the sources' tokens and the alert webhook (its
URL carries the robot's key) show only whether and where they are set, and a fingerprint (an
HMAC of a fixed text under the secret, warehouse/key_fingerprint.py: it tells two values apart and
reveals nothing of them). A URL's password and query are masked wherever shown. Prefect Secret
blocks are named, not read: that needs the Prefect API.
"""

from __future__ import annotations

import os
from dataclasses import fields
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from warehouse.alerts import URL_ENV
from warehouse.config import (
    KEY_ENV,
    SECTIONS,
    SOURCE_SCHEMAS,
    ConfigError,
    Settings,
    SourceConfig,
)
from warehouse.toml_schema import as_written, unknown

NOT_SET = "未设置 / not set"


def check_field_overrides(settings: Settings) -> None:
    """Every column named in a `[sources.<name>.fields]` override exists in the source's field
    dictionary (warehouse/fields.yaml), else a ConfigError naming it and the nearest column.
    (A source whose override names no column also fails when it lands: pipeline.land_source.)"""
    from warehouse.sources.registry import load_mappings

    for name, source in settings.sources.items():
        tables = load_mappings()[name]
        columns = {c.name for t in tables.values() for c in t.columns}
        for key, value in source.fields.items():
            if isinstance(value, dict):
                if key not in tables:
                    raise _error(settings, unknown("数据表", "table", key, tables, f"[sources.{name}.fields] "))
                table_columns = {c.name for c in tables[key].columns}
                for column in value:
                    if column not in table_columns:
                        place = f"[sources.{name}.fields.{key}] "
                        raise _error(settings, unknown("列", "column", column, table_columns, place))
            elif key not in columns:
                raise _error(settings, unknown("列", "column", key, columns, f"[sources.{name}.fields] "))


def _error(settings: Settings, exc: Exception) -> ConfigError:
    return ConfigError(f"{settings.config_file}: {exc}")


def render(settings: Settings) -> str:
    """The effective settings of the home, as a fazhi.toml would state them."""
    out = [
        f"# 生效配置 / effective settings of {settings.config_file}",
        "# 已填入默认值；密钥只显示是否设置及指纹 / "
        "defaults filled in; secrets show only whether set and a fingerprint",
    ]
    for section in SECTIONS:
        options = getattr(settings, section)
        out += ["", f"[{section}]"]
        for f in fields(options):
            value = getattr(options, f.name)
            if f.metadata.get("secret"):
                out.append(f"# {f.name}: {_webhook(value)}")
            else:
                out.append(_line(f.name, value))
        if section == "pseudonymisation":
            out.append(f"# 密钥 / key: {_hmac_key(settings)}")
    for source in settings.sources.values():
        out += ["", *_source(settings.home, source)]
    return "\n".join(out) + "\n"


def _source(home: Path, source: SourceConfig) -> list[str]:
    out = [f"[sources.{source.name}]", _line("kind", source.kind), _line("path", _relative(home, source.path))]
    schema_keys = [f.name for f in fields(SOURCE_SCHEMAS[source.kind]) if f.name not in ("kind", "path", "fields")]
    for key in schema_keys:
        value = getattr(source.http, key) if source.http else getattr(source, key)
        if key == "url":
            env = f"FAZHI_{source.name.upper()}_URL"
            note = f"  # {env} 覆盖 / overrides fazhi.toml" if os.environ.get(env) else ""
            out.append(_line(key, masked_url(value)) + note)
        else:
            out.append(_line(key, value))
    if source.http:
        out.append(f"# 令牌 / token: {_token(source)}")
    if source.fields:
        plain = {k: v for k, v in source.fields.items() if not isinstance(v, dict)}
        out += ["", f"[sources.{source.name}.fields]", *(_line(k, v) for k, v in plain.items())]
        for table, overrides in source.fields.items():
            if isinstance(overrides, dict):
                out += ["", f"[sources.{source.name}.fields.{table}]", *(_line(k, v) for k, v in overrides.items())]
    return out


def _line(key: str, value) -> str:
    if value is None:
        return f"# {key}: {NOT_SET}"
    return f"{key} = {as_written(value)}"


def _relative(home: Path, path: Path) -> str:
    return str(path.relative_to(home)) if path.is_relative_to(home) else str(path)


def masked_url(url: str) -> str:
    """The URL without its password and query values (either may hold a key)."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        netloc = netloc.replace(f":{parts.password}@", ":***@", 1)
    query = "&".join(f"{p.partition('=')[0]}=***" for p in parts.query.split("&")) if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def _fingerprint(secret: str | bytes) -> str:
    from warehouse.key_fingerprint import fingerprint

    return fingerprint(secret.encode() if isinstance(secret, str) else secret)


def _webhook(from_file: str | None) -> str:
    url, where = (os.environ.get(URL_ENV), URL_ENV) if os.environ.get(URL_ENV) else (from_file, "fazhi.toml")
    if not url:
        return f"{NOT_SET} (告警不发送 / no alerts are sent)"
    host = urlsplit(url).hostname or "?"
    return f"已设置 / set ({where}), host {host}, fingerprint {_fingerprint(url)}"


def _token(source: SourceConfig) -> str:
    env = source.http.token_env
    if os.environ.get(env):
        return f"已设置 / set (env {env}), fingerprint {_fingerprint(os.environ[env])}"
    if source.http.token_secret_block:
        return f"Prefect Secret {source.http.token_secret_block} (此处不读取 / not read here)"
    return f"{NOT_SET} ({env}): `fazhi run` 将拒绝运行 / `fazhi run` refuses to start"


def _hmac_key(settings: Settings) -> str:
    found = settings.hmac_key_sources(read_secret_block=False)
    said = [f"{where} (fingerprint {_fingerprint(key)}, {len(key)} bytes)" for where, key in found.items()]
    if settings.hmac_secret_block:
        said.append(f"Prefect Secret {settings.hmac_secret_block} (此处不读取 / not read here)")
    if not said:
        return f"{NOT_SET} ({KEY_ENV}): 运行将拒绝 / runs refuse to start"
    verdict = ""
    if not settings.hmac_secret_block:
        try:
            settings.hmac_key()
        except ConfigError as exc:
            verdict = f" — {exc}"
    return "已设置 / set: " + "; ".join(said) + verdict
