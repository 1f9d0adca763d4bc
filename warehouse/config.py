"""The home folder and its configuration file, fazhi.toml.

Home: `--home DIR`, else `$FAZHI_HOME`, else `./var`. Paths in fazhi.toml are relative to the
home folder. This module imports nothing heavy: the CLI's read-only commands use it.
"""

from __future__ import annotations

import os
import secrets
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

CONFIG_NAME = "fazhi.toml"
DEMO_KEY_FILE = "secrets/hmac.key"
KEY_ENV = "FAZHI_HMAC_KEY"
MIN_KEY_BYTES = 32


class ConfigError(RuntimeError):
    """The home folder or its configuration cannot be used; the message says why."""


class MissingToken(ConfigError):
    """An HTTP source has no token: neither its environment variable nor a Secret block."""


@dataclass(frozen=True)
class HttpOptions:
    """An HTTP export source (docs/sources.md, "HTTP export contract"). The token itself is never
    stored here: only where to find it (environment variable, else a Prefect Secret block)."""

    url: str
    token_env: str
    token_secret_block: str | None = None
    page_size: int = 500
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    max_attempts: int = 6  # per request, the first try included
    backoff_base: float = 0.5  # seconds; doubles each retry
    backoff_max: float = 30.0
    max_retry_seconds: float = 300.0  # cap on the time one pull spends waiting to retry
    verify: bool | str = True  # TLS verification (or a CA bundle path); never off in production
    # bounds on one pull (docs/sources.md, "Bounded pulls"): a stuck or hostile server fails its
    # source alone, by name, and never holds the night
    pull_deadline_seconds: float = 1800.0  # the whole pull, retries and waits included
    max_pages: int = 20_000  # requests for pages, re-asked pages included
    max_page_bytes: int = 64 * 2**20  # one response, on the wire and after decompression
    clock_skew_seconds: float = 300.0  # a date or 更新时间 later than the pull's clock plus this is refused


@dataclass(frozen=True)
class SourceConfig:
    name: str
    kind: str  # json_pages | spreadsheet_drop | http
    path: Path
    http: HttpOptions | None = None
    fields: dict = field(default_factory=dict)  # per-county field-name overrides on top of fields.yaml
    supersede: str = "file_name"  # spreadsheet drops: what a corrected delivery replaces (warehouse/supersede.py)


HTTP_KEYS = {f for f in HttpOptions.__dataclass_fields__ if f not in ("url", "token_env")}


def _source_config(home: Path, cfg_path: Path, name: str, src: dict) -> SourceConfig:
    kind = src.get("kind")
    fields = dict(src.get("fields", {}))
    if kind == "http":
        url = os.environ.get(f"FAZHI_{name.upper()}_URL") or src.get("url")
        if not url:
            raise ConfigError(f"{cfg_path}: [sources.{name}] (kind http) needs `url`")
        opts = {k: src[k] for k in HTTP_KEYS if k in src}
        http = HttpOptions(url=url, token_env=src.get("token_env", f"FAZHI_{name.upper()}_TOKEN"), **opts)
        return SourceConfig(name, kind, home / src.get("path", f"landing/{name}"), http, fields)
    if kind == "spreadsheet_drop":
        from warehouse.supersede import SUPERSEDE_BY

        supersede = src.get("supersede", "file_name")
        if supersede not in SUPERSEDE_BY:
            raise ConfigError(
                f"{cfg_path}: [sources.{name}] supersede 只能是 file_name 或 township_year / "
                f"supersede must be file_name or township_year, not {supersede!r}"
            )
        return SourceConfig(name, kind, home / src.get("path", f"drop/{name}"), None, fields, supersede)
    if kind is None or "path" not in src:
        raise ConfigError(f"{cfg_path}: [sources.{name}] needs `kind` and `path`")
    return SourceConfig(name, kind, home / src["path"], None, fields)


@dataclass(frozen=True)
class Settings:
    home: Path
    townships_csv: Path
    sources: dict[str, SourceConfig]
    first_year: int = 2022
    required_training_hours: float = 60.0
    hmac_key_file: Path | None = None
    hmac_secret_block: str | None = None
    lock_wait_seconds: float = 600.0
    landing_retention_days: int | None = None
    report_template: Path | None = None  # [reports] template: the county's Word template for `fazhi report`
    extra: dict = field(default_factory=dict)

    @property
    def work_db(self) -> Path:
        return self.home / "work.duckdb"

    @property
    def published_db(self) -> Path:
        return self.home / "published" / "fazhi.duckdb"

    @property
    def landing_dir(self) -> Path:
        return self.home / "landing"

    @property
    def runs_dir(self) -> Path:
        return self.home / "runs"

    def hmac_key(self) -> bytes:
        """The pseudonymisation key, from FAZHI_HMAC_KEY, the Prefect Secret block named in
        fazhi.toml or the key file named there (`fazhi demo` writes one). Where several are set
        they must hold the same key: one silently overriding another would change every
        pseudonym. At least MIN_KEY_BYTES bytes."""
        from warehouse.key_fingerprint import fingerprint

        found = {}
        if os.environ.get(KEY_ENV):
            found[KEY_ENV] = os.environ[KEY_ENV].encode()
        if self.hmac_secret_block:
            from warehouse.secrets import read_secret

            found[f"Prefect Secret {self.hmac_secret_block}"] = read_secret(self.hmac_secret_block).encode()
        if self.hmac_key_file and self.hmac_key_file.exists():
            found[str(self.hmac_key_file)] = self.hmac_key_file.read_bytes().strip()
        if not found:
            raise ConfigError(
                "缺少假名化密钥：请设置环境变量 FAZHI_HMAC_KEY / "
                "no pseudonymisation key: set FAZHI_HMAC_KEY (only `fazhi demo` generates one)"
            )
        if len(set(found.values())) > 1:
            where = "; ".join(f"{name} (fingerprint {fingerprint(key)})" for name, key in found.items())
            raise ConfigError(
                f"假名化密钥的来源不一致，请只保留一个 / the pseudonymisation key differs between its sources, "
                f"keep one: {where}"
            )
        (where, key), *_ = found.items()
        if len(key) < MIN_KEY_BYTES:
            raise ConfigError(
                f"假名化密钥过短（{where}：{len(key)} 字节，至少 {MIN_KEY_BYTES} 字节）/ the pseudonymisation key "
                f"in {where} is {len(key)} bytes; at least {MIN_KEY_BYTES} are needed "
                '(python3 -c "import secrets; print(secrets.token_hex(32))")'
            )
        return key


def resolve_home(home: str | os.PathLike | None) -> Path:
    if home:
        return Path(home).resolve()
    if os.environ.get("FAZHI_HOME"):
        return Path(os.environ["FAZHI_HOME"]).resolve()
    return Path("var").resolve()


def load_settings(home: Path) -> Settings:
    path = home / CONFIG_NAME
    if not path.exists():
        raise ConfigError(
            f"找不到配置文件 {path} / no configuration at {path}: run `fazhi demo` or write one (see README)"
        )
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"配置文件格式错误 / {path} is not valid TOML: {exc}") from None
    pipeline = data.get("pipeline", {})
    sources = {}
    for name, src in data.get("sources", {}).items():
        sources[name] = _source_config(home, path, name, src)
    pseudo = data.get("pseudonymisation", {})
    key_file = pseudo.get("key_file")
    retention = data.get("landing", {}).get("retention_days")
    template = data.get("reports", {}).get("template")
    return Settings(
        home=home,
        townships_csv=home / pipeline.get("townships", "townships.csv"),
        sources=sources,
        first_year=int(pipeline.get("first_year", 2022)),
        required_training_hours=float(pipeline.get("required_training_hours", 60)),
        hmac_key_file=home / key_file if key_file else None,
        hmac_secret_block=pseudo.get("secret_block"),
        lock_wait_seconds=float(pipeline.get("lock_wait_seconds", 600)),
        landing_retention_days=int(retention) if retention else None,
        report_template=home / template if template else None,
        extra=data,
    )


DEMO_CONFIG = """\
# fazhi-warehouse configuration (written by `fazhi demo`). Paths are relative to this folder.
[pipeline]
townships = "sample/townships.csv"   # the county's townships: code,name,kind,county_code,county_name
first_year = 2022                    # earliest year of indicators
required_training_hours = 60         # TRN08: hours an enforcement officer needs a year (local policy)
lock_wait_seconds = 600              # a second run waits this long for the one writing, then exits

[landing]
# retention_days = 90                # purge landed exports this old (off by default; docs/operations.md)

[reports]
# template = "my-template.docx"      # the county's Word template for `fazhi report` (docs/reports.md)

[pseudonymisation]
key_file = "{key_file}"         # demo only; production sets FAZHI_HMAC_KEY
# secret_block = "fazhi-hmac-key"    # or the name of a Prefect Secret block holding the key

{page_sources}
[sources.training]
kind = "spreadsheet_drop"
path = "sample/training"

[sources.returns]
kind = "spreadsheet_drop"
path = "sample/returns"
# supersede = "township_year"        # a re-sent file of a township-year replaces the earlier one
                                     # whatever its name (default file_name: only under the same name)
"""


DEMO_HTTP_SOURCES = """\
[sources.enforcement]
kind = "http"                        # pulled over HTTP (docs/sources.md, HTTP export contract)
url = "http://127.0.0.1:8765/"       # `fazhi demo` serves the sample here (FAZHI_ENFORCEMENT_URL overrides)
# token: env FAZHI_ENFORCEMENT_TOKEN, or token_secret_block = "<Prefect Secret block name>"
page_size = 500
connect_timeout = 3
read_timeout = 5
max_retry_seconds = 60
# pull_deadline_seconds = 1800       # bounds on one pull (docs/sources.md, bounded pulls)
# max_pages = 20000
# max_page_bytes = 67108864          # 64 MiB, on the wire and decompressed
# clock_skew_seconds = 300           # dates later than the pull's clock plus this are refused
# [sources.enforcement.fields]       # this county's export names a field differently:
# act_type = "行为种类"

[sources.mediation]
kind = "http"
url = "http://127.0.0.1:8765/"
page_size = 500
connect_timeout = 3
read_timeout = 5
max_retry_seconds = 60
"""
_DEMO_FOLDER_SOURCES = """\
[sources.enforcement]
kind = "json_pages"
path = "sample/enforcement"

[sources.mediation]
kind = "json_pages"
path = "sample/mediation"
"""


def write_demo_config(home: Path, http: bool = False) -> None:
    """Write fazhi.toml and the demo hashing key, keeping both if they already exist (no key file
    when FAZHI_HMAC_KEY is set: two sources of the key must not disagree). With `http`,
    enforcement and mediation are pulled from the simulator (`fazhi demo`) instead of read from
    the sample's page folders."""
    home.mkdir(parents=True, exist_ok=True)
    key = home / DEMO_KEY_FILE
    if not key.exists() and not os.environ.get(KEY_ENV):
        key.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
    cfg = home / CONFIG_NAME
    if not cfg.exists():
        sources = DEMO_HTTP_SOURCES if http else _DEMO_FOLDER_SOURCES
        cfg.write_text(DEMO_CONFIG.format(key_file=DEMO_KEY_FILE, page_sources=sources), encoding="utf-8")
