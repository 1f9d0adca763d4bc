"""Hostile and broken HTTP sources (issue 16): each case against a hostile server on loopback
(tests/hostile_source.py), after a clean first night.

Every case runs a second night in a copy of the clean first night's home, with enforcement
pulled from the hostile server and mediation from the simulator (three late corrections): the
hostile input fails its own source by name, or its records are quarantined by rule; mediation
still loads; and the published figures equal those of the same night with a clean enforcement
source (where the hostile input is refused). The pipeline steps run without Prefect
(test_connectors.run_all); one nightly flow under the session's Prefect harness shows loads
not waiting for a stuck source. Finally, no value planted in the hostile input is found in a
manifest, a log record, a message, the warehouse or the Prefect database.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
from pathlib import Path

import pytest

from expectations.validate import load_suite_doc
from tests.conftest import query
from tests.fixtures import mini
from tests.hostile_source import HostileSource, gzip_bomb
from tests.integration.test_connectors import MART, TOKEN, http_home, run_all
from warehouse.config import HttpOptions
from warehouse.demo.simulator import Simulator
from warehouse.sources.http import HttpPuller
from warehouse.sources.mapping import SourceError

# values planted in the hostile input: none may leave the landing zone's page files
PLANTED_ID = "11010519491231002X"
PLANTED_PHONE = "13700009999"
PLANTED_NAME = "司马懿然"
PLANTED = (PLANTED_ID, PLANTED_PHONE, PLANTED_NAME)
LATER = "2024-01-06 09:00:00"  # after the first night's watermark (2024-01-05 10:00:00)
WATERMARK_ONE = "2024-01-05 10:00:00"
FAST = {"page_size": 5, "read_timeout": 0.5, "connect_timeout": 0.5, "backoff_base": 0.01, "max_retry_seconds": 5}
ENF_WATERMARK = "select modified_at from audit.watermark where source = 'enforcement'"
HOMES: list[Path] = []  # every home of this module, scanned for the planted values at the end
LOG_LINES: list[str] = []  # every log record of every night of this module
ERRORS: list[str] = []  # every source error's text


@pytest.fixture(autouse=True)
def _tokens(monkeypatch):
    monkeypatch.setenv("FAZHI_ENFORCEMENT_TOKEN", TOKEN)
    monkeypatch.setenv("FAZHI_MEDIATION_TOKEN", TOKEN)


def configure(home: Path, sources: dict[str, tuple[str, dict]]) -> None:
    """fazhi.toml: each source pulled over HTTP from its url, with its options."""
    lines = ["[pipeline]", 'townships = "data/townships.csv"', "first_year = 2022", ""]
    for name, (url, opts) in sources.items():
        lines += [f"[sources.{name}]", 'kind = "http"', f'url = "{url}"']
        lines += [f"{k} = {json.dumps(v)}" for k, v in (FAST | opts).items()] + [""]
    (home / "fazhi.toml").write_text("\n".join(lines), encoding="utf-8")


def night(home: Path, sources: dict[str, tuple[str, dict]]) -> dict:
    """One night of the pipeline steps in `home` (every log record kept, DEBUG and up)."""
    configure(home, sources)

    class Keep(logging.Handler):
        def emit(self, record):
            LOG_LINES.append(
                record.getMessage() + (logging.Formatter().formatException(record.exc_info) if record.exc_info else "")
            )

    handler, root = Keep(level=logging.DEBUG), logging.getLogger()
    old = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        result = run_all(home)
    finally:
        root.removeHandler(handler)
        root.setLevel(old)
    ERRORS.extend(str(v) for v in result.values() if isinstance(v, Exception))
    HOMES.append(home)
    return result


def copy_home(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest, symlinks=True)  # published/parquet is a link
    return dest


def enforcement(**changes) -> dict:
    """One of the mini county's acts (by 行为编号 `of`), changed."""
    good, faulty = mini.enforcement_records()
    of = changes.pop("of")
    base = next(r for r in good + faulty if r["行为编号"] == of)
    return dict(base, **changes)


def resent(*ids: str, **changes) -> list[dict]:
    """Acts sent again unchanged but for a later 更新时间 (a new version, the same figures)."""
    return [enforcement(of=i, 更新时间=LATER, **changes) for i in ids]


@pytest.fixture(scope="module")
def sims(tmp_path_factory):
    """The simulator in its initial state (night one), and in its later state (three late
    corrections per source) for the second night's mediation."""
    os.environ["FAZHI_ENFORCEMENT_TOKEN"] = os.environ["FAZHI_MEDIATION_TOKEN"] = TOKEN  # module fixtures too
    data = tmp_path_factory.mktemp("hostile-data")
    mini.build(data)
    with (
        Simulator(data, token=TOKEN, seed=7) as initial,
        Simulator(data, token=TOKEN, seed=7, state="later") as later,
    ):
        yield initial, later


@pytest.fixture(scope="module")
def night_one(tmp_path_factory, sims) -> Path:
    initial, _ = sims
    home = http_home(tmp_path_factory.mktemp("night-one"), initial.url)
    result = night(home, {"enforcement": (initial.url, {}), "mediation": (initial.url, {})})
    assert {s: r.status for s, r in result.items()} == {"enforcement": "loaded", "mediation": "loaded"}
    assert query(home / "work.duckdb", ENF_WATERMARK) == [(WATERMARK_ONE,)]
    return home


def second_night(night_one: Path, dest: Path, sims, enforcement_url: str, **opts) -> tuple[Path, dict]:
    """Night two: enforcement from `enforcement_url` (with `opts`), mediation's late corrections."""
    home = copy_home(night_one, dest)
    result = night(home, {"enforcement": (enforcement_url, opts), "mediation": (sims[1].url, {})})
    assert result["mediation"].status == "loaded" and result["mediation"].loaded_rows == 3, result
    return home, result


@pytest.fixture(scope="module")
def clean_night(tmp_path_factory, night_one, sims) -> Path:
    """A clean second night (enforcement: nothing new)."""
    home, result = second_night(night_one, tmp_path_factory.mktemp("clean") / "home", sims, sims[0].url)
    assert result["enforcement"] == "unchanged"
    return home


@pytest.fixture(scope="module")
def clean_mart(clean_night) -> list[tuple]:
    """The published figures after the clean second night."""
    return published(clean_night)


def published(home: Path) -> list[tuple]:
    return query(home / "published" / "fazhi.duckdb", MART)


def quarantined(home: Path, batch_id: str) -> dict[str, list[str]]:
    rows = query(
        home / "work.duckdb", "select business_key, rules from audit.quarantine where batch_id = ?", [batch_id]
    )
    return {k: sorted(r) for k, r in rows}


# --- time and order ------------------------------------------------------------------------------


def test_future_dated_records_are_quarantined_and_never_move_the_watermark(tmp_path, night_one, sims, clean_mart):
    _, later = sims
    good, faulty = mini.enforcement_records()
    future = [
        enforcement(of="E1", 行为编号="F1", 检查时间="2099-12-31", 更新时间="2099-12-31 23:59:59"),
        enforcement(of="E3", 行为编号="F2", 更新时间="2099-12-31 23:59:59"),
    ]
    records = good + faulty + resent("E1", "E3", "P5") + future
    with HostileSource("records", records) as src:
        home, result = second_night(night_one, tmp_path / "home", sims, src.url)
        out = result["enforcement"]
        assert (out.status, out.received_rows, out.loaded_rows, out.quarantined_rows) == ("loaded", 5, 3, 2)
        assert quarantined(home, out.batch_id) == {"F1": ["ENF-R41", "ENF-R42"], "F2": ["ENF-R41"]}
        (zh, en), *_ = query(
            home / "work.duckdb", "select message_zh, message_en from audit.quarantine where business_key = 'F2'"
        )
        # the date is no personal data: quoted as written, so the clerk sees which value
        assert zh == "「更新时间」晚于本次拉取的时间(含允许的时钟偏差)，是未来的日期(填写为「2099-12-31 23:59:59」)"
        assert en.startswith("source_modified_at (更新时间) is later than the pull's clock")
        # the watermark moved over the records that loaded, not to 2099
        assert query(home / "work.duckdb", ENF_WATERMARK) == [(LATER,)]
        assert published(home) == clean_mart
        # the refused versions are not pulled in again as new while the source still sends them
        assert night(home, {"enforcement": (src.url, {}), "mediation": (later.url, {})})["enforcement"] == "unchanged"
    # a real correction (a voided act) still arrives: the next pull asks from the loaded watermark
    result = night(home, {"enforcement": (later.url, {}), "mediation": (later.url, {})})
    assert result["enforcement"].loaded_rows == 3
    manifest = json.loads(
        (home / "landing" / "enforcement" / result["enforcement"].batch_id / "manifest.json").read_text()
    )
    assert manifest["request"]["params"]["modified_since"] == LATER
    voided = query(
        home / "work.duckdb", "select count(*) from core.enforcement_act where valid_to is null and is_voided"
    )
    assert voided == [(4,)]  # P4 and the three corrections


def test_older_versions_sent_again_never_replace_newer_ones(tmp_path, night_one, sims):
    _, later = sims
    home = copy_home(night_one, tmp_path / "home")
    corrected = night(home, {"enforcement": (later.url, {}), "mediation": (later.url, {})})
    assert corrected["enforcement"].loaded_rows == 3
    figures, watermark = published(home), query(home / "work.duckdb", ENF_WATERMARK)
    voided_ids = [
        r[0]
        for r in query(
            home / "work.duckdb",
            "select act_id from core.enforcement_act group by act_id having count(*) = 2 order by act_id",
        )
    ]
    assert len(voided_ids) == 3
    # a source that ignores modified_since: the three acts as they were before (作废 = 否), and an
    # act never sent before, voided (never counted), older than the watermark
    records = [enforcement(of=i) for i in voided_ids]
    records.append(enforcement(of="E1", 行为编号="N1", 作废="是", 更新时间="2024-01-04 08:00:00"))
    with HostileSource("records", records, ignore_since=True) as src:
        result = night(home, {"enforcement": (src.url, {}), "mediation": (later.url, {})})
    out = result["enforcement"]
    counts = (out.status, out.received_rows, out.loaded_rows, out.quarantined_rows, out.stale_rows)
    assert counts == ("loaded", 4, 1, 3, 3)
    assert quarantined(home, out.batch_id) == {i: ["STALE-VERSION"] for i in voided_ids}
    current = query(
        home / "work.duckdb",
        "select act_id, is_voided from core.enforcement_act where valid_to is null "
        "and act_id in (select unnest(?)) order by 1",
        [voided_ids],
    )
    assert current == [(i, True) for i in voided_ids]  # still voided
    assert query(home / "work.duckdb", ENF_WATERMARK) == watermark  # never backwards
    assert published(home) == figures


# --- type errors are row errors -------------------------------------------------------------------


AMOUNTS = {"P1": ("５００元", "０"), "P2": ("1,000.50", "200元"), "P5": ("￥300", None)}  # as people type them
WRONG = {  # act -> (fields of the wrong type, the rules that quarantine it)
    "W1": ({"执法证号": "FJ123"}, ["ENF-R28", "ENF-R49"]),  # a string where a list belongs
    "W2": ({"处罚种类": "罚款"}, ["ENF-R48"]),
    "W3": ({"执法证号": PLANTED_ID}, ["ENF-R28", "ENF-R49"]),  # an ID number in a wrong-typed field
    "W4": ({"罚款金额": "abc"}, ["ENF-R50"]),
    "W5": ({"罚款金额": [1, 2]}, ["ENF-R50"]),
    "W6": ({"没收金额": "1.5万元"}, ["ENF-R51"]),
    "W7": (
        {"证件号码": {"号码": PLANTED_ID, "电话": PLANTED_PHONE}, "实施机构": [PLANTED_NAME]},
        ["ENF-R08", "ENF-R52"],
    ),
}


def wrong_types(*acts: str) -> list[dict]:
    """Penalty cases with fields of the wrong JSON type (WRONG), some carrying planted values."""
    return [enforcement(of="P1", 行为编号=k, 更新时间=LATER, **WRONG[k][0]) for k in acts or WRONG]


@pytest.fixture(scope="module")
def typed_night(tmp_path_factory, night_one, sims) -> tuple[Path, dict]:
    """Night two with every act sent again (three amounts in Chinese formats) and seven acts with
    fields of the wrong type."""
    records = resent("E1", "E2", "E3", "E9", "P3", "P4") + [
        enforcement(of=i, 更新时间=LATER, 罚款金额=fine, 没收金额=seized) for i, (fine, seized) in AMOUNTS.items()
    ]
    with HostileSource("records", records + wrong_types()) as src:
        return second_night(night_one, tmp_path_factory.mktemp("typed") / "home", sims, src.url)


def test_wrong_types_are_quarantined_and_chinese_amounts_read_exactly(typed_night, clean_mart):
    home, result = typed_night
    out = result["enforcement"]
    assert (out.status, out.received_rows, out.loaded_rows, out.quarantined_rows) == ("loaded", 16, 9, 7)
    assert quarantined(home, out.batch_id) == {k: rules for k, (_, rules) in WRONG.items()}
    fines = query(
        home / "work.duckdb",
        "select act_id, fine_amount_yuan, confiscated_amount_yuan from core.enforcement_act "
        "where valid_to is null and act_id in ('P1', 'P2', 'P5') order by 1",
    )
    assert [(a, float(f), s if s is None else float(s)) for a, f, s in fines] == [
        ("P1", 500.0, 0.0),
        ("P2", 1000.5, 200.0),
        ("P5", 300.0, None),
    ]
    rule = next(e["meta"] for e in load_suite_doc("enforcement_act")["expectations"] if e["meta"]["rule"] == "ENF-R49")
    ((zh, en),) = query(
        home / "work.duckdb", "select message_zh, message_en from audit.quarantine where business_key = 'W3'"
    )
    assert rule["message_zh"] in zh and rule["message_en"] in en and "执法证号" in zh
    assert published(home) == clean_mart


# --- bounded work per source ----------------------------------------------------------------------

REFUSALS = {
    # case: (options of the enforcement source, rule)
    "trickle": ({"read_timeout": 5, "pull_deadline_seconds": 3}, "http-deadline"),  # 1 byte every 2 s
    "cycle": ({}, "http-cursor-cycle"),
    "fresh_cursor": ({"max_pages": 50}, "http-paging"),
    "gzip_bomb": ({"max_page_bytes": 30 * 2**20, "read_timeout": 5}, "http-too-large"),
    "huge": ({"max_page_bytes": 30 * 2**20}, "http-too-large"),
    "huge_chunked": ({"max_page_bytes": 30 * 2**20, "read_timeout": 5}, "http-too-large"),
    "redirect": ({}, "http-redirect"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_a_stuck_or_oversized_source_fails_alone_by_name(case, tmp_path, night_one, sims, clean_mart):
    opts, rule = REFUSALS[case]
    if case == "gzip_bomb":
        gzip_bomb()  # built before the server answers with it
    good, _ = mini.enforcement_records()
    with (
        HostileSource("records") as elsewhere,  # where the redirect points: must never be asked
        HostileSource(case, good, location=elsewhere.url + "enforcement/records") as src,
    ):
        home, result = second_night(night_one, tmp_path / "home", sims, src.url, **opts)
    err = result["enforcement"]
    assert isinstance(err, SourceError) and err.rule == rule, err
    assert str(err).startswith("[enforcement / page ") and TOKEN not in str(err)
    assert published(home) == clean_mart  # mediation's corrections published, enforcement's figures kept
    assert query(home / "work.duckdb", ENF_WATERMARK) == [(WATERMARK_ONE,)]
    assert not list((home / "landing" / "enforcement").glob(".pull-*"))  # nothing half-landed
    assert elsewhere.requests == []
    if case == "trickle":
        assert "pull_deadline_seconds = 3" in err.message_en and "时限" in err.message_zh


def test_a_server_trickling_its_headers_is_cut_at_the_deadline():
    """The deadline holds wherever the server stalls: here the status line and headers come one
    byte at a time, each well within the read timeout."""
    with HostileSource("trickle_headers", interval=0.2) as src:
        opts = HttpOptions(url=src.url, token_env="X", read_timeout=2, pull_deadline_seconds=1)
        puller = HttpPuller("enforcement", opts, TOKEN)
        done = threading.Event()
        errors: list[BaseException] = []

        def pull():
            try:
                list(puller.pages(None))
            except SourceError as exc:
                errors.append(exc)
            finally:
                puller.close()
                done.set()

        threading.Thread(target=pull, daemon=True).start()
        assert done.wait(30), "the pull did not end"  # a bound against hanging, far above the deadline
    assert [e.rule for e in errors] == ["http-deadline"]


def test_a_page_of_ten_thousand_records_and_twenty_mb_loads(tmp_path, night_one, sims, clean_night):
    base = enforcement(of="E9", 检查时间="2023-09-09", 更新时间=LATER, 地址="永安市安砂镇" + "某" * 600)
    records = [dict(base, 行为编号=f"BIG{i:05d}") for i in range(10_000)]
    with HostileSource("records", records) as src:
        home, result = second_night(night_one, tmp_path / "home", sims, src.url, page_size=10_000, read_timeout=10)
    out = result["enforcement"]
    assert (out.status, out.received_rows, out.loaded_rows) == ("loaded", 10_000, 10_000)
    (page,) = json.loads((home / "landing" / "enforcement" / out.batch_id / "manifest.json").read_text())["pages"]
    assert page["records"] == 10_000 and page["bytes"] > 16 * 2**20  # over DuckDB's default JSON object size
    enf01 = (
        "select value from mart.indicator_value where year = 2023 and township_code = ? and indicator_code = 'ENF01'"
    )
    assert query(home / "published" / "fazhi.duckdb", enf01, [mini.B]) == [(10_001.0,)]  # E9 and the 10,000
    mediation = "select * from mart.indicator_value where indicator_code like 'MED%' order by all"
    assert query(home / "published" / "fazhi.duckdb", mediation) == query(
        clean_night / "published" / "fazhi.duckdb", mediation
    )


# --- the nightly flow: loads do not wait for a stuck source ---------------------------------------


@pytest.fixture(scope="module")
def stuck_night(prefect_harness, tmp_path_factory, sims):
    """A nightly under Prefect: mediation (first in fazhi.toml) trickles until its deadline;
    enforcement sends records with fields of the wrong type, some carrying planted values."""
    from flows.nightly import nightly

    good, faulty = mini.enforcement_records()
    home = http_home(tmp_path_factory.mktemp("stuck"), sims[0].url)
    with (
        HostileSource("trickle", interval=1.0) as trickle,
        HostileSource("records", good + faulty + wrong_types("W3", "W7")) as src,
    ):
        configure(
            home,
            {
                "mediation": (trickle.url, {"read_timeout": 5, "pull_deadline_seconds": 6}),
                "enforcement": (src.url, {}),
            },
        )
        state = nightly(home=str(home), return_state=True)
        requests = list(trickle.requests)
    HOMES.append(home)
    return home, state, requests


def test_a_stuck_source_fails_the_night_alone_and_the_others_load_first(stuck_night):
    home, state, requests = stuck_night
    assert state.is_failed()
    failed = state.message.split("sources failed:")[1]
    # the run's state (what the alert quotes) names the source, its cause class and the rule
    assert "mediation" in failed and "unreachable (http-deadline)" in failed and "enforcement" not in failed
    assert len(requests) == 1  # the refused pull was not retried, by the client or by Prefect
    (manifest,) = (home / "runs").glob("*/manifest.json")
    doc = json.loads(manifest.read_text(encoding="utf-8"))
    # enforcement, second in fazhi.toml, loaded while mediation's pull was still stuck
    assert list(doc["sources"]) == ["enforcement", "mediation"]
    assert (
        doc["sources"]["enforcement"]["status"] == "loaded" and doc["sources"]["enforcement"]["quarantined_rows"] == 5
    )
    assert doc["failed_sources"] == ["mediation"]
    assert "pull_deadline_seconds = 6" in doc["sources"]["mediation"]["error"]  # the operator's detail
    enf01 = (
        "select value from mart.indicator_value where year = 2023 and township_code = ? and indicator_code = 'ENF01'"
    )
    assert query(home / "published" / "fazhi.duckdb", enf01, [mini.A]) == [(3.0,)]


# --- no planted value leaves the landing zone's pages ---------------------------------------------


def _tables(db: Path) -> str:
    """Every row of every table of a DuckDB file, as text."""
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        tables = con.execute(
            "select schema_name, table_name from duckdb_tables() where database_name = current_database()"
        ).fetchall()
        return "\n".join(str(con.execute(f'select * from "{s}"."{t}"').fetchall()) for s, t in tables)
    finally:
        con.close()


def test_no_planted_value_reaches_a_manifest_log_message_the_warehouse_or_prefect(typed_night, stuck_night):
    import prefect.settings

    homes = {typed_night[0], stuck_night[0], *HOMES}
    assert any(PLANTED_ID.encode() in p.read_bytes() for h in homes for p in h.glob("landing/*/*/page-*.json"))
    texts = [*LOG_LINES, *ERRORS, stuck_night[1].message or ""]
    for home in homes:
        for path in home.rglob("*"):
            if not path.is_file() or (path.name.startswith("page-") and path.parent.parent.parent.name == "landing"):
                continue  # the landed export pages: the one place personal data is kept
            if path.suffix == ".duckdb":
                texts.append(_tables(path))
            texts.append(path.read_bytes().decode("utf-8", errors="replace"))
    prefect_db = Path(prefect.settings.PREFECT_SERVER_DATABASE_CONNECTION_URL.value().split(":///", 1)[1])
    assert prefect_db.exists()
    for path in prefect_db.parent.glob(prefect_db.name + "*"):  # the database, its WAL and journal
        texts.append(path.read_bytes().decode("utf-8", errors="replace"))
    assert len(texts) > 20 and any("http-deadline" in t for t in texts)  # the scan saw the runs' records
    leaks = [
        (value, text[max(0, text.find(value) - 80) : text.find(value) + 40])
        for text in texts
        for value in PLANTED + tuple(json.dumps(v)[1:-1] for v in PLANTED)  # as written, and JSON-escaped
        if value in text
    ]
    assert leaks == []
