"""Enforcement platform records (行政执法一体化平台) of one township-year, built to a plan.

Each column is drawn for all acts at once. The counts behind ENF01-ENF09 are exactly the
plan's; ENF10 (fines) and ENF11 (median case days) follow from the drawn amounts and
durations, or are met exactly when the plan fixes them. Every date of an act falls in its year.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from warehouse.demo.sample import fake
from warehouse.demo.sample.context import Township
from warehouse.demo.sample.plan import EnfPlan
from warehouse.demo.sample.workdays import DayTable

FIELDS = [
    "行为编号", "行为类型", "实施机构", "实施机构统一社会信用代码", "协助部门", "行政区划代码",
    "检查时间", "检查方式", "检查结果", "立案日期", "案件来源", "是否重大案件", "是否法制审核",
    "法制审核日期", "是否集体讨论", "决定书文号", "决定日期", "处罚种类", "罚款金额", "没收金额",
    "不予处罚", "不予处罚理由", "结案日期", "公示日期", "执法人员", "执法证号", "录入方式", "更新时间",
    "作废", "当事人类型", "当事人名称", "证件号码", "地址", "联系电话",
]  # fmt: skip

DEPARTMENTS = [
    "市场监督管理局",
    "生态环境局",
    "应急管理局",
    "自然资源局",
    "城市管理和综合执法局",
    "农业农村局",
    "林业局",
]
_DEPT_W = np.array([0.24, 0.18, 0.18, 0.14, 0.14, 0.06, 0.06])
_KINDS = [
    (["罚款"], 0.50, True, False),
    (["警告"], 0.22, False, False),
    (["警告", "罚款"], 0.12, True, False),
    (["罚款", "没收违法所得"], 0.08, True, True),
    (["没收非法财物"], 0.03, False, True),
    (["责令停产停业"], 0.02, False, False),
    (["罚款", "责令停产停业"], 0.02, True, False),
    (["通报批评"], 0.01, False, False),
]
_KIND_W = np.array([k[1] for k in _KINDS])
_HAS_FINE = np.array([k[2] for k in _KINDS])
_HAS_CONF = np.array([k[3] for k in _KINDS])
_FINES = np.array([200, 300, 500, 800, 1000, 1500, 2000, 3000, 5000, 8000, 10000, 20000, 30000, 50000])
_FINE_W = np.array([8, 8, 12, 6, 12, 6, 10, 9, 9, 4, 6, 3, 1.5, 0.5])


@dataclass
class Officers:
    """The township's certified officers in a year: name, certificate, last valid day index."""

    names: np.ndarray
    certs: np.ndarray
    expiry: np.ndarray


@dataclass
class EnfResult:
    columns: dict[str, np.ndarray]
    fine_cents: int  # ENF10 numerator, cents
    durations: np.ndarray  # ENF11 inputs: 结案 - 立案 of the year's 处罚 acts


def _lists(items: list) -> np.ndarray:
    return np.fromiter(items, dtype=object, count=len(items))


def _obj(n: int, value=None) -> np.ndarray:
    out = np.empty(n, dtype=object)
    out[:] = value
    return out


def _choose(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    """A boolean mask with exactly k of n set."""
    mask = np.zeros(n, dtype=bool)
    if k:
        mask[rng.choice(n, size=k, replace=False)] = True
    return mask


def _durations(rng: np.random.Generator, n: int, median) -> np.ndarray:
    """Filing-to-closing days: drawn, or built around an exact median."""
    if median is None:
        return np.clip(np.round(np.exp(rng.normal(np.log(34), 0.55, n))), 3, 180).astype(np.int64)
    lo_mid = int(median)  # floor
    hi_mid = int(2 * median) - lo_mid
    half = (n - 1) // 2 if n % 2 else n // 2 - 1
    mids = [lo_mid] if n % 2 else [lo_mid, hi_mid]
    lower = rng.integers(max(0, lo_mid - 40), lo_mid + 1, size=half)
    upper = rng.integers(hi_mid, min(300, hi_mid + 60) + 1, size=half)
    out = np.concatenate([lower, np.array(mids, dtype=np.int64), upper]).astype(np.int64)
    return rng.permutation(out)


def _fines(rng: np.random.Generator, kinds: np.ndarray, total_cents: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Fine and confiscation amounts in cents (-1 where absent)."""
    n = len(kinds)
    fine = np.where(_HAS_FINE[kinds], _FINES[rng.choice(len(_FINES), n, p=_FINE_W / _FINE_W.sum())] * 100, -1)
    odd = rng.random(n) < 0.12  # an amount computed from the illegal gain: not round
    fine = np.where(odd & (fine > 0), rng.integers(100, 20000, n) * 100 + rng.choice([0, 50], n), fine)
    conf = np.where(_HAS_CONF[kinds], rng.integers(5, 500, n) * 1000 + rng.choice([0, 500, 50], n), -1)
    if total_cents is None:
        return fine, conf
    conf[:] = -1
    if total_cents == 0:
        fine[:] = -1
        return fine, conf
    has = np.flatnonzero(fine > 0)
    if len(has) == 0:
        has = np.array([0])
        fine[0] = 100000
    unit = 10000 if total_cents % 10000 == 0 else 100 if total_cents % 100 == 0 else 1
    units = total_cents // unit
    if units < len(has):
        fine[has[units:]] = -1
        has = has[:units]
    w = fine[has].astype(float)
    alloc = 1 + np.floor((units - len(has)) * w / w.sum()).astype(np.int64)
    alloc[np.argmax(w)] += units - alloc.sum()
    fine[has] = alloc * unit
    return fine, conf


def _money(cents: np.ndarray) -> np.ndarray:
    out = _obj(len(cents))
    has = cents >= 0
    out[has] = cents[has] / 100
    return out


def _officer_lists(
    rng: np.random.Generator, off: Officers, dates: np.ndarray, bad: np.ndarray, lapsed_ok: np.ndarray
) -> tuple[list, list]:
    """Officer names and certificates per act: good acts 2-3 officers valid on the act date; bad
    acts either pair a valid officer with one whose certificate had lapsed, or have one officer."""
    n, m = len(dates), len(off.names)
    valid = off.expiry[None, :] >= dates[:, None]
    keys = rng.random((n, m)) + np.where(valid, 0.0, 2.0)
    order = np.argsort(keys, axis=1)[:, : min(3, m)]
    three = (rng.random(n) < 0.3) & (valid.sum(axis=1) >= 3)
    lapse_key = np.where(valid, np.inf, off.expiry[None, :].astype(float))
    lapsed = np.argmin(lapse_key, axis=1)  # the officer whose certificate lapsed first
    pick = np.full((n, 3), -1, dtype=np.int64)
    pick[:, 0] = order[:, 0]
    pick[:, 1] = order[:, 1]
    pick[:, 2] = np.where(three & (m >= 3), order[:, min(2, m - 1)], -1)
    pick[bad, 2] = -1
    pick[bad, 1] = np.where(lapsed_ok[bad], lapsed[bad], -1)
    rows = pick.tolist()  # Python ints: indexing row by row is much faster than on the array
    names = [[off.names[j] for j in row if j >= 0] for row in rows]
    certs = [[off.certs[j] for j in row if j >= 0] for row in rows]
    return names, certs


def generate(
    t: Township, year: int, plan: EnfPlan, off: Officers, days: DayTable, rng: np.random.Generator
) -> EnfResult:
    lo, hi = days.year_bounds(year)
    n_i, n_p = plan.n_insp, plan.n_pen
    n_w = plan.n_waiver_first + plan.n_waiver_other
    n_c = plan.n_coercive
    n = n_i + n_p + n_w + n_c
    kind = np.array(["检查"] * n_i + ["处罚"] * (n_p + n_w) + ["强制"] * n_c, dtype=object)
    is_i = np.arange(n) < n_i
    is_p = (np.arange(n) >= n_i) & (np.arange(n) < n_i + n_p)
    is_w = (np.arange(n) >= n_i + n_p) & (np.arange(n) < n_i + n_p + n_w)
    is_c = np.arange(n) >= n_i + n_p + n_w
    cols: dict[str, np.ndarray] = {f: _obj(n) for f in FIELDS}

    # inspections
    insp_day = days.sample(rng, year, n_i)
    # cases: durations, then dates that keep filing, decision and closing inside the year
    n_case = n_p + n_w
    dur = _durations(rng, n_case, plan.median_days)
    to_dec = np.minimum(np.round(dur * rng.uniform(0.5, 0.9, n_case)).astype(np.int64), dur)
    dec = days.sample_between(rng, lo + to_dec, hi - (dur - to_dec))
    filed = dec - to_dec
    closed = filed + dur
    c_day = days.sample(rng, year, n_c)
    c_filed = np.maximum(lo, c_day - rng.integers(0, 3, n_c))
    c_closed = np.minimum(hi, c_day + rng.integers(5, 31, n_c))

    main_day = np.concatenate([insp_day, filed, c_filed])  # numbering order
    act_day = np.concatenate([insp_day, dec, c_day])  # the act's date (ENF09)

    # entry channel
    online = np.zeros(n, dtype=bool)
    online[:n_i] = _choose(rng, n_i, plan.n_insp_online)
    online[n_i : n_i + n_p] = _choose(rng, n_p, plan.n_pen_online)
    online[n_i + n_p :] = rng.random(n_w + n_c) < 0.5
    cols["录入方式"] = np.where(online, "网上办案", "补录").astype(object)

    cols["行为类型"] = kind
    cols["实施机构"][:] = t.body
    cols["实施机构统一社会信用代码"][:] = t.body_credit_code
    dept = (t.county_name + np.array(DEPARTMENTS, dtype=object))[rng.choice(len(DEPARTMENTS), n, p=_DEPT_W)]
    cols["协助部门"] = np.where(rng.random(n) < np.where(is_i, 0.55, 0.35), dept, None)
    cols["行政区划代码"] = np.where(rng.random(n) < 0.12, t.code + "000", t.code).astype(object)

    cols["检查时间"][is_i] = days.iso(insp_day)
    cols["检查方式"][is_i] = np.array(["现场检查", "书面检查", "远程检查"], dtype=object)[
        rng.choice(3, n_i, p=[0.84, 0.11, 0.05])
    ]
    cols["检查结果"][is_i] = np.array(["未发现问题", "责令整改", "移送立案"], dtype=object)[
        rng.choice(3, n_i, p=[0.55, 0.4, 0.05])
    ]

    case = is_p | is_w
    cols["立案日期"][case] = days.iso(filed)
    cols["立案日期"][is_c] = days.iso(c_filed)
    cols["案件来源"][case | is_c] = np.array(["日常检查", "投诉举报", "上级交办", "部门移送"], dtype=object)[
        rng.choice(4, n_case + n_c, p=[0.5, 0.3, 0.1, 0.1])
    ]
    major = rng.random(n_case + n_c) < 0.05
    cols["是否重大案件"][case | is_c] = np.where(major, "是", "否")
    cols["是否集体讨论"][case | is_c] = np.where(major | (rng.random(n_case + n_c) < 0.05), "是", "否")
    cols["决定日期"][case] = days.iso(dec)
    cols["决定日期"][is_c] = days.iso(c_day)
    cols["结案日期"][case] = days.iso(closed)
    cols["结案日期"][is_c] = days.iso(c_closed)

    # legal review (ENF07): reviewed on or before the decision, or not reviewed / reviewed late
    ok = np.ones(n_case, dtype=bool)
    ok[:n_p] = _choose(rng, n_p, plan.n_reviewed)
    not_done = ~ok & (rng.random(n_case) < 0.5)
    before = np.minimum(rng.integers(0, 4, n_case), to_dec)
    review = np.where(ok, dec - before, dec + rng.integers(1, 6, n_case))
    cols["是否法制审核"][case] = np.where(not_done, "否", "是")
    cols["法制审核日期"][case] = np.where(not_done, None, days.iso(review))

    # disclosure (ENF08): within 7 working days, or later, or never
    timely = np.ones(n_case, dtype=bool)
    timely[:n_p] = _choose(rng, n_p, plan.n_timely)
    k = np.where(timely, rng.choice(np.arange(1, 8), n_case, p=[0.2, 0.22, 0.2, 0.15, 0.1, 0.08, 0.05]), 0)
    k = np.where(timely, k, rng.integers(8, 26, n_case))
    never = ~timely & (rng.random(n_case) < 0.3)
    published = days.add_workdays(dec, k)
    cols["公示日期"][case] = np.where(never, None, days.iso(published))

    # decision numbers, numbered by decision date within each series
    seq_p = np.empty(n_p, dtype=np.int64)
    seq_p[np.argsort(dec[:n_p], kind="stable")] = np.arange(1, n_p + 1)
    seq_w = np.empty(n_w, dtype=np.int64)
    seq_w[np.argsort(dec[n_p:], kind="stable")] = np.arange(1, n_w + 1)
    seq_c = np.empty(n_c, dtype=np.int64)
    seq_c[np.argsort(c_day, kind="stable")] = np.arange(1, n_c + 1)
    cols["决定书文号"][is_p] = f"{t.abbr}综执罚决〔{year}〕" + seq_p.astype(str).astype(object) + "号"
    cols["决定书文号"][is_w] = f"{t.abbr}综执不罚决〔{year}〕" + seq_w.astype(str).astype(object) + "号"
    cols["决定书文号"][is_c] = f"{t.abbr}综执强〔{year}〕" + seq_c.astype(str).astype(object) + "号"

    # penalties: kinds and amounts (ENF10)
    kinds = rng.choice(len(_KINDS), n_p, p=_KIND_W)
    fine, conf = _fines(rng, kinds, plan.fine_total_cents)
    if plan.fine_total_cents is not None:  # amounts fixed by the plan: kinds follow the amounts
        fine_only = np.isin(kinds, [0, 2, 6])
        kinds = np.where(
            fine > 0, np.where(fine_only, kinds, 0), np.where(_HAS_FINE[kinds] | _HAS_CONF[kinds], 1, kinds)
        )
    cols["处罚种类"][is_p] = _lists([list(_KINDS[i][0]) for i in kinds])
    cols["处罚种类"][is_w] = _lists([[] for _ in range(n_w)])
    cols["罚款金额"][is_p] = _money(fine)
    cols["没收金额"][is_p] = _money(conf)
    cols["不予处罚"][case] = np.where(np.arange(n_case) < n_p, "否", "是")
    reasons = np.array(["违法行为轻微", "证据不足"], dtype=object)[rng.choice(2, plan.n_waiver_other, p=[0.8, 0.2])]
    cols["不予处罚理由"][is_w] = np.concatenate([np.full(plan.n_waiver_first, "首违不罚", dtype=object), reasons])

    # officers (ENF09): the plan's number of ENF01 + ENF02 acts with two or more valid certificates
    counted = is_i | is_p
    n_counted = n_i + n_p
    bad_counted = np.zeros(n_counted, dtype=bool)
    n_bad = n_counted - plan.n_certified
    cdays = act_day[:n_counted]
    after_lapse = (off.expiry[None, :] < cdays[:, None]) & (off.expiry[None, :] >= lo)
    can_lapse = after_lapse.any(axis=1)
    lapse_mask = np.zeros(n_counted, dtype=bool)
    if n_bad:
        cand = np.flatnonzero(can_lapse)
        k_l = min(len(cand), int(rng.binomial(n_bad, 0.6)))
        if k_l:
            lapse_mask[rng.choice(cand, k_l, replace=False)] = True
        rest = np.flatnonzero(~lapse_mask)
        bad_counted[rng.choice(rest, n_bad - k_l, replace=False)] = True
        bad_counted |= lapse_mask
    bad = np.zeros(n, dtype=bool)
    bad[counted] = bad_counted
    lapsed_ok = np.zeros(n, dtype=bool)
    lapsed_ok[counted] = lapse_mask
    names, certs = _officer_lists(rng, off, act_day, bad, lapsed_ok)
    cols["执法人员"] = _lists(names)
    cols["执法证号"] = _lists(certs)

    # parties (personal data)
    person = rng.random(n) < np.where(is_i, 0.2, 0.55)
    cols["当事人类型"] = np.where(person, "个人", "法人").astype(object)
    area = t.county_code
    cols["当事人名称"] = np.where(person, fake.names(rng, n), fake.company_names(rng, n, t.county_name, t.name))
    prefix = np.where(rng.random(n) < 0.6, "92", "91")
    credit = np.where(prefix == "92", fake.credit_codes(rng, n, area, "92"), fake.credit_codes(rng, n, area, "91"))
    cols["证件号码"] = np.where(person, fake.id_numbers(rng, n, area, 1955, 2002), credit)
    cols["地址"] = fake.addresses(rng, n, t.county_name + t.name, t.villages, t.street)
    cols["联系电话"] = np.where(rng.random(n) < 0.9, fake.mobiles(rng, n), None)

    # last modified: entered soon after the last event when handled online, weeks later when back-entered
    last = np.concatenate([insp_day, np.maximum(closed, np.where(never, closed, published)), c_closed])
    lag = np.where(online, rng.integers(0, 3, n), rng.integers(5, 90, n))
    corrected = rng.random(n) < 0.06
    lag = lag + np.where(corrected, rng.integers(3, 120, n), 0)
    seconds = rng.integers(8 * 3600 + 1800, 18 * 3600, n)
    cols["更新时间"] = (last + lag) * 86400 + seconds  # seconds from day 0; formatted by the caller
    cols["作废"][:] = "否"

    seq = np.empty(n, dtype=np.int64)
    seq[np.lexsort((np.arange(n), main_day))] = np.arange(1, n + 1)
    cols["行为编号"] = f"ZF{t.code}-{year}-" + np.char.zfill(seq.astype(str), 5).astype(object)
    cols["_seq"] = seq

    fine_cents = int(fine[fine > 0].sum() + conf[conf > 0].sum())
    return EnfResult(cols, fine_cents, dur)
