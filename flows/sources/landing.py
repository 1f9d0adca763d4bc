"""The landing zone: immutable copies of what a source delivered, with a manifest.

`landing/<source>/<batch_id>/` holds the delivered files byte for byte and `manifest.json`
(file names, byte counts, sha256, when). Files already landed and loaded (their sha256 is in
the warehouse's audit.landed_file) are not landed again, which makes re-running a night a
no-op. The zone is readable by its owner only: it holds personal data.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

SPREADSHEET_SUFFIXES = {".xlsx", ".xls", ".csv"}


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


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def delivered_files(source_dir: Path, kind: str) -> list[Path]:
    """The files a source has delivered, in a stable order."""
    if not source_dir.is_dir():
        return []
    if kind == "json_pages":
        pattern = lambda p: p.suffix == ".json"  # noqa: E731
    else:
        pattern = lambda p: p.suffix.lower() in SPREADSHEET_SUFFIXES or p.suffix == ""  # noqa: E731
    return sorted(p for p in source_dir.iterdir() if p.is_file() and not p.name.startswith(".") and pattern(p))


def land(source: str, files: list[Path], landing_dir: Path, already_loaded: set[str]) -> LandedBatch | None:
    """Copy the files not yet loaded into a new batch folder; None when nothing is new."""
    now = datetime.now(UTC)
    hashed = [(p, sha256_file(p)) for p in files]
    new = [(p, h) for p, h in hashed if h not in already_loaded]
    if not new:
        return None
    content = hashlib.sha256("".join(sorted(h for _, h in new)).encode()).hexdigest()
    batch_id = f"{source}-{now:%Y%m%dT%H%M%S%f}-{content[:8]}"
    directory = landing_dir / source / batch_id
    _private_dirs(directory, stop=landing_dir.parent)
    landed = []
    for path, digest in new:
        target = directory / path.name
        shutil.copyfile(path, target)
        os.chmod(target, 0o400)
        landed.append(LandedFile(path.name, target, digest, target.stat().st_size))
    batch = LandedBatch(source, batch_id, directory, landed, now.isoformat(), len(hashed) - len(new))
    write_manifest(batch)
    return batch


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
