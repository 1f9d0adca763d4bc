"""Write the sample directory (docs/sources.md): the four sources' exports for every township and
year, plus targets.json (the indicator values the data was built to give) and faults.json (the
deliberately faulty rows, which no target counts).

Deterministic: every random draw comes from a generator seeded by (seed, township code, year,
purpose), timestamps are derived from the data, and workbooks carry a fixed creation date, so
the same seed and inputs give byte-identical files. A township's data depends only on the seed,
its own row and the calibration profile, not on the other townships in the list.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from statistics import median

import numpy as np
import pandas as pd

from flows.sample import enforcement, mediation
from flows.sample.calibration import load_profile
from flows.sample.catalogue import INDICATORS, RETURN_COUNTS
from flows.sample.context import Township, abbreviations, make_township
from flows.sample.plan import Plan, draw_defaults, plan_year
from flows.sample.training import People, build_ledger, build_rosters
from flows.sample.workbooks import write_return, write_training
from flows.sample.workdays import DayTable

PAGE_SIZE = 500
TOWNSHIP_COLUMNS = ["code", "name", "kind", "county_code", "county_name"]
SUBDIRS = {"enforcement": "page-*.json", "mediation": "page-*.json", "training": "*.xlsx", "returns": "*_年度报表.*"}
# purposes of the random streams
_TOWNSHIP, _ROSTER, _ENF, _MED, _FILES, _RETURN = 1, 2, 3, 4, 5, 6


def default_townships_csv() -> Path:
    return Path(str(resources.files("warehouse") / "townships_yongan.csv"))


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


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, *key]))


@dataclass
class _Fault:
    source: str
    id: str | None
    field: str
    value: str | None
    rule: str
    description: str


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


def _faults(cols: dict, source: str, t: Township, year: int, unknown: str) -> list[_Fault]:
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
        _Fault(source, ids[0], "行政区划代码", unknown, "unknown-township",
               f"行政区划代码{unknown}不是已知乡镇 / division code {unknown} is not a known township"),
        _Fault(source, ids[1], date_field, bad_date, "invalid-date",
               f"{date_field}「{bad_date}」不是有效日期 / {date_field} {bad_date!r} is not a valid date"),
        _Fault(source, ids[2], req_field, None, "required-missing", what),
    ]  # fmt: skip


def _cap(cols: dict, cutoff: int, rng: np.random.Generator) -> None:
    """No record is modified after the export was taken."""
    ts = cols["更新时间"]
    over = ts >= cutoff
    cols["更新时间"] = np.where(over, cutoff - rng.integers(60, 5 * 86400, len(ts)), ts)


class _Writer:
    """Writes spreadsheets in worker processes for large runs. Each file has its own random
    stream, so the bytes do not depend on which process writes it."""

    def __init__(self, parallel: bool):
        workers = min(8, os.cpu_count() or 1)
        self.pool = ProcessPoolExecutor(workers) if parallel and workers > 1 else None
        self.pending: deque[Future] = deque()

    def submit(self, fn, *args) -> None:
        if self.pool is None:
            fn(*args)
            return
        self.pending.append(self.pool.submit(fn, *args))
        while len(self.pending) > 256:
            self.pending.popleft().result()

    def close(self) -> None:
        if self.pool is not None:
            try:
                while self.pending:
                    self.pending.popleft().result()
            finally:
                self.pool.shutdown(cancel_futures=True)


class _Collector:
    def __init__(self, fields: list[str]):
        self.fields = fields
        self.chunks: dict[str, list[np.ndarray]] = {f: [] for f in fields}

    def add(self, cols: dict) -> None:
        for f in self.fields:
            self.chunks[f].append(cols[f])

    def frame(self, start: np.datetime64) -> pd.DataFrame:
        data = {f: np.concatenate(v) if v else np.empty(0, dtype=object) for f, v in self.chunks.items()}
        ts = start.astype("datetime64[s]") + data["更新时间"].astype(np.int64)
        data["更新时间"] = np.char.replace(np.datetime_as_string(ts, unit="s"), "T", " ").astype(object)
        return pd.DataFrame(data, columns=self.fields)


def _write_pages(df: pd.DataFrame, source: str, id_field: str, folder: Path) -> dict[str, int]:
    """Pages of PAGE_SIZE records ordered by 更新时间 then id; returns each record id's page."""
    df = df.sort_values(["更新时间", id_field], kind="stable").reset_index(drop=True)
    lines = df.to_json(orient="records", lines=True, force_ascii=False).split("\n") if len(df) else []
    lines = [x for x in lines if x]
    total = len(lines)
    pages = max(1, -(-total // PAGE_SIZE))
    for p in range(pages):
        chunk = lines[p * PAGE_SIZE : (p + 1) * PAGE_SIZE]
        head = {"source": source, "page": p + 1, "page_size": PAGE_SIZE, "total_records": total, "total_pages": pages}
        text = json.dumps(head, ensure_ascii=False)[:-1] + ', "records": [\n' + ",\n".join(chunk) + "\n]}\n"
        (folder / f"page-{p + 1:06d}.json").write_text(text, encoding="utf-8")
    return {
        "records": total,
        "pages": pages,
        "_page_of": dict(zip(df[id_field], df.index // PAGE_SIZE + 1, strict=True)),
    }


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


def generate_sample(
    out_dir: Path,
    *,
    seed: int = 20231226,
    townships_csv: Path | None = None,
    calibration: Path | None = None,
    years: tuple[int, ...] = (2022, 2023, 2024),
) -> dict:
    """Writes the sample directory (layout in docs/sources.md) and returns a small summary dict
    (counts of records/files per source)."""
    out_dir = Path(out_dir)
    years = tuple(sorted({int(y) for y in years}))
    if not years:
        raise ValueError("至少生成一年 / at least one year")
    townships = read_townships(townships_csv)
    profile = load_profile(calibration, townships, years=years)
    days = DayTable(years[0], years[-1])
    generated_at = dt.datetime(years[-1] + 1, 1, 31, 18, 0, 0)
    cutoff = days.day(generated_at.date().isoformat()) * 86400 + 18 * 3600

    # 1. plan every township-year first: an impossible profile fails before anything is written
    rows = townships.to_dict("records")
    abbrs = abbreviations([(r["code"], r["name"], r["county_name"]) for r in rows])
    contexts: list[Township] = []
    plans: dict[tuple[str, int], Plan] = {}
    for i, row in enumerate(rows):
        rng = _rng(seed, int(row["code"]), _TOWNSHIP)
        t = make_township(row, i, abbrs[row["code"]], rng)
        contexts.append(t)
        for year in years:
            d = draw_defaults(t.kind, t.size, year, years[-1], rng)
            targets = profile.get((t.code, year), {})
            plans[(t.code, year)] = plan_year(t.code, year, targets, d)
    fault_at = _fault_target(profile, [t.code for t in contexts], years)
    unknown = _unknown_code(townships["county_code"].iloc[0], set(townships["code"]))

    out_dir.mkdir(parents=True, exist_ok=True)
    for sub, pattern in SUBDIRS.items():
        folder = out_dir / sub
        if folder.exists():
            for f in folder.glob(pattern):
                f.unlink()
        folder.mkdir(exist_ok=True)

    # 2. build and write
    enf_rows, med_rows = _Collector(enforcement.FIELDS), _Collector(mediation.FIELDS)
    targets: list[dict] = []
    faults: list[_Fault] = []
    voided = {"enforcement": 0, "mediation": 0}
    n_csv = 0
    writer = _Writer(parallel=len(plans) > 20)
    for t in contexts:
        rng_r = _rng(seed, int(t.code), _ROSTER)
        people = People(t, rng_r)
        rosters = build_rosters(t, {y: plans[(t.code, y)].trn for y in years}, days, rng_r, people)
        for year in years:
            plan = plans[(t.code, year)]
            rng_e, rng_m = _rng(seed, int(t.code), year, _ENF), _rng(seed, int(t.code), year, _MED)
            enf = enforcement.generate(t, year, plan.enf, rosters[year].officers(), days, rng_e)
            med = mediation.generate(t, year, plan.med, days, rng_m)
            targets.extend(targets_for(plan, enf, med))
            voided["enforcement"] += _voided(enf.columns, rng_e, "行为编号", f"ZF{t.code}-{year}-", 5, 0.012)
            voided["mediation"] += _voided(med.columns, rng_m, "案件编号", f"TJ{t.code}-{year}-", 4, 0.008)
            if (t.code, year) == fault_at and len(enf.columns["_seq"]) and len(med.columns["_seq"]):
                faults += _faults(enf.columns, "enforcement", t, year, unknown)
                faults += _faults(med.columns, "mediation", t, year, unknown)
            _cap(enf.columns, cutoff, rng_e)
            _cap(med.columns, cutoff, rng_m)
            enf_rows.add(enf.columns)
            med_rows.add(med.columns)

            ledger = build_ledger(t, year, plan.trn, rosters[year], days, rng_r, people)
            writer.submit(
                write_training, out_dir / "training" / f"{t.code}_{year}_学法培训台账.xlsx",
                t, year, ledger, rosters[year], days, _rng(seed, int(t.code), year, _FILES), generated_at,
            )  # fmt: skip
            as_csv = t.index % 5 == 4
            n_csv += as_csv
            writer.submit(
                write_return, out_dir / "returns" / f"{t.code}_{year}_年度报表.{'csv' if as_csv else 'xlsx'}",
                t, year, plan.ret, days, _rng(seed, int(t.code), year, _RETURN), generated_at,
            )  # fmt: skip
    writer.close()

    start = days.start
    enf_info = _write_pages(enf_rows.frame(start), "enforcement", "行为编号", out_dir / "enforcement")
    med_info = _write_pages(med_rows.frame(start), "mediation", "案件编号", out_dir / "mediation")
    fault_rows = []
    for f in faults:
        page = (enf_info if f.source == "enforcement" else med_info)["_page_of"][f.id]
        fault_rows.append(
            {"source": f.source, "file": f"{f.source}/page-{page:06d}.json", "page": int(page), "id": f.id,
             "field": f.field, "value": f.value, "rule": f.rule, "description": f.description}
        )  # fmt: skip

    townships.to_csv(out_dir / "townships.csv", index=False, lineterminator="\n")
    (out_dir / "targets.json").write_text(
        "[\n" + ",\n".join(json.dumps(r, ensure_ascii=False) for r in targets) + "\n]\n", encoding="utf-8"
    )
    (out_dir / "faults.json").write_text(json.dumps(fault_rows, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    n_files = len(contexts) * len(years)
    return {
        "out_dir": str(out_dir),
        "seed": seed,
        "years": list(years),
        "townships": len(contexts),
        "generated_at": generated_at.isoformat(sep=" "),
        "enforcement": {"records": enf_info["records"], "pages": enf_info["pages"],
                        "voided": voided["enforcement"], "faulty": sum(f.source == "enforcement" for f in faults)},
        "mediation": {"records": med_info["records"], "pages": med_info["pages"],
                      "voided": voided["mediation"], "faulty": sum(f.source == "mediation" for f in faults)},
        "training": {"files": n_files},
        "returns": {"files": n_files, "xlsx": n_files - n_csv, "csv": n_csv},
        "targets": len(targets),
        "faults": fault_rows,
    }  # fmt: skip
