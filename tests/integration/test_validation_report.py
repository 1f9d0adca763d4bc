"""The validation report (issue 4): self-contained HTML, Chinese with English, grouped by township
then rule, no personal data, renders in headless Chromium with no network request."""

from __future__ import annotations

import logging
import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import duckdb
import pytest

from tests.fixtures import mini

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser") if shutil.which(n)), None)
# headless, offline: any request for a host fails visibly in the log the tests read
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND",  # any request for a host would fail, visibly
    "--enable-logging=stderr",
    "--v=1",
)


@pytest.fixture(scope="module")
def report(mini_run, tmp_path_factory):
    from warehouse.reports.validation import write_report

    reports = tmp_path_factory.mktemp("reports") / "validation"
    con = duckdb.connect(str(mini_run.settings.work_db), read_only=True)
    try:
        path, data = write_report(con, reports, "run-test", {"returns": {"status": "loaded"}})
    finally:
        con.close()
    return path, data


def test_report_lists_records_to_fix_by_township_then_rule(report):
    path, data = report
    page = path.read_text(encoding="utf-8")
    assert (path.parent / "latest.html").read_text(encoding="utf-8") == page
    assert path.name == "run-test.html"
    for text in ("数据校验报告", "Validation report", "贡川镇", "各数据源汇总", "Summary per source", "待更正的记录"):
        assert text in page
    # grouped by township, then rule: 贡川镇's ENF-R03 (X3) comes before its ENF-R10 (X2); the
    # unknown township 350481999 (X1, X7) comes after 贡川镇
    a = page.index("<h3>贡川镇")
    assert a < page.index("ENF-R03</span>") < page.index(">X3") < page.index("ENF-R10</span>") < page.index(">X2")
    assert a < page.index("350481999</span></h3>") < page.index(">X1")
    assert "page-000003.json" in page and "必填字段「行为类型」为空" in page and "act_type" in page
    # summary per source: received / loaded / quarantined
    enf = next(s for s in data.sources if s["source"] == "enforcement")
    assert (enf["received_rows"], enf["loaded_rows"], enf["quarantined_rows"]) == (12, 9, 3)
    # never personal data
    for secret in mini.NAMES + mini.IDS + mini.PHONES:
        assert secret not in page


def test_report_is_self_contained(report):
    page = report[0].read_text(encoding="utf-8")
    assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/", page, re.I)
    assert not re.search(r"\b(src|href|action|poster|srcset)\s*=", page, re.I)
    assert not re.search(r"@import|url\s*\(|<script|<link|<iframe|<img", page, re.I)


def test_report_stops_are_explained(mini_run, tmp_path):
    from warehouse.reports.validation import collect, render_html, render_markdown

    con = duckdb.connect(str(mini_run.settings.work_db), read_only=True)
    try:
        stop = {"status": "stopped", "rule": "ENF-B02", "message_zh": "全量导出只有 2 行", "message_en": "2 rows"}
        data = collect(con, "run-none", {"enforcement": stop})
    finally:
        con.close()
    page, md = render_html(data), render_markdown(data)
    assert "停止加载的数据源" in page and "ENF-B02" in page and "全量导出只有 2 行" in page
    assert "enforcement 停止 / stopped** (ENF-B02)" in md and "open quarantine entries: **6**" in md


def test_report_failure_does_not_fail_the_run(mini_run, monkeypatch, caplog):
    import warehouse.reports.validation
    from warehouse import pipeline, runs

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(warehouse.reports.validation, "write_report", broken)
    run = pipeline.RunReport("run-broken", "2024-01-01T00:00:00")
    with caplog.at_level(logging.ERROR, logger="fazhi.run"):
        got = runs._validation_report(runs.LocalEngine(), mini_run.settings, run)
    assert got == "failed: OSError" and "validation report not written" in caplog.text


def _png_non_white_fraction(png: bytes) -> float:
    """Share of pixels that are not (near) white, decoding the PNG with zlib and struct only."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", 0
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        kind, body = png[pos + 4 : pos + 8], png[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and color in (2, 6) and interlace == 0
            bpp = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * bpp
    prev = bytearray(stride)
    non_white = 0
    for y in range(height):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        if f == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 0xFF
        elif f == 2:
            line = bytearray((a + b) & 0xFF for a, b in zip(line, prev, strict=True))
        elif f == 3:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 0xFF
        elif f == 4:
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b, c = prev[i], prev[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        non_white += sum(1 for x in range(0, stride, bpp) if min(line[x], line[x + 1], line[x + 2]) < 200)
        prev = line
    return non_white / (width * height)


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary (.ci/run installs Debian's chromium + fonts-noto-cjk)")
def test_report_renders_in_headless_chromium_without_network(report, tmp_path):
    shot = tmp_path / "report.png"
    out = subprocess.run(
        [
            CHROMIUM,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--screenshot={shot}",
            "--window-size=1280,1600",
            Path(report[0]).as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shot.exists(), out.stderr[-2000:]
    fraction = _png_non_white_fraction(shot.read_bytes())
    assert 0.005 < fraction < 0.9, f"screenshot looks blank or broken ({fraction:.3%} non-white)"
    # the page asked for nothing but itself: no http(s) URL was requested or resolved
    requested = re.findall(r"https?://[^\s\"')]+", out.stderr)
    own = [u for u in requested if "chromium" in u or "google" in u or "gstatic" in u or "crbug" in u]
    assert not (set(requested) - set(own)), f"network requests: {sorted(set(requested) - set(own))[:5]}"
