"""Training rosters (学法培训台账): one workbook per township and year, three sheets."""

from __future__ import annotations

import pandas as pd

from flows.sources.landing import LandedBatch
from flows.sources.mapping import SourceError, load_mappings
from flows.sources.spreadsheet import canonicalise, extract_table, read_workbook
from flows.sources.township_files import township_and_year

SOURCE = "training"


def parse_training(batch: LandedBatch, key: bytes) -> dict[str, pd.DataFrame]:
    tables = load_mappings()[SOURCE]
    frames: dict[str, list[pd.DataFrame]] = {name: [] for name in tables}
    for f in batch.files:
        township, year = township_and_year(SOURCE, f.name)
        sheets = read_workbook(f.path, SOURCE)
        parsed = {}
        for name, mapping in tables.items():
            if mapping.sheet not in sheets:
                raise SourceError(
                    SOURCE,
                    f.name,
                    f"缺少工作表「{mapping.sheet}」",
                    f"the workbook lacks sheet {mapping.sheet!r}",
                    "sheet-missing",
                )
            raw = extract_table(sheets[mapping.sheet], mapping, SOURCE, f.name, mapping.sheet)
            df = canonicalise(raw, mapping, key)
            df.insert(2, "township_code", township)
            parsed[name] = df
        parsed["training_staff"].insert(3, "roster_year", year)
        sessions = set(parsed["training_session"]["session_id"].dropna())
        att = parsed["training_attendance"]
        att["session_found"] = att["session_id"].isin(sessions)
        for name, df in parsed.items():
            frames[name].append(df)
    return {name: pd.concat(dfs, ignore_index=True) for name, dfs in frames.items() if dfs}
