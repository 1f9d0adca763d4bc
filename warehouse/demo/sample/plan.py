"""The integer plan of one township-year: how many records of each sort the generator builds.

Every indicator is a count or a ratio of counts of records, so the plan fixes those counts
first (calibrated targets where the profile names them, plausible draws elsewhere) and the
record generators then build exactly that many records of each sort. Rates given exactly are
met as integer ratios: a free denominator is chosen so that the ratio exists; a fixed one that
cannot give it is refused with CalibrationError.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
import pandas as pd

from warehouse.demo.sample.calibration import DEFAULT_PROFILE, CalibrationError, Profile, Target
from warehouse.demo.sample.catalogue import RETURN_COUNTS

SESSION_TYPES = ("专题培训", "领导干部法治课", "部门学法", "执法培训", "法律知识测试", "其他")
_TRN_SESSION_CODES = {
    "TRN01": "专题培训",
    "TRN03": "领导干部法治课",
    "TRN04": "部门学法",
    "TRN05": "执法培训",
    "TRN06": "法律知识测试",
}

# Typical yearly volumes of a township of average size, by kind.
KIND_PARAMS = {
    "街道": {"insp": 95, "pen": 24, "cases": 420, "roster": 62, "lit": 0.8, "ogi": 18, "range": "街道"},
    "镇": {"insp": 68, "pen": 15, "cases": 240, "roster": 52, "lit": 0.4, "ogi": 12, "range": "镇"},
    "乡": {"insp": 36, "pen": 7, "cases": 95, "roster": 34, "lit": 0.2, "ogi": 7, "range": "乡"},
}
_CLIPS = {
    "街道": {"insp": (45, 220), "pen": (8, 60), "cases": (200, 900)},
    "镇": {"insp": (30, 150), "pen": (5, 40), "cases": (100, 500)},
    "乡": {"insp": (12, 70), "pen": (2, 18), "cases": (40, 180)},
}


def kind_of(kind: str) -> str:
    kind = str(kind)
    if kind.endswith("街道"):
        return "街道"
    if kind.endswith("乡"):
        return "乡"
    return "镇"


@dataclass
class EnfPlan:
    n_insp: int
    n_insp_online: int
    n_pen: int
    n_pen_online: int
    n_waiver_first: int
    n_waiver_other: int
    n_coercive: int
    n_reviewed: int
    n_timely: int
    n_certified: int
    fine_total_cents: int | None = None
    median_days: Fraction | None = None


@dataclass
class MedPlan:
    n_cases: int
    n_open: int
    n_success: int
    n_due: int
    n_fulfilled: int
    n_major: int
    total_days: int | None = None


@dataclass
class TrnPlan:
    sessions: dict[str, int]
    topic_attendance: int
    roster_size: int
    n_officers: int
    n_attending: int
    n_meeting: int
    test_rows: int
    test_passes: int


@dataclass
class RetPlan:
    values: dict[str, int]
    qualifiers: dict[str, str | None] = field(default_factory=dict)


@dataclass
class Plan:
    township: str
    year: int
    enf: EnfPlan
    med: MedPlan
    trn: TrnPlan
    ret: RetPlan


# --------------------------------------------------------------------------- helpers


def _count_candidates(t: Target | None, default: int, lo: int = 0, hi: int | None = None, limit: int = 60):
    """Values to try for a count: the given one, or values near `default` within [lo, hi]."""
    if t is not None and t.mode == "exact":
        yield int(t.low)
        return
    if t is not None:
        lo = max(lo, int(t.low))
    start = max(lo, default)
    if hi is not None:
        start = min(start, hi)
        if start < lo:
            return
    yield start
    for step in range(1, limit):
        for v in (start + step, start - step):
            if v >= lo and (hi is None or v <= hi):
                yield v


def _bounds(t: Target | None, lo: int, hi: int) -> tuple[int, int] | None:
    if t is not None:
        tlo, thi = t.count_bounds()
        lo, hi = max(lo, tlo), hi if thi is None else min(hi, thi)
    return (lo, hi) if lo <= hi else None


def _clamp(v: int, lo: int, hi: int) -> int:
    return max(lo, min(hi, v))


def _pick(t: Target | None, den: int, rate: float) -> int:
    """A numerator for a rate over `den`: near `rate`, inside the target when there is one."""
    want = round(rate * den)
    if t is None:
        return _clamp(want, 0, den)
    lo, hi = t.numerators(den)
    return _clamp(want, lo, hi)


def _conflict(t: Target, others: tuple[Target | None, ...], zh: str, en: str) -> CalibrationError:
    """The error for target t; when t is the default profile's and a given file's entry is what
    makes it impossible, that entry is named instead (it is what the user can change)."""
    if t.file == DEFAULT_PROFILE.name:
        for o in others:
            if o is not None and o.file != DEFAULT_PROFILE.name:
                return o.error(f"与{t.code}({t.describe()})矛盾: {zh}", f"contradicts {t.code} = {t.describe()}: {en}")
    return t.error(zh, en)


def _rate_error(t: Target, den: int, den_name: str, *others: Target | None) -> CalibrationError:
    if den == 0:
        return _conflict(
            t, others, f"分母{den_name}为0，该比率无值", f"the denominator {den_name} is 0, so the rate has no value"
        )
    return _conflict(
        t,
        others,
        f"无法由分母{den_name}={den}的整数比得到{t.describe()}",
        f"{t.describe()} is not achievable as an integer ratio with denominator {den_name} = {den}",
    )


def _sub_error(t: Target, total: str, total_t: Target | None = None) -> CalibrationError:
    return _conflict(t, (total_t,), f"子项不能大于总数 {total}", "sub-count above its total")


# --------------------------------------------------------------------------- defaults


@dataclass
class Defaults:
    insp: int
    pen: int
    share_insp_online: float
    share_pen_online: float
    waiver_first: int
    waiver_other: int
    coercive: int
    rate_review: float
    rate_timely: float
    rate_cert: float
    cases: int
    open: int
    rate_success: float
    not_due: int
    rate_fulfil: float
    share_major: float
    sessions: dict[str, int]
    per_session: int
    roster: int
    share_officers: float
    rate_attend: float
    rate_meeting: float
    rate_pass: float
    returns: dict[str, int]
    qualifiers: dict[str, str | None]


def draw_defaults(kind: str, size: float, year: int, last_year: int, rng: np.random.Generator) -> Defaults:
    """Plausible yearly figures for a township of this kind and size."""
    k = kind_of(kind)
    p, clip = KIND_PARAMS[k], _CLIPS[k]
    trend = 1 + 0.06 * (year - 2023) + rng.normal(0, 0.07)
    scale = max(0.3, size * trend)

    def vol(name: str) -> int:
        lo, hi = clip[name]
        return int(np.clip(rng.poisson(p[name] * scale), lo, hi))

    online_base = np.clip(0.32 + 0.14 * (year - 2022) + rng.normal(0, 0.08), 0.12, 0.95)
    roster = int(np.clip(round(p["roster"] * (0.7 + 0.3 * size) + rng.normal(0, 4)), 18, 120))
    per_session = int(np.clip(round(roster * rng.uniform(0.45, 0.75)), 12, 70))
    sessions = {
        "专题培训": int(rng.integers(1, 5)),
        "领导干部法治课": int(rng.integers(1, 5)),
        "部门学法": int(rng.integers(2, 13)),
        "执法培训": int(rng.integers(1, 5)),
        "法律知识测试": int(rng.integers(1, 3)),
        "其他": int(rng.integers(0, 4)),
    }
    rets, quals = _draw_returns(k, size, rng)
    return Defaults(
        insp=vol("insp"),
        pen=vol("pen"),
        share_insp_online=float(online_base),
        share_pen_online=float(np.clip(online_base + rng.normal(0, 0.1), 0.1, 0.97)),
        waiver_first=int(min(4, rng.poisson(1.0 * scale))),
        waiver_other=int(min(3, rng.poisson(0.5))),
        coercive=int(min(3, rng.poisson(0.6 if k == "街道" else 0.3))),
        rate_review=1.0 if rng.random() < 0.75 else float(rng.uniform(0.8, 1.0)),
        rate_timely=float(rng.uniform(0.8, 1.0)),
        rate_cert=float(rng.uniform(0.86, 1.0)),
        cases=vol("cases"),
        open=int(rng.poisson(2.0)) if year == last_year else int(rng.poisson(0.15)),
        rate_success=float(rng.uniform(0.93, 0.995)),
        not_due=int(rng.poisson(2.5 if year == last_year else 1.0)),
        rate_fulfil=float(rng.uniform(0.86, 0.98)),
        share_major=float(rng.uniform(0.025, 0.08)),
        sessions=sessions,
        per_session=per_session,
        roster=roster,
        share_officers=float(rng.uniform(0.38, 0.6)),
        rate_attend=float(rng.uniform(0.86, 1.0)),
        rate_meeting=float(rng.uniform(0.6, 1.0)),
        rate_pass=float(rng.uniform(0.88, 1.0)),
        returns=rets,
        qualifiers=quals,
    )


def _draw_returns(k: str, size: float, rng: np.random.Generator) -> tuple[dict[str, int], dict[str, str | None]]:
    p = KIND_PARAMS[k]
    lit = int(min(4, rng.poisson(p["lit"] * size)))
    heard = max(0, lit - int(rng.random() < 0.15))
    appeared = heard if rng.random() < 0.8 else max(0, heard - 1)
    ogi03 = int(round(rng.uniform(40, 320) * size / 10) * 10)
    pub01 = int(round(rng.uniform(1500, 11000) * size / 100) * 100)
    quals: dict[str, str | None] = {}
    if ogi03 % 50 == 0 and rng.random() < 0.5:
        quals["OGI03"] = ">="
    if rng.random() < 0.5:
        pub01 = max(1000, round(pub01 / 1000) * 1000)
        quals["PUB01"] = ">="
    values = {
        "LIT01": lit,
        "LIT02A": appeared,
        "LIT02B": heard,
        "OGI01": int(max(2, rng.poisson(p["ogi"] * size))),
        "OGI02": int(rng.poisson(1.2)),
        "OGI03": max(10, ogi03),
        "PUB01": max(500, pub01),
        "PUB02": int(rng.integers(3, 16)),
        "PUB03": int(rng.integers(2, 11)),
        "PUB04": int(rng.integers(4, 21)),
        "PUB05": int(rng.integers(2, 11)),
        "PUB06": int(rng.integers(0, 3)),
    }
    return values, quals


# --------------------------------------------------------------------------- solvers


def _enf_check(T: dict[str, Target], e1: int, e2: int) -> CalibrationError | tuple:
    r3 = _bounds(T.get("ENF03"), 0, e1)
    if r3 is None:
        return _sub_error(T["ENF03"], "ENF01", T.get("ENF01"))
    r4 = _bounds(T.get("ENF04"), 0, e2)
    if r4 is None:
        return _sub_error(T["ENF04"], "ENF02", T.get("ENF02"))
    for code in ("ENF07", "ENF08"):
        if code in T and T[code].numerators(e2) is None:
            return _rate_error(T[code], e2, "ENF02", T.get("ENF02"))
    if "ENF09" in T and T["ENF09"].numerators(e1 + e2) is None:
        return _rate_error(T["ENF09"], e1 + e2, "ENF01+ENF02", T.get("ENF01"), T.get("ENF02"))
    r5 = None
    if "ENF05" in T:
        nr = T["ENF05"].numerators(e1 + e2)
        if nr is None:
            return _rate_error(T["ENF05"], e1 + e2, "ENF01+ENF02", T.get("ENF01"), T.get("ENF02"))
        r5 = (max(nr[0], r3[0] + r4[0]), min(nr[1], r3[1] + r4[1]))
        if r5[0] > r5[1]:
            return _conflict(
                T["ENF05"],
                tuple(T.get(c) for c in ("ENF01", "ENF02", "ENF03", "ENF04")),
                f"派生指标与分项矛盾: (ENF03+ENF04)/(ENF01+ENF02)无法等于{T['ENF05'].describe()}",
                "derived indicator contradicts its parts ENF01-ENF04",
            )
    if "ENF10" in T and T["ENF10"].low > 0 and e2 == 0:
        return _conflict(
            T["ENF10"],
            (T.get("ENF02"),),
            "ENF02为0时罚没金额只能为0",
            "fines and confiscations without any ENF02 decision",
        )
    return r3, r4, r5


def solve_enf(T: dict[str, Target], d: Defaults) -> EnfPlan:
    first: CalibrationError | None = None
    tries = 0
    lo1 = T["ENF03"].count_bounds()[0] if "ENF03" in T else 0
    lo2 = T["ENF04"].count_bounds()[0] if "ENF04" in T else 0
    for e1 in _count_candidates(T.get("ENF01"), d.insp, lo1):
        for e2 in _count_candidates(T.get("ENF02"), d.pen, lo2):
            tries += 1
            res = _enf_check(T, e1, e2)
            if isinstance(res, CalibrationError):
                first = first or res
                if tries > 3000:
                    raise first
                continue
            r3, r4, r5 = res
            e3 = _clamp(round(d.share_insp_online * e1), *r3)
            e4 = _clamp(round(d.share_pen_online * e2), *r4)
            if r5 is not None and not r5[0] <= e3 + e4 <= r5[1]:
                s = _clamp(e3 + e4, *r5)
                e3 = _clamp(s - e4, *r3)
                e4 = _clamp(s - e3, *r4)
                e3 = s - e4
            w6_lo, w6_hi = T["ENF06"].count_bounds() if "ENF06" in T else (0, None)
            w6 = w6_lo if w6_hi is not None else max(w6_lo, d.waiver_first)
            plan = EnfPlan(
                n_insp=e1,
                n_insp_online=e3,
                n_pen=e2,
                n_pen_online=e4,
                n_waiver_first=w6,
                n_waiver_other=d.waiver_other,
                n_coercive=d.coercive,
                n_reviewed=_pick(T.get("ENF07"), e2, d.rate_review),
                n_timely=_pick(T.get("ENF08"), e2, d.rate_timely),
                n_certified=_pick(T.get("ENF09"), e1 + e2, d.rate_cert),
            )
            if "ENF10" in T:
                plan.fine_total_cents = int(T["ENF10"].low * 100)
            if "ENF11" in T:
                m = T["ENF11"].low
                plan.median_days = m
                n = e2 + w6 + plan.n_waiver_other
                if n == 0:
                    plan.n_waiver_other = 1 if m.denominator == 1 else 2
                elif m.denominator != 1 and n % 2 == 1:
                    plan.n_waiver_other += 1  # a half-day median needs an even number of cases
            return plan
    raise first  # type: ignore[misc]


def solve_med(T: dict[str, Target], d: Defaults) -> MedPlan:
    first: CalibrationError | None = None
    lo1 = T["MED04"].count_bounds()[0] if "MED04" in T else 0
    for m1 in _count_candidates(T.get("MED01"), d.cases, lo1):
        r4 = _bounds(T.get("MED04"), 0, m1)
        if r4 is None:
            first = first or _sub_error(T["MED04"], "MED01", T.get("MED01"))
            continue
        for o in _count_candidates(None, min(d.open, m1), 0, m1, limit=40):
            n = m1 - o
            t2 = T.get("MED02")
            if t2 is not None and t2.numerators(n) is None:
                first = first or _rate_error(t2, n, "办结案件数(cases concluded)", T.get("MED01"))
                continue
            t5 = T.get("MED05")
            if t5 is not None and (n == 0 or (t5.low * n).denominator != 1):
                first = first or t5.error(
                    f"平均天数×办结案件数({n})须为整数天",
                    f"value x cases concluded ({n}) must be a whole number of days",
                )
                continue
            k = _pick(t2, n, d.rate_success)
            found = None
            t3 = T.get("MED03")
            for u in _count_candidates(None, min(d.not_due, k), 0, k, limit=40):
                due = k - u
                if t3 is None or t3.numerators(due) is not None:
                    found = u
                    break
            if found is None:
                first = first or _rate_error(t3, k, "MED02分子(MED02 numerator)")
                continue
            due = k - found
            return MedPlan(
                n_cases=m1,
                n_open=o,
                n_success=k,
                n_due=due,
                n_fulfilled=_pick(t3, due, d.rate_fulfil),
                n_major=_clamp(round(d.share_major * m1), *r4),
                total_days=int(t5.low * n) if t5 is not None else None,
            )
    raise first  # type: ignore[misc]


def solve_trn(T: dict[str, Target], d: Defaults) -> TrnPlan:
    sessions = dict(d.sessions)
    for code, stype in _TRN_SESSION_CODES.items():
        if code == "TRN01" or code not in T:
            continue
        lo, hi = T[code].count_bounds()
        sessions[stype] = lo if hi is not None else max(lo, sessions[stype])
    # TRN01 sessions and TRN02 attendances: every session has at least one attendance row.
    t1, t2 = T.get("TRN01"), T.get("TRN02")
    if t1 is not None and t2 is not None and t1.mode == "exact" and t2.mode == "exact":
        if t1.low == 0 and t2.low > 0:
            raise _conflict(t2, (t1,), "TRN01为0时不能有专题培训人次", "attendances without any TRN01 session")
        if t2.low < t1.low:
            raise _conflict(
                t2, (t1,), "专题培训人次少于场次(每场至少一人签到)", "fewer attendances than TRN01 sessions"
            )
    n1 = None
    for v in _count_candidates(t1, d.sessions["专题培训"]):
        if t2 is not None and ((t2.low > 0 and v == 0) or (t2.mode == "exact" and v > t2.low)):
            continue
        n1 = v
        break
    if n1 is None:
        raise t1.error("与TRN02矛盾", "contradicts TRN02")  # type: ignore[union-attr]
    sessions["专题培训"] = n1
    if t2 is None:
        att = n1 * d.per_session
    else:
        lo, hi = t2.count_bounds()
        att = lo if hi is not None else max(lo, n1 * d.per_session, n1)
        if n1 == 0 and att > 0:
            raise t2.error("TRN01为0时不能有专题培训人次", "attendances without any TRN01 session")
    n6 = sessions["法律知识测试"]
    if n6 == 0 and "TRN09" in T:
        raise _rate_error(T["TRN09"], 0, "测试签到人次(test attendances)")
    first: CalibrationError | None = None
    for roster in _count_candidates(None, d.roster, 4, None, limit=120):
        for officers in _count_candidates(None, round(d.share_officers * roster), 4, roster, limit=40):
            t7, t8 = T.get("TRN07"), T.get("TRN08")
            r7 = t7.numerators(roster) if t7 else (0, roster)
            if r7 is None:
                first = first or _rate_error(t7, roster, "名册人数(roster size)")
                continue
            r8 = t8.numerators(officers) if t8 else (0, officers)
            if r8 is None:
                first = first or _rate_error(t8, officers, "持证执法人员数(certified officers)")
                continue
            hi_meet = min(r8[1], r7[1])
            if r8[0] > hi_meet:
                first = first or t8.error(  # type: ignore[union-attr]
                    "学时达标的执法人员必须参训，与TRN07矛盾",
                    "officers meeting the hours attend sessions: contradicts TRN07",
                )
                continue
            meeting = _clamp(_pick(t8, officers, d.rate_meeting), r8[0], hi_meet)
            attending = _clamp(_pick(t7, roster, d.rate_attend), max(meeting, r7[0]), r7[1])
            if attending > 0 and sum(sessions.values()) == 0:
                sessions["其他"] = 1
            test_rows, passes = 0, 0
            if n6:
                t9 = T.get("TRN09")
                base = max(n6, n6 * round(0.8 * max(attending, 1)))
                for rows in _count_candidates(None, base, n6, None, limit=200):
                    if t9 is None or t9.numerators(rows) is not None:
                        test_rows = rows
                        break
                passes = _pick(t9, test_rows, d.rate_pass)
            return TrnPlan(
                sessions=sessions,
                topic_attendance=att,
                roster_size=roster,
                n_officers=officers,
                n_attending=attending,
                n_meeting=meeting,
                test_rows=test_rows,
                test_passes=passes,
            )
    raise first  # type: ignore[misc]


def solve_ret(T: dict[str, Target], d: Defaults) -> RetPlan:
    values, quals = dict(d.returns), dict(d.qualifiers)
    for code in RETURN_COUNTS:
        if code in T:
            values[code] = int(T[code].low)
            quals[code] = ">=" if T[code].mode == "at_least" else None
    t = T.get("LIT02")
    if t is not None:
        lit = values["LIT01"]
        if t.mode == "exact":
            q = t.low.denominator
            heard = max(q, lit // q * q)
            values["LIT02B"], values["LIT02A"] = heard, int(t.low * heard)
        else:
            for heard in [lit, *range(1, 200)]:
                r = t.numerators(heard)
                if r is not None:
                    values["LIT02B"], values["LIT02A"] = heard, r[1]
                    break
    elif "LIT01" in T:
        values["LIT02B"] = min(values["LIT02B"], values["LIT01"]) if values["LIT01"] else 0
        values["LIT02A"] = min(values["LIT02A"], values["LIT02B"])
    return RetPlan(values, {k: v for k, v in quals.items() if v})


def plan_year(code: str, year: int, targets: dict[str, Target], d: Defaults) -> Plan:
    return Plan(code, year, solve_enf(targets, d), solve_med(targets, d), solve_trn(targets, d), solve_ret(targets, d))


def check_profile(profile: Profile, townships: pd.DataFrame) -> None:
    """Refuse a profile no data can meet: plan each calibrated township-year with neutral draws."""
    kinds = dict(zip(townships["code"].astype(str), townships["kind"].astype(str), strict=True))
    for (code, year), targets in sorted(profile.items()):
        d = draw_defaults(kinds[code], 1.0, year, year, np.random.default_rng(0))
        plan_year(code, year, targets, d)
