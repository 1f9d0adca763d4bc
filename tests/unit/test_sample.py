"""The sample generator: deterministic, calibrated, and its targets.json right.

The recomputation below is deliberately independent of the generator: it reads the written
JSON pages and spreadsheets with pandas / calamine / csv and applies docs/indicators.md
directly (chinese_calendar for working days), then compares with targets.json.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from pathlib import Path

import chinese_calendar
import pandas as pd
import pytest
from python_calamine import CalamineWorkbook

from warehouse.demo.sample.calibration import CalibrationError, load_profile
from warehouse.demo.sample.generate import generate_sample, read_townships

# five townships (one of each kind, 贡川镇 with the default profile, the 5th returns a CSV)
CODES = ["350481001", "350481101", "350481102", "350481202", "350481204"]
YEARS = (2022, 2023)
PASS = "是"


@pytest.fixture(scope="module")
def townships_csv(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("twp") / "townships.csv"
    df = read_townships(None)
    df[df["code"].isin(CODES)].to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def profile_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("profile") / "profile.yaml"
    path.write_text(
        "targets:\n  - township: 安砂镇\n    year: 2022\n    values: {ENF01: 80, MED02: 0.95, TRN01: 4}\n"
        "  - township: 350481204\n    year: 2023\n    values: {ENF09: 0.9, ENF10: 12345.5, ENF11: 30.5,"
        " MED05: 7.5, TRN07: 0.75, TRN08: 0.5, TRN09: [0.8, 0.85], LIT02: 0.5, ENF08: '>=0.9', MED04: '>=5',"
        " OGI01: '>=30', ENF05: [0.6, 0.7]}\n",
        encoding="utf-8",
    )
    return path


@pytest.fixture(scope="module")
def sample(tmp_path_factory, townships_csv, profile_file) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("sample")
    summary = generate_sample(out, townships_csv=townships_csv, calibration=profile_file, years=YEARS)
    return out, summary


def _targets(out: Path) -> pd.DataFrame:
    return pd.DataFrame(json.loads((out / "targets.json").read_text(encoding="utf-8")))


# --------------------------------------------------------------------------- independent recomputation


def _records(out: Path, source: str) -> pd.DataFrame:
    recs = []
    for page in sorted((out / source).glob("page-*.json")):
        recs += json.loads(page.read_text(encoding="utf-8"))["records"]
    return pd.DataFrame(recs)


def _date(s: pd.Series) -> pd.Series:
    return pd.to_datetime(s, format="%Y-%m-%d", errors="coerce")


def _quarantine(df: pd.DataFrame, required: list[str], dates: list[str], known: set[str]) -> pd.DataFrame:
    """Drop voided rows and rows the pipeline would quarantine (unknown township, bad date, missing field)."""
    ok = (df["作废"] == "否") & df["行政区划代码"].str[:9].isin(known)
    for c in required:
        ok &= df[c].notna()
    for c in dates:
        ok &= df[c].isna() | _date(df[c]).notna()
    df = df[ok].copy()
    df["twp"] = df["行政区划代码"].str[:9]
    for c in dates:
        df[c] = _date(df[c])
    return df


def _workdays_between(a: dt.date, b: dt.date) -> int:
    return sum(chinese_calendar.is_workday(a + dt.timedelta(days=i)) for i in range(1, (b - a).days + 1))


def _cell_date(v) -> dt.date:
    if isinstance(v, dt.datetime):
        return v.date()
    if isinstance(v, dt.date):
        return v
    m = re.fullmatch(r"(\d{4})[年\-./](\d{1,2})[月\-./](\d{1,2})日?", str(v).strip())
    return dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))


def _sheet(rows: list[list], first: str) -> pd.DataFrame:
    head = next(i for i, r in enumerate(rows) if r and r[0] == first)
    body = [r for r in rows[head + 1 :] if r and r[0] not in ("", None) and not str(r[0]).startswith("合计")]
    return pd.DataFrame(body, columns=rows[head]).replace({"": None})


def _training(out: Path) -> dict[str, pd.DataFrame]:
    parts: dict[str, list[pd.DataFrame]] = {"s": [], "a": [], "r": []}
    for f in sorted((out / "training").glob("*.xlsx")):
        code, year = f.name.split("_")[:2]
        wb = CalamineWorkbook.from_path(str(f))
        for key, sheet, first in (
            ("s", "活动登记", "活动编号"),
            ("a", "参训签到", "活动编号"),
            ("r", "人员名册", "工号"),
        ):
            df = _sheet(wb.get_sheet_by_name(sheet).to_python(), first)
            df["twp"], df["year"] = code, int(year)
            parts[key].append(df)
    return {k: pd.concat(v, ignore_index=True) for k, v in parts.items()}


def _returns(out: Path) -> pd.DataFrame:
    rows = []
    for f in sorted((out / "returns").iterdir()):
        code, year = f.name.split("_")[:2]
        if f.suffix == ".csv":
            data = list(csv.reader(io.StringIO(f.read_bytes().decode("gb18030"))))
        else:
            data = CalamineWorkbook.from_path(str(f)).get_sheet_by_index(0).to_python()
        df = _sheet(data, "指标代码")
        df = df[df["指标代码"].astype(str).str.fullmatch(r"[A-Z]{3}\d{2}[AB]?")]
        text = df["数值"].map(lambda v: str(int(v)) if isinstance(v, float) else str(v))
        parts = text.str.extract(r"^(\d+)(余|以上)?$")
        rows.append(
            pd.DataFrame({"twp": code, "year": int(year), "item": df["指标代码"], "value": parts[0].astype(int),
                          "qualifier": parts[1].notna().map({True: ">=", False: None})})
        )  # fmt: skip
    return pd.concat(rows, ignore_index=True)


def recompute(out: Path) -> pd.DataFrame:
    """Every indicator of every township-year, straight from the files, per docs/indicators.md."""
    known = set(pd.read_csv(out / "townships.csv", dtype=str)["code"])
    enf = _quarantine(
        _records(out, "enforcement"),
        ["行为编号", "行为类型", "实施机构", "行政区划代码", "执法人员", "执法证号", "录入方式", "更新时间", "作废"],
        ["检查时间", "立案日期", "法制审核日期", "决定日期", "结案日期", "公示日期"],
        known,
    )
    med = _quarantine(
        _records(out, "mediation"),
        ["案件编号", "受理日期", "调解组织", "行政区划代码", "纠纷类型", "涉及人数", "是否联合调处", "调解结果"],
        ["受理日期", "办结日期", "回访日期"],
        known,
    )
    trn = _training(out)
    ret = _returns(out)
    sessions, att, roster = trn["s"], trn["a"], trn["r"]
    sessions["date"] = sessions["日期"].map(_cell_date)
    roster["valid"] = roster["证件有效期"].map(lambda v: None if v is None else _cell_date(v))
    certs = roster[roster["执法证号"].notna()].groupby("执法证号")["valid"].max()

    out_rows = []
    for twp in sorted(known):
        for year in YEARS:
            v: dict[str, tuple] = {}
            e = enf[enf["twp"] == twp]
            insp = e[(e["行为类型"] == "检查") & (e["检查时间"].dt.year == year)]
            pen_all = e[e["行为类型"] == "处罚"]
            pen = pen_all[(pen_all["不予处罚"] == "否") & (pen_all["决定日期"].dt.year == year)]
            e1, e2 = len(insp), pen["决定书文号"].nunique()
            e3 = int((insp["录入方式"] == "网上办案").sum())
            e4 = pen.loc[pen["录入方式"] == "网上办案", "决定书文号"].nunique()
            v["ENF01"], v["ENF02"], v["ENF03"], v["ENF04"] = (e1,), (e2,), (e3,), (e4,)
            v["ENF05"] = (e3 + e4, e1 + e2)
            waiver = pen_all[(pen_all["不予处罚"] == PASS) & (pen_all["决定日期"].dt.year == year)]
            v["ENF06"] = (int((waiver["不予处罚理由"] == "首违不罚").sum()),)
            reviewed = pen[(pen["是否法制审核"] == PASS) & (pen["法制审核日期"] <= pen["决定日期"])]
            v["ENF07"] = (reviewed["决定书文号"].nunique(), e2)
            pub = pen[pen["公示日期"].notna()]
            timely = [
                _workdays_between(a.date(), b.date()) <= 7
                for a, b in zip(pub["决定日期"], pub["公示日期"], strict=True)
            ]
            v["ENF08"] = (pub.loc[timely, "决定书文号"].nunique() if len(pub) else 0, e2)
            acts = pd.concat([insp.assign(d=insp["检查时间"]), pen.assign(d=pen["决定日期"])])
            cert_ok = [
                len(cs) >= 2 and all(c in certs.index and certs[c] >= d.date() for c in cs)
                for cs, d in zip(acts["执法证号"], acts["d"], strict=True)
            ]
            v["ENF09"] = (int(sum(cert_ok)), len(acts))
            v["ENF10"] = (round(float(pen["罚款金额"].fillna(0).sum() + pen["没收金额"].fillna(0).sum()), 2),)
            closed = pen_all[pen_all["结案日期"].dt.year == year]
            days = (closed["结案日期"] - closed["立案日期"]).dt.days
            v["ENF11"] = (float(days.median()) if len(days) else None,)

            m = med[med["twp"] == twp]
            v["MED01"] = (int((m["受理日期"].dt.year == year).sum()),)
            concluded = m[m["调解结果"].isin(["成功", "失败", "终止"]) & (m["办结日期"].dt.year == year)]
            success = concluded[concluded["调解结果"] == "成功"]
            v["MED02"] = (len(success), len(concluded))
            due = success[success["履行情况"] != "未到期"]
            v["MED03"] = (int((due["履行情况"] == "已履行").sum()), len(due))
            accepted = m[m["受理日期"].dt.year == year]
            v["MED04"] = (int(((accepted["是否联合调处"] == PASS) | (accepted["涉及人数"] >= 10)).sum()),)
            v["MED05"] = (int((concluded["办结日期"] - concluded["受理日期"]).dt.days.sum()), len(concluded))

            s = sessions[(sessions["twp"] == twp) & (sessions["date"].map(lambda d: d.year) == year)]
            a = att[(att["twp"] == twp) & att["活动编号"].isin(s["活动编号"])]
            r = roster[(roster["twp"] == twp) & (roster["year"] == year)]
            count = s["活动类型"].value_counts()
            for code, kind in [("TRN01", "专题培训"), ("TRN03", "领导干部法治课"), ("TRN04", "部门学法"),
                               ("TRN05", "执法培训"), ("TRN06", "法律知识测试")]:  # fmt: skip
                v[code] = (int(count.get(kind, 0)),)
            topic = s.loc[s["活动类型"] == "专题培训", "活动编号"]
            v["TRN02"] = (int(a["活动编号"].isin(topic).sum()),)
            v["TRN07"] = (int(r["身份证号"].isin(a["身份证号"]).sum()), len(r))
            hours = a.merge(s[["活动编号", "学时"]], on="活动编号").groupby("身份证号")["学时"].sum()
            officers = r[(r["是否执法人员"] == PASS) & r["执法证号"].notna()]
            met = officers["身份证号"].map(hours).fillna(0) >= 60
            v["TRN08"] = (int(met.sum()), len(officers))
            tests = a[a["活动编号"].isin(s.loc[s["活动类型"] == "法律知识测试", "活动编号"])]
            v["TRN09"] = (int((tests["是否合格"] == PASS).sum()), len(tests))

            items = ret[(ret["twp"] == twp) & (ret["year"] == year)].set_index("item")
            for code in ["LIT01", "OGI01", "OGI02", "OGI03", "PUB01", "PUB02", "PUB03", "PUB04", "PUB05", "PUB06"]:
                v[code] = (int(items.loc[code, "value"]), items.loc[code, "qualifier"])
            v["LIT02"] = (int(items.loc["LIT02A", "value"]), int(items.loc["LIT02B", "value"]))
            for code, x in v.items():
                out_rows.append({"township_code": twp, "year": year, "indicator_code": code, "got": x})
    return pd.DataFrame(out_rows)


def _expected(row: pd.Series) -> tuple:
    """The shape recompute() gives for a targets.json row."""
    code = row["indicator_code"]
    if code in ("ENF05", "ENF07", "ENF08", "ENF09", "MED02", "MED03", "MED05", "TRN07", "TRN08", "TRN09", "LIT02"):
        return (row["numerator"], row["denominator"])
    if code in ("LIT01", "OGI01", "OGI02", "OGI03", "PUB01", "PUB02", "PUB03", "PUB04", "PUB05", "PUB06"):
        return (row["value"], row["qualifier"])
    return (row["value"],)


def test_recomputed_indicators_equal_targets(sample):
    out, _ = sample
    targets = _targets(out)
    got = recompute(out)
    merged = targets.merge(got, on=["township_code", "year", "indicator_code"], how="outer", indicator=True)
    assert (merged["_merge"] == "both").all()
    expected = merged.apply(_expected, axis=1)
    bad = merged[[tuple(g) != tuple(x) for g, x in zip(merged["got"], expected, strict=True)]]
    assert bad.empty, bad[["township_code", "year", "indicator_code", "got"]].assign(want=expected[bad.index])
    # rates carry value = numerator / denominator, NULL on a zero denominator
    rates = targets[targets["denominator"].notna() & (targets["indicator_code"] != "ENF11")]
    for _, r in rates.iterrows():
        assert r["value"] == (r["numerator"] / r["denominator"] if r["denominator"] else None) or (
            r["denominator"] == 0 and pd.isna(r["value"])
        )


SEED_FIGURES = {
    "ENF01": 52, "ENF02": 16, "ENF03": 20, "ENF04": 6, "MED01": 320, "TRN01": 2, "TRN02": 68, "TRN03": 3,
    "TRN04": 12, "TRN05": 3, "TRN06": 2, "LIT01": 1, "OGI01": 6, "OGI02": 1, "OGI03": 200, "PUB01": 8000,
    "PUB02": 9, "PUB03": 5, "PUB04": 12, "PUB05": 4, "PUB06": 1,
}  # fmt: skip


def test_gongchuan_2023_reproduces_the_published_figures(sample):
    t = _targets(sample[0])
    g = t[(t["township_code"] == "350481101") & (t["year"] == 2023)].set_index("indicator_code")
    for code, value in SEED_FIGURES.items():
        assert g.loc[code, "value"] == value, code
    assert g.loc["OGI03", "qualifier"] == ">=" and g.loc["PUB01", "qualifier"] == ">="
    assert pd.isna(g.loc["LIT01", "qualifier"])
    assert (g.loc["ENF05", "numerator"], g.loc["ENF05", "denominator"]) == (26, 68)
    assert g.loc["ENF06", "value"] >= 1
    assert g.loc["ENF07", "value"] == 1.0 and g.loc["LIT02", "value"] == 1.0
    assert (g.loc["LIT02", "numerator"], g.loc["LIT02", "denominator"]) == (1, 1)
    assert 0.98 <= g.loc["MED02", "value"] < 0.99
    assert 0.90 <= g.loc["MED03", "value"] < 0.91


def test_custom_profile_is_reproduced(sample):
    t = _targets(sample[0])
    g = t[(t["township_code"] == "350481102") & (t["year"] == 2022)].set_index("indicator_code")
    assert g.loc["ENF01", "value"] == 80
    assert g.loc["TRN01", "value"] == 4
    assert g.loc["MED02", "numerator"] * 20 == g.loc["MED02", "denominator"] * 19  # exactly 0.95
    # the recomputation test above checks the files give the same figures
    g = t[(t["township_code"] == "350481204") & (t["year"] == 2023)].set_index("indicator_code")
    assert g.loc["ENF09", "numerator"] * 10 == g.loc["ENF09", "denominator"] * 9
    assert g.loc["ENF10", "value"] == 12345.5
    assert g.loc["ENF11", "value"] == 30.5
    assert g.loc["MED05", "numerator"] == g.loc["MED05", "denominator"] * 7.5
    assert g.loc["TRN07", "value"] == 0.75 and g.loc["TRN08", "value"] == 0.5 and g.loc["LIT02", "value"] == 0.5
    assert 0.8 <= g.loc["TRN09", "value"] < 0.85 and g.loc["ENF08", "value"] >= 0.9
    assert 0.6 <= g.loc["ENF05", "value"] < 0.7
    assert g.loc["MED04", "value"] >= 5 and pd.isna(g.loc["MED04", "qualifier"])
    assert g.loc["OGI01", "value"] == 30 and g.loc["OGI01", "qualifier"] == ">="


def test_same_seed_same_bytes_other_seed_differs(tmp_path, townships_csv):
    one = townships_csv.parent / "one.csv"
    df = pd.read_csv(townships_csv, dtype=str)
    df[df["code"].isin(["350481101", "350481204"])].to_csv(one, index=False)
    runs = []
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        generate_sample(tmp_path / name, seed=seed, townships_csv=one, years=(2023,))
        runs.append(
            {p.relative_to(tmp_path / name): p.read_bytes() for p in (tmp_path / name).rglob("*") if p.is_file()}
        )
    assert runs[0].keys() == runs[1].keys()
    for path in runs[0]:
        assert runs[0][path] == runs[1][path], path
    assert runs[0][Path("targets.json")] != runs[2][Path("targets.json")]
    assert runs[0][Path("enforcement/page-000001.json")] != runs[2][Path("enforcement/page-000001.json")]


def _id_ok(s: str) -> bool:
    weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    if not re.fullmatch(r"\d{17}[\dX]", s):
        return False
    birth = dt.datetime.strptime(s[6:14], "%Y%m%d")  # raises on an impossible birth date
    assert 1930 < birth.year < 2010
    return "10X98765432"[sum(int(c) * w for c, w in zip(s[:17], weights, strict=True)) % 11] == s[17]


def test_id_numbers_have_valid_check_digits(sample):
    out, _ = sample
    enf = _records(out, "enforcement")
    ids = list(enf.loc[enf["当事人类型"] == "个人", "证件号码"].dropna())
    ids += list(_records(out, "mediation")["证件号码"].dropna())
    trn = _training(out)
    ids += list(trn["a"]["身份证号"]) + list(trn["r"]["身份证号"])
    assert len(ids) > 1000
    assert all(_id_ok(s) for s in ids)
    assert all(s.startswith("350481") for s in ids)


def test_faulty_rows_present_as_listed_and_not_counted(sample):
    out, summary = sample
    faults = json.loads((out / "faults.json").read_text(encoding="utf-8"))
    assert faults == summary["faults"]
    assert sorted(f["source"] for f in faults) == ["enforcement"] * 3 + ["mediation"] * 3
    assert {f["rule"] for f in faults} == {"unknown-township", "invalid-date", "required-missing"}
    for f in faults:
        recs = json.loads((out / f["file"]).read_text(encoding="utf-8"))["records"]
        (rec,) = [r for r in recs if r["行为编号" if f["source"] == "enforcement" else "案件编号"] == f["id"]]
        assert rec[f["field"]] == f["value"]
        assert "350481101" in f["id"] or f["rule"] == "unknown-township"
    voided = _records(out, "enforcement")
    assert (voided["作废"] == "是").any()


def test_page_layout(sample):
    out, summary = sample
    pages = sorted((out / "enforcement").glob("page-*.json"))
    bodies = [json.loads(p.read_text(encoding="utf-8")) for p in pages]
    assert [b["page"] for b in bodies] == list(range(1, len(pages) + 1))
    assert all(b["total_pages"] == len(pages) and b["page_size"] == 500 for b in bodies)
    recs = [r for b in bodies for r in b["records"]]
    assert len(recs) == bodies[0]["total_records"] == summary["enforcement"]["records"]
    keys = [(r["更新时间"], r["行为编号"]) for r in recs]
    assert keys == sorted(keys)
    assert len({r["行为编号"] for r in recs}) == len(recs)


PROFILES = [
    ("township: 不存在镇\n    year: 2023\n    values: {ENF01: 3}", "不存在镇", "未知乡镇"),
    ("township: 贡川镇\n    year: 2023\n    values: {XYZ99: 3}", "XYZ99", "未知指标代码"),
    ("township: 贡川镇\n    year: 2030\n    values: {ENF01: 3}", "2030", "年份不在生成范围"),
    ("township: 贡川镇\n    year: 2023\n    values: {MED02: 1.5}", "MED02", "比率须在0到1之间"),
    ("township: 贡川镇\n    year: 2023\n    values: {ENF03: 60}", "ENF03", "子项不能大于总数 ENF01"),
    ("township: 贡川镇\n    year: 2023\n    values: {ENF04: 17}", "ENF04", "子项不能大于总数 ENF02"),
    ("township: 贡川镇\n    year: 2023\n    values: {TRN01: 0}", "TRN01", "TRN01为0时不能有专题培训人次"),
    ("township: 贡川镇\n    year: 2023\n    values: {MED03: [0.95, 0.9]}", "MED03", "区间下限须小于上限"),
    ("township: 贡川镇\n    year: 2023\n    values: {ENF05: 0.5}", "ENF05", "派生指标与分项矛盾"),
    ("township: 贡川镇\n    year: 2023\n    values: {ENF01: many}", "ENF01", "数值类型不对"),
    ("township: 贡川镇\n    year: 2023\n    values: {ENF01: 3.5}", "ENF01", "数值类型不对"),
    ("township: 贡川镇\n    year: 2023\n    values: {ENF07: 0.3}", "ENF07", "无法由分母ENF02=16的整数比得到"),
    ("township: 贡川镇\n    year: 2023\n    values: {ENF02: 0, ENF04: 0}", "ENF02", "分母ENF02为0"),
    ("township: 贡川镇\n    year: 2023\n    values: {MED04: 400}", "MED04", "子项不能大于总数 MED01"),
]


@pytest.mark.parametrize(("entry", "names", "reason"), PROFILES)
def test_impossible_profiles_are_refused(tmp_path, entry, names, reason):
    path = tmp_path / "bad.yaml"
    path.write_text("targets:\n  - township: 安砂镇\n    year: 2022\n    values: {ENF01: 40}\n  - " + entry + "\n")
    with pytest.raises(CalibrationError) as exc:
        load_profile(path, read_townships(None), years=(2022, 2023, 2024))
    msg = str(exc.value)
    assert msg.startswith("校准文件第2项(")
    assert names in msg and reason in msg
    assert " / " in msg  # Chinese first, then English


def test_refused_profile_writes_nothing(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("targets:\n  - township: 贡川镇\n    year: 2023\n    values: {ENF07: 0.3}\n")
    with pytest.raises(CalibrationError, match=r"贡川镇 2023 ENF07"):
        generate_sample(tmp_path / "out", calibration=path)
    assert not (tmp_path / "out").exists()
