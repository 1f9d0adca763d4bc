"""The HTTP client's retry rules, the county field overrides, the http source configuration and
the de-duplication of JSON pages: no network (a scripted session stands in for the server)."""

from __future__ import annotations

import gzip
import io
import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pandas as pd
import pytest
import requests

from warehouse.config import ConfigError, HttpOptions, load_settings
from warehouse.sources.http import HttpPuller, _retry_after
from warehouse.sources.json_pages import parse_json_pages
from warehouse.sources.landing import LandedBatch, LandedFile, sha256_file
from warehouse.sources.mapping import SourceError
from warehouse.sources.registry import check_overrides, table_mapping

TOKEN = "unit-token-do-not-print"


class _Body(io.BytesIO):
    """A response body as urllib3 streams it (`read1` with `decode_content`)."""

    def __init__(self, body: bytes):
        super().__init__(body)
        self.body = body

    def read1(self, size: int = -1, decode_content: bool = False) -> bytes:
        return super().read1(size)


def _response(status: int, body: bytes = b"", headers: dict | None = None) -> requests.Response:
    r = requests.Response()
    r.status_code, r.raw, r.headers = status, _Body(body), requests.structures.CaseInsensitiveDict(headers or {})
    return r


def _page(records: list, cursor=None, next_cursor=None) -> bytes:
    doc = {"source": "enforcement", "cursor": cursor, "modified_since": None, "next_cursor": next_cursor}
    return json.dumps(doc | {"records": records}).encode()


class ScriptedSession(requests.Session):
    """Answers each GET with the next scripted item (a Response or an exception to raise)."""

    def __init__(self, script):
        super().__init__()
        self.script, self.calls = list(script), []

    def get(self, url, **kw):
        self.calls.append(kw)
        item = self.script.pop(0)
        if isinstance(item, Exception):
            raise item
        return _response(item.status_code, item.raw.body, dict(item.headers))  # a fresh stream each time


def _puller(script, **opts):
    waits: list[float] = []
    defaults = {"backoff_base": 0.1, "backoff_max": 1.0, "max_retry_seconds": 10.0, "max_attempts": 6}
    options = HttpOptions(url="https://example.invalid/export", token_env="X", **(defaults | opts))
    session = ScriptedSession(script)
    return HttpPuller("enforcement", options, TOKEN, sleep=waits.append, session=session), session, waits


def test_retry_after_seconds_fractions_and_dates():
    assert _retry_after("3") == 3.0 and _retry_after("0.25") == 0.25
    soon = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 < _retry_after(soon) <= 30
    assert _retry_after("soon") is None and _retry_after(None) is None


def test_retries_back_off_exponentially_and_honour_retry_after():
    ok = _response(200, _page([{"行为编号": "A"}]))
    script = [
        _response(503),
        requests.ConnectionError("reset"),
        _response(429, headers={"Retry-After": "2"}),
        requests.ReadTimeout("slow"),
        _response(200, b'{"records": [{"a": 1'),
        ok,
    ]
    puller, session, waits = _puller(script)
    pages = list(puller.pages(None))
    assert len(pages) == 1 and pages[0][3]["records"] == [{"行为编号": "A"}]
    assert waits == [0.1, 0.2, 2.0, 0.8, 1.0]  # 0.1·2^n capped at 1.0; Retry-After 2 s wins over 0.4
    assert [r["reason"].split(" (")[0] for r in puller.stats.retries] == [
        "HTTP 503",
        "ConnectionError",
        "HTTP 429",
        "ReadTimeout",
        "invalid JSON",
    ]
    for call in session.calls:  # every request: (connect, read) timeouts, TLS verification, the token in a header
        assert call["timeout"] == (5.0, 30.0) and call["verify"] is True
        assert call["headers"]["Authorization"] == f"Bearer {TOKEN}" and TOKEN not in json.dumps(call["params"])


def test_gives_up_at_the_cap_on_total_retry_time_naming_the_page():
    puller, _, waits = _puller([_response(429, headers={"Retry-After": "8"})] * 3, max_retry_seconds=10)
    with pytest.raises(SourceError) as err:
        list(puller.pages(None))
    assert waits == [8.0]  # the second 8 s wait would pass the 10 s cap
    assert err.value.rule == "http-status" and "page 1" in str(err.value) and TOKEN not in str(err.value)


def test_truncated_json_after_the_retries_is_a_source_error_naming_the_page():
    first = _response(200, _page([{"行为编号": "A"}], next_cursor="c1"))
    cut = _response(200, _page([{"行为编号": "B"}], cursor="c1")[:20])
    puller, _, _ = _puller([first] + [cut] * 3, max_attempts=3)
    with pytest.raises(SourceError) as err:
        list(puller.pages(None))
    assert err.value.rule == "page-json" and err.value.source == "enforcement" and err.value.file == "page 2"
    assert "第2页" in err.value.message_zh and "invalid JSON" in err.value.message_en


def test_wrong_token_is_not_retried():
    puller, session, waits = _puller([_response(401)])
    with pytest.raises(SourceError) as err:
        list(puller.pages(None))
    assert err.value.rule == "http-auth" and waits == [] and len(session.calls) == 1


def test_http_source_configuration(tmp_path, monkeypatch):
    (tmp_path / "fazhi.toml").write_text(
        '[sources.enforcement]\nkind = "http"\nurl = "https://a.example/x/"\npage_size = 100\nread_timeout = 9\n'
        '[sources.enforcement.fields]\nact_type = "行为种类"\n'
        '[sources.training]\nkind = "spreadsheet_drop"\n'
        '[sources.mediation]\nkind = "http"\n',
        encoding="utf-8",
    )
    monkeypatch.delenv("FAZHI_MEDIATION_URL", raising=False)
    with pytest.raises(ConfigError, match="needs `url`"):
        load_settings(tmp_path)
    monkeypatch.setenv("FAZHI_MEDIATION_URL", "http://127.0.0.1:9/")
    s = load_settings(tmp_path)
    enf = s.sources["enforcement"]
    assert enf.kind == "http" and enf.http.page_size == 100 and enf.http.read_timeout == 9
    assert enf.http.token_env == "FAZHI_ENFORCEMENT_TOKEN" and enf.http.verify is True
    assert enf.fields == {"act_type": "行为种类"}
    assert s.sources["mediation"].http.url == "http://127.0.0.1:9/"
    assert s.sources["training"].path == tmp_path / "drop" / "training"  # the default drop folder


def test_field_overrides_replace_the_export_names():
    m = table_mapping("enforcement", "enforcement_act", {"act_type": "行为种类"})
    assert next(c for c in m.columns if c.name == "act_type").fields == ("行为种类",)
    t = table_mapping("training", "training_session", {"training_session": {"hours": ["学分", "学时"]}})
    assert next(c for c in t.columns if c.name == "hours").fields == ("学分", "学时")
    check_overrides("training", {"training_session": {"hours": "学分"}, "unit": "部门"})
    with pytest.raises(ValueError, match="unknown column"):
        check_overrides("enforcement", {"act_kind": "行为种类"})


def _batch(tmp_path, pages: list[list[dict]], extra: dict | None = None, ensure_ascii: bool = False) -> LandedBatch:
    files = []
    for n, records in enumerate(pages, 1):
        p = tmp_path / f"page-{n:06d}.json"
        p.write_text(json.dumps({"records": records}, ensure_ascii=ensure_ascii), encoding="utf-8")
        files.append(LandedFile(p.name, p, sha256_file(p), p.stat().st_size))
    return LandedBatch("enforcement", "b1", tmp_path, files, "2024-01-01", extra=extra or {})


def test_json_pages_keep_one_row_per_record_the_latest(tmp_path):
    from tests.fixtures import mini

    good, _ = mini.enforcement_records()
    e1, e2, e3 = good[0], good[1], good[2]
    e1_later = dict(e1, 检查结果="责令整改", 更新时间="2024-02-01 08:00:00")
    pages = [[e1, e2], [e1, e2], [e3, e1_later]]  # page 1 served twice; E1 modified during the pull
    df = parse_json_pages(_batch(tmp_path, pages), table_mapping("enforcement", "enforcement_act"), b"k")
    assert sorted(df["act_id"]) == ["E1", "E2", "E3"]
    assert df.set_index("act_id").loc["E1", "inspection_result"] == "责令整改"
    # records the warehouse already loaded at the previous watermark do not come in again
    seen = {"already_loaded": {"modified_at": "2024-01-05 10:00:00", "ids": ["E2", "E3"]}}
    df = parse_json_pages(_batch(tmp_path, pages, seen), table_mapping("enforcement", "enforcement_act"), b"k")
    assert sorted(df["act_id"]) == ["E1"]


def test_certificate_lists_hashed_element_by_element_and_repeats_found(tmp_path):
    import duckdb

    from tests.fixtures import mini
    from warehouse.sources.json_pages import _repeats, parse_pages
    from warehouse.sources.pseudonym import pseudonym

    good, _ = mini.enforcement_records()
    lists = [["B1", "A1", "B1"], [], None, ["A1", None, " "], ["C1"]]
    records = [dict(good[0], 行为编号=f"E{n}", 执法证号=certs) for n, certs in enumerate(lists)]
    del records[2]["执法证号"]  # the field absent: NULL, as a null value gives
    df = parse_pages(_batch(tmp_path, [records[:3], records[3:]]), b"k")["enforcement_act"]
    got = df.set_index("act_id")["officer_certificate_keys"]
    for n, certs in enumerate(lists):
        want = None if certs is None else [pseudonym(c, b"k") if c and c.strip() else None for c in certs]
        assert (list(got[f"E{n}"]) if hasattr(got[f"E{n}"], "__len__") else None) == want, n
    assert list(df.set_index("act_id")["officer_count"]) == [3, 0, 0, 3, 1]

    con = duckdb.connect()
    con.execute("create table pages as select * from (values ('a'), ('b'), (null), (null)) t(id)")
    assert not _repeats(con, "id")  # NULLs are not repeats
    con.execute("insert into pages values ('a')")
    assert _repeats(con, "id")


def test_a_landed_page_without_records_stops_the_batch_naming_the_page(tmp_path):
    batch = _batch(tmp_path, [[], []])
    batch.files[1].path.write_text(json.dumps({"data": []}), encoding="utf-8")
    with pytest.raises(SourceError) as err:
        parse_json_pages(batch, table_mapping("enforcement", "enforcement_act"), b"k")
    assert err.value.rule == "page-json" and "page-000002.json has no records array" in str(err.value)
    assert err.value.file == "page-000002.json"  # the page at fault, not every page of the batch
    batch.files[1].path.write_text('{"records": [{"行为编号": "A1"', encoding="utf-8")  # cut off
    with pytest.raises(SourceError) as err:
        parse_json_pages(batch, table_mapping("enforcement", "enforcement_act"), b"k")
    assert err.value.rule == "page-json" and err.value.file == "page-000002.json", str(err.value)


def test_the_page_cap_ends_a_source_that_never_stops_paging():
    pages = [_response(200, _page([{"行为编号": f"A{n}"}], f"c{n}" if n else None, f"c{n + 1}")) for n in range(5)]
    puller, session, _ = _puller(pages, max_pages=3)
    with pytest.raises(SourceError) as err:
        list(puller.pages(None))
    assert err.value.rule == "http-page-cap" and len(session.calls) == 3 and "max_pages = 3" in str(err.value)


def test_a_body_over_the_size_limit_is_refused_however_it_comes():
    big = _page([{"行为编号": "A", "检查结果": "x" * 2000}])
    for headers, body in (
        ({"Content-Length": str(len(big))}, big),  # declared
        ({}, big),  # streamed without a length
        ({"Content-Encoding": "gzip"}, gzip.compress(big)),  # small on the wire, large decompressed
    ):
        puller, session, _ = _puller([_response(200, body, headers)], max_page_bytes=1000)
        with pytest.raises(SourceError) as err:
            list(puller.pages(None))
        assert err.value.rule == "http-too-large" and len(session.calls) == 1, headers
    puller, _, _ = _puller([_response(200, gzip.compress(big), {"Content-Encoding": "gzip"})], max_page_bytes=len(big))
    assert [doc["records"][0]["行为编号"] for *_, doc in puller.pages(None)] == ["A"]  # within the limit: read whole


def test_a_redirect_is_refused_naming_only_the_other_origin():
    location = "https://other.example:8443/export/enforcement/records?id=350481198001011234"
    puller, session, _ = _puller([_response(302, b"", {"Location": location})])
    with pytest.raises(SourceError) as err:
        list(puller.pages(None))
    assert err.value.rule == "http-redirect" and len(session.calls) == 1
    assert "https://other.example:8443" in str(err.value) and "3504" not in str(err.value)
    assert session.calls[0]["allow_redirects"] is False


def _amounts(tmp_path, values: list) -> list[tuple]:
    from tests.fixtures import mini

    good, _ = mini.enforcement_records()
    records = [dict(good[3], 行为编号=f"A{n}", 罚款金额=v) for n, v in enumerate(values)]
    df = parse_json_pages(_batch(tmp_path, [records]), table_mapping("enforcement", "enforcement_act"), b"k")
    return [(None if pd.isna(a) else a, e) for a, e in zip(df["fine_amount_yuan"], df["_type_errors"], strict=True)]


def test_amounts_are_read_exactly_in_chinese_formats_or_flagged(tmp_path):
    ok = ["1,000", "５００", "１，２３４．５元", " 12 元", "￥3,500.50", "-500", 300, 1000.5, "", None]
    assert _amounts(tmp_path, ok) == [
        (1000.0, None),
        (500.0, None),
        (1234.5, None),
        (12.0, None),
        (3500.5, None),
        (-500.0, None),  # read; ENF-R24 refuses a negative fine
        (300.0, None),
        (1000.5, None),
        (None, None),
        (None, None),
    ]
    wrong = ["abc", "1,00", "1.5万元", [1, 2], {"元": 5}, True]
    assert _amounts(tmp_path, wrong) == [(None, "fine_amount_yuan")] * len(wrong)


@pytest.mark.parametrize("ensure_ascii", [False, True])
def test_text_is_read_as_written_escapes_and_brackets_included(tmp_path, ensure_ascii):
    """A string is read unescaped whether or not it holds an escape (the page writer's
    ensure_ascii escapes every Chinese character); one that merely looks like a list stays text;
    a number or a flag in a text field reads as its JSON text; a real list there is a type error."""
    from tests.fixtures import mini

    good, _ = mini.enforcement_records()
    results = ['责令"整改"', "C:\\罚没\\清单", "第一行\n第二行", "[待补充]", "[1,2]", "{备注", 1e3, True, ["整改"]]
    records = [dict(good[3], 行为编号=f"A{n}", 检查结果=v) for n, v in enumerate(results)]
    batch = _batch(tmp_path, [records], ensure_ascii=ensure_ascii)
    df = parse_json_pages(batch, table_mapping("enforcement", "enforcement_act"), b"k")
    assert list(df["inspection_result"].fillna("NULL")) == [*results[:6], "1000.0", "true", "NULL"]
    assert list(df["_type_errors"].fillna("")) == [""] * 8 + ["inspection_result"]


def test_error_texts_withhold_record_values():
    from warehouse.sources.json_pages import withhold_values

    text = 'Conversion Error: Expected ARRAY, but got VARCHAR: "350481198001011234"\nLINE 1: select …'
    assert withhold_values(text) == "Conversion Error: Expected ARRAY, but got VARCHAR: «…»"
    text = 'Malformed JSON in file "/home/x/landing/e/b/page-000002.json", at byte 5: 13800001111'
    assert withhold_values(text) == 'Malformed JSON in file "page-000002.json", at byte 5: …'
