"""The pipeline's steps as plain functions (no Prefect): land, parse + validate, load, compute,
audit, publish. flows/nightly.py wires them into a Prefect flow; tests call them directly.

Each step opens the working database itself, so steps can run as separate Prefect tasks.
Nothing here logs a record's values: only sources, files, counts and rules.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import threading
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from warehouse import audit
from warehouse.acceptance import reference_extract_rows
from warehouse.compute import compute_indicators, load_townships
from warehouse.config import ConfigError, Settings, SourceConfig
from warehouse.db import open_work_db
from warehouse.key_fingerprint import KeyChanged, check_key
from warehouse.load import BatchInfo, LoadOutcome, TableLoad, load_batch, record_stopped_batch
from warehouse.publish import needs_publish as needs_publish_
from warehouse.publish import publish
from warehouse.rebuild import Edition
from warehouse.rebuild import rebuild_year as rebuild_year_
from warehouse.sources import registry
from warehouse.sources.json_pages import batch_latest_allowed_at
from warehouse.sources.landing import LandedBatch, land, scan_drop, write_manifest
from warehouse.sources.mapping import SourceError
from warehouse.sources.parse import parse_batch
from warehouse.sources.parsed import remove_parsed
from warehouse.sources.township_files import FILES_TABLE, ISSUES_TABLE, name_parts
from warehouse.watermark import read_watermark

log = logging.getLogger("fazhi")
CRASH_ENV = "FAZHI_CRASH_AT"
# Great Expectations is not thread-safe (its suite-parameter parser is shared): when the flow
# parses sources in parallel threads, their validations take turns; parsing stays parallel.
_GX_LOCK = threading.Lock()


CRASH_POINTS = (
    "land:done",  # a source's batch landed
    "parse:validated",  # a source's batch parsed and validated
    "load:table_merged",  # inside a batch's load transaction
    "load:committed",  # a batch loaded
    "compute:done",  # indicators computed
    "rebuild:built",  # a rebuild's scratch database built, before its edition
    "rebuild:edition_committed",  # a rebuild's edition recorded, before it is published
    "publish:built",  # the analyst database built, before the swap
    "publish:swapped",  # the analyst database swapped in, before its Parquet copy is switched in
    "parquet:table_written",  # the Parquet export under way (written while the database was built)
    "parquet:switched",  # the Parquet link switched, before the publication is recorded
)


def crash_point(name: str) -> None:
    """Fault injection for the crash tests: `FAZHI_CRASH_AT=<name>` (one of CRASH_POINTS) kills
    this process with SIGKILL at that point, as a power cut would."""
    if os.environ.get(CRASH_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


@dataclass
class PreparedBatch:
    """A landed batch, parsed and validated, ready to load (or stopped, with the reason)."""

    batch: LandedBatch
    tables: list[TableLoad]
    received_rows: int
    stop_zh: str | None = None
    stop_en: str | None = None
    stop_rule: str | None = None
    # spreadsheet drops: each file's outcome and the issues found in the files
    # (warehouse/sources/township_files.py); a refused file is recorded, the others load
    files: pd.DataFrame | None = None
    file_issues: pd.DataFrame | None = None

    @property
    def refused_files(self) -> int:
        """Files of a spreadsheet batch refused whole (listed by `fazhi quarantine`)."""
        return 0 if self.files is None else int((self.files["status"] == "refused").sum())


@dataclass
class RunReport:
    run_id: str
    started_at: str
    sources: dict[str, dict] = field(default_factory=dict)
    steps: dict[str, str] = field(default_factory=dict)
    published: str | None = None
    outcome: str = "running"
    flow: str = "nightly"  # or year-end-rebuild
    result: dict = field(default_factory=dict)  # the flow's own outcome (a rebuild's edition)
    failure: dict | None = None  # a run failed in a step of its own: the step, error, cause class

    @property
    def failed_sources(self) -> list[str]:
        return [s for s, d in self.sources.items() if d.get("status") in ("failed", "stopped")]


def new_run_id() -> str:
    """run-20261130T221054-123456: no run of 11 digits, so the alerts' digit filter keeps it."""
    return datetime.now(UTC).strftime("run-%Y%m%dT%H%M%S-%f")


def prepare_warehouse(settings: Settings) -> None:
    """Create or migrate the working database, check the pseudonymisation key against the one
    the warehouse was built with (warehouse/key_fingerprint.py) and refresh the township reference."""
    key = settings.hmac_key()
    settings.home.mkdir(parents=True, exist_ok=True)
    remove_parsed(settings.home / "parsed")  # a killed run's parsed tables: its batches land again
    con = open_work_db(settings.work_db)
    try:
        check_key(con, key, datetime.now(UTC).replace(tzinfo=None))
        load_townships(con, settings.townships_csv)
    except KeyChanged as exc:
        raise ConfigError(str(exc)) from None
    finally:
        con.close()


def land_source(settings: Settings, source: SourceConfig) -> LandedBatch | None:
    """Land what the source delivered that the warehouse has not loaded yet: an HTTP source is
    pulled from its watermark (warehouse/sources/http.py); a folder source lands its new files."""
    registry.check_overrides(source.name, source.fields)
    con = open_work_db(settings.work_db)
    try:
        if source.kind == "http":
            watermark = read_watermark(con, source.name)
        else:  # what the folder delivered before: each content with the name it landed under ...
            landed = "select sha256, file_name from audit.landed_file where source = ?"
            loaded = dict(con.execute(landed, [source.name]).fetchall())
            # ... and the contents only ever refused, with the names they were refused under
            refused_as = {
                digest: set(names)
                for digest, names in con.execute(
                    "select sha256, list(distinct file_name) from audit.spreadsheet_file where source = ? "
                    "and sha256 is not null group by sha256 having bool_and(status = 'refused')",
                    [source.name],
                ).fetchall()
            }
    finally:
        con.close()
    if source.kind == "http":
        from warehouse.sources.http import land_http

        batch = land_http(source, settings.landing_dir, watermark)
    else:
        source.check_folder()
        files, skipped = scan_drop(source.path, source.kind)
        if skipped:  # noted by name, never read; the batch goes on without them
            log.warning("source %s: skipped %s", source.name, "; ".join(s.describe() for s in skipped))
        delivery = None if source.kind == "json_pages" else township_year_of
        batch = land(source.name, files, settings.landing_dir, loaded, refused_as, delivery)
        extra = {"fields": source.fields, "skipped_entries": [asdict(s) for s in skipped]}
        if batch and any(extra.values()):
            batch.extra |= {k: v for k, v in extra.items() if v}
            write_manifest(batch)
    if batch:
        log.info("landed %s: batch %s, %d file(s)", source.name, batch.batch_id, len(batch.files))
        crash_point("land:done")
    else:
        log.info("landed %s: nothing new", source.name)
    return batch


def township_year_of(file_name: str) -> tuple[str, int] | None:
    """The township and year a spreadsheet's name gives (None when it gives none): two files of a
    drop with the same content and the same township-year are one delivery sent twice."""
    parts = name_parts(file_name)
    return parts if parts[0] is not None else None


def township_codes(settings: Settings) -> list[str]:
    from warehouse.townships import read_townships

    return read_townships(settings.townships_csv)["code"].tolist()


def extract_kind(settings: Settings, batch: LandedBatch) -> str:
    """'full' only for a batch that is a source's whole export: an export source (not a
    spreadsheet drop, where each file is its own township-year) landed without skipping files
    already loaded. Anything else is incremental and never compared with the last full extract."""
    source = settings.sources.get(batch.source)
    whole = batch.skipped_files == 0 and (source is None or source.kind != "spreadsheet_drop")
    return "full" if batch.extract_kind == "full" and whole else "incremental"


def previous_full_extract_rows(settings: Settings, source: str) -> dict[str, int]:
    """Rows per table the source's full extract is compared with (rule *-B02): its last loaded
    full extract's, or an operator-accepted stopped extract's (warehouse/acceptance.py)."""
    con = open_work_db(settings.work_db)
    try:
        return reference_extract_rows(con, source)
    finally:
        con.close()


def suite_parameters(settings: Settings, batch: LandedBatch) -> dict:
    """The parameters a batch's tables are validated with (expectations/*.json `$PARAMETER`s)."""
    first_year, last_year = accepted_years(settings)
    return {
        "township_codes": township_codes(settings),
        "first_year": first_year,
        "last_year": last_year,
        "latest_allowed_at": batch_latest_allowed_at(batch),
    }


def parsed_dir(settings: Settings, batch: LandedBatch) -> Path:
    """Where the batch's parsed tables wait for the load (removed once it is loaded or stopped)."""
    return settings.home / "parsed" / batch.batch_id


def accepted_years(settings: Settings) -> tuple[int, int]:
    """The years a record may belong to: the first year of indicators to this year (China's)."""
    from zoneinfo import ZoneInfo

    return settings.first_year, datetime.now(ZoneInfo("Asia/Shanghai")).year


def _release_arrow_memory() -> None:
    """Return to the system what Arrow's allocator (mimalloc) keeps of the buffers a source's
    validation read and let go (its Parquet chunks as pandas frames). Kept, they stayed in the
    process for the rest of the run and grew with the batch: at 2x province 548 -> 378 MB after
    enforcement, 638 -> 433 MB after mediation (docs/performance.md)."""
    import pyarrow as pa

    pa.default_memory_pool().release_unused()


def parse_and_validate(settings: Settings, batch: LandedBatch) -> PreparedBatch:
    """Parse the batch to canonical PII-free rows on disk (Parquet, warehouse/sources/parsed.py) and
    validate every table with its GX suite, chunk by chunk. A spreadsheet file that cannot be read
    whole is refused alone (its record goes with the batch); quarantine messages quote the value
    a failing row holds (expectations/echo.py)."""
    from expectations.echo import with_values
    from expectations.validate import start_importing_gx, validate_table

    start_importing_gx()  # GX is heavy: imported by processes that validate, while the batch is parsed
    mappings = registry.source(batch.source).mappings()
    directory = parsed_dir(settings, batch)
    years = accepted_years(settings)
    try:
        parsed = parse_batch(
            replace(batch, extra=batch.extra | {"years": list(years)}),
            settings.hmac_key(),
            directory,
            settings.performance.files_per_group,
            settings.performance.workers,
        )
    except SourceError as exc:  # a whole export that cannot be read (schema drift): named, with its file or page
        where = f"{exc.file}: " if exc.file else ""  # the file refused, by name
        log.warning("source %s stopped at parse: %srule %s", batch.source, where, exc.rule)
        return PreparedBatch(batch, [], 0, where + exc.message_zh, where + exc.message_en, exc.rule)
    files, issues = (_frame(parsed.pop(name, None)) for name in (FILES_TABLE, ISSUES_TABLE))
    if issues is not None and (issues["level"] == "refused").any():
        refused = issues[issues["level"] == "refused"]
        rules = ", ".join(sorted(set(refused["rule"])))
        log.warning("source %s: %d file(s) refused (%s)", batch.source, len(refused), rules)
    if files is not None and not (files["status"] == "parsed").any():  # every file refused: nothing to validate
        empty = pd.DataFrame(columns=["_row", "rule", "message_zh", "message_en"])
        tables = [TableLoad(n, t.path, 0, empty, pd.DataFrame(), mappings[n].key) for n, t in parsed.items()]
        return PreparedBatch(batch, tables, 0, files=files, file_issues=issues)
    params = suite_parameters(settings, batch)
    full = extract_kind(settings, batch) == "full"
    previous = previous_full_extract_rows(settings, batch.source) if full else {}
    chunk_rows, workers = settings.performance.chunk_rows, settings.performance.workers
    tables, stops = [], []
    try:
        for name, table in parsed.items():
            with _GX_LOCK:
                suite = registry.table(name)[1].suite_path
                result = validate_table(name, table, params, previous.get(name), chunk_rows, workers, full, suite)
            quoted = {"township_code"} | {
                c.name for c in mappings[name].kept_columns if not c.type.startswith("pseudonym")
            }  # the source's own fields (never an identifier's pseudonym) and the township
            failures = with_values(name, result.failures, table.path, quoted)
            tables.append(TableLoad(name, table.path, table.rows, failures, result.results, mappings[name].key))
            # a spreadsheet batch holds records (a file without any is refused at parse): one of its
            # tables being empty (no training session in a year) is no reason to stop it (*-B01)
            stops += [
                dict(e, table=name) for e in result.batch_errors if files is None or not e["rule"].endswith("-B01")
            ]
    except BaseException:
        remove_parsed(directory)
        raise
    _release_arrow_memory()
    received = sum(t.row_count for t in tables)
    if stops:
        first = stops[0]
        return PreparedBatch(
            batch,
            tables,
            received,
            "；".join(f"{s['table']}: {s['message_zh']}" for s in stops),
            "; ".join(f"{s['table']}: {s['message_en']}" for s in stops),
            first["rule"],
            files,
            issues,
        )
    crash_point("parse:validated")
    return PreparedBatch(batch, tables, received, files=files, file_issues=issues)


def _frame(table) -> pd.DataFrame | None:
    return None if table is None else table.frame().reset_index(drop=True)


def load_prepared(settings: Settings, prepared: PreparedBatch, run_id: str) -> LoadOutcome:
    b = prepared.batch
    source = settings.sources.get(b.source)
    info = BatchInfo(
        b.batch_id,
        b.source,
        run_id,
        b.landed_at,
        [{"name": f.name, "bytes": f.bytes, "sha256": f.sha256} for f in b.files],
        extract_kind(settings, b),
        advances_watermark=source is not None and source.kind == "http",
        supersede=source.supersede if source and source.kind == "spreadsheet_drop" else None,
        spreadsheet_files=prepared.files,
        file_issues=prepared.file_issues,
    )
    now = datetime.now(UTC).replace(tzinfo=None)
    con = open_work_db(settings.work_db)
    try:
        if prepared.stop_zh:
            outcome = record_stopped_batch(
                con,
                info,
                prepared.tables,
                now,
                prepared.stop_zh,
                prepared.stop_en or "",
                prepared.received_rows,
            )
        else:
            outcome = load_batch(con, info, prepared.tables, now, on_step=crash_point)
            crash_point("load:committed")
    finally:
        con.close()
    remove_parsed(parsed_dir(settings, b))
    log.info(
        "loaded %s batch %s: %s, received %d, loaded %d, quarantined %d",
        b.source,
        b.batch_id,
        outcome.status,
        outcome.received_rows,
        outcome.loaded_rows,
        outcome.quarantined_rows,
    )
    return outcome


def compute(settings: Settings) -> int:
    con = open_work_db(settings.work_db)
    try:
        values = compute_indicators(
            con, first_year=settings.first_year, required_training_hours=settings.required_training_hours
        )
    finally:
        con.close()
    crash_point("compute:done")
    return values


def rebuild_year(settings: Settings, year: int) -> Edition:
    """Recompute `year` from the raw layer and record it as the year's next edition."""
    keys = {t.name: t.key for _, t in registry.tables()}
    con = open_work_db(settings.work_db)
    try:
        edition = rebuild_year_(
            con,
            year,
            keys,
            settings.home / "rebuild.duckdb",
            first_year=settings.first_year,
            required_training_hours=settings.required_training_hours,
            on_step=crash_point,
        )
    finally:
        con.close()
    if edition.resumed:
        log.info(
            "%d edition %d was recorded by a rebuild that did not publish it: published now", year, edition.edition
        )
    else:
        log.info("rebuilt %d: edition %d, %d value(s) changed", year, edition.edition, edition.changed_values)
    return edition


def needs_publish(settings: Settings) -> bool:
    con = open_work_db(settings.work_db)
    try:
        return needs_publish_(con, settings.published_db)
    finally:
        con.close()


def audit_and_publish(settings: Settings) -> Path:
    """Blocking audits, then the analyst database and its Parquet copy published as one
    (warehouse/publish.py; raises AuditFailed otherwise)."""
    con = open_work_db(settings.work_db)
    try:
        audit.check(con)
        published = publish(con, settings.published_db, on_step=crash_point)
    finally:
        con.close()
    write_dashboards(published)
    return published


def write_dashboards(published: Path) -> list[Path]:
    """The county dashboards (published/reports/dashboard-<year>.html), rebuilt after every
    publish. The database is already published: a dashboard that cannot be written is logged
    and never fails the run."""
    from warehouse.reports.dashboard import write_dashboards as write

    try:
        paths = write(published)
    except Exception as exc:
        log.error("dashboard not written: %s: %s", type(exc).__name__, exc)
        return []
    log.info("dashboards: %s", ", ".join(p.name for p in paths) or "none (not one county)")
    return paths


def dashboard_links(settings: Settings, years: list[int]) -> str:
    """Markdown links to the years' dashboards, for the run's Prefect artifact."""
    from warehouse.reports.dashboard import dashboard_path

    links = []
    for year in years:
        path = dashboard_path(settings.published_db, year)
        if path.exists():
            links.append(f"[{year} 年指标看板 / dashboard {year}]({path.as_uri()})")
    return " · ".join(links)


def purge_landing(settings: Settings, now: datetime | None = None) -> list[str]:
    """Retention of the landing zone, which holds personal data; run at the end of a nightly run,
    under the writer lock, when every pull of the run has finished.

    - A `.pull-*` folder is an unfinished pull of a run that was killed: it was never a batch,
      nothing reads it; always removed.
    - With `[landing] retention_days`: a landed batch folder that old is removed: a loaded batch
      counted from its load (rebuilds replay the warehouse's raw layer, so nothing is lost), a
      batch never loaded (stopped by validation, or landed by a run killed before its load)
      from its folder's last change. A source still delivering such files lands them again;
      audit.batch keeps why a batch stopped."""
    if not settings.landing_dir.exists():
        return []
    now = (now or datetime.now(UTC)).replace(tzinfo=None)
    purged = []
    for directory in sorted(settings.landing_dir.glob("*/.pull-*")):
        shutil.rmtree(directory)
        purged.append(directory.name)
    days = settings.landing_retention_days
    if days:
        con = open_work_db(settings.work_db)
        try:
            loaded = dict(con.execute("select batch_id, loaded_at from audit.batch where status = 'loaded'").fetchall())
        finally:
            con.close()
        for directory in sorted(settings.landing_dir.glob("*/*")):
            if not directory.is_dir():
                continue
            since = loaded.get(directory.name) or datetime.fromtimestamp(directory.stat().st_mtime, UTC).replace(
                tzinfo=None
            )
            if (now - since).days >= days:
                shutil.rmtree(directory)
                purged.append(directory.name)
    if purged:
        log.info("retention: purged %d landing folder(s)", len(purged))
    return purged


def write_run_report(settings: Settings, report: RunReport) -> Path:
    """The run manifest: in runs/<run_id>/manifest.json and in audit.run. Besides the report:
    code version (package version and commit), package versions, every source's watermark."""
    directory = settings.runs_dir / report.run_id
    directory.mkdir(parents=True, exist_ok=True)
    doc = asdict(report) | {
        "failed_sources": report.failed_sources,
        "code_version": _code_version(),
        "code_commit": _code_commit(),
        "packages": package_versions(),
        "watermarks": read_watermarks(settings),
    }
    path = directory / "manifest.json"
    path.write_text(json.dumps(doc, ensure_ascii=False, indent=2, default=str), encoding="utf-8")
    con = open_work_db(settings.work_db)
    try:
        con.execute(
            "insert or replace into audit.run values (?, ?, ?, ?, ?)",
            [
                report.run_id,
                report.started_at,
                datetime.now(UTC).replace(tzinfo=None),
                report.outcome,
                json.dumps(doc, ensure_ascii=False, default=str),
            ],
        )
    finally:
        con.close()
    return path


def _code_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("fazhi-warehouse")
    except PackageNotFoundError:
        return os.environ.get("FAZHI_CODE_VERSION", "unknown")


PACKAGES = ("prefect", "duckdb", "great-expectations", "pandas", "numpy", "requests", "python-calamine", "pyarrow")


def package_versions() -> dict[str, str]:
    """Python and the versions of the packages the results depend on."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def read_watermarks(settings: Settings) -> dict[str, dict]:
    """Every source's incremental-pull watermark (audit.watermark); empty where there is none yet.
    Read defensively: a warehouse without the table (or a broken one) gives {}."""
    import duckdb

    try:
        con = open_work_db(settings.work_db)
    except (duckdb.Error, OSError):
        return {}
    try:
        rows = con.execute("select source, modified_at, batch_id, updated_at from audit.watermark order by source")
        return {r[0]: {"modified_at": str(r[1]), "batch_id": r[2], "updated_at": str(r[3])} for r in rows.fetchall()}
    except duckdb.Error:
        return {}
    finally:
        con.close()


def _code_commit() -> str | None:
    """The checkout's commit, read from .git without running git (FAZHI_CODE_COMMIT overrides)."""
    if os.environ.get("FAZHI_CODE_COMMIT"):
        return os.environ["FAZHI_CODE_COMMIT"]
    git = Path(__file__).resolve().parent.parent / ".git"
    try:
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref: "):
            return head
        ref = head[5:]
        if (git / ref).exists():
            return (git / ref).read_text().strip()
        for line in (git / "packed-refs").read_text().splitlines():
            if line.endswith(" " + ref):
                return line.split()[0]
    except OSError:
        return None
    return None
