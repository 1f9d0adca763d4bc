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
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from flows.config import Settings, SourceConfig
from flows.sources import parse_batch
from flows.sources.landing import LandedBatch, delivered_files, land, write_manifest
from flows.sources.mapping import SourceError, check_overrides, column_notes, load_mappings
from flows.sources.parsed import FILES_PER_GROUP, remove_parsed
from warehouse import audit
from warehouse.acceptance import reference_extract_rows
from warehouse.compute import compute_indicators, load_townships
from warehouse.db import open_work_db
from warehouse.load import BatchInfo, LoadOutcome, TableLoad, load_batch, record_stopped_batch
from warehouse.parquet_export import export_parquet
from warehouse.publish import PUBLISHED_TABLES, publish
from warehouse.publish import needs_publish as needs_publish_
from warehouse.rebuild import Edition
from warehouse.rebuild import rebuild_year as rebuild_year_
from warehouse.watermark import read_watermark

log = logging.getLogger("fazhi")
CRASH_ENV = "FAZHI_CRASH_AT"
# Great Expectations is not thread-safe (its suite-parameter parser is shared): when the flow
# parses sources in parallel threads, their validations take turns; parsing stays parallel.
_GX_LOCK = threading.Lock()


def crash_point(name: str) -> None:
    """Fault injection for the crash tests: `FAZHI_CRASH_AT=<name>` kills this process with
    SIGKILL at that point (land:done, load:table_merged, publish:built), as a power cut would."""
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

    @property
    def failed_sources(self) -> list[str]:
        return [s for s, d in self.sources.items() if d.get("status") in ("failed", "stopped")]


def new_run_id() -> str:
    return datetime.now(UTC).strftime("run-%Y%m%dT%H%M%S%f")


def prepare_warehouse(settings: Settings) -> None:
    """Create or migrate the working database and refresh the township reference."""
    settings.home.mkdir(parents=True, exist_ok=True)
    remove_parsed(settings.home / "parsed")  # a killed run's parsed tables: its batches land again
    con = open_work_db(settings.work_db)
    try:
        load_townships(con, settings.townships_csv)
    finally:
        con.close()


def land_source(settings: Settings, source: SourceConfig) -> LandedBatch | None:
    """Land what the source delivered that the warehouse has not loaded yet: an HTTP source is
    pulled from its watermark (flows/sources/http.py); a folder source lands its new files."""
    check_overrides(source.name, source.fields)
    con = open_work_db(settings.work_db)
    try:
        loaded = {
            r[0] for r in con.execute("select sha256 from audit.landed_file where source = ?", [source.name]).fetchall()
        }
        watermark = read_watermark(con, source.name) if source.kind == "http" else None
    finally:
        con.close()
    if source.kind == "http":
        from flows.sources.http import land_http

        batch = land_http(source, settings.landing_dir, watermark)
    else:
        batch = land(source.name, delivered_files(source.path, source.kind), settings.landing_dir, loaded)
        if batch and source.fields:
            batch.extra["fields"] = source.fields
            write_manifest(batch)
    if batch:
        log.info("landed %s: batch %s, %d file(s)", source.name, batch.batch_id, len(batch.files))
        crash_point("land:done")
    else:
        log.info("landed %s: nothing new", source.name)
    return batch


def township_codes(settings: Settings) -> list[str]:
    return pd.read_csv(settings.townships_csv, dtype=str)["code"].tolist()


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


def parsed_dir(settings: Settings, batch: LandedBatch) -> Path:
    """Where the batch's parsed tables wait for the load (removed once it is loaded or stopped)."""
    return settings.home / "parsed" / batch.batch_id


def performance_option(settings: Settings, name: str) -> int:
    """fazhi.toml `[performance]`: chunk_rows (rows per validation chunk), workers (processes
    parsing groups of spreadsheet files and validating the chunks of a large table),
    files_per_group (spreadsheet files parsed together)."""
    from expectations.validate import CHUNK_ROWS

    defaults = {
        "chunk_rows": CHUNK_ROWS,
        "workers": min(4, os.cpu_count() or 1),
        "files_per_group": FILES_PER_GROUP,
    }
    return int(settings.extra.get("performance", {}).get(name, defaults[name]))


def parse_and_validate(settings: Settings, batch: LandedBatch) -> PreparedBatch:
    """Parse the batch to canonical PII-free rows on disk (Parquet, flows/sources/parsed.py) and
    validate every table with its GX suite, chunk by chunk."""
    from expectations.validate import validate_table  # GX is heavy: imported when validating

    mappings = load_mappings()[batch.source]
    directory = parsed_dir(settings, batch)
    try:
        parsed = parse_batch(
            batch,
            settings.hmac_key(),
            directory,
            performance_option(settings, "files_per_group"),
            performance_option(settings, "workers"),
        )
    except SourceError as exc:
        log.warning("source %s stopped at parse: rule %s", batch.source, exc.rule)
        return PreparedBatch(batch, [], 0, exc.message_zh, exc.message_en, exc.rule)
    params = {"township_codes": township_codes(settings)}
    previous = previous_full_extract_rows(settings, batch.source) if extract_kind(settings, batch) == "full" else {}
    chunk_rows, workers = performance_option(settings, "chunk_rows"), performance_option(settings, "workers")
    tables, stops = [], []
    try:
        for name, table in parsed.items():
            with _GX_LOCK:
                result = validate_table(name, table, params, previous.get(name), chunk_rows, workers)
            tables.append(TableLoad(name, table.path, table.rows, result.failures, result.results, mappings[name].key))
            stops += [dict(e, table=name) for e in result.batch_errors]
    except BaseException:
        remove_parsed(directory)
        raise
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
        )
    return PreparedBatch(batch, tables, received)


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
        watermark=b.extra.get("watermark_next"),
        supersede=source.supersede if source and source.kind == "spreadsheet_drop" else None,
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
        return compute_indicators(
            con, first_year=settings.first_year, required_training_hours=settings.required_training_hours
        )
    finally:
        con.close()


def rebuild_year(settings: Settings, year: int) -> Edition:
    """Recompute `year` from the raw layer and record it as the year's next edition."""
    keys = {table: m.key for tables in load_mappings().values() for table, m in tables.items()}
    con = open_work_db(settings.work_db)
    try:
        edition = rebuild_year_(
            con,
            year,
            keys,
            settings.home / "rebuild.duckdb",
            first_year=settings.first_year,
            required_training_hours=settings.required_training_hours,
        )
    finally:
        con.close()
    log.info("rebuilt %d: edition %d, %d value(s) changed", year, edition.edition, edition.changed_values)
    return edition


def needs_publish(settings: Settings) -> bool:
    con = open_work_db(settings.work_db)
    try:
        return needs_publish_(con, settings.published_db)
    finally:
        con.close()


def audit_and_publish(settings: Settings) -> Path:
    """Blocking audits, then the analyst database swapped in (raises AuditFailed otherwise)."""
    con = open_work_db(settings.work_db)
    try:
        audit.check(con)
        published = publish(con, settings.published_db, column_notes(), on_step=crash_point)
    finally:
        con.close()
    export_parquet(published, PUBLISHED_TABLES)
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
