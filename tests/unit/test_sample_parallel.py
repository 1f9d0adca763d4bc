"""The sample generator's chunks and worker processes change no byte of the sample."""

from __future__ import annotations

from pathlib import Path

from warehouse.demo.sample.generate import generate_sample

YEARS = (2023, 2024)


def _files(root: Path) -> dict[Path, bytes]:
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_two_processes_and_small_chunks_give_the_bytes_of_one_process(tmp_path):
    one = generate_sample(tmp_path / "one", years=YEARS, workers=1, chunk_townships=15)  # the county in one chunk
    many = generate_sample(tmp_path / "many", years=YEARS, workers=2, chunk_townships=4)  # 4 chunks, 2 processes
    serial = generate_sample(tmp_path / "serial", years=YEARS, workers=1, chunk_townships=2)  # 8 chunks, 1 process

    files = _files(tmp_path / "one")
    assert len(files) > 60 and Path("enforcement/page-000002.json") in files
    for name in ("many", "serial"):
        other = _files(tmp_path / name)
        assert other.keys() == files.keys(), name
        assert [p for p in files if files[p] != other[p]] == [], name
    for summary in (many, serial):
        assert {**summary, "out_dir": None} == {**one, "out_dir": None}
    assert not [p for p in tmp_path.rglob(".runs-*")]  # the chunks' record runs are removed


def test_a_rerun_into_the_same_directory_gives_the_same_bytes(tmp_path):
    generate_sample(tmp_path / "a", years=(2023,), workers=2, chunk_townships=5)
    first = _files(tmp_path / "a")
    generate_sample(tmp_path / "a", years=(2023,), workers=1)
    assert _files(tmp_path / "a") == first
