"""Build and write one chunk of townships: their plans, records, spreadsheets and targets.

A chunk is a run of consecutive townships of the sorted list. Its spreadsheets are written
straight into the sample directory; its enforcement and mediation records are sorted into one
run file per source (pages.py merges the runs of every chunk into the export pages); its
targets.json rows come back as JSON text. Every random stream is seeded by (seed, township
code, year, purpose), so a township's files and rows do not depend on the chunk it is in or on
the process that builds it.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median

import numpy as np

from warehouse.demo.sample import enforcement, mediation
from warehouse.demo.sample.calibration import Profile
from warehouse.demo.sample.catalogue import INDICATORS, RETURN_COUNTS
from warehouse.demo.sample.context import Township, make_township
from warehouse.demo.sample.pages import write_run
from warehouse.demo.sample.plan import Plan, draw_defaults, plan_year
from warehouse.demo.sample.training import People, build_ledger, build_rosters
from warehouse.demo.sample.workbooks import write_return, write_training
from warehouse.demo.sample.workdays import DayTable

SOURCES = {"enforcement": ("行为编号", enforcement.FIELDS), "mediation": ("案件编号", mediation.FIELDS)}
# purposes of the random streams
_TOWNSHIP, _ROSTER, _ENF, _MED, _FILES, _RETURN = 1, 2, 3, 4, 5, 6


@dataclass
class Job:
    """What every chunk of one sample shares."""

    out_dir: Path
    run_dir: Path  # the chunks' sorted record runs
    seed: int
    years: tuple[int, ...]
    profile: Profile
    days: DayTable
    generated_at: dt.datetime
    cutoff: int  # seconds from day 0: no record is updated after the export was taken
    fault_at: tuple[str, int]  # the township-year holding the faulty rows
    unknown: str  # a division code that is no known township


@dataclass
class Fault:
    """A deliberately faulty record (faults.json) and the rule it breaks."""

    source: str
    id: str | None
    field: str
    value: str | None
    rule: str
    description: str


@dataclass
class ChunkResult:
    """What a chunk hands back; its spreadsheets and record runs are already written."""

    targets: list[str] = field(default_factory=list)  # targets.json rows, JSON text
    faults: list[Fault] = field(default_factory=list)
    voided: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SOURCES, 0))
    records: dict[str, int] = field(default_factory=dict)
    runs: dict[str, Path] = field(default_factory=dict)
    n_csv: int = 0  # annual returns written as CSV


def rng_for(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, *key]))


def plan_township(
    row: dict, index: int, abbr: str, seed: int, years: tuple[int, ...], profile: Profile
) -> tuple[Township, dict[int, Plan]]:
    """A township's context and its plan for each year (CalibrationError when the profile cannot be met)."""
    rng = rng_for(seed, int(row["code"]), _TOWNSHIP)
    t = make_township(row, index, abbr, rng)
    plans = {}
    for year in years:
        d = draw_defaults(t.kind, t.size, year, years[-1], rng)
        plans[year] = plan_year(t.code, year, profile.get((t.code, year), {}), d)
    return t, plans


def build_chunk(job: Job, number: int, start: int, rows: list[dict], abbrs: list[str]) -> ChunkResult:
    """Townships start, start + 1, ... of the list (`rows`, with their abbreviations): every
    spreadsheet written, the records in run files numbered `number`, the rest returned."""
    out = ChunkResult()
    collected = {s: _Collector(fields) for s, (_, fields) in SOURCES.items()}
    for i, (row, abbr) in enumerate(zip(rows, abbrs, strict=True)):
        t, plans = plan_township(row, start + i, abbr, job.seed, job.years, job.profile)
        _build_township(job, t, plans, out, collected)
    for source, (id_field, _) in SOURCES.items():
        path = job.run_dir / f"{source}-{number:06d}.txt"
        out.records[source] = write_run(collected[source].columns(job.days.start), id_field, path)
        out.runs[source] = path
    return out


def _build_township(job: Job, t: Township, plans: dict[int, Plan], out: ChunkResult, collected: dict) -> None:
    seed, days, code = job.seed, job.days, int(t.code)
    rng_r = rng_for(seed, code, _ROSTER)
    people = People(t, rng_r)
    rosters = build_rosters(t, {y: plans[y].trn for y in job.years}, days, rng_r, people)
    for year in job.years:
        plan = plans[year]
        rng_e, rng_m = rng_for(seed, code, year, _ENF), rng_for(seed, code, year, _MED)
        enf = enforcement.generate(t, year, plan.enf, rosters[year].officers(), days, rng_e)
        med = mediation.generate(t, year, plan.med, days, rng_m)
        out.targets.extend(json.dumps(r, ensure_ascii=False) for r in targets_for(plan, enf, med))
        out.voided["enforcement"] += _voided(enf.columns, rng_e, "行为编号", f"ZF{t.code}-{year}-", 5, 0.012)
        out.voided["mediation"] += _voided(med.columns, rng_m, "案件编号", f"TJ{t.code}-{year}-", 4, 0.008)
        if (t.code, year) == job.fault_at and len(enf.columns["_seq"]) and len(med.columns["_seq"]):
            out.faults += _faults(enf.columns, "enforcement", t, year, job.unknown)
            out.faults += _faults(med.columns, "mediation", t, year, job.unknown)
        _cap(enf.columns, job.cutoff, rng_e)
        _cap(med.columns, job.cutoff, rng_m)
        collected["enforcement"].add(enf.columns)
        collected["mediation"].add(med.columns)

        ledger = build_ledger(t, year, plan.trn, rosters[year], days, rng_r, people)
        write_training(
            job.out_dir / "training" / f"{t.code}_{year}_学法培训台账.xlsx",
            t, year, ledger, rosters[year], days, rng_for(seed, code, year, _FILES), job.generated_at,
        )  # fmt: skip
        as_csv = t.index % 5 == 4
        out.n_csv += as_csv
        write_return(
            job.out_dir / "returns" / f"{t.code}_{year}_年度报表.{'csv' if as_csv else 'xlsx'}",
            t, year, plan.ret, days, rng_for(seed, code, year, _RETURN), job.generated_at,
        )  # fmt: skip


def _rate(num: int, den: int) -> dict:
    return {"value": num / den if den else None, "numerator": num, "denominator": den}


def _count(v: int, qualifier: str | None = None) -> dict:
    return {"value": v, "numerator": v, "denominator": None, "qualifier": qualifier}


def targets_for(plan: Plan, enf: enforcement.EnfResult, med: mediation.MedResult) -> list[dict]:
    """The indicator values of one township-year, computed from what the generator built."""
    e, m, t, r = plan.enf, plan.med, plan.trn, plan.ret
    cents = enf.fine_cents
    dur = enf.durations
    out = {
        "ENF01": _count(e.n_insp),
        "ENF02": _count(e.n_pen),
        "ENF03": _count(e.n_insp_online),
        "ENF04": _count(e.n_pen_online),
        "ENF05": _rate(e.n_insp_online + e.n_pen_online, e.n_insp + e.n_pen),
        "ENF06": _count(e.n_waiver_first),
        "ENF07": _rate(e.n_reviewed, e.n_pen),
        "ENF08": _rate(e.n_timely, e.n_pen),
        "ENF09": _rate(e.n_certified, e.n_insp + e.n_pen),
        "ENF10": {"value": cents / 100, "numerator": cents / 100, "denominator": None},
        "ENF11": {
            "value": float(median(dur.tolist())) if len(dur) else None,
            "numerator": None,
            "denominator": len(dur),
        },
        "MED01": _count(m.n_cases),
        "MED02": _rate(m.n_success, m.n_cases - m.n_open),
        "MED03": _rate(m.n_fulfilled, m.n_due),
        "MED04": _count(m.n_major),
        "MED05": {
            "value": med.total_days / med.n_concluded if med.n_concluded else None,
            "numerator": med.total_days,
            "denominator": med.n_concluded,
        },
        "TRN01": _count(t.sessions["专题培训"]),
        "TRN02": _count(t.topic_attendance),
        "TRN03": _count(t.sessions["领导干部法治课"]),
        "TRN04": _count(t.sessions["部门学法"]),
        "TRN05": _count(t.sessions["执法培训"]),
        "TRN06": _count(t.sessions["法律知识测试"]),
        "TRN07": _rate(t.n_attending, t.roster_size),
        "TRN08": _rate(t.n_meeting, t.n_officers),
        "TRN09": _rate(t.test_passes, t.test_rows),
        "LIT02": _rate(r.values["LIT02A"], r.values["LIT02B"]),
    }
    for code in RETURN_COUNTS:
        out[code] = _count(r.values[code], r.qualifiers.get(code))
    rows = []
    for code in INDICATORS:
        row = {"township_code": plan.township, "year": plan.year, "indicator_code": code}
        row.update({"value": None, "numerator": None, "denominator": None, "qualifier": None})
        row.update(out[code])
        rows.append(row)
    return rows


def _extra_rows(cols: dict, idx: np.ndarray) -> dict:
    return {k: v[idx].copy() for k, v in cols.items()}


def _append(cols: dict, extra: dict) -> None:
    for k in cols:
        cols[k] = np.concatenate([cols[k], extra[k]])


def _voided(cols: dict, rng: np.random.Generator, id_field: str, id_prefix: str, width: int, share: float) -> int:
    """Voided duplicates (作废=是) of a few records: entered twice, the copy voided."""
    n = len(cols[id_field])
    k = int(rng.binomial(n, share)) if n else 0
    if not k:
        return 0
    extra = _extra_rows(cols, rng.choice(n, k, replace=False))
    seq = int(cols["_seq"].max()) + 1 + np.arange(k)
    extra["_seq"] = seq
    extra[id_field] = id_prefix + np.char.zfill(seq.astype(str), width).astype(object)
    extra["作废"][:] = "是"
    extra["更新时间"] = extra["更新时间"] + rng.integers(3600, 7 * 86400, k)
    _append(cols, extra)
    return k


def _faults(cols: dict, source: str, t: Township, year: int, unknown: str) -> list[Fault]:
    """Three faulty rows, copies of one good record, each breaking one rule."""
    if source == "enforcement":
        id_field, width, prefix = "行为编号", 5, "ZF"
        insp = np.flatnonzero(cols["行为类型"] == "检查")
        template = int(insp[0]) if len(insp) else 0
        date_field, bad_date = "检查时间", f"{year}-02-30"
        req_field, what = "行为类型", "行为类型为空(必填) / act type missing (required)"
    else:
        id_field, width, prefix = "案件编号", 4, "TJ"
        template = 0
        date_field, bad_date = "受理日期", f"{year}-13-01"
        req_field, what = "纠纷类型", "纠纷类型为空(必填) / dispute type missing (required)"
    extra = _extra_rows(cols, np.array([template] * 3))
    seq = int(cols["_seq"].max()) + 1 + np.arange(3)
    extra["_seq"] = seq
    ids = [f"{prefix}{unknown}-{year}-{1:0{width}d}"] + [f"{prefix}{t.code}-{year}-{s:0{width}d}" for s in seq[1:]]
    extra[id_field] = np.array(ids, dtype=object)
    extra["作废"][:] = "否"
    extra["更新时间"] = extra["更新时间"] + np.array([600, 1200, 1800])
    extra["行政区划代码"][0] = unknown
    extra[date_field][1] = bad_date
    extra[req_field][2] = None
    _append(cols, extra)
    return [
        Fault(source, ids[0], "行政区划代码", unknown, "unknown-township",
              f"行政区划代码{unknown}不是已知乡镇 / division code {unknown} is not a known township"),
        Fault(source, ids[1], date_field, bad_date, "invalid-date",
              f"{date_field}「{bad_date}」不是有效日期 / {date_field} {bad_date!r} is not a valid date"),
        Fault(source, ids[2], req_field, None, "required-missing", what),
    ]  # fmt: skip


def _cap(cols: dict, cutoff: int, rng: np.random.Generator) -> None:
    """No record is modified after the export was taken."""
    ts = cols["更新时间"]
    over = ts >= cutoff
    cols["更新时间"] = np.where(over, cutoff - rng.integers(60, 5 * 86400, len(ts)), ts)


class _Collector:
    def __init__(self, fields: list[str]):
        self.fields = fields
        self.chunks: dict[str, list[np.ndarray]] = {f: [] for f in fields}

    def add(self, cols: dict) -> None:
        for f in self.fields:
            self.chunks[f].append(cols[f])

    def columns(self, start: np.datetime64) -> dict[str, np.ndarray]:
        """Every record added, 更新时间 as text."""
        data = {f: np.concatenate(v) if v else np.empty(0, dtype=object) for f, v in self.chunks.items()}
        ts = start.astype("datetime64[s]") + data["更新时间"].astype(np.int64)
        data["更新时间"] = np.char.replace(np.datetime_as_string(ts, unit="s"), "T", " ").astype(object)
        return data
