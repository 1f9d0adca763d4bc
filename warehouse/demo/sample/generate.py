"""Write the sample directory (docs/sources.md): the four sources' exports for every township and
year, plus targets.json (the indicator values the data was built to give) and faults.json (the
deliberately faulty rows, which no target counts).

Deterministic: every random draw comes from a generator seeded by (seed, township code, year,
purpose), timestamps are derived from the data, and workbooks carry a fixed creation date, so
the same seed and inputs give byte-identical files. A township's data depends only on the seed,
its own row and the calibration profile, not on the other townships in the list.

Scale: townships are built in chunks by worker processes (build.py); each chunk writes its
spreadsheets and one sorted run of records per source, and the runs are merged into the export
pages (pages.py). Memory is bounded by a chunk, not by the list, and neither the number of
processes nor the chunk size changes a byte of the output.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import tempfile
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import pandas as pd

from warehouse.demo.sample.build import SOURCES, ChunkResult, Fault, Job, build_chunk, plan_township
from warehouse.demo.sample.calibration import load_profile
from warehouse.demo.sample.context import abbreviations
from warehouse.demo.sample.pages import write_pages
from warehouse.demo.sample.workdays import DayTable

TOWNSHIP_COLUMNS = ["code", "name", "kind", "county_code", "county_name"]
SUBDIRS = {"enforcement": "page-*.json", "mediation": "page-*.json", "training": "*.xlsx", "returns": "*_年度报表.*"}
CHUNK_TOWNSHIPS = 8  # townships built together (the county sample in two): one record run per source
MAX_CHUNKS = 256  # larger lists get larger chunks, so that the merge opens at most this many runs


def default_townships_csv() -> Path:
    return Path(str(resources.files("warehouse.demo") / "townships_yongan.csv"))


def read_townships(path: Path | None) -> pd.DataFrame:
    path = Path(path) if path is not None else default_townships_csv()
    df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    missing = [c for c in TOWNSHIP_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"乡镇清单{path.name}缺少列: {missing} / the townships file lacks columns {missing}")
    df = df[TOWNSHIP_COLUMNS].apply(lambda s: s.str.strip())
    bad = df.loc[~df["code"].str.fullmatch(r"\d{9}"), "code"]
    if len(bad):
        raise ValueError(f"乡镇代码应为9位数字: {bad.iloc[0]!r} / township codes are 9 digits")
    dup = df.loc[df["code"].duplicated(), "code"]
    if len(dup):
        raise ValueError(f"乡镇代码重复: {dup.iloc[0]} / duplicate township code")
    return df.sort_values("code", kind="stable").reset_index(drop=True)


def _fault_target(profile: dict, codes: list[str], years: tuple[int, ...]) -> tuple[str, int]:
    if "350481101" in codes and 2023 in years:
        return "350481101", 2023
    if profile:
        return sorted(profile)[0]
    return codes[0], years[len(years) // 2]


def _unknown_code(county: str, codes: set[str]) -> str:
    for n in range(999, 0, -1):
        code = f"{county}{n:03d}"
        if code not in codes:
            return code
    return "999999999"


def _chunks(n: int, size: int | None) -> list[tuple[int, int]]:
    """[start, end) of each chunk of townships."""
    size = size or max(CHUNK_TOWNSHIPS, -(-n // MAX_CHUNKS))
    return [(start, min(start + size, n)) for start in range(0, n, size)]


def _in_order(pool: ProcessPoolExecutor | None, fn: Callable, tasks: Iterable[tuple], ahead: int) -> Iterator:
    """fn(*task) for every task, in the pool's processes when there is one, results in task order;
    at most `ahead` tasks are submitted and not yet collected."""
    if pool is None:
        for task in tasks:
            yield fn(*task)
        return
    pending: deque[Future] = deque()
    for task in tasks:
        pending.append(pool.submit(fn, *task))
        if len(pending) >= ahead:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


@dataclass
class _Totals:
    """The chunks' results added up (their targets.json rows are written as they come)."""

    targets: int = 0
    faults: list[Fault] = field(default_factory=list)
    voided: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SOURCES, 0))
    records: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SOURCES, 0))
    runs: dict[str, list[Path]] = field(default_factory=lambda: {s: [] for s in SOURCES})
    n_csv: int = 0

    def add(self, res: ChunkResult) -> None:
        self.targets += len(res.targets)
        self.faults += res.faults
        self.n_csv += res.n_csv
        for source in SOURCES:
            self.voided[source] += res.voided[source]
            self.records[source] += res.records[source]
            self.runs[source].append(res.runs[source])


def _build(job: Job, rows: list[dict], abbrs: dict[str, str], chunks: list, pool, ahead: int, targets: Path) -> _Totals:
    """Builds every chunk, writing the targets.json rows to `targets` in township order."""
    tasks = ((job, n, a, rows[a:b], [abbrs[r["code"]] for r in rows[a:b]]) for n, (a, b) in enumerate(chunks))
    total = _Totals()
    with targets.open("w", encoding="utf-8") as f:
        f.write("[\n")
        for res in _in_order(pool, build_chunk, tasks, ahead):
            if res.targets:
                f.write(",\n" * (total.targets > 0) + ",\n".join(res.targets))
            total.add(res)
        f.write("\n]\n")
    return total


SAMPLE_YEARS = (2022, 2023, 2024)  # the years the sample's records fall in


def generate_sample(
    out_dir: Path,
    *,
    seed: int = 20231226,
    townships_csv: Path | None = None,
    calibration: Path | None = None,
    years: tuple[int, ...] = SAMPLE_YEARS,
    workers: int | None = None,
    chunk_townships: int | None = None,
) -> dict:
    """Writes the sample directory (layout in docs/sources.md) and returns a small summary dict
    (counts of records/files per source). targets.json is written last but faults.json: a
    directory with targets.json holds a whole sample.

    Townships are built in chunks (`chunk_townships` each; by default CHUNK_TOWNSHIPS, more for
    lists longer than MAX_CHUNKS chunks) by `workers` processes (default: one per CPU, at most 8);
    neither changes a byte of the output."""
    out_dir = Path(out_dir)
    years = tuple(sorted({int(y) for y in years}))
    if not years:
        raise ValueError("至少生成一年 / at least one year")
    townships = read_townships(townships_csv)
    profile = load_profile(calibration, townships, years=years)
    rows = townships.to_dict("records")
    abbrs = abbreviations([(r["code"], r["name"], r["county_name"]) for r in rows])

    # 1. an impossible profile fails before anything is written: plan every calibrated township
    # (the others have no targets to miss)
    for i, row in enumerate(rows):
        if any((row["code"], y) in profile for y in years):
            plan_township(row, i, abbrs[row["code"]], seed, years, profile)

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "targets.json").unlink(missing_ok=True)
    for sub, pattern in SUBDIRS.items():
        folder = out_dir / sub
        if folder.exists():
            for f in folder.glob(pattern):
                f.unlink()
        folder.mkdir(exist_ok=True)

    # 2. build and write chunk by chunk, in worker processes; then merge the chunks' records into pages
    days = DayTable(years[0], years[-1])
    generated_at = dt.datetime(years[-1] + 1, 1, 31, 18, 0, 0)
    job = Job(
        out_dir=out_dir,
        run_dir=Path(tempfile.mkdtemp(prefix=".runs-", dir=out_dir)),
        seed=seed,
        years=years,
        profile=profile,
        days=days,
        generated_at=generated_at,
        cutoff=days.day(generated_at.date().isoformat()) * 86400 + 18 * 3600,
        fault_at=_fault_target(profile, [r["code"] for r in rows], years),
        unknown=_unknown_code(townships["county_code"].iloc[0], set(townships["code"])),
    )
    chunks = _chunks(len(rows), chunk_townships)
    workers = min(workers or min(8, os.cpu_count() or 1), len(chunks))
    pool = ProcessPoolExecutor(workers) if workers > 1 else None
    try:
        total = _build(job, rows, abbrs, chunks, pool, 4 * workers, job.run_dir / "targets.json")
        find = {s: {f.id for f in total.faults if f.source == s} for s in SOURCES}
        merges = [(total.runs[s], total.records[s], s, out_dir / s, find[s]) for s in SOURCES]
        info = dict(zip(SOURCES, _in_order(pool, write_pages, merges, ahead=len(merges)), strict=True))
        if pool is not None:
            pool.shutdown()
        pool = None

        faults = total.faults
        fault_rows = []
        for f in faults:
            page = info[f.source]["_page_of"][f.id]
            fault_rows.append(
                {"source": f.source, "file": f"{f.source}/page-{page:06d}.json", "page": int(page), "id": f.id,
                 "field": f.field, "value": f.value, "rule": f.rule, "description": f.description}
            )  # fmt: skip
        townships.to_csv(out_dir / "townships.csv", index=False, lineterminator="\n")
        os.replace(job.run_dir / "targets.json", out_dir / "targets.json")
        (out_dir / "faults.json").write_text(
            json.dumps(fault_rows, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
        )
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
        shutil.rmtree(job.run_dir, ignore_errors=True)

    n_files = len(rows) * len(years)
    sources = {
        s: {"records": info[s]["records"], "pages": info[s]["pages"], "voided": total.voided[s],
            "faulty": sum(f.source == s for f in faults)}
        for s in SOURCES
    }  # fmt: skip
    return {
        "out_dir": str(out_dir),
        "seed": seed,
        "years": list(years),
        "townships": len(rows),
        "generated_at": generated_at.isoformat(sep=" "),
        **sources,
        "training": {"files": n_files},
        "returns": {"files": n_files, "xlsx": n_files - total.n_csv, "csv": total.n_csv},
        "targets": total.targets,
        "faults": fault_rows,
    }
