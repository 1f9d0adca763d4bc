"""Mediation system cases (矛盾纠纷多元化解平台) of one township-year, built to a plan.

MED01-MED04 are the plan's counts; MED05 (mean days) follows from the drawn durations or is
met exactly when the plan fixes the total. Every case is accepted and concluded in its year.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from warehouse.demo.sample import fake
from warehouse.demo.sample.context import Township
from warehouse.demo.sample.enforcement import _choose, _obj
from warehouse.demo.sample.plan import MedPlan
from warehouse.demo.sample.workdays import DayTable

FIELDS = [
    "案件编号", "受理日期", "调解组织", "行政区划代码", "调解员", "纠纷类型", "涉及人数", "是否联合调处",
    "调解结果", "办结日期", "协议形式", "协议金额", "履行情况", "回访日期", "是否司法确认", "更新时间", "作废",
    "当事人姓名", "证件号码", "联系电话", "纠纷简要情况",
]  # fmt: skip

# type: (weight, weight among major disputes, reasons for the summary)
DISPUTES: dict[str, tuple[float, float, list[str]]] = {
    "邻里": (0.22, 0.02, ["因排水沟渠堵塞", "因房屋滴水", "因通行道路", "因噪音扰民"]),
    "婚姻家庭": (0.17, 0.0, ["因赡养老人", "因夫妻感情不和", "因家庭财产分割"]),
    "损害赔偿": (0.14, 0.05, ["因家禽损毁农作物", "因施工损坏房屋", "因宠物咬伤"]),
    "合同": (0.12, 0.05, ["因货款结算", "因房屋租赁合同履行", "因工程款支付"]),
    "房屋宅基地": (0.07, 0.05, ["因宅基地界址", "因建房占地"]),
    "山林土地": (0.07, 0.18, ["因山林权属界线", "因承包地边界"]),
    "劳动争议": (0.05, 0.15, ["因拖欠工资", "因工伤赔偿"]),
    "道路交通事故": (0.05, 0.02, ["因交通事故赔偿"]),
    "生产经营": (0.03, 0.03, ["因合伙经营收益分配"]),
    "物业": (0.02, 0.05, ["因物业费收缴", "因小区停车位使用"]),
    "征地拆迁": (0.02, 0.15, ["因征地补偿款分配"]),
    "医疗": (0.01, 0.02, ["因诊疗费用"]),
    "环境污染": (0.01, 0.1, ["因养殖场异味污染", "因企业粉尘污染"]),
    "资源开发": (0.005, 0.08, ["因水电站用水", "因河道采砂"]),
    "公共安全": (0.005, 0.05, ["因危房安全隐患"]),
    "其他": (0.02, 0.0, ["因生活琐事"]),
}
_TYPES = np.array(list(DISPUTES), dtype=object)
_W = np.array([v[0] for v in DISPUTES.values()])
_W_MAJOR = np.array([v[1] for v in DISPUTES.values()])
_REASONS = np.array([r for v in DISPUTES.values() for r in v[2]], dtype=object)
_R_COUNT = np.array([len(v[2]) for v in DISPUTES.values()])
_R_START = np.concatenate([[0], np.cumsum(_R_COUNT)[:-1]])
_MONEY_TYPES = {"损害赔偿", "合同", "劳动争议", "道路交通事故", "医疗", "生产经营", "征地拆迁"}


@dataclass
class MedResult:
    columns: dict[str, np.ndarray]
    total_days: int  # MED05 numerator
    n_concluded: int  # MED05 denominator


def fix_sum(values: np.ndarray, target: int, lo: int, hi: int) -> np.ndarray:
    """Integers in [lo, hi] close to `values` that sum to `target` (which must be reachable)."""
    v = values.astype(np.int64).copy()
    n = len(v)
    if n == 0:
        return v
    v = np.clip(v + (target - v.sum()) // n, lo, hi)
    diff = int(target - v.sum())
    room = (hi - v) if diff > 0 else (v - lo)
    prev = np.cumsum(room) - room
    step = np.clip(abs(diff) - prev, 0, room)
    return v + np.sign(diff) * step


def generate(t: Township, year: int, plan: MedPlan, days: DayTable, rng: np.random.Generator) -> MedResult:
    lo, hi = days.year_bounds(year)
    n, n_open = plan.n_cases, plan.n_open
    n_done = n - n_open
    cols: dict[str, np.ndarray] = {f: _obj(n) for f in FIELDS}

    dur = np.clip(np.round(np.exp(rng.normal(np.log(7), 0.8, n_done))), 0, 60).astype(np.int64)
    if plan.total_days is not None:
        dur = fix_sum(dur, plan.total_days, 0, 300)
    accepted = np.concatenate(
        [
            days.sample_between(rng, np.full(n_done, lo), hi - dur),
            days.sample_between(rng, np.full(n_open, hi - 45), np.full(n_open, hi)),
        ]
    )
    done = np.arange(n) < n_done
    concluded = np.where(done, accepted + np.concatenate([dur, np.zeros(n_open, dtype=np.int64)]), -1)

    # outcomes (MED02) and performance (MED03)
    success = np.zeros(n, dtype=bool)
    success[:n_done] = _choose(rng, n_done, plan.n_success)
    outcome = np.where(success, "成功", np.where(rng.random(n) < 0.6, "失败", "终止")).astype(object)
    outcome[~done] = "在办"
    perf = _obj(n)
    s_idx = np.flatnonzero(success)
    by_date = s_idx[np.lexsort((s_idx, concluded[s_idx]))]  # latest concluded last
    not_due = by_date[plan.n_due :]
    due = by_date[: plan.n_due]
    fulfilled = np.zeros(n, dtype=bool)
    fulfilled[due[rng.choice(len(due), plan.n_fulfilled, replace=False)]] = True
    perf[due] = np.where(fulfilled[due], "已履行", np.where(rng.random(len(due)) < 0.5, "部分履行", "未履行"))
    perf[not_due] = "未到期"

    # major disputes (MED04): jointly mediated or involving ten or more persons
    major = _choose(rng, n, plan.n_major)
    joint = major & (rng.random(n) < 0.7)
    many = major & (~joint | (rng.random(n) < 0.4))
    small = np.where(
        rng.random(n) < 0.76, 2, np.where(rng.random(n) < 0.9, rng.integers(3, 7, n), rng.integers(7, 10, n))
    )
    persons = np.where(many, rng.integers(10, 41, n), np.where(joint, rng.integers(2, 10, n), small))
    dtype_idx = np.where(
        major, rng.choice(len(_TYPES), n, p=_W_MAJOR / _W_MAJOR.sum()), rng.choice(len(_TYPES), n, p=_W / _W.sum())
    )
    dispute = _TYPES[dtype_idx]

    # mediating body and its division code
    r = rng.random(n)
    v_i = rng.integers(0, len(t.villages), n)
    villages = np.array(t.villages, dtype=object)[v_i] + t.village_word + "人民调解委员会"
    v_codes = np.array(t.village_codes, dtype=object)[v_i]
    org = np.where(r < 0.45, villages, np.where(r < 0.85, t.name + "人民调解委员会", t.name + "司法所"))
    code = np.where(r < 0.45, v_codes, np.where(rng.random(n) < 0.15, t.code + "000", t.code))
    org = np.where(joint, t.name + "矛盾纠纷多元调处中心", org)
    code = np.where(joint, t.code, code)

    written = success & (rng.random(n) < 0.75)
    money = written & np.isin(dispute, list(_MONEY_TYPES))
    amount = _obj(n)
    amount[money] = (rng.integers(5, 800, money.sum()) * 100).astype(float)
    follow = success & (rng.random(n) < 0.6)
    follow_day = concluded + rng.integers(7, 31, n)

    cols["受理日期"] = days.iso(accepted)
    cols["调解组织"] = org
    cols["行政区划代码"] = code
    cols["调解员"] = t.mediators[rng.integers(0, len(t.mediators), n)]
    cols["纠纷类型"] = dispute
    cols["涉及人数"] = persons.astype(np.int64)
    cols["是否联合调处"] = np.where(joint, "是", "否").astype(object)
    cols["调解结果"] = outcome
    cols["办结日期"][done] = days.iso(concluded[done])
    cols["协议形式"][success] = np.where(written[success], "书面", "口头")
    cols["协议金额"] = amount
    cols["履行情况"] = perf
    cols["回访日期"][follow] = days.iso(follow_day[follow])
    cols["是否司法确认"][written] = np.where(rng.random(written.sum()) < 0.06, "是", "否")
    cols["作废"][:] = "否"

    # parties and the free-text summary (personal data)
    a, b = fake.names(rng, n), fake.names(rng, n)
    cols["当事人姓名"] = np.where(persons >= 5, a + "等" + persons.astype(str).astype(object) + "人", a + "、" + b)
    cols["证件号码"] = np.where(rng.random(n) < 0.85, fake.id_numbers(rng, n, t.county_code, 1950, 2003), None)
    cols["联系电话"] = np.where(rng.random(n) < 0.9, fake.mobiles(rng, n), None)
    reason = _REASONS[_R_START[dtype_idx] + (rng.random(n) * _R_COUNT[dtype_idx]).astype(np.int64)]
    who = np.where(persons >= 5, a + "等" + persons.astype(str).astype(object) + "人与" + b, a + "与" + b)
    ending = np.select(
        [outcome == "成功", outcome == "失败", outcome == "终止"],
        [
            "，经" + org + "调解，双方自愿达成协议。",
            "，经调解双方未能达成一致，已引导当事人通过诉讼途径解决。",
            "，因一方当事人不同意继续调解，调解终止。",
        ],
        "，目前正在调解中。",
    )
    cols["纠纷简要情况"] = who + reason + "问题发生纠纷" + ending

    last = np.where(follow, follow_day, np.where(done, concluded, accepted))
    lag = rng.integers(0, 4, n) + np.where(rng.random(n) < 0.05, rng.integers(3, 90, n), 0)
    cols["更新时间"] = (last + lag) * 86400 + rng.integers(8 * 3600, 18 * 3600 + 1800, n)

    seq = np.empty(n, dtype=np.int64)
    seq[np.lexsort((np.arange(n), accepted))] = np.arange(1, n + 1)
    cols["案件编号"] = f"TJ{t.code}-{year}-" + np.char.zfill(seq.astype(str), 4).astype(object)
    cols["_seq"] = seq
    return MedResult(cols, int(dur.sum()), n_done)
