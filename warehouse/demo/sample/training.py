"""Staff rosters and training ledgers (学法培训台账) of one township, built to its yearly plans.

Staff persist across years (with turnover); enforcement officers hold certificates that are
renewed, with a new number, the year after they lapse, so a few lapse mid-year. Attendance is
assigned session by session so that TRN01-TRN09 equal the plan's counts: the plan's attending
staff attend at least one session and nobody else on the roster does; officers meeting the
hours requirement attend the two online-learning sessions (30 学时 each) and every other
officer stays below the requirement.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from warehouse.demo.sample import fake
from warehouse.demo.sample.catalogue import REQUIRED_TRAINING_HOURS
from warehouse.demo.sample.context import Township
from warehouse.demo.sample.enforcement import Officers
from warehouse.demo.sample.plan import TrnPlan
from warehouse.demo.sample.workdays import DayTable

_TOPICS = {
    "专题培训": [
        "《中华人民共和国行政处罚法》专题讲座",
        "《中华人民共和国民法典》专题培训",
        "《中华人民共和国行政复议法》解读",
        "安全生产法律法规专题培训",
        "《信访工作条例》专题讲座",
        "生态环境保护法律法规培训",
    ],
    "领导干部法治课": ["习近平法治思想专题学习", "领导干部依法决策专题法治课", "宪法专题学习", "法治政府建设专题讲座"],
    "部门学法": ["食品安全法", "土地管理法", "安全生产法", "环境保护法", "人民调解法", "森林法"],
    "执法培训": ["行政执法一体化平台操作培训", "行政执法三项制度培训", "执法文书制作培训", "综合执法队伍业务培训"],
    "法律知识测试": ["年度法律知识考试", "行政执法人员法律知识测试", "干部学法用法考试"],
    "其他": ["法律知识讲座", "普法工作推进会", "宪法宣传周学习"],
}
_DEPT_FOR_TOPIC = ["市场监督管理局", "自然资源局", "应急管理局", "生态环境局", "司法局", "林业局"]
_HOURS = {
    "专题培训": [2, 3],
    "领导干部法治课": [2],
    "部门学法": [1, 2],
    "执法培训": [4, 4, 8],
    "法律知识测试": [2],
    "其他": [1, 2],
}
_OFFICES = ["党政综合办公室", "经济发展办公室", "社会事务办公室", "综治中心", "财政所", "自然资源所", "司法所"]
ONLINE = "行政执法人员网上学法"
ONLINE_HOURS = REQUIRED_TRAINING_HOURS // 2


@dataclass
class Roster:
    """One township-year's staff roster (人员名册)."""

    id_no: np.ndarray
    name: np.ndarray
    staff_no: np.ndarray
    unit: np.ndarray
    post: np.ndarray
    leader: np.ndarray
    officer: np.ndarray  # 是否执法人员=是
    cert: np.ndarray  # None without a certificate
    expiry: np.ndarray  # last valid day index, -1 without a certificate

    def officers(self) -> Officers:
        has = self.expiry >= 0
        return Officers(self.name[has], self.cert[has], self.expiry[has])


@dataclass
class Ledger:
    sessions: dict[str, np.ndarray]  # 活动编号 日期(day index) 活动类型 主题 主办单位 学时, by date
    attendance: dict[str, np.ndarray]  # 活动编号 姓名 工号 身份证号 单位 是否领导干部 是否执法人员 成绩 是否合格


class People:
    """A township's persons: unique ID numbers across its staff and outside attendees."""

    def __init__(self, t: Township, rng: np.random.Generator):
        self.t, self.rng = t, rng
        self.used: set[str] = set()
        self.id_no = np.empty(0, dtype=object)
        self.name = np.empty(0, dtype=object)
        self.leader = np.empty(0, dtype=bool)
        self.office = np.empty(0, dtype=object)

    def unique_ids(self, n: int, born_from: int, born_to: int) -> np.ndarray:
        ids = fake.id_numbers(self.rng, n, self.t.county_code, born_from, born_to)
        while True:
            seen: set[str] = set()
            dup = np.array([(i in self.used) or (i in seen) or seen.add(i) for i in ids], dtype=bool)
            if not dup.any():
                break
            ids[dup] = fake.id_numbers(self.rng, int(dup.sum()), self.t.county_code, born_from, born_to)
        self.used.update(ids)
        return ids

    def hire(self, n: int) -> np.ndarray:
        start = len(self.id_no)
        self.id_no = np.concatenate([self.id_no, self.unique_ids(n, 1965, 2000)])
        self.name = np.concatenate([self.name, fake.names(self.rng, n)])
        self.leader = np.concatenate([self.leader, self.rng.random(n) < 0.15])
        offices = np.array(_OFFICES, dtype=object)[self.rng.integers(0, len(_OFFICES), n)]
        self.office = np.concatenate([self.office, offices])
        return np.arange(start, start + n)


def build_rosters(
    t: Township, plans: dict[int, TrnPlan], days: DayTable, rng: np.random.Generator, people: People
) -> dict[int, Roster]:
    cert_no: dict[int, str] = {}
    cert_exp: dict[int, int] = {}
    serial = 0
    prev: np.ndarray | None = None
    prev_off: set[int] = set()
    out: dict[int, Roster] = {}
    first = min(plans)
    leader_posts = ["党委书记", "主任" if t.street else "镇长" if t.kind == "镇" else "乡长", "党委副书记", "人大主席"]
    deputy = "副主任" if t.street else "副镇长" if t.kind == "镇" else "副乡长"
    for year in sorted(plans):
        plan = plans[year]
        lo, hi = days.year_bounds(year)
        if prev is None:
            members = people.hire(plan.roster_size)
        else:
            keep_n = min(len(prev), round(plan.roster_size * rng.uniform(0.88, 0.97)))
            keep = np.sort(rng.choice(prev, keep_n, replace=False))
            members = np.concatenate([keep, people.hire(plan.roster_size - keep_n)])
        was_off = np.array([p in prev_off for p in members], dtype=bool)
        order = np.concatenate([rng.permutation(members[was_off]), rng.permutation(members[~was_off])])
        officers = set(order[: plan.n_officers].tolist())
        for p in sorted(officers):
            if p not in cert_no or cert_exp[p] < lo:  # first certificate, or renewed after it lapsed
                serial += 1
                cert_no[p] = f"FJ{t.code}{serial:04d}"
                span = (0, 8 * 365) if year == first and p not in cert_exp else (3 * 365, 6 * 365)
                cert_exp[p] = lo + int(rng.integers(*span))
        stable = [p for p in sorted(officers) if cert_exp[p] > hi]
        for p in sorted(officers):  # at least three officers hold a certificate all year
            if len(stable) >= 3:
                break
            if cert_exp[p] <= hi:
                cert_exp[p] = hi + int(rng.integers(365, 4 * 365))
                stable.append(p)
        prev, prev_off = members, officers
        is_off = np.array([p in officers for p in members], dtype=bool)
        pending = np.zeros(len(members), dtype=bool)  # 是否执法人员=是, certificate not yet issued
        if rng.random() < 0.3 and (~is_off).any():
            pending[rng.choice(np.flatnonzero(~is_off))] = True
        leader = people.leader[members]
        unit = np.where(is_off | pending, t.name + "综合执法大队", t.name + people.office[members])
        post = np.where(is_off | pending, "队员", np.where(rng.random(len(members)) < 0.5, "科员", "办事员")).astype(
            object
        )
        lead_idx = np.flatnonzero(leader)
        post[lead_idx] = [leader_posts[i] if i < len(leader_posts) else deputy for i in range(len(lead_idx))]
        unit = np.where(leader, t.name + ("党工委" if t.street else "党委"), unit)
        off_idx = np.flatnonzero(is_off & ~leader)
        if len(off_idx):
            post[off_idx[0]] = "队长"
        out[year] = Roster(
            id_no=people.id_no[members],
            name=people.name[members],
            staff_no=np.array([f"{t.code[-3:]}{p + 1:03d}" for p in members], dtype=object),
            unit=unit.astype(object),
            post=post,
            leader=leader,
            officer=is_off | pending,
            cert=np.array([cert_no[p] if p in officers else None for p in members], dtype=object),
            expiry=np.array([cert_exp[p] if p in officers else -1 for p in members], dtype=np.int64),
        )
    return out


def _split(rng: np.random.Generator, total: int, parts: int) -> np.ndarray:
    if parts == 0:
        return np.zeros(0, dtype=np.int64)
    return rng.multinomial(total - parts, np.full(parts, 1 / parts)) + 1


def build_ledger(
    t: Township, year: int, plan: TrnPlan, roster: Roster, days: DayTable, rng: np.random.Generator, people: People
) -> Ledger:
    lo, hi = days.year_bounds(year)
    types = [s for s, k in plan.sessions.items() for _ in range(k)]
    n_s = len(types)
    s_type = np.array(types, dtype=object)
    s_day = days.sample(rng, year, n_s, off_weight=0.02)
    s_hours = np.array([rng.choice(_HOURS[s]) for s in types], dtype=np.int64)
    topic = np.array([_TOPICS[s][rng.integers(len(_TOPICS[s]))] for s in types], dtype=object)
    dept_i = rng.integers(0, len(_DEPT_FOR_TOPIC), n_s)
    is_dept = s_type == "部门学法"
    topic[is_dept] = (
        "赴" + t.county_name + np.array(_DEPT_FOR_TOPIC, dtype=object)[dept_i[is_dept]] + "学习" + topic[is_dept]
    )
    organiser = np.select(
        [s_type == "领导干部法治课", is_dept, s_type == "执法培训", s_type == "专题培训"],
        [t.name + "党委", t.county_name + np.array(_DEPT_FOR_TOPIC, dtype=object)[dept_i], t.name + "综合执法大队",
         np.where(rng.random(n_s) < 0.5, t.county_name + "司法局", t.name + "人民政府")],
        t.name + "人民政府",
    )  # fmt: skip
    online = np.zeros(n_s, dtype=bool)
    if plan.n_meeting:
        half = [days.day(f"{year}-06-28"), days.day(f"{year}-12-18")]
        s_type = np.concatenate([s_type, ["其他", "其他"]])
        s_day = np.concatenate([s_day, half])
        s_hours = np.concatenate([s_hours, [ONLINE_HOURS, ONLINE_HOURS]])
        topic = np.concatenate([topic, [f"{ONLINE}（上半年）", f"{ONLINE}（下半年）"]])
        organiser = np.concatenate([organiser, [t.county_name + "司法局"] * 2])
        online = np.concatenate([online, [True, True]])
    s_day = np.clip(s_day, lo, hi)

    # who attends: the plan's attending staff (meeting officers among them), nobody else on the roster
    n_r = len(roster.id_no)
    certified = np.flatnonzero(roster.expiry >= 0)
    meeting = rng.choice(certified, plan.n_meeting, replace=False)
    others = np.setdiff1d(np.arange(n_r), meeting)
    attending = np.concatenate([meeting, rng.choice(others, plan.n_attending - plan.n_meeting, replace=False)])
    in_a = np.zeros(n_r, dtype=bool)
    in_a[attending] = True
    capped = (roster.expiry >= 0) & ~np.isin(np.arange(n_r), meeting)  # must stay below the hours
    hours = np.zeros(n_r, dtype=np.int64)
    count = np.zeros(n_r, dtype=np.int64)

    sizes = np.zeros(len(s_type), dtype=np.int64)
    topic_idx = np.flatnonzero((s_type == "专题培训") & ~online)
    test_idx = np.flatnonzero(s_type == "法律知识测试")
    sizes[topic_idx] = _split(rng, plan.topic_attendance, len(topic_idx))
    sizes[test_idx] = _split(rng, plan.test_rows, len(test_idx))
    fixed = np.zeros(len(s_type), dtype=bool)
    fixed[topic_idx] = fixed[test_idx] = True

    rows_s, rows_p = [], []  # session position, roster index (-1: an outside attendee)
    for s in np.argsort(s_day, kind="stable"):
        h = s_hours[s]
        if online[s]:
            chosen = meeting
        else:
            elig = np.flatnonzero(in_a & (~capped | (hours + h < REQUIRED_TRAINING_HOURS)))
            st = s_type[s]
            if fixed[s]:
                want = int(sizes[s])
            elif st == "执法培训":
                want = max(1, int(roster.officer[elig].sum())) if len(elig) else 0
            elif st == "部门学法":
                want = int(rng.integers(3, 11))
            elif st == "领导干部法治课":
                want = int(roster.leader[elig].sum()) + int(rng.integers(4, 15))
            else:
                want = int(rng.integers(8, 26))
            if st == "执法培训":
                prio = rng.random(len(elig)) - roster.officer[elig]
            elif st == "领导干部法治课":
                prio = rng.random(len(elig)) - roster.leader[elig]
            else:
                prio = rng.random(len(elig))
            chosen = elig[np.argsort(prio)[: min(want, len(elig))]]
            if fixed[s] and want > len(chosen):
                rows_s.append(np.full(want - len(chosen), s))
                rows_p.append(np.full(want - len(chosen), -1))
        hours[chosen] += h
        count[chosen] += 1
        rows_s.append(np.full(len(chosen), s))
        rows_p.append(chosen)
    # attending staff who have not attended yet join a session whose size is not fixed
    missing = np.flatnonzero(in_a & (count == 0))
    if len(missing):
        free = np.flatnonzero(~fixed & ~online)
        if len(free) == 0:
            s_type = np.concatenate([s_type, ["其他"]])
            s_day = np.concatenate([s_day, [days.sample(rng, year, 1)[0]]])
            s_hours = np.concatenate([s_hours, [1]])
            topic = np.concatenate([topic, ["法律法规自学交流会"]])
            organiser = np.concatenate([organiser, [t.name + "人民政府"]])
            online = np.concatenate([online, [False]])
            free = np.array([len(s_type) - 1])
        rows_s.append(free[rng.integers(0, len(free), len(missing))])
        rows_p.append(missing)

    sess_pos = np.concatenate(rows_s).astype(np.int64) if rows_s else np.zeros(0, dtype=np.int64)
    person = np.concatenate(rows_p).astype(np.int64) if rows_p else np.zeros(0, dtype=np.int64)
    n_ext = int((person < 0).sum())

    # session ids by date
    n_all = len(s_type)
    num = np.empty(n_all, dtype=np.int64)
    num[np.lexsort((np.arange(n_all), s_day))] = np.arange(1, n_all + 1)
    sid = f"PX{t.code}-{year}-" + np.char.zfill(num.astype(str), 2).astype(object)
    by_day = np.lexsort((np.arange(n_all), s_day))
    sessions = {
        "活动编号": sid[by_day], "日期": s_day[by_day], "活动类型": s_type.astype(object)[by_day],
        "主题": topic.astype(object)[by_day], "主办单位": organiser.astype(object)[by_day], "学时": s_hours[by_day],
    }  # fmt: skip

    ext = person < 0
    staff = ~ext
    n_att = len(person)
    att = {
        f: np.empty(n_att, dtype=object) for f in ["姓名", "工号", "身份证号", "单位", "是否领导干部", "是否执法人员"]
    }
    att["姓名"][staff] = roster.name[person[staff]]
    att["工号"][staff] = roster.staff_no[person[staff]]
    att["身份证号"][staff] = roster.id_no[person[staff]]
    att["单位"][staff] = roster.unit[person[staff]]
    att["是否领导干部"][staff] = np.where(roster.leader[person[staff]], "是", "否")
    att["是否执法人员"][staff] = np.where(roster.officer[person[staff]], "是", "否")
    if n_ext:
        att["姓名"][ext] = fake.names(rng, n_ext)
        att["身份证号"][ext] = people.unique_ids(n_ext, 1965, 2000)
        vil = np.array(t.villages, dtype=object)[rng.integers(0, len(t.villages), n_ext)]
        att["单位"][ext] = vil + ("社区居委会" if t.street else "村委会")
        att["是否领导干部"][ext] = "否"
        att["是否执法人员"][ext] = "否"
    is_test = s_type[sess_pos] == "法律知识测试"
    score = np.empty(n_att, dtype=object)
    passed = np.empty(n_att, dtype=object)
    t_idx = np.flatnonzero(is_test)
    ok = np.zeros(len(t_idx), dtype=bool)
    ok[rng.choice(len(t_idx), plan.test_passes, replace=False)] = True
    score[t_idx] = np.where(ok, rng.integers(72, 100, len(t_idx)), rng.integers(35, 60, len(t_idx))).astype(float)
    passed[t_idx] = np.where(ok, "是", "否")
    order = np.lexsort((num[sess_pos],))  # by session (numbered by date), sign-in order within
    attendance = {"活动编号": sid[sess_pos], **att, "成绩": score, "是否合格": passed}
    return Ledger(sessions, {k: v[order] for k, v in attendance.items()})
