"""Every validation rule, one breaking row each (issue 4).

Row-level rules: a valid base row of the mini county is changed to break exactly that rule and
the table is validated with expectations.validate.validate_table (GX, no database): the
failure names the rule and carries the suite's Chinese and English message. The unchanged
rows pass. Warn rules report without quarantining. Batch-level rules stop the source: the
published data of that source is unchanged while another source still loads.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from expectations.validate import load_suite_doc, validate_table
from tests.conftest import make_mini_home, query, run_steps
from tests.fixtures import mini

TABLES = (
    "enforcement_act",
    "mediation_case",
    "training_session",
    "training_attendance",
    "training_staff",
    "annual_return_item",
)
PARAMS = {"township_codes": [mini.A, mini.B], "first_year": 2022, "last_year": 2026}
BAD_TOWNSHIP = {"division_code": "350481999", "township_code": "350481999"}


@pytest.fixture(scope="module")
def frames(tmp_path_factory) -> dict[str, pd.DataFrame]:
    """The mini county's parsed tables, faulty fixture rows removed: every row is valid."""
    from warehouse.sources.landing import delivered_files, land
    from warehouse.sources.parse import parser_for

    root = tmp_path_factory.mktemp("rules")
    mini.build(root)
    kinds = {"enforcement": "json_pages", "mediation": "json_pages", "training": "xlsx", "returns": "xlsx"}
    out = {}
    for source, kind in kinds.items():
        batch = land(source, delivered_files(root / source, kind), root / "landing", {})
        out |= parser_for(source)(batch, b"test-key-not-secret")
    out["enforcement_act"] = out["enforcement_act"][~out["enforcement_act"]["act_id"].str.startswith("X", na=True)]
    out["mediation_case"] = out["mediation_case"][~out["mediation_case"]["case_id"].str.startswith("X")]
    out["training_attendance"] = out["training_attendance"][out["training_attendance"]["session_found"]]
    return {t: df.reset_index(drop=True) for t, df in out.items()}


def _messages(table: str) -> dict[str, tuple[str, str, str]]:
    return {
        e["meta"]["rule"]: (e["meta"]["level"], e["meta"]["message_zh"], e["meta"]["message_en"])
        for e in load_suite_doc(table)["expectations"]
    }


# (table, base row: column=value that picks it, changes, rule). "DUP" repeats the base row.
CASES = [
    ("enforcement_act", "act_id=P1", {"act_id": None}, "ENF-R01"),
    ("enforcement_act", "act_id=P1", "DUP", "ENF-R02"),
    ("enforcement_act", "act_id=P1", {"act_type": None}, "ENF-R03"),
    ("enforcement_act", "act_id=P1", {"act_type": "巡查"}, "ENF-R04"),
    ("enforcement_act", "act_id=P1", {"division_code": None}, "ENF-R05"),
    ("enforcement_act", "act_id=P1", {"division_code": "35048110"}, "ENF-R06"),
    ("enforcement_act", "act_id=P1", BAD_TOWNSHIP, "ENF-R07"),
    ("enforcement_act", "act_id=P1", {"acting_body_name": None}, "ENF-R08"),
    ("enforcement_act", "act_id=E1", {"inspection_date": None}, "ENF-R09"),
    ("enforcement_act", "act_id=E1", {"inspection_date": "2023-02-30"}, "ENF-R10"),
    ("enforcement_act", "act_id=P1", {"filed_date": None}, "ENF-R11"),
    ("enforcement_act", "act_id=P1", {"filed_date": "2023/01/10"}, "ENF-R12"),
    ("enforcement_act", "act_id=P1", {"decision_date": None}, "ENF-R13"),
    ("enforcement_act", "act_id=P1", {"decision_date": "20230120"}, "ENF-R14"),
    ("enforcement_act", "act_id=P1", {"decision_number": None}, "ENF-R15"),
    ("enforcement_act", "act_id=P1", {"is_not_penalised": None}, "ENF-R16"),
    ("enforcement_act", "act_id=P1", {"is_not_penalised": "Y"}, "ENF-R17"),
    ("enforcement_act", "act_id=P1", {"legal_review_date": "2023-13-01"}, "ENF-R18"),
    ("enforcement_act", "act_id=P1", {"closed_date": "2023-02-31"}, "ENF-R19"),
    ("enforcement_act", "act_id=P1", {"published_date": "昨天"}, "ENF-R20"),
    ("enforcement_act", "act_id=P1", {"decision_date": "2023-01-05"}, "ENF-R21"),
    ("enforcement_act", "act_id=P1", {"closed_date": "2023-01-15"}, "ENF-R22"),
    ("enforcement_act", "act_id=P1", {"published_date": "2023-01-19"}, "ENF-R23"),
    ("enforcement_act", "act_id=P1", {"fine_amount_yuan": -1.0}, "ENF-R24"),
    ("enforcement_act", "act_id=P1", {"confiscated_amount_yuan": 2e8}, "ENF-R25"),
    ("enforcement_act", "act_id=P1", {"is_not_penalised": "是"}, "ENF-R26"),  # waived, but fined 500
    ("enforcement_act", "act_id=P1", {"officer_count": 0}, "ENF-R28"),
    ("enforcement_act", "act_id=P1", {"entry_channel": None}, "ENF-R29"),
    ("enforcement_act", "act_id=P1", {"entry_channel": "手工"}, "ENF-R30"),
    ("enforcement_act", "act_id=P1", {"is_voided": None}, "ENF-R31"),
    ("enforcement_act", "act_id=P1", {"is_voided": "N"}, "ENF-R32"),
    ("enforcement_act", "act_id=P1", {"source_modified_at": None}, "ENF-R33"),
    ("enforcement_act", "act_id=P1", {"source_modified_at": "2024-01-05"}, "ENF-R34"),
    ("enforcement_act", "act_id=P1", {"is_legal_reviewed": "Y"}, "ENF-R35"),
    ("enforcement_act", "act_id=P1", {"penalty_kinds": ["罚款", "打板子"]}, "ENF-R36"),
    ("enforcement_act", "act_id=P1", {"is_legal_reviewed": None}, "ENF-R37"),
    ("enforcement_act", "act_id=P1", {"is_major_case": "Y"}, "ENF-R38"),
    ("enforcement_act", "act_id=P1", {"is_collective_decision": "N"}, "ENF-R39"),
    ("enforcement_act", "act_id=P1", {"closed_date": "2023-01-05"}, "ENF-R40"),
    # dated after the pull's clock (here: now, expectations/clock.py)
    ("enforcement_act", "act_id=P1", {"source_modified_at": "2099-12-31 23:59:59"}, "ENF-R41"),
    ("enforcement_act", "act_id=E1", {"inspection_date": "2099-03-06"}, "ENF-R42"),
    ("enforcement_act", "act_id=P1", {"filed_date": "2099-01-10"}, "ENF-R43"),
    ("enforcement_act", "act_id=P1", {"legal_review_date": "2099-01-18"}, "ENF-R44"),
    ("enforcement_act", "act_id=P1", {"decision_date": "2099-01-20"}, "ENF-R45"),
    ("enforcement_act", "act_id=P1", {"closed_date": "2099-02-10"}, "ENF-R46"),
    ("enforcement_act", "act_id=P1", {"published_date": "2099-02-01"}, "ENF-R47"),
    # a field of the wrong JSON type (warehouse/sources/json_pages.py: the value is dropped, the column named)
    ("enforcement_act", "act_id=P1", {"penalty_kinds": None, "_type_errors": "penalty_kinds"}, "ENF-R48"),
    ("enforcement_act", "act_id=P1", {"_type_errors": "officer_certificate_keys"}, "ENF-R49"),
    ("enforcement_act", "act_id=P1", {"fine_amount_yuan": None, "_type_errors": "fine_amount_yuan"}, "ENF-R50"),
    ("enforcement_act", "act_id=P1", {"_type_errors": "party_id_key confiscated_amount_yuan"}, "ENF-R51"),
    ("enforcement_act", "act_id=P1", {"_type_errors": "party_id_key confiscated_amount_yuan"}, "ENF-R52"),
    ("mediation_case", "case_id=M1", {"case_id": None}, "MED-R01"),
    ("mediation_case", "case_id=M1", "DUP", "MED-R02"),
    ("mediation_case", "case_id=M1", {"accepted_date": None}, "MED-R03"),
    ("mediation_case", "case_id=M1", {"accepted_date": "2023-02-30"}, "MED-R04"),
    ("mediation_case", "case_id=M1", {"division_code": None}, "MED-R05"),
    ("mediation_case", "case_id=M1", {"division_code": "3504811"}, "MED-R06"),
    ("mediation_case", "case_id=M1", BAD_TOWNSHIP, "MED-R07"),
    ("mediation_case", "case_id=M1", {"dispute_type": None}, "MED-R08"),
    ("mediation_case", "case_id=M1", {"dispute_type": "吵架"}, "MED-R09"),
    ("mediation_case", "case_id=M1", {"persons_involved": None}, "MED-R10"),
    ("mediation_case", "case_id=M1", {"persons_involved": 0.0}, "MED-R11"),
    ("mediation_case", "case_id=M1", {"is_joint_mediation": "Y"}, "MED-R12"),
    ("mediation_case", "case_id=M1", {"outcome": None}, "MED-R13"),
    ("mediation_case", "case_id=M1", {"outcome": "和解"}, "MED-R14"),
    ("mediation_case", "case_id=M1", {"concluded_date": "2023-02-30"}, "MED-R15"),
    ("mediation_case", "case_id=M1", {"concluded_date": None}, "MED-R16"),
    ("mediation_case", "case_id=M1", {"concluded_date": "2023-01-01"}, "MED-R17"),
    ("mediation_case", "case_id=M1", {"agreement_form": None}, "MED-R18"),  # successful, no agreement
    ("mediation_case", "case_id=M1", {"agreement_form": "电子"}, "MED-R19"),
    ("mediation_case", "case_id=M1", {"performance_status": None}, "MED-R20"),
    ("mediation_case", "case_id=M1", {"performance_status": "履行中"}, "MED-R21"),
    ("mediation_case", "case_id=M1", {"agreement_amount_yuan": -5.0}, "MED-R22"),
    ("mediation_case", "case_id=M1", {"is_voided": None}, "MED-R23"),
    ("mediation_case", "case_id=M1", {"is_voided": "x"}, "MED-R24"),
    ("mediation_case", "case_id=M1", {"source_modified_at": None}, "MED-R25"),
    ("mediation_case", "case_id=M1", {"source_modified_at": "2024/01/05 10:00:00"}, "MED-R26"),
    ("mediation_case", "case_id=M1", {"mediation_body": None}, "MED-R27"),
    ("mediation_case", "case_id=M1", {"is_joint_mediation": None}, "MED-R28"),
    ("mediation_case", "case_id=M1", {"is_judicially_confirmed": "x"}, "MED-R29"),
    ("mediation_case", "case_id=M1", {"follow_up_date": "2023-02-30"}, "MED-R30"),
    ("mediation_case", "case_id=M4", {"concluded_date": "2023-06-01"}, "MED-R31"),  # still 在办
    ("mediation_case", "case_id=M1", {"source_modified_at": "2099-01-05 10:00:00"}, "MED-R32"),
    ("mediation_case", "case_id=M1", {"accepted_date": "2099-02-01"}, "MED-R33"),
    ("mediation_case", "case_id=M1", {"concluded_date": "2099-02-11"}, "MED-R34"),
    ("mediation_case", "case_id=M1", {"persons_involved": None, "_type_errors": "persons_involved"}, "MED-R35"),
    ("mediation_case", "case_id=M1", {"_type_errors": "agreement_amount_yuan"}, "MED-R36"),
    ("mediation_case", "case_id=M1", {"_type_errors": "dispute_type"}, "MED-R37"),
    ("training_session", "session_id=S1", {"session_id": None}, "TRS-R01"),
    ("training_session", "session_id=S1", "DUP", "TRS-R02"),
    ("training_session", "session_id=S1", {"township_code": "350481999"}, "TRS-R03"),
    ("training_session", "session_id=S1", {"session_date": None}, "TRS-R04"),
    ("training_session", "session_id=S1", {"session_date": "2023-02-30"}, "TRS-R05"),
    ("training_session", "session_id=S1", {"session_type": None}, "TRS-R06"),
    ("training_session", "session_id=S1", {"session_type": "茶话会"}, "TRS-R07"),
    ("training_session", "session_id=S1", {"hours": None}, "TRS-R08"),
    ("training_session", "session_id=S1", {"hours": 200.0}, "TRS-R09"),
    ("training_session", "session_id=S1", {"hours": None, "_unreadable_hours": "两小时"}, "TRS-R10"),
    ("training_session", "session_id=S1", {"session_date": "2032-03-29"}, "TRS-R11"),
    ("training_attendance", "session_id=S2", {"session_id": None}, "TRA-R01"),
    ("training_attendance", "session_id=S2", {"session_found": False}, "TRA-R02"),  # no such session
    ("training_attendance", "session_id=S2", {"person_key": None}, "TRA-R03"),
    ("training_attendance", "session_id=S2", "DUP", "TRA-R04"),
    ("training_attendance", "session_id=S2", {"is_passed": "x"}, "TRA-R05"),
    ("training_attendance", "session_id=S2", {"test_score": 151.0}, "TRA-R06"),
    ("training_attendance", "session_id=S2", {"is_officer": "x"}, "TRA-R07"),
    ("training_attendance", "session_id=S2", {"is_leading_cadre": "x"}, "TRA-R08"),
    ("training_attendance", "session_id=S2", {"township_code": "350481999"}, "TRA-R09"),
    ("training_attendance", "session_id=S2", {"test_score": None, "_unreadable_test_score": "优"}, "TRA-R10"),
    ("training_staff", "is_officer=是", {"person_key": None}, "TRP-R01"),
    ("training_staff", "is_officer=是", "DUP", "TRP-R02"),
    ("training_staff", "is_officer=是", {"is_officer": "x"}, "TRP-R03"),
    ("training_staff", "is_officer=是", {"certificate_valid_until": "2025-13-01"}, "TRP-R04"),
    ("training_staff", "is_officer=是", {"township_code": "350481999"}, "TRP-R06"),
    ("annual_return_item", "item_code=LIT01", {"item_code": None}, "RET-R01"),
    ("annual_return_item", "item_code=LIT01", {"item_code": "XYZ01"}, "RET-R02"),
    ("annual_return_item", "item_code=LIT01", {"township_code": "350481999"}, "RET-R03"),
    ("annual_return_item", "item_code=LIT01", "DUP", "RET-R04"),
    ("annual_return_item", "item_code=LIT01", {"value_number": None}, "RET-R05"),
    ("annual_return_item", "item_code=LIT01", {"value_number": -1.0}, "RET-R06"),
    ("annual_return_item", "item_code=LIT01", {"value_number": None, "_unreadable_value_number": "若干"}, "RET-R07"),
]
WARN_CASES = [
    ("enforcement_act", "act_id=P1", {"officer_count": 1}, "ENF-R27"),  # one officer: loads, ENF09 counts it
    ("training_staff", "is_officer=是", {"certificate_key": None}, "TRP-R05"),
]


# The column that identifies a case's row: each case gets its own value, so that the cases of a
# table can share one validation run without tripping the uniqueness rules of one another.
CASE_ID = {
    "enforcement_act": "act_id",
    "mediation_case": "case_id",
    "training_session": "session_id",
    "training_attendance": "person_key",
    "training_staff": "person_key",
    "annual_return_item": "report_year",
}


@pytest.fixture(scope="module")
def broken(frames) -> dict:
    """Per table: the valid rows plus one broken copy of a base row per case (two copies for a
    repeated-id case). Returns table -> (frame, case rule -> positions, valid rows)."""
    out = {}
    for table in TABLES:
        df = frames[table]
        rows, positions = [], {}
        for n, (t, where, change, rule) in enumerate(CASES + WARN_CASES):
            if t != table:
                continue
            col, value = where.split("=")
            base = df[df[col] == value].iloc[0].copy()
            ident = CASE_ID[table]
            base[ident] = 9000 + n if ident == "report_year" else f"case-{n}"
            start = len(df) + len(rows)
            if change == "DUP":
                rows += [base, base.copy()]
                positions[rule] = {start, start + 1}
            else:
                for k, v in change.items():
                    base[k] = v
                rows.append(base)
                positions[rule] = {start}
        out[table] = (pd.concat([df, pd.DataFrame(rows)], ignore_index=True), positions, len(df))
    return out


@pytest.fixture(scope="module")
def validated(broken) -> dict:
    """Per table: (validation of the broken frame, case rule -> positions, valid rows)."""
    return {t: (validate_table(t, data, PARAMS), positions, n) for t, (data, positions, n) in broken.items()}


@pytest.mark.parametrize("table", TABLES)
def test_rules_judged_on_distinct_values_give_what_every_row_gives(broken, table, monkeypatch):
    """Row-wise rules run on the distinct value combinations (expectations/validate.py
    _distinct); failures and counts map back to every row sharing a failing combination."""
    from expectations import validate

    data, _, _ = broken[table]
    data = pd.concat([data, data.iloc[len(data) // 2 :]], ignore_index=True)  # broken rows twice
    on_distinct = validate_table(table, data, PARAMS)
    monkeypatch.setattr(validate, "_row_wise", lambda table, part: False)
    on_every_row = validate_table(table, data, PARAMS)
    pd.testing.assert_frame_equal(on_distinct.results, on_every_row.results)
    pd.testing.assert_frame_equal(
        on_distinct.failures.sort_values(["_row", "rule"]).reset_index(drop=True),
        on_every_row.failures.sort_values(["_row", "rule"]).reset_index(drop=True),
    )
    assert (on_distinct.results["unexpected_count"] >= 2).any()  # a failing value shared by two rows
    assert (on_distinct.results["element_count"] == len(data)).any()


def test_every_row_and_warn_rule_has_a_case():
    tested = {c[3] for c in CASES + WARN_CASES}
    for table in TABLES:
        rules = {r for r, (level, _, _) in _messages(table).items() if level in ("row", "warn")}
        assert rules <= tested, f"{table}: no breaking row for {sorted(rules - tested)}"


@pytest.mark.parametrize("table", TABLES)
def test_valid_rows_pass_and_every_rule_is_evaluated(frames, validated, table):
    v = validate_table(table, frames[table], PARAMS)
    assert v.failures.empty and not v.batch_errors
    assert set(v.results["rule"]) == set(_messages(table))  # no expectation silently dropped
    assert v.results.loc[v.results["level"] != "warn", "success"].all()
    # and with the broken rows beside them, the valid rows still pass
    v, _, n_valid = validated[table]
    assert not (v.failures["_row"] < n_valid).any()


@pytest.mark.parametrize("table, where, change, rule", CASES, ids=[c[3] for c in CASES])
def test_row_breaking_a_rule_is_quarantined_with_its_message(validated, table, where, change, rule):
    v, positions, _ = validated[table]
    for pos in positions[rule]:
        failing = v.failures[v.failures["_row"] == pos]
        assert rule in set(failing["rule"]), f"{rule} did not fire: {failing['rule'].tolist()}"
        _, zh, en = _messages(table)[rule]
        got = failing[failing["rule"] == rule].iloc[0]
        assert (got["message_zh"], got["message_en"]) == (zh, en)
    assert {e["rule"] for e in v.batch_errors} <= {"BATCH-FAILING-ROWS"}  # many broken rows in one frame


@pytest.mark.parametrize("table, where, change, rule", WARN_CASES, ids=[c[3] for c in WARN_CASES])
def test_warn_rule_reports_without_quarantining(validated, table, where, change, rule):
    v, positions, _ = validated[table]
    (pos,) = positions[rule]
    assert v.failures[v.failures["_row"] == pos].empty
    res = v.results.set_index("rule").loc[rule]
    assert res["level"] == "warn" and not res["success"] and res["unexpected_count"] >= 1


def test_empty_batch_stops(frames):
    v = validate_table("training_session", frames["training_session"].iloc[0:0], PARAMS)
    assert [e["rule"] for e in v.batch_errors] == ["TRS-B01"]


def test_full_extract_far_smaller_than_the_previous_one_stops(frames):
    from expectations.validate import min_full_extract_rows

    df = frames["enforcement_act"]  # 9 rows
    v = validate_table("enforcement_act", df, PARAMS, previous_full_rows=100)
    (err,) = v.batch_errors
    assert err["rule"] == "ENF-B02" and "9" in err["message_zh"] and "100" in err["message_en"]
    doc = load_suite_doc("enforcement_act")
    assert doc["meta"]["min_full_extract_fraction"] == 0.5
    assert min_full_extract_rows(doc, 18) == 9  # 9 of 18 is not "far smaller"
    assert min_full_extract_rows(doc, None) == 0  # incremental pull or no previous full extract


def test_most_rows_failing_stops_a_full_extract_or_a_batch_large_enough_to_judge(frames):
    df = frames["training_session"].assign(township_code="350481999")  # a few rows, every one failing
    assert len(df) < load_suite_doc("training_session")["meta"]["failing_fraction_min_rows"]
    v = validate_table("training_session", df, PARAMS, full_extract=True)
    assert [e["rule"] for e in v.batch_errors] == ["BATCH-FAILING-ROWS"] and "全量导出" in v.batch_errors[0][
        "message_zh"
    ]
    # the same few rows as an incremental batch say nothing about the export: quarantined one by one
    v = validate_table("training_session", df, PARAMS)
    assert v.batch_errors == [] and v.failing_rows == set(range(len(df)))
    big = pd.concat([df] * 20, ignore_index=True).assign(session_id=lambda d: [f"S{i}" for i in range(len(d))])
    v = validate_table("training_session", big, PARAMS)
    assert [e["rule"] for e in v.batch_errors] == ["BATCH-FAILING-ROWS"] and f"of {len(big)} rows" in (
        v.batch_errors[0]["message_en"]
    )


# ---- through the pipeline: quarantine entries, and batch-level stops ------------------------------


def _page(home: Path, source: str, records: list[dict], n: int, replace: bool = False) -> None:
    directory = home / "data" / source
    if replace:
        for p in directory.glob("*.json"):
            p.unlink()
    doc = {"source": source, "page": n, "page_size": 100, "total_records": len(records), "total_pages": 1}
    (directory / f"page-{n:06d}.json").write_text(json.dumps(doc | {"records": records}, ensure_ascii=False))


def _acts(prefix: str, n: int) -> list[dict]:
    return [
        mini._act(f"{prefix}{i}", "检查", mini.A, 检查时间=f"2023-11-0{1 + i % 9}", modified="2024-03-01 00:00:00")
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def base_home(tmp_path_factory) -> Path:
    home = make_mini_home(tmp_path_factory.mktemp("base") / "home")
    run_steps(home)
    return home


@pytest.fixture
def home(base_home, tmp_path) -> Path:
    target = tmp_path / "home"
    shutil.copytree(base_home, target, symlinks=True)
    return target


def test_broken_rows_load_into_quarantine_with_key_and_correct_rows_load(home):
    bad = {
        "Q04": {"行为类型": "巡查"},
        "Q21": {"行为类型": "处罚", "立案日期": "2023-05-10", "决定日期": "2023-05-01", "决定书文号": "x",
                "不予处罚": "否", "是否法制审核": "是"},
        "Q36": {"行为类型": "处罚", "立案日期": "2023-05-01", "决定日期": "2023-05-10", "决定书文号": "x",
                "不予处罚": "否", "是否法制审核": "是", "处罚种类": ["打板子"]},
        "Q26": {"行为类型": "处罚", "立案日期": "2023-05-01", "决定日期": "2023-05-10", "决定书文号": "x",
                "不予处罚": "是", "是否法制审核": "是", "罚款金额": 100},
    }  # fmt: skip
    expected = {"Q04": "ENF-R04", "Q21": "ENF-R21", "Q36": "ENF-R36", "Q26": "ENF-R26"}
    records = [
        mini._act(k, "检查", mini.A, 检查时间="2023-11-01", modified="2024-03-01 00:00:00") | v for k, v in bad.items()
    ]
    _page(home, "enforcement", records + _acts("OK", 6), 9)
    run = run_steps(home)
    assert run.outcomes["enforcement"].status == "loaded"
    assert run.outcomes["enforcement"].quarantined_rows == 4 and run.outcomes["enforcement"].loaded_rows == 6
    published = run.settings.published_db
    q = query(
        published,
        "select business_key, rules, message_zh, message_en, source_file, row_number from audit.quarantine "
        "where batch_id = ?",
        [run.outcomes["enforcement"].batch_id],
    )
    got = {k: (rules, zh, en, f, n) for k, rules, zh, en, f, n in q}
    msgs = _messages("enforcement_act")
    for key, rule in expected.items():
        rules, zh, en, f, n = got[key]
        assert rule in rules and msgs[rule][1] in zh and msgs[rule][2] in en and f == "page-000009.json"
    assert got["Q21"][4] == 2  # second record of the page
    loaded = {r[0] for r in query(published, "select act_id from core.enforcement_act where act_id like 'OK%'")}
    assert loaded == {f"OK{i}" for i in range(6)}


def _stop_shrunk_full_extract(home):
    _page(home, "enforcement", _acts("T", 2), 1, replace=True)  # a whole new extract: 2 rows instead of 12
    return "ENF-B02", "全量导出"


def _stop_most_rows_failing(home):
    """An incremental batch large enough to judge (25 rows), every row with an unknown township."""
    _page(home, "enforcement", [r | {"行政区划代码": "350481999"} for r in _acts("F", 25)], 9)
    return "BATCH-FAILING-ROWS", "未通过校验"


def _stop_schema_drift(home):
    _page(
        home,
        "enforcement",
        [{("行为种类" if k == "行为类型" else k): v for k, v in r.items()} for r in _acts("D", 3)],
        9,
    )
    return "schema-drift", "行为类型"


def _stop_empty_batch(home):
    _page(home, "enforcement", [], 9)
    return "ENF-B01", "没有任何记录"


@pytest.mark.parametrize(
    "make_batch", [_stop_shrunk_full_extract, _stop_most_rows_failing, _stop_schema_drift, _stop_empty_batch]
)
def test_batch_rule_stops_the_source_and_others_still_load(home, make_batch):
    published = home / "published" / "fazhi.duckdb"
    enf_before = query(published, "select * from core.enforcement_act order by all")
    rule, words = make_batch(home)
    correction = mini.mediation_records()[0][0] | {"案件编号": "M10", "更新时间": "2024-03-01 00:00:00"}
    _page(home, "mediation", [correction], 9)

    run = run_steps(home)
    prep = run.prepared["enforcement"]
    assert run.outcomes["enforcement"].status == "stopped" and prep.stop_rule == rule and words in prep.stop_zh
    assert query(published, "select * from core.enforcement_act order by all") == enf_before
    status, message = query(
        published,
        "select status, message_zh from audit.batch where source = 'enforcement' order by loaded_at desc limit 1",
    )[0]
    assert status == "stopped" and words in message
    assert run.outcomes["mediation"].status == "loaded"
    assert query(published, "select count(*) from core.mediation_case where case_id = 'M10'")[0][0] == 1


def _latest(home: Path, source: str) -> tuple[str, str]:
    return query(
        home / "work.duckdb",
        "select batch_id, status from audit.batch where source = ? order by loaded_at desc limit 1",
        [source],
    )[0]


def test_an_accepted_smaller_full_extract_becomes_the_size_later_extracts_are_compared_with(home, capsys):
    """`fazhi accept-extract`: the stopped extract's size replaces the reference (12 rows) for
    rule ENF-B02, so it loads next run; one far smaller than it (1 of 4) still stops."""
    from flows.cli import main

    accept = ["accept-extract", "--source", "enforcement", "--home", str(home), "--by", "县司法局 王"]
    assert main([*accept, "--reason", "迁移 / moved"]) == 2  # nothing stopped yet
    assert "no stopped batch" in capsys.readouterr().err

    _page(home, "enforcement", _acts("T", 4), 1, replace=True)  # the platform now holds 4 acts
    run = run_steps(home)
    assert (
        run.prepared["enforcement"].stop_rule == "ENF-B02" and "accept-extract" in run.prepared["enforcement"].stop_en
    )
    stopped, _ = _latest(home, "enforcement")
    assert main([*accept, "--reason", " "]) == 2  # a reason is required
    assert "--reason" in capsys.readouterr().err

    assert main([*accept, "--reason", "执法事项划转 / acts moved to another platform"]) == 0
    out = capsys.readouterr().out
    assert stopped in out and "enforcement_act: 4 行 / rows (此前参照 / reference until now: 12)" in out
    assert query(home / "work.duckdb", "select batch_id, source, accepted_by from audit.extract_acceptance") == [
        (stopped, "enforcement", "县司法局 王")
    ]
    assert main([*accept, "--batch", stopped, "--reason", "again"]) == 2
    assert "already accepted" in capsys.readouterr().err

    run = run_steps(home)  # the same 4-act extract lands again and now loads
    assert run.outcomes["enforcement"].status == "loaded" and run.outcomes["enforcement"].loaded_rows == 4
    published = home / "published" / "fazhi.duckdb"
    assert {r[0] for r in query(published, "select act_id from core.enforcement_act where act_id like 'T%'")} == {
        "T0", "T1", "T2", "T3"
    }  # fmt: skip

    _page(home, "enforcement", _acts("U", 1), 1, replace=True)  # 1 act: less than half of 4
    run = run_steps(home)
    assert run.prepared["enforcement"].stop_rule == "ENF-B02" and "(4 rows)" in run.prepared["enforcement"].stop_en


def test_only_a_full_extract_stopped_for_its_size_can_be_accepted(home, capsys):
    from flows.cli import main

    rule, _ = _stop_most_rows_failing(home)  # one new page: an incremental batch, most rows failing
    run = run_steps(home)
    assert run.prepared["enforcement"].stop_rule == rule
    stopped, status = _latest(home, "enforcement")
    assert status == "stopped"
    code = main(["accept-extract", "--source", "enforcement", "--reason", "x", "--home", str(home)])
    assert code == 2 and f"batch {stopped} is not a full extract stopped as far smaller" in capsys.readouterr().err
    assert query(home / "work.duckdb", "select count(*) from audit.extract_acceptance") == [(0,)]
    assert main(["accept-extract", "--source", "nosuch", "--reason", "x", "--home", str(home)]) == 2


# ---- row-level truth for small batches; a stopped batch still names its rows (issue 17) ---------

FAZHI = str(Path(sys.executable).with_name("fazhi"))


def _quarantine_cli(home: Path, *args: str) -> list[dict]:
    """`fazhi quarantine --format json` as a user runs it (the installed console script)."""
    done = subprocess.run(
        [FAZHI, "quarantine", "--home", str(home), "--format", "json", *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)


def test_a_small_incremental_batch_quarantines_its_failing_row_and_is_not_stopped(home):
    """One re-delivered record with the date 2024-10-32: the row is quarantined with its rule,
    the batch loads (it is not "most of the export failing")."""
    bad = mini._act("Q1032", "检查", mini.A, 检查时间="2024-10-32", modified="2024-11-01 00:00:00")
    _page(home, "enforcement", [bad], 9)
    run = run_steps(home)
    outcome = run.outcomes["enforcement"]
    assert (outcome.status, outcome.received_rows, outcome.loaded_rows, outcome.quarantined_rows) == ("loaded", 1, 0, 1)
    (entry,) = [e for e in _quarantine_cli(home, "--source", "enforcement") if e["business_key"] == "Q1032"]
    assert "ENF-R10" in entry["rules"] and entry["source_file"] == "page-000009.json" and entry["row_number"] == 1
    assert entry["batch_status"] == "loaded" and "检查时间" in entry["message_zh"]


def test_a_stopped_batch_lists_its_failing_rows_in_quarantine_and_report_once(home):
    from warehouse.db import open_work_db
    from warehouse.reports.validation import collect

    bad = [r | {"行政区划代码": "350481999"} for r in _acts("F", 20)]
    _page(home, "enforcement", bad + _acts("OK", 5), 9)  # 20 of 25 rows fail: stopped
    run = run_steps(home)
    assert run.outcomes["enforcement"].status == "stopped" and run.prepared["enforcement"].stop_rule == (
        "BATCH-FAILING-ROWS"
    )
    assert run.outcomes["enforcement"].quarantined_rows == 20
    listed = [e for e in _quarantine_cli(home, "--source", "enforcement") if e["business_key"].startswith("F")]
    assert sorted(e["business_key"] for e in listed) == sorted(f"F{i}" for i in range(20))
    assert all(e["batch_status"] == "stopped" and "ENF-R07" in e["rules"] for e in listed)
    table = subprocess.run(
        [FAZHI, "quarantine", "--home", str(home), "--source", "enforcement"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "[整批已停止 / batch stopped]" in table and "F19" in table
    con = open_work_db(home / "work.duckdb")
    try:
        report = collect(con, "run-test", {})
    finally:
        con.close()
    assert {e["business_key"] for e in report.entries if e["rule"] == "ENF-R07"} >= {f"F{i}" for i in range(20)}

    run_steps(home)  # the stopped batch is delivered again, still failing: listed once, not twice
    assert len([e for e in _quarantine_cli(home, "--source", "enforcement") if e["business_key"].startswith("F")]) == 20

    _page(home, "enforcement", [r | {"行政区划代码": mini.A} for r in bad] + _acts("OK", 5), 9)  # corrected
    run = run_steps(home)
    assert run.outcomes["enforcement"].status == "loaded" and run.outcomes["enforcement"].loaded_rows == 25
    assert [e for e in _quarantine_cli(home, "--source", "enforcement") if e["business_key"].startswith("F")] == []
