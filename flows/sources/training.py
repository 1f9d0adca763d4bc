"""Training rosters (学法培训台账): one workbook per township and year, three sheets."""

from __future__ import annotations

import pandas as pd

from flows.sources.landing import LandedBatch
from flows.sources.mapping import SourceError, load_mappings, with_overrides
from flows.sources.spreadsheet import TableRows, canonicalise, read_workbook
from flows.sources.township_files import township_and_year

SOURCE = "training"


def parse_training(batch: LandedBatch, key: bytes) -> dict[str, pd.DataFrame]:
    tables = {n: with_overrides(m, batch.extra.get("fields")) for n, m in load_mappings()[SOURCE].items()}
    raw = {name: TableRows(mapping) for name, mapping in tables.items()}
    for f in batch.files:
        township, year = township_and_year(SOURCE, f.name)
        sheets = read_workbook(f.path, SOURCE)
        for name, mapping in tables.items():
            if mapping.sheet not in sheets:
                raise SourceError(
                    SOURCE,
                    f.name,
                    f"缺少工作表「{mapping.sheet}」",
                    f"the workbook lacks sheet {mapping.sheet!r}",
                    "sheet-missing",
                )
            raw[name].add(
                sheets[mapping.sheet], SOURCE, f.name, mapping.sheet, township_code=township, roster_year=year
            )
    parsed = {
        name: canonicalise(
            raw[name].frame(),
            mapping,
            key,
            ("township_code", "roster_year") if name == "training_staff" else ("township_code",),
        )
        for name, mapping in tables.items()
    }
    sessions = pd.MultiIndex.from_frame(parsed["training_session"][["township_code", "session_id"]])
    att = parsed["training_attendance"]
    att["session_found"] = pd.MultiIndex.from_frame(att[["township_code", "session_id"]]).isin(sessions)
    parsed["training_staff"]["roster_year"] = parsed["training_staff"]["roster_year"].astype("int32")
    return parsed
