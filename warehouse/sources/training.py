"""Training rosters (学法培训台账): one workbook per township and year, three tables (sessions,
attendance, the staff roster), each found by its header in any visible sheet."""

from __future__ import annotations

import pandas as pd

from warehouse.sources import registry
from warehouse.sources.landing import LandedBatch
from warehouse.sources.mapping import SourceError
from warehouse.sources.spreadsheet import TableRows, canonicalise_tables, read_workbook
from warehouse.sources.township_files import FileLog, name_parts, no_records, tables_in, township_and_year, years_of

SOURCE = "training"


def parse_training(batch: LandedBatch, key: bytes) -> dict[str, pd.DataFrame]:
    """The batch's three tables, plus the record of each file (township_files.FileLog): a file
    that cannot be read whole is refused alone."""
    tables = registry.source(SOURCE).mappings(batch.extra.get("fields"))
    raw = {name: TableRows(mapping, ("township_code", "roster_year")) for name, mapping in tables.items()}
    log = FileLog(SOURCE)
    years = years_of(batch.extra)
    for f in batch.files:
        try:
            township, year = township_and_year(SOURCE, f.name, years)
            found, warnings = tables_in(read_workbook(f.path, SOURCE), tables, SOURCE, f.name)
            rows = sum(len(t.rows) for sheets in found.values() for t in sheets)
            if not rows:
                raise no_records(SOURCE, f.name)
        except SourceError as exc:
            log.refused(f.name, exc, *name_parts(f.name))
            continue
        for name, sheets in found.items():
            for t in sheets:
                raw[name].extend(t, f.name, township_code=township, roster_year=year)
                warnings += t.warnings
        log.parsed(f.name, township, year, rows, warnings)
    frames = canonicalise_tables(
        (  # a generator: one raw frame at a time, each table's gathered cells let go once framed
            (
                raw.pop(name).frame(),
                mapping,
                ("township_code", "roster_year") if name == "training_staff" else ("township_code",),
            )
            for name, mapping in tables.items()
        ),
        key,
    )
    parsed = dict(zip(tables, frames, strict=True))
    sessions = pd.MultiIndex.from_frame(parsed["training_session"][["township_code", "session_id"]])
    att = parsed["training_attendance"]
    att["session_found"] = pd.MultiIndex.from_frame(att[["township_code", "session_id"]]).isin(sessions)
    parsed["training_staff"]["roster_year"] = parsed["training_staff"]["roster_year"].astype("int32")
    return parsed | log.frames()
