"""Hostile and broken drop-folder files are refused by name before calamine parses them, and
drop folders never follow links nor read lock or hidden files (warehouse/sources/workbook_guard.py,
warehouse/sources/landing.py). The whole run under a memory cap: tests/integration/test_hostile_input.py."""

from __future__ import annotations

import hashlib
import json
import os
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.fixtures import hostile, mini
from warehouse.sources import workbook_guard
from warehouse.sources.landing import land, scan_drop
from warehouse.sources.mapping import SourceError
from warehouse.sources.workbook_guard import SheetExtent, check_workbook


def _refusal(path: Path) -> SourceError:
    with pytest.raises(SourceError) as err:
        check_workbook(path, "training")
    assert err.value.file == path.name and err.value.source == "training"
    return err.value


def test_a_sheet_with_a_cell_at_xfd1048576_is_refused_naming_sheet_and_extent(tmp_path):
    path = hostile.sparse_workbook(tmp_path / "350481101_2023_学法培训台账.xlsx")
    assert path.stat().st_size < 8000
    err = _refusal(path)
    assert err.rule == "file-sheet-too-large"
    assert "活动登记" in err.message_zh and "A1:XFD1048576" in err.message_en
    assert "17,179,869,184 cells" in err.message_en and "5,000,000" in err.message_en


def test_read_workbook_refuses_it_in_a_process_that_survives(tmp_path):
    """Without the guard calamine aborts the process (SIGABRT, a 512 GB allocation)."""
    path = hostile.sparse_workbook(tmp_path / "350481101_2023_学法培训台账.xlsx")
    code = (
        "import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))\n"
        "from pathlib import Path\n"
        "from warehouse.sources.mapping import SourceError\n"
        "from warehouse.sources.spreadsheet import read_workbook\n"
        "try:\n"
        "    read_workbook(Path(sys.argv[1]), 'training')\n"
        "except SourceError as exc:\n"
        "    print(exc.rule)\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stdout.strip()) == (0, "file-sheet-too-large"), done.stderr[-2000:]


def test_a_zip_bomb_is_refused_after_reading_no_more_than_the_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(workbook_guard, "MAX_UNPACKED_BYTES", 8 * 2**20)
    path = hostile.zip_bomb_workbook(tmp_path / "350481101_2023_学法培训台账.xlsx", unpacked=16 * 2**20)
    err = _refusal(path)
    assert err.rule == "file-unpacked-too-large" and "8,388,608 bytes" in err.message_en


def _understate_sizes(path: Path, entry: str, claimed: int) -> None:
    """Rewrite the zip headers so that `entry` claims to unpack to `claimed` bytes."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as z:
        info = z.getinfo(entry)
    struct.pack_into("<I", data, info.header_offset + 22, claimed)  # local header: uncompressed size
    central = data.find(b"PK\x01\x02")
    while central >= 0:
        name_len = struct.unpack_from("<H", data, central + 28)[0]
        if data[central + 46 : central + 46 + name_len] == entry.encode():
            struct.pack_into("<I", data, central + 24, claimed)
            break
        central = data.find(b"PK\x01\x02", central + 4)
    path.write_bytes(bytes(data))


def test_a_bomb_whose_headers_claim_a_small_size_is_measured_as_it_unpacks(tmp_path, monkeypatch):
    monkeypatch.setattr(workbook_guard, "MAX_UNPACKED_BYTES", 8 * 2**20)
    path = tmp_path / "350481101_2023_学法培训台账.xlsx"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("xl/workbook.xml", "<workbook/>")
        z.writestr("xl/sharedStrings.xml", b"<sst><si><t>" + b"a" * (12 * 2**20) + b"</t></si></sst>")
    _understate_sizes(path, "xl/sharedStrings.xml", 100)
    with zipfile.ZipFile(path) as z:
        assert z.getinfo("xl/sharedStrings.xml").file_size == 100
    assert _refusal(path).rule == "file-unpacked-too-large"


def test_a_truncated_workbook_is_refused_as_damaged(tmp_path):
    whole = tmp_path / "whole.xlsx"
    mini.write_training(tmp_path / "t")
    whole.write_bytes(next((tmp_path / "t").glob("*.xlsx")).read_bytes())
    err = _refusal(hostile.truncated_workbook(tmp_path / "350481101_2023_学法培训台账.xlsx", whole))
    assert err.rule == "file-format" and "damaged or incomplete" in err.message_en
    assert "损坏或不完整" in err.message_zh


def _repacked(path: Path, whole: Path, compression: int) -> Path:
    """`whole`'s entries written again with another compression method."""
    with zipfile.ZipFile(whole) as src, zipfile.ZipFile(path, "w", compression) as out:
        for info in src.infolist():
            out.writestr(info.filename, src.read(info.filename))
    return path


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_LZMA])
def test_stored_and_other_methods_are_measured_as_deflate_is(tmp_path, compression):
    """Stored entries are read from the package's bytes, other methods through zipfile: the
    sparse sheet is refused either way, a ledger passes with the same bytes."""
    sparse = _repacked(
        tmp_path / "350481101_2023_学法培训台账.xlsx", hostile.sparse_workbook(tmp_path / "s"), compression
    )
    assert _refusal(sparse).rule == "file-sheet-too-large"
    mini.write_training(tmp_path / "t")
    ledger = _repacked(
        tmp_path / "350481102_2023_学法培训台账.xlsx", next((tmp_path / "t").glob("*.xlsx")), compression
    )
    assert check_workbook(ledger, "training") == ledger.read_bytes()


def test_an_entry_whose_bytes_were_altered_is_refused_by_its_crc(tmp_path):
    path = tmp_path / "350481101_2023_学法培训台账.xlsx"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr("xl/workbook.xml", "<workbook/>")
        z.writestr(
            "xl/worksheets/sheet1.xml", '<worksheet><sheetData><row r="1"><c r="A1"/></row></sheetData></worksheet>'
        )
    data = bytearray(path.read_bytes())
    data[data.index(b'c r="A1"') + 5] = ord("B")  # the same length, another cell: only the CRC tells
    path.write_bytes(bytes(data))
    err = _refusal(path)
    assert err.rule == "file-format" and "CRC" in err.message_en


def test_an_encrypted_zip_entry_is_refused_as_a_file_not_a_crash(tmp_path):
    mini.write_returns(tmp_path / "r")
    whole = tmp_path / "r" / f"{mini.A}_2023_年度报表.xlsx"
    err = _refusal(hostile.encrypted_entry_workbook(tmp_path / "350481101_2022_年度报表.xlsx", whole))
    assert err.rule == "file-format" and "damaged or incomplete" in err.message_en


def test_a_zip_that_is_not_an_xlsx_workbook_is_refused(tmp_path):
    path = tmp_path / "350481101_2023_学法培训台账.xlsx"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("mimetype", "application/vnd.oasis.opendocument.spreadsheet")
        z.writestr("content.xml", "<office:document-content/>")
    assert _refusal(path).rule == "file-format"


def test_files_over_the_size_limit_are_refused_before_reading_csv_too(tmp_path, monkeypatch):
    monkeypatch.setattr(workbook_guard, "MAX_FILE_BYTES", 1000)
    path = tmp_path / "350481102_2023_年度报表.csv"
    path.write_text("指标代码,数值\n" + "OGI01,1\n" * 200, encoding="utf-8")
    err = _refusal(path)
    assert err.rule == "file-too-large" and "the limit is 1,000" in err.message_en


def test_the_mini_county_workbooks_pass(tmp_path):
    mini.write_training(tmp_path / "training")
    mini.write_returns(tmp_path / "returns")
    for path in [*(tmp_path / "training").iterdir(), *(tmp_path / "returns").iterdir()]:
        check_workbook(path, "training")


@pytest.mark.parametrize(
    ("xml", "extent"),
    [
        # references as written by Excel, LibreOffice and xlsxwriter
        (b'<sheetData><row r="1"><c r="A1"/><c r="C1"/></row><row r="7"><c r="B7"/></row></sheetData>', (7, 3)),
        # a cell far from its row's reference counts where its own reference puts it
        (b'<row r="1"><c r="XFD1048576" t="s"><v>0</v></c></row>', (1048576, 16384)),
        # cells and rows without references follow the previous one
        (b'<row r="3"><c r="B3"><v>1</v></c><c><v>2</v></c></row><row><c/><c/><c/><c/></row>', (4, 4)),
        # the reference after another attribute, a prefixed namespace
        (b'<x:row r="2"><x:c s="1" r="AA2"><x:v>1</x:v></x:c></x:row>', (2, 27)),
        (b"<worksheet><sheetData/></worksheet>", (0, 0)),
    ],
)
def test_sheet_extent_is_read_from_the_cells_in_any_chunking(xml, extent):
    for size in (len(xml), 7, 3):
        measured = SheetExtent(referenced=b'<c r="' in xml and b"<c>" not in xml and b"<c/>" not in xml)
        for i in range(0, len(xml), size):
            measured.feed(xml[i : i + size])
        assert (measured.rows, measured.columns) == extent, size


def test_drop_folders_skip_links_lock_and_hidden_files_by_name(tmp_path):
    drop = tmp_path / "drop"
    mini.write_training(drop)
    ledger = next(drop.glob("*.xlsx"))
    secret = tmp_path / "secrets" / "hmac.key"
    secret.parent.mkdir()
    secret.write_text("k" * 64)
    outside = tmp_path / "elsewhere.csv"
    outside.write_text("指标代码,数值\nOGI01,99\n", encoding="utf-8")
    hostile.link(drop, "350481102_2023_年度报表.csv", outside)
    hostile.link(drop, "passwd", Path("/etc/passwd"))
    hostile.link(drop, "key.xlsx", secret)
    hostile.link(drop, "ledger-link.xlsx", ledger)  # a link even to a delivered file is not followed
    hostile.lock_file(drop, ledger.name)
    (drop / ".350481101_2023_学法培训台账.xlsx").write_bytes(ledger.read_bytes())
    (drop / ".~lock.350481101_2023_学法培训台账.xlsx#").write_text(",zhangsan,host,2024-01-01;")
    os.mkfifo(drop / "pipe.xlsx")
    (drop / "350481102_2023_学法培训台账.xlsx").write_bytes(b"")  # 0 bytes: delivered, refused by the parser
    (drop / "subfolder").mkdir()
    (drop / "350481103_2023_学法培训台账.ods").write_bytes(b"PK\x03\x04")  # delivered, refused by the parser
    (drop / "扫描件.pdf").write_bytes(b"%PDF-1.7")
    (drop / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")

    files, skipped = scan_drop(drop, "spreadsheet_drop")
    delivered = [ledger.name, "350481102_2023_学法培训台账.xlsx", "350481103_2023_学法培训台账.ods"]
    assert [p.name for p in files] == delivered
    reasons = {s.name: s.reason_en for s in skipped}
    assert reasons == {
        "350481102_2023_年度报表.csv": "a symbolic link: never followed",
        "passwd": "a symbolic link: never followed",
        "key.xlsx": "a symbolic link: never followed",
        "ledger-link.xlsx": "a symbolic link: never followed",
        f"~${ledger.name[2:]}": "an office lock file (someone has the workbook open)",
        ".~lock.350481101_2023_学法培训台账.xlsx#": "an office lock file (someone has the workbook open)",
        ".350481101_2023_学法培训台账.xlsx": "a hidden file",
        "pipe.xlsx": "not a regular file",
        "subfolder": "a subfolder: the files in it are not read",
        "扫描件.pdf": "not a spreadsheet (.pdf): not read",
        "Thumbs.db": "a file Windows keeps in folders",
    }
    assert all(s.reason_zh for s in skipped)
    pages = tmp_path / "pages"
    pages.mkdir()
    (pages / "page-000001.json").write_text("{}")
    (pages / "README.md").write_text("#")
    files, skipped = scan_drop(pages, "json_pages")
    assert [p.name for p in files] == ["page-000001.json"]
    assert [(s.name, s.reason_en) for s in skipped] == [("README.md", "not an export page (.json): not read")]

    batch = land("training", files, tmp_path / "landing", {})
    assert sorted(f.name for f in batch.files) == sorted(p.name for p in files)
    landed = {p.name for p in batch.directory.iterdir()}
    assert "passwd" not in landed and "key.xlsx" not in landed


def test_a_file_replaced_by_a_link_after_listing_is_not_landed(tmp_path):
    drop = tmp_path / "drop"
    mini.write_returns(drop)
    files, _ = scan_drop(drop, "spreadsheet_drop")
    files[0].unlink()
    os.symlink("/etc/passwd", files[0])
    with pytest.raises(OSError):
        land("returns", files, tmp_path / "landing", {})
    assert not list((tmp_path / "landing").rglob("passwd"))


def _saved_over_after_hashing(monkeypatch, path: Path, content: bytes) -> None:
    """A clerk saves over `path` between the landing's hash of it and its copy."""
    from warehouse.sources import landing

    hashed = landing._hashed

    def hash_then_save(p: Path):
        out = hashed(p)
        if p == path:
            path.write_bytes(content)
        return out

    monkeypatch.setattr(landing, "_hashed", hash_then_save)


def test_a_file_saved_over_between_its_hash_and_its_copy_is_recorded_as_it_landed(tmp_path, monkeypatch, caplog):
    from warehouse.sources.landing import sha256_file

    drop = tmp_path / "drop"
    mini.write_returns(drop)
    files, _ = scan_drop(drop, "spreadsheet_drop")
    first, others = files[0], files[1:]
    hashed_before = sha256_file(first)
    saved = first.read_bytes() + b"\n"  # the clerk's save: other bytes, another size
    _saved_over_after_hashing(monkeypatch, first, saved)
    batch = land("returns", files, tmp_path / "landing", {})
    landed = {f.name: f for f in batch.files}
    assert (batch.directory / first.name).read_bytes() == saved
    assert landed[first.name].sha256 == sha256_file(batch.directory / first.name) != hashed_before
    assert landed[first.name].bytes == len(saved)
    manifest = {f["name"]: f["sha256"] for f in json.loads(batch.manifest_path.read_text())["files"]}
    assert manifest[first.name] == landed[first.name].sha256
    assert all(manifest[p.name] == sha256_file(p) for p in others) and len(others) > 0
    assert f"{first.name} changed while it was landed" in caplog.text


def test_a_file_saved_back_to_content_already_loaded_is_not_landed_again(tmp_path, monkeypatch):
    from warehouse.sources.landing import sha256_file

    drop = tmp_path / "drop"
    mini.write_returns(drop)
    files, _ = scan_drop(drop, "spreadsheet_drop")
    loaded_content = files[0].read_bytes()
    files[0].write_bytes(loaded_content + b"\n")  # the clerk's edit, seen by the hash
    _saved_over_after_hashing(monkeypatch, files[0], loaded_content)  # ... then undone before the copy
    already_loaded = {hashlib.sha256(loaded_content).hexdigest(): files[0].name}
    already_loaded |= {sha256_file(p): p.name for p in files[1:]}
    assert land("returns", files, tmp_path / "landing", already_loaded) is None
    assert not list((tmp_path / "landing").rglob("*.csv")) and not list((tmp_path / "landing").rglob("*.xlsx"))


def test_cells_holding_a_formula_s_error_are_found_by_sheet_and_place(tmp_path):
    """calamine reads an error cell as blank text; the guard's pass finds them, by sheet name and
    0-based (row, column), with the error they show, in any sheet of the package."""
    import xlsxwriter

    path = tmp_path / "errors.xlsx"
    wb = xlsxwriter.Workbook(str(path))
    first, second = wb.add_worksheet("活动登记"), wb.add_worksheet("参训签到")
    first.write_row(0, 0, ["活动编号", "学时"])
    first.write_formula(1, 1, "=1/0", None, "#DIV/0!")
    first.write_formula(2, 1, "=1+1", None, 2)  # a formula that worked: not an error
    second.write_formula(4, 27, '=VLOOKUP("x",A1:A2,1,FALSE)', None, "#N/A")  # AB5
    wb.close()
    errors: dict = {}
    assert check_workbook(path, "training", errors) == path.read_bytes()
    assert errors == {"活动登记": {(1, 1): "#DIV/0!"}, "参训签到": {(4, 27): "#N/A"}}
    mini.write_training(tmp_path / "clean")
    found: dict = {}
    check_workbook(next((tmp_path / "clean").glob("*.xlsx")), "training", found)
    assert found == {}
