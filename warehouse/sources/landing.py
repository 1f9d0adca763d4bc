"""The landing zone: immutable copies of what a source delivered, with a manifest.

`landing/<source>/<batch_id>/` holds the delivered files byte for byte and `manifest.json`
(file names, byte counts, sha256, when). Files already landed and loaded (their sha256 is in
the warehouse's audit.landed_file) are not landed again, which makes re-running a night a
no-op. The zone is readable by its owner only: it holds personal data.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import shutil
import stat
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

# read by the spreadsheet parse: Excel workbooks (a macro-enabled workbook or a template is the same
# package, read as a workbook; macros never run), legacy .xls, CSV
SPREADSHEET_SUFFIXES = {".xlsx", ".xlsm", ".xltx", ".xltm", ".xls", ".csv"}
# spreadsheets saved in a format the parse does not read (LibreOffice's and WPS's own formats are
# their defaults for a new file): delivered all the same, so that the parse refuses each by name,
# saying what to do, where the township's refused files are listed (`fazhi quarantine`)
UNREAD_SPREADSHEETS = {
    ".ods": ("OpenDocument 表格", "an OpenDocument spreadsheet"),
    ".ots": ("OpenDocument 表格模板", "an OpenDocument spreadsheet template"),
    ".fods": ("OpenDocument 平面表格", "a flat OpenDocument spreadsheet"),
    ".et": ("WPS 表格", "a WPS spreadsheet"),
    ".ett": ("WPS 表格模板", "a WPS spreadsheet template"),
    ".xlsb": ("Excel 二进制工作簿", "an Excel binary workbook"),
    ".numbers": ("Numbers 表格", "a Numbers spreadsheet"),
}
# written by Windows Explorer into shared folders (thumbnails, folder settings)
WINDOWS_FILES = {"thumbs.db", "desktop.ini", "ehthumbs.db"}
log = logging.getLogger("fazhi.landing")


@dataclass(frozen=True)
class LandedFile:
    name: str
    path: Path
    sha256: str
    bytes: int


@dataclass
class LandedBatch:
    source: str
    batch_id: str
    directory: Path
    files: list[LandedFile]
    landed_at: str
    skipped_files: int = 0
    extract_kind: str = "full"  # full | incremental
    extra: dict = field(default_factory=dict)

    @property
    def manifest_path(self) -> Path:
        return self.directory / "manifest.json"


@dataclass(frozen=True)
class SkippedEntry:
    """Something in a drop folder that is not a delivery, with the reason (zh, en)."""

    name: str
    reason_zh: str
    reason_en: str

    def describe(self) -> str:
        return f"{self.name}: {self.reason_zh} / {self.reason_en}"


def _skip_reason(entry: os.DirEntry) -> tuple[str, str] | None:
    """Why a drop folder entry is not read, or None for a regular file. Symbolic links are never
    followed (a link to /etc/passwd or the home's key file must not be landed); lock files are
    what Excel (`~$…`) and LibreOffice (`.~lock.…#`) write beside a workbook someone has open."""
    if entry.is_symlink():
        return "符号链接，不跟随", "a symbolic link: never followed"
    if entry.name.startswith("~$") or entry.name.startswith(".~lock."):
        return "Office锁定文件（有人正打开该工作簿）", "an office lock file (someone has the workbook open)"
    if entry.name.startswith("."):
        return "隐藏文件", "a hidden file"
    if entry.name.lower() in WINDOWS_FILES:
        return "Windows 系统文件", "a file Windows keeps in folders"
    if not entry.is_file(follow_symlinks=False):
        return "不是普通文件", "not a regular file"
    return None


def _not_delivered(name: str, kind: str) -> tuple[str, str] | None:
    """Why a regular file is not one of this kind of source's deliveries, or None if it is."""
    suffix = Path(name).suffix.lower()
    if kind == "json_pages":
        if Path(name).suffix == ".json":
            return None
        return "不是导出页(.json)，未读取", "not an export page (.json): not read"
    if suffix in SPREADSHEET_SUFFIXES or suffix in UNREAD_SPREADSHEETS or suffix == "":
        return None
    return f"不是表格文件(扩展名 {suffix})，未读取", f"not a spreadsheet ({suffix}): not read"


def scan_drop(source_dir: Path, kind: str) -> tuple[list[Path], list[SkippedEntry]]:
    """The files a source has delivered, in a stable order, and the entries skipped with why:
    nothing in the folder is passed over unsaid. Only regular files are delivered: never links.
    A spreadsheet folder delivers spreadsheets in formats the parse does not read too, to be
    refused by name (UNREAD_SPREADSHEETS)."""
    if not source_dir.is_dir():
        return [], []
    files, skipped = [], []
    with os.scandir(source_dir) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                reason = "子文件夹：其中的文件不读取", "a subfolder: the files in it are not read"
            else:
                reason = _skip_reason(entry) or _not_delivered(entry.name, kind)
            if reason:
                skipped.append(SkippedEntry(entry.name, *reason))
            else:
                files.append(Path(entry.path))
    return sorted(files), sorted(skipped, key=lambda s: s.name)


def delivered_files(source_dir: Path, kind: str) -> list[Path]:
    """The files a source has delivered, in a stable order (scan_drop without the skipped)."""
    return scan_drop(source_dir, kind)[0]


@contextmanager
def _open_delivered(path: Path):
    """A delivered file opened for reading, refusing what became a link or a special file since
    the folder was listed (O_NOFOLLOW; O_NONBLOCK so that a FIFO cannot block the run)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, "not a regular file", str(path))
    with os.fdopen(fd, "rb") as fh:
        yield fh


def sha256_file(path: Path) -> str:
    return _hashed(path)[0]


def _hashed(path: Path) -> tuple[str, tuple]:
    """The file's sha256, and its identity as it was read (_identity)."""
    h = hashlib.sha256()
    with _open_delivered(path) as fh:
        seen = _identity(fh)
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
        if _identity(fh) != seen:  # written to while it was read: the digest is of neither version
            seen = None
    return h.hexdigest(), seen


def _identity(fh) -> tuple:
    """Which file an open file is and which version of it: device, inode, size, modification
    time (nanoseconds). A township saving over its file, or replacing it, changes it."""
    st = os.fstat(fh.fileno())
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def land(
    source: str,
    files: list[Path],
    landing_dir: Path,
    already_loaded: dict[str, str],
    refused_as: dict[str, set[str]] | None = None,
    delivery_of: Callable[[str], object] | None = None,
) -> LandedBatch | None:
    """Copy the files not yet loaded into a new batch folder; None when nothing is new.

    `already_loaded`: the contents (sha256) landed before, with the name each landed under. One
    of them is new again under a name it was never refused under when every earlier
    delivery of it was refused (`refused_as`: sha256 -> the names it was refused under): a
    workbook refused for its name and renamed as the refusal asks is read, not passed over as
    "nothing new". A file whose content landed before under another name is not read, with a
    warning naming both. So is a copy: a file with the content of another file of this delivery
    whose name says the same delivery (`delivery_of(name)`, not None: a township's ledger of a
    year), the same workbook sent twice (`台账.xlsx` and `台账 (1).xlsx`); read twice, its records
    would be quarantined as duplicates of the first's. Of such files the shortest name is read (a
    copy's name is the original's with a suffix); the others are listed in the manifest
    (`copies`) and named in a warning.

    A file is hashed, then copied. A delivered file that changed in between, or while it was
    copied (a clerk saving over it during the night's run), is recorded with the sha256 of the
    copy that landed, never with the digest of the version that was hashed: the landing zone's
    bytes and its manifest always agree. If what landed is content already loaded, the copy is
    removed again. A copy cut in the middle of a save is refused at parse like any damaged file,
    and the finished file, whose content is new, lands on the next run."""
    now = datetime.now(UTC)
    refused_as = refused_as or {}

    def landed_before(digest: str, name: str) -> bool:
        return digest in already_loaded and (digest not in refused_as or name in refused_as[digest])

    delivery = delivery_of or (lambda name: None)
    hashed = [(p, *_hashed(p)) for p in files]
    for p, h, _ in hashed:
        earlier = already_loaded.get(h)
        if earlier and earlier != p.name and landed_before(h, p.name):
            # a copy kept beside its original says so every night: a warning only when its name
            # says another delivery (another township or year), which its content cannot be
            same = delivery(p.name) is not None and delivery(p.name) == delivery(earlier)
            (log.info if same else log.warning)(
                "%s: %s has the content of %s, landed before: not read again", source, p.name, earlier
            )
    new = [(p, h, seen) for p, h, seen in hashed if not landed_before(h, p.name)]
    copies = _copies([(p.name, h) for p, h, _ in new], delivery)
    for copy, original in sorted(copies.items()):
        log.warning("%s: %s has the content of %s, delivered with it: not read", source, copy, original)
    new = [(p, h, seen) for p, h, seen in new if p.name not in copies]
    if not new:
        return None
    content = hashlib.sha256("".join(sorted(h for _, h, _ in new)).encode()).hexdigest()
    batch_id = f"{source}-{now:%Y%m%dT%H%M%S%f}-{content[:8]}"
    directory = landing_dir / source / batch_id
    _private_dirs(directory, stop=landing_dir.parent)
    landed = []
    for path, digest, seen in new:
        target = directory / path.name
        try:
            with _open_delivered(path) as src, target.open("wb") as dst:
                before = _identity(src)
                shutil.copyfileobj(src, dst, 1 << 20)
                changed = seen is None or not before == seen == _identity(src)
            if changed:  # what landed is not what was hashed: its own digest is recorded
                digest = sha256_file(target)
                log.warning("%s: %s changed while it was landed; the copy that landed is recorded", source, path.name)
                if landed_before(digest, path.name):
                    target.unlink()
                    continue
        except OSError as exc:  # a full disk, say: no half-landed batch stays behind
            shutil.rmtree(directory, ignore_errors=True)
            if exc.filename is None:  # a failed write names no file: name the one being written
                raise OSError(exc.errno, exc.strerror, str(target)) from None
            raise
        os.chmod(target, 0o400)
        landed.append(LandedFile(path.name, target, digest, target.stat().st_size))
    if not landed:  # every file that changed turned out to hold content already loaded
        shutil.rmtree(directory, ignore_errors=True)
        return None
    batch = LandedBatch(source, batch_id, directory, landed, now.isoformat(), len(hashed) - len(landed))
    if copies:
        batch.extra["copies"] = dict(sorted(copies.items()))
    write_manifest(batch)
    return batch


def _copies(files: list[tuple[str, str]], delivery_of: Callable[[str], object]) -> dict[str, str]:
    """Of (name, sha256) files, those with the content of another whose name gives the same
    delivery (not None): copy name -> the name read, the shortest (a copy's name is the
    original's with a suffix: `台账 (1).xlsx`, `台账 - 副本.xlsx`)."""
    same: dict[tuple, list[str]] = {}
    for name, digest in files:
        if (delivery := delivery_of(name)) is not None:
            same.setdefault((digest, delivery), []).append(name)
    copies = {}
    for names in same.values():
        first, *rest = sorted(names, key=lambda name: (len(name), name))
        copies |= dict.fromkeys(rest, first)
    return copies


def write_manifest(batch: LandedBatch) -> None:
    doc = {
        "source": batch.source,
        "batch_id": batch.batch_id,
        "landed_at": batch.landed_at,
        "files": [{"name": f.name, "bytes": f.bytes, "sha256": f.sha256} for f in batch.files],
        "skipped_already_loaded": batch.skipped_files,
        "extract_kind": batch.extract_kind,
        **batch.extra,
    }
    tmp = batch.manifest_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, ensure_ascii=False, indent=2), encoding="utf-8")
    os.chmod(tmp, 0o600)
    os.replace(tmp, batch.manifest_path)


def _private_dirs(directory: Path, stop: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    p = directory
    while p != stop and stop in p.parents:
        os.chmod(p, 0o700)
        p = p.parent
