"""Refuse hostile or broken workbooks before calamine opens them.

calamine reads a whole sheet into one dense grid and a whole zip entry into memory: a 1.8 KB
xlsx with one cell at A1 and one at XFD1048576 makes it allocate 512 GB and abort the process
(SIGABRT), and a 3 MB zip bomb unpacking to 900 MB of XML gets it OOM-killed. Both would take
the whole run down. So before calamine sees a workbook, it is checked here with bounded memory
and time:

- its size on disk (any spreadsheet, CSV included: they are read whole);
- that it is an intact xlsx package (a truncated upload fails here, by name);
- what it really unpacks to, decompressed as a stream and counted, whatever the zip headers
  claim (they can lie);
- the extent of every sheet from its cells' references (the grid calamine will allocate is
  rows × columns from A1 to the last cell), not from the sheet's declared `<dimension>`.

A refused file raises SourceError naming the file (and sheet), the limit and a rule id, so it is
refused as a file like any unreadable workbook.

The same pass finds the cells holding a formula's error (`#DIV/0!`, `#N/A` of a VLOOKUP that
found nothing): calamine reads them as blank text, and a blank is not what the clerk sees
(`error_cells`).
"""

from __future__ import annotations

import io
import re
import struct
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from xml.etree import ElementTree

from warehouse.sources.mapping import SourceError

# A township's ledger or return is tens of kilobytes (a province's 1,100 training ledgers are
# 26 MB together); the limits leave a margin of a thousand times and more.
MAX_FILE_BYTES = 64 * 2**20  # on disk, any spreadsheet file
MAX_UNPACKED_BYTES = 256 * 2**20  # an xlsx's entries decompressed, all together
MAX_SHEET_CELLS = 5_000_000  # rows × columns of the grid a sheet is read into
_CHUNK = 1 << 20
_MAX_PART_BYTES = 1 << 20  # workbook.xml and its relationships, read to name the sheets


def check_workbook(path: Path, source: str, error_cells: dict | None = None) -> bytes:
    """The file's bytes (read once, for the reader too); raise SourceError if the file is too
    large or, when it is a zip package, is not an intact xlsx, unpacks to too much, or has a
    sheet whose grid is too large. `error_cells`, when given, receives the cells of an xlsx that
    hold a formula's error: {sheet name: {(row, column) 0-based: "#DIV/0!"}}."""
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:  # before it is read
        raise SourceError(
            source,
            path.name,
            f"文件过大（{size:,} 字节，上限 {MAX_FILE_BYTES:,} 字节），未读取",
            f"the file is too large ({size:,} bytes; the limit is {MAX_FILE_BYTES:,}); not read",
            "file-too-large",
        )
    data = path.read_bytes()
    if data[:2] != b"PK":
        return data  # not a zip package: CSV, or not a spreadsheet at all (read_workbook says which)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as package:
            errors = _check_package(package, data, path.name, source)
            if errors and error_cells is not None:
                names = _sheet_names(package)
                error_cells.update({names.get(entry, entry): cells for entry, cells in errors.items()})
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, NotImplementedError, RuntimeError) as exc:
        raise SourceError(
            source,
            path.name,
            "Excel文件已损坏或不完整（可能未传完），未读取",
            f"the xlsx file is damaged or incomplete (cut short in transfer?): {_describe(exc)}; not read",
            "file-format",
        ) from None
    return data


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _check_package(package: zipfile.ZipFile, data: bytes, file: str, source: str) -> dict[str, dict]:
    """Refuse the package (SourceError) or return its cells holding a formula's error, by entry."""
    names = set(package.namelist())
    if "xl/workbook.xml" not in names:
        raise SourceError(
            source,
            file,
            "不是xlsx工作簿（应为Excel 2007及以后的.xlsx格式），未读取",
            "not an xlsx workbook (zip package without xl/workbook.xml: xlsb, ods or another zip?); not read",
            "file-format",
        )
    unpacked, errors = 0, {}
    for info in package.infolist():
        if info.is_dir():
            continue
        scan = UsualCells()  # every entry: a sheet may hide under any name
        for chunk in _unpacked(package, data, info, MAX_UNPACKED_BYTES - unpacked + 1):
            unpacked += len(chunk)
            if unpacked > MAX_UNPACKED_BYTES:
                raise SourceError(
                    source,
                    file,
                    f"工作簿解压后超过 {MAX_UNPACKED_BYTES:,} 字节（疑似压缩炸弹），未读取",
                    f"the workbook unpacks to more than {MAX_UNPACKED_BYTES:,} bytes (a zip bomb?); not read",
                    "file-unpacked-too-large",
                )
            scan.feed(chunk)
        if not scan.usual:  # measured exactly: a second pass, within the size already read
            extent = SheetExtent(scan.referenced)
            for chunk in _unpacked(package, data, info, MAX_UNPACKED_BYTES):
                extent.feed(chunk)
            if extent.cells > MAX_SHEET_CELLS:
                sheet = _sheet_names(package).get(info.filename, info.filename)
                ref = f"A1:{_column_name(extent.columns)}{extent.rows}"
                raise SourceError(
                    source,
                    file,
                    f"工作表「{sheet}」范围过大（{ref}，{extent.cells:,} 个单元格，上限 {MAX_SHEET_CELLS:,}），未读取",
                    f"sheet {sheet} spans {ref} ({extent.cells:,} cells; the limit is {MAX_SHEET_CELLS:,}); not read",
                    "file-sheet-too-large",
                )
        if scan.errors:  # rare: the entry read again whole (its size is within the limit, counted above)
            cells = _error_cells(b"".join(_unpacked(package, data, info, MAX_UNPACKED_BYTES)))
            if cells:
                errors[info.filename] = cells
    return errors


# a cell holding a formula's error: `<c r="C2" s="1" t="e"><f>1/0</f><v>#DIV/0!</v></c>`
_ERROR_CELL = re.compile(rb'<(?:\w+:)?c\s[^>]*?\bt="e"[^>]*(?<!/)>(.*?)</(?:\w+:)?c>', re.S)
_REFERENCE = re.compile(rb'\br="([A-Z]{1,3})([0-9]{1,7})"')
_VALUE = re.compile(rb"<(?:\w+:)?v>([^<]*)</(?:\w+:)?v>")


def _error_cells(xml: bytes) -> dict[tuple[int, int], str]:
    """(row, column), 0-based, -> the error a cell shows (`#DIV/0!`), for the cells whose type is
    an error and that name their place (as every writer does)."""
    cells = {}
    for match in _ERROR_CELL.finditer(xml):
        tag = xml[match.start() : match.start(1)]
        ref, value = _REFERENCE.search(tag), _VALUE.search(match[1])
        if ref and value:
            row, column = int(ref[2]) - 1, _column_number(ref[1]) - 1
            cells[(row, column)] = value[1].decode("utf-8", "replace").strip() or "#ERROR"
    return cells


_LOCAL_HEADER = struct.Struct("<4s22xHH")  # signature, then the lengths of the name and the extra field


def _unpacked(package: zipfile.ZipFile, data: bytes, info: zipfile.ZipInfo, limit: int):
    """The entry's bytes as decompressed, in chunks, until its compressed stream ends or `limit`
    bytes came out; its CRC checked when it ends (a damaged entry raises BadZipFile). The declared
    size is not trusted: zipfile would stop at it, calamine not. Stored and deflated entries (what
    every spreadsheet writer uses) are inflated from the package's bytes in memory by zlib, with
    no zipfile stream per entry: the guard's unpacking took 40 % less time so
    (docs/performance.md); other methods by zipfile."""
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED) or info.flag_bits & 0x1:
        yield from _unpacked_by_zipfile(package, info, limit)  # zipfile raises on what it cannot read
        return
    start = info.header_offset
    if start + _LOCAL_HEADER.size > len(data):
        raise EOFError("the package ends before an entry")
    signature, name_length, extra_length = _LOCAL_HEADER.unpack_from(data, start)
    if signature != b"PK\x03\x04":
        raise zipfile.BadZipFile("bad magic number for a file header")
    begin = start + _LOCAL_HEADER.size + name_length + extra_length
    compressed = memoryview(data)[begin : begin + info.compress_size]
    if len(compressed) < info.compress_size:
        raise EOFError("the package ends inside an entry")
    out = crc = 0
    chunks = (
        (bytes(compressed[i : i + _CHUNK]) for i in range(0, len(compressed), _CHUNK))
        if info.compress_type == zipfile.ZIP_STORED
        else _inflated(compressed)
    )
    for chunk in chunks:
        out += len(chunk)
        crc = zlib.crc32(chunk, crc)
        yield chunk
        if out >= limit:
            return
    if crc != info.CRC:
        raise zipfile.BadZipFile(f"bad CRC-32 for file {info.filename!r}")


def _inflated(compressed: memoryview):
    """A raw deflate stream's output in chunks of at most _CHUNK bytes: each piece of input is
    inflated a chunk at a time, so a bomb is stopped by its reader, not unpacked whole first."""
    inflate = zlib.decompressobj(-zlib.MAX_WBITS)
    for i in range(0, len(compressed), _CHUNK):
        pending = compressed[i : i + _CHUNK]
        while pending:
            chunk = inflate.decompress(pending, _CHUNK)
            pending = inflate.unconsumed_tail
            if chunk:
                yield chunk
            if inflate.eof:
                return
    yield inflate.flush()


def _unpacked_by_zipfile(package: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int):
    """_unpacked by zipfile's stream (compression methods other than stored and deflate)."""
    declared = info.file_size
    info.file_size = 1 << 62  # read on to the end of the compressed stream (then its CRC is checked)
    try:
        stream = package.open(info)
    finally:
        info.file_size = declared  # the stream took its own copy; the entry is left as declared
    with stream:
        out = 0
        while out < limit and (chunk := stream.read(_CHUNK)):
            out += len(chunk)
            yield chunk


class _WholeTags:
    """Feeds XML in pieces that end between tags: a tag cut by a chunk's end waits for the next."""

    def __init__(self) -> None:
        self._tail = b""

    def pieces(self, chunk: bytes) -> bytes:
        text = self._tail + chunk
        cut = text.rfind(b"<")
        if cut >= 0 and text.find(b">", cut) < 0 and len(text) - cut < _CHUNK:
            text, self._tail = text[:cut], text[cut:]
        else:
            self._tail = b""
        return text


class UsualCells(_WholeTags):
    """One fast pass: are all cells of this XML written as usual, `<c r="A1"…` with a one-letter
    column and a row below 100,000? Then its grid is at most Z99999 (2.6 million cells, within
    MAX_SHEET_CELLS) and nothing more needs measuring. Township ledgers are like that; any other
    sheet is measured exactly by SheetExtent, quickly when every cell starts with its reference
    (`referenced`), tag by tag otherwise."""

    # a cell tag (prefixed `x:c` too) not followed by such a reference: searched, not counted
    _UNUSUAL = re.compile(rb'c(?:[>/]|\s(?!r="[A-Z][0-9]{1,5}"))(?<=<c.|:c.)')
    _UNREFERENCED = re.compile(rb'c(?:[>/]|\s(?!r="[A-Z]{1,3}[0-9]{1,7}"))(?<=<c.|:c.)')

    def __init__(self) -> None:
        super().__init__()
        self.usual = self.referenced = True
        self.errors = False  # a cell of this XML may hold a formula's error

    def feed(self, chunk: bytes) -> None:
        text = self.pieces(chunk)
        self.errors = self.errors or b't="e"' in text
        if self.usual and not self._UNUSUAL.search(text):
            return
        self.usual = False
        if self.referenced and self._UNREFERENCED.search(text):
            self.referenced = False


class SheetExtent(_WholeTags):
    """The grid a sheet's XML makes calamine allocate: rows × columns from A1 to the furthest
    cell, from each cell's reference (`<c r="XFD1048576">`), not from the sheet's declared
    `<dimension>`. A cell without a reference sits after the previous cell of its row, a row
    without one after the previous row, as the readers place them (walked tag by tag)."""

    _COLUMN = re.compile(rb'c r="([A-Z]{1,3})[0-9]')
    _ROW = re.compile(rb'c r="[A-Z]{1,3}([0-9]{1,7})"')
    _TAG = re.compile(rb'<(?:[A-Za-z_][\w.-]*:)?(row|c)(?=[\s/>])(?:[^>]*?(?<=\s)r="([A-Z]{0,3})([0-9]{1,7})")?')

    def __init__(self, referenced: bool) -> None:
        super().__init__()
        self.referenced = referenced  # every cell starts with its reference (UsualCells)
        self.rows = self.columns = 0
        self._row = self._column = 0

    @property
    def cells(self) -> int:
        return self.rows * self.columns

    def feed(self, chunk: bytes) -> None:
        text = self.pieces(chunk)
        if self.referenced:
            self.rows = max(self.rows, 0, *map(int, set(self._ROW.findall(text))))
            self.columns = max(self.columns, 0, *map(_column_number, set(self._COLUMN.findall(text))))
            return
        for tag, letters, number in self._TAG.findall(text):
            if tag == b"row":
                self._row = int(number) if number else self._row + 1
                self._column = 0
                continue
            if letters and number:
                self._row, self._column = int(number), _column_number(letters)
            else:
                self._row, self._column = max(self._row, 1), self._column + 1
            self.rows = max(self.rows, self._row)
            self.columns = max(self.columns, self._column)


def _column_number(letters: bytes | str) -> int:
    n = 0
    for ch in letters.decode() if isinstance(letters, bytes) else letters:
        n = n * 26 + ord(ch) - 64
    return n


def _column_name(number: int) -> str:
    name = ""
    while number > 0:
        number, rest = divmod(number - 1, 26)
        name = chr(65 + rest) + name
    return name or "A"


def _sheet_names(package: zipfile.ZipFile) -> dict[str, str]:
    """Entry path -> sheet name, from xl/workbook.xml and its relationships (both small; {} if
    they cannot be read)."""
    try:
        workbook = ElementTree.fromstring(_small_part(package, "xl/workbook.xml"))
        rels = ElementTree.fromstring(_small_part(package, "xl/_rels/workbook.xml.rels"))
    except (KeyError, ElementTree.ParseError, ValueError):
        return {}
    targets = {}
    for rel in rels:
        target = rel.get("Target", "")
        path = target.lstrip("/") if target.startswith("/") else str(PurePosixPath("xl") / target)
        targets[rel.get("Id")] = path
    names = {}
    for el in workbook.iter():
        if el.tag.endswith("}sheet") or el.tag == "sheet":
            rid = next((v for k, v in el.attrib.items() if k.endswith("}id")), None)
            if rid in targets:
                names[targets[rid]] = el.get("name", targets[rid])
    return names


def _small_part(package: zipfile.ZipFile, name: str) -> bytes:
    if package.getinfo(name).file_size > _MAX_PART_BYTES:
        raise ValueError(name)
    return package.read(name)
