"""The home folder and its configuration file, fazhi.toml.

Home: `--home DIR`, else `$FAZHI_HOME`, else `./var`. Paths in fazhi.toml are relative to the
home folder. Every table of the file has a schema here (a frozen dataclass per table, read by
warehouse/toml_schema.py): an unknown section, key, source or kind, or a value of the wrong type,
is refused naming the file, the key and the nearest valid name. `fazhi check-config` prints the
effective settings (warehouse/config_view.py). This module imports nothing heavy: the CLI's
read-only commands use it.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Literal

from warehouse.errors import BadInput
from warehouse.toml_schema import SchemaError, as_written, read_table, unknown

CONFIG_NAME = "fazhi.toml"
DEMO_KEY_FILE = "secrets/hmac.key"
KEY_ENV = "FAZHI_HMAC_KEY"
MIN_KEY_BYTES = 32


class ConfigError(BadInput, RuntimeError):
    """The home folder or its configuration cannot be used; the message says why."""


class MissingToken(ConfigError):
    """An HTTP source has no token: neither its environment variable nor a Secret block."""


# --- the schema: one frozen dataclass per table of fazhi.toml (warehouse/toml_schema.py) --------
# Field names are the keys, annotations their types, defaults the values of an absent key.
# docs/operations.md and docs/sources.md say what each does; `fazhi check-config` prints them.

WRITER_LIMIT = "fazhi-warehouse-writer"
_AT_LEAST_0, _AT_LEAST_1 = {"min": 0}, {"min": 1}


@dataclass(frozen=True)
class PipelineOptions:
    townships: str = "townships.csv"  # the county's townships: code,name,kind,county_code,county_name
    first_year: int = 2022  # earliest year of indicators
    required_training_hours: float = field(default=60.0, metadata=_AT_LEAST_0)  # TRN08: hours an officer needs a year
    lock_wait_seconds: float = field(default=600.0, metadata=_AT_LEAST_0)  # a second writer waits, then exits


@dataclass(frozen=True)
class LandingOptions:
    retention_days: int | None = field(default=None, metadata=_AT_LEAST_0)  # purge landed exports this old; 0: off


@dataclass(frozen=True)
class ReportOptions:
    template: str | None = None  # the county's Word template for `fazhi report` (docs/reports.md)


@dataclass(frozen=True)
class PseudonymisationOptions:
    key_file: str | None = None  # demo only; production sets FAZHI_HMAC_KEY
    secret_block: str | None = None  # or a Prefect Secret block holding the key


@dataclass(frozen=True)
class OrchestrationOptions:
    """flows/orchestration.py: the writer slot, task retries, the task runner."""

    concurrency_limit: str = WRITER_LIMIT  # the Prefect global concurrency limit every writer holds
    slot_wait_seconds: float = field(default=21600.0, metadata=_AT_LEAST_0)  # waited for the slot, then fails
    land_retries: int = field(default=2, metadata=_AT_LEAST_0)  # task-level retries of a source's pull
    land_retry_delay_seconds: float = field(default=10.0, metadata=_AT_LEAST_0)  # first retry delay; doubles
    task_runner: Literal["threads", "dask"] = "threads"
    dask_workers: int = field(default=2, metadata=_AT_LEAST_1)  # "dask": a local cluster of this many processes
    dask_address: str = ""  # "dask": an existing cluster (tcp://host:port) instead of a local one


@dataclass(frozen=True)
class PerformanceOptions:
    """docs/performance.md. The library's own defaults (expectations/validate.py CHUNK_ROWS,
    warehouse/sources/parsed.py FILES_PER_GROUP) are these: tests/unit/test_config.py checks it."""

    chunk_rows: int = field(default=200_000, metadata=_AT_LEAST_1)  # rows per validation chunk
    workers: int = field(default_factory=lambda: min(4, os.cpu_count() or 1), metadata=_AT_LEAST_1)
    files_per_group: int = field(default=200, metadata=_AT_LEAST_1)  # spreadsheet files parsed together


@dataclass(frozen=True)
class AlertOptions:
    """warehouse/alerts.py. FAZHI_ALERT_WEBHOOK_URL, where set, wins over webhook_url."""

    webhook_url: str | None = field(default=None, metadata={"secret": True})  # it embeds the robot's key
    timeout_seconds: float = field(default=5.0, metadata=_AT_LEAST_0)
    keyword: str = ""  # DingTalk robots with a keyword filter need it in every message


@dataclass(frozen=True)
class HttpOptions:
    """An HTTP export source (docs/sources.md, "HTTP export contract"). The token itself is never
    stored here: only where to find it (environment variable, else a Prefect Secret block)."""

    url: str
    token_env: str
    token_secret_block: str | None = None
    page_size: int = field(default=500, metadata=_AT_LEAST_1)
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    max_attempts: int = field(default=6, metadata=_AT_LEAST_1)  # per request, the first try included
    backoff_base: float = 0.5  # seconds; doubles each retry
    backoff_max: float = 30.0
    max_retry_seconds: float = 300.0  # cap on the time one pull spends waiting to retry
    verify: bool | str = True  # TLS verification (or a CA bundle path); never off in production
    # bounds on one pull (docs/sources.md, "Bounded pulls"): a stuck or hostile server fails its
    # source alone, by name, and never holds the night
    pull_deadline_seconds: float = 1800.0  # the whole pull, retries and waits included
    max_pages: int = field(default=20_000, metadata=_AT_LEAST_1)  # requests for pages, re-asked pages included
    max_page_bytes: int = field(default=64 * 2**20, metadata=_AT_LEAST_1)  # one response, also decompressed
    clock_skew_seconds: float = 300.0  # a date or 更新时间 later than the pull's clock plus this is refused


# `[sources.<name>]`, one schema per kind. `fields`: per-county field names on top of the field
# dictionary (warehouse/fields.yaml)
# (canonical column = the export's field name or a list of synonyms; a nested table per table).
@dataclass(frozen=True)
class JsonPagesSource:
    kind: str
    path: str  # a folder of JSON export pages
    fields: dict = field(default_factory=dict)


@dataclass(frozen=True)
class SpreadsheetDropSource:
    kind: str
    path: str | None = None  # the drop folder; default drop/<name>
    fields: dict = field(default_factory=dict)
    supersede: Literal["file_name", "township_year"] = "file_name"  # what a corrected delivery replaces


@dataclass(frozen=True)
class HttpSource(HttpOptions):
    """`url` may come from FAZHI_<NAME>_URL instead; `token_env` defaults to FAZHI_<NAME>_TOKEN."""

    kind: str = "http"
    path: str | None = None  # where its pulls land; default landing/<name>
    fields: dict = field(default_factory=dict)


SOURCE_SCHEMAS = {"http": HttpSource, "json_pages": JsonPagesSource, "spreadsheet_drop": SpreadsheetDropSource}
SOURCE_KINDS = tuple(SOURCE_SCHEMAS)


def source_kinds() -> dict[str, tuple[str, ...]]:
    """The sources a fazhi.toml may configure, each with the kinds it may have: the source
    registry's (warehouse/sources/registry.py, which imports nothing heavy)."""
    from warehouse.sources import registry

    return {name: registry.kinds_of(name) for name in registry.source_names()}


@dataclass(frozen=True)
class SourceConfig:
    name: str
    kind: str  # one of SOURCE_KINDS
    path: Path
    http: HttpOptions | None = None
    fields: dict = field(default_factory=dict)  # per-county field-name overrides on top of warehouse/fields.yaml
    supersede: str = "file_name"  # spreadsheet drops: what a corrected delivery replaces (warehouse/supersede.py)
    default_path: bool = field(default=False, compare=False)  # no `path` in fazhi.toml: the home's drop/<name>

    def check_folder(self) -> None:
        """A folder source's folder must exist: a mistyped `path` found nothing to land, every
        night, and the source said "nothing new" instead of failing. The default drop/<name> is
        made when missing (nothing delivered yet is then what it says)."""
        if self.kind == "http":
            return
        if self.default_path and not self.path.exists():
            self.path.mkdir(parents=True)
        if not self.path.is_dir():
            what = "不是文件夹 / is not a folder" if self.path.exists() else "不存在 / does not exist"
            raise ConfigError(f"数据源 {self.name} 的文件夹 {self.path} {what} (fazhi.toml [sources.{self.name}] path)")


SECTIONS = {
    "pipeline": PipelineOptions,
    "landing": LandingOptions,
    "reports": ReportOptions,
    "pseudonymisation": PseudonymisationOptions,
    "orchestration": OrchestrationOptions,
    "performance": PerformanceOptions,
    "alerts": AlertOptions,
}


@dataclass(frozen=True)
class Settings:
    """A home's configuration, every table of its fazhi.toml read into its schema."""

    home: Path
    sources: dict[str, SourceConfig]
    pipeline: PipelineOptions = PipelineOptions()
    landing: LandingOptions = LandingOptions()
    reports: ReportOptions = ReportOptions()
    pseudonymisation: PseudonymisationOptions = PseudonymisationOptions()
    orchestration: OrchestrationOptions = OrchestrationOptions()
    performance: PerformanceOptions = field(default_factory=PerformanceOptions)
    alerts: AlertOptions = AlertOptions()

    @property
    def config_file(self) -> Path:
        return self.home / CONFIG_NAME

    @property
    def townships_csv(self) -> Path:
        return self.home / self.pipeline.townships

    @property
    def first_year(self) -> int:
        return self.pipeline.first_year

    @property
    def required_training_hours(self) -> float:
        return self.pipeline.required_training_hours

    @property
    def lock_wait_seconds(self) -> float:
        return self.pipeline.lock_wait_seconds

    @property
    def landing_retention_days(self) -> int | None:
        return self.landing.retention_days or None

    @property
    def report_template(self) -> Path | None:
        return self.home / self.reports.template if self.reports.template else None

    @property
    def hmac_key_file(self) -> Path | None:
        return self.home / self.pseudonymisation.key_file if self.pseudonymisation.key_file else None

    @property
    def hmac_secret_block(self) -> str | None:
        return self.pseudonymisation.secret_block

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

        found = self.hmac_key_sources()
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

    def hmac_key_sources(self, read_secret_block: bool = True) -> dict[str, bytes]:
        """Where the pseudonymisation key is set, and the key each holds."""
        found = {}
        if os.environ.get(KEY_ENV):
            found[KEY_ENV] = os.environ[KEY_ENV].encode()
        if self.hmac_secret_block and read_secret_block:
            from warehouse.secrets import read_secret

            found[f"Prefect Secret {self.hmac_secret_block}"] = read_secret(self.hmac_secret_block).encode()
        if self.hmac_key_file and self.hmac_key_file.exists():
            found[str(self.hmac_key_file)] = self.hmac_key_file.read_bytes().strip()
        return found


def resolve_home(home: str | os.PathLike | None) -> Path:
    if home:
        return Path(home).resolve()
    if os.environ.get("FAZHI_HOME"):
        return Path(os.environ["FAZHI_HOME"]).resolve()
    return Path("var").resolve()


def load_settings(home: Path) -> Settings:
    """The home's fazhi.toml read into its schema. Anything the schema does not know (a section,
    a key, a source, a kind, a value of the wrong type) is a ConfigError naming the file, the
    key and the nearest valid name: a typo never silently becomes a default."""
    path = home / CONFIG_NAME
    if not path.exists():
        raise ConfigError(
            f"找不到配置文件 {path} / no configuration at {path}: run `fazhi demo` or write one (see README)"
        )
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"配置文件格式错误 / {path} is not valid TOML: {exc}") from None
    try:
        return _settings(home, data)
    except SchemaError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def _settings(home: Path, data: dict) -> Settings:
    for name, value in data.items():
        if name in SECTIONS or name == "sources":
            continue
        home_of = [s for s, schema in SECTIONS.items() if name in {f.name for f in fields(schema)}]
        if home_of and not isinstance(value, dict):
            raise SchemaError(f"{name} 应写在 [{home_of[0]}] 下 / {name} belongs under [{home_of[0]}]")
        what = ("配置节", "section") if isinstance(value, dict) else ("设置", "setting")
        raise unknown(*what, name, [*SECTIONS, "sources"])
    sections = {name: read_table(schema, data.get(name, {}), name) for name, schema in SECTIONS.items()}
    _check_orchestration(data.get("orchestration", {}), sections["orchestration"])
    _check_first_year(sections["pipeline"])
    tables = data.get("sources", {})
    if not isinstance(tables, dict):
        raise SchemaError("[sources] 应为一个表 / must be a table: one [sources.<name>] per source")
    kinds = source_kinds() if tables else {}
    sources = {name: _source(home, name, table, kinds) for name, table in tables.items()}
    return Settings(home=home, sources=sources, **sections)


def _check_orchestration(table: dict, options: OrchestrationOptions) -> None:
    if options.dask_address and "dask_workers" in table:
        raise SchemaError(
            "[orchestration] dask_address 与 dask_workers 不能同时设置 / "
            "set dask_address (an existing cluster) or dask_workers (a local one), not both"
        )
    if options.dask_address and "://" not in options.dask_address:
        raise SchemaError(
            f"[orchestration] dask_address 应形如 tcp://主机:端口 / must look like tcp://host:port: "
            f"{options.dask_address!r}"
        )


def _source(home: Path, name: str, table: object, kinds: dict[str, tuple[str, ...]]) -> SourceConfig:
    where = f"sources.{name}"
    if name not in kinds:
        raise unknown("数据源", "source", name, kinds, "[sources] ")
    if not isinstance(table, dict):
        raise SchemaError(f"[{where}] 应为一个表 / must be a table")
    kind = table.get("kind")
    if kind is None:
        raise SchemaError(f"[{where}] 缺少 kind / needs `kind` (one of {', '.join(kinds[name])})")
    if kind not in kinds[name]:
        raise unknown("数据源类型", "source kind", str(kind), kinds[name], f"[{where}] kind = {as_written(kind)}: ")
    schema = SOURCE_SCHEMAS[kind]
    for key in table:
        elsewhere = [k for k, other in SOURCE_SCHEMAS.items() if key in {f.name for f in fields(other)}]
        if elsewhere and key not in {f.name for f in fields(schema)}:
            raise SchemaError(
                f"[{where}] {key} 只适用于 kind = {' 或 '.join(elsewhere)} / {key} applies to kind "
                f"{' or '.join(elsewhere)} only, not {kind}"
            )
    if kind == "http":
        table = {"token_env": f"FAZHI_{name.upper()}_TOKEN", **table}
        if os.environ.get(f"FAZHI_{name.upper()}_URL"):
            table["url"] = os.environ[f"FAZHI_{name.upper()}_URL"]
    given = read_table(schema, table, where)
    _check_field_names(where, given.fields)
    if kind == "http":
        _check_url(where, given.url, f"FAZHI_{name.upper()}_URL")
        http = HttpOptions(**{f.name: getattr(given, f.name) for f in fields(HttpOptions)})
        if isinstance(given.verify, str):  # a CA bundle: beside fazhi.toml when relative, as every path here
            bundle = home / given.verify
            if not bundle.is_file():
                raise SchemaError(
                    f"[{where}] verify = {as_written(given.verify)}: 找不到该CA证书文件 {bundle} / no CA bundle file "
                    f"at {bundle} (true: the system's CAs; or the path of a PEM file)"
                )
            http = dataclasses.replace(http, verify=str(bundle))
        return SourceConfig(name, kind, home / (given.path or f"landing/{name}"), http, given.fields)
    if kind == "spreadsheet_drop":
        path = home / (given.path or f"drop/{name}")
        return SourceConfig(name, kind, path, None, given.fields, given.supersede, default_path=not given.path)
    return SourceConfig(name, kind, home / given.path, None, given.fields)


def is_http_url(url: str) -> bool:
    """An http(s) URL with a host (a source's url, the alert webhook)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _check_url(where: str, url: str, env: str) -> None:
    """An HTTP source's url must be http(s) with a host: `127.0.0.1:8765/` (no scheme) was pulled
    six times over 15 s and reported as an unreachable source."""
    if not is_http_url(url):
        shown = f"{env} = {url!r}" if os.environ.get(env) else f"url = {as_written(url)}"
        raise SchemaError(
            f"[{where}] {shown}: 应为 http(s) 网址(如 https://主机/路径) / must be an http(s) URL (e.g. https://host/path)"
        )


# The years a warehouse may start at: the State Council's outline of law-based administration
# dates from 2004, the holiday calendar from 2004 too (warehouse/calendar.py); `first_year = 0`
# made a run compute two thousand years (it ran for minutes before it was stopped).
EARLIEST_FIRST_YEAR = 2000


def _check_first_year(options: PipelineOptions) -> None:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    this_year = datetime.now(ZoneInfo("Asia/Shanghai")).year
    if not EARLIEST_FIRST_YEAR <= options.first_year <= this_year:
        raise SchemaError(
            f"[pipeline] first_year = {options.first_year}: 应在 {EARLIEST_FIRST_YEAR} 与今年({this_year})之间 / "
            f"must be between {EARLIEST_FIRST_YEAR} and this year ({this_year})"
        )


def _check_field_names(where: str, overrides: dict, nested: bool = False) -> None:
    """`[sources.<name>.fields]`: column = "field name" or ["synonym", …], or a table of those per
    source table. Whether each column exists is checked against the field mapping when the
    source lands (warehouse/sources/mapping.py check_overrides) and by `fazhi check-config`."""
    for column, names in overrides.items():
        if isinstance(names, dict) and not nested:
            _check_field_names(f"{where}.fields.{column}", names, nested=True)
        elif not (isinstance(names, str) or (isinstance(names, list) and all(isinstance(n, str) for n in names))):
            table = where if nested else f"{where}.fields"
            raise SchemaError(
                f"[{table}] {column}: 应为字段名或字段名列表 / must be a field name or a list of field names"
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
