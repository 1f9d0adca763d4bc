"""The enforcement and mediation exports as JSON pages (docs/sources.md), ordered by 更新时间
then record id across every township, written without holding every record in memory.

Each chunk of townships sorts its own records into a run file, one line per record:
`更新时间 TAB id TAB record JSON`. The runs are then merged into pages of PAGE_SIZE records,
comparing whole lines: 更新时间 has a fixed width and TAB sorts before any character of an id,
so lines compare as (更新时间, id) pairs do, and as record ids are unique the pages hold the
records in the order one sort of them all would give.
"""

from __future__ import annotations

import heapq
import json
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import pandas as pd

PAGE_SIZE = 500


def write_run(columns: dict[str, np.ndarray], id_field: str, path: Path) -> int:
    """One chunk's records (equal-length columns, 更新时间 as text), sorted, as run lines;
    returns how many."""
    order = np.lexsort((columns[id_field], columns["更新时间"]))
    # object columns: to_json writes the same text as for inferred dtypes, and the frame is built faster
    records = pd.DataFrame({name: values[order] for name, values in columns.items()}, dtype=object)
    keys = zip(records["更新时间"], records[id_field], _json_lines(records), strict=True)
    path.write_text("".join(f"{ts}\t{rid}\t{line}\n" for ts, rid, line in keys), encoding="utf-8")
    return len(records)


def _json_lines(df: pd.DataFrame) -> list[str]:
    """The records as to_json(orient="records", lines=True) writes them, without its slow
    character-by-character split of the JSON array: a record boundary is the only place where
    `},{"<first column>":` can occur, since a quote inside a JSON string is escaped."""
    if not len(df):
        return []
    first = json.dumps(df.columns[0], ensure_ascii=False)
    array = df.to_json(orient="records", force_ascii=False)
    return array[1:-1].replace("},{" + first + ":", "}\n{" + first + ":").split("\n")


def write_pages(runs: list[Path], total: int, source: str, folder: Path, find: set[str]) -> dict:
    """Merges the runs (`total` records) into page-NNNNNN.json files; returns the record and page
    counts and, under "_page_of", the page of each record id in `find`."""
    pages = max(1, -(-total // PAGE_SIZE))
    wanted = {i.encode() for i in find}
    page_of: dict[str, int] = {}
    written = 0
    with ExitStack() as stack:
        # bytes: UTF-8 sorts as its text does, and nothing is decoded and encoded again
        files = [stack.enter_context(run.open("rb")) for run in runs]
        merged = heapq.merge(*files)
        for page in range(1, pages + 1):
            chunk = []
            for line in merged:
                _, rid, record = line.split(b"\t", 2)
                if rid in wanted:
                    page_of[rid.decode()] = page
                chunk.append(record[:-1])
                if len(chunk) == PAGE_SIZE:
                    break
            written += len(chunk)
            text = _page_start(source, page, total, pages) + b",\n".join(chunk) + b"\n]}\n"
            (folder / f"page-{page:06d}.json").write_bytes(text)
        if written != total or next(merged, None) is not None:
            raise RuntimeError(f"{source}: the runs do not hold the {total} records expected")
    return {"records": total, "pages": pages, "_page_of": page_of}


def _page_start(source: str, page: int, total: int, pages: int) -> bytes:
    head = {"source": source, "page": page, "page_size": PAGE_SIZE, "total_records": total, "total_pages": pages}
    return (json.dumps(head, ensure_ascii=False)[:-1] + ', "records": [\n').encode()
