"""Township files: their names (`<9-digit code>_<year>_<anything>.<ext>`), which sheet holds which
table, and the record of what became of each file of a batch.

Every file is read on its own: a file that cannot be read, or is wrong as a whole (its name, its
year, a missing sheet or header column, no records), is refused alone, by name, and the other
files of the batch load. What a loaded file holds that was not read is a warning. Both go to
the `file_issue` table of the parsed batch, and each file's outcome to `spreadsheet_file`
(warehouse/load.py records them in audit.file_issue and audit.spreadsheet_file).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

import pandas as pd

from warehouse.sources.mapping import SourceError, TableMapping
from warehouse.sources.spreadsheet import (
    NOTE_SHEETS,
    FileIssue,
    FileRefused,
    Header,
    Sheets,
    SheetTable,
    find_header,
    header_area,
    header_refusal,
    slice_table,
)

# the name compared in its NFKC form: an input method in full-width mode writes ３５０４８１１０１＿２０２３＿…,
# which must give the code 350481101 (as written, `\d` took ３５０… for a code of no township, and its
# rows stopped the county's batch)
_NAME = re.compile(r"^([0-9]{9})_([0-9]{4})_")
FILES_TABLE = "spreadsheet_file"  # one row per file of the batch: parsed or refused
ISSUES_TABLE = "file_issue"  # refusals and warnings, located in the file
EXAMPLE_NAME = {"training": "350481101_2023_学法培训台账.xlsx", "returns": "350481101_2023_年度报表.xlsx"}


def township_and_year(source: str, file_name: str, years: tuple[int, int] | None = None) -> tuple[str, int]:
    """The township code and year a file's name gives; refused when the name has none, or when
    the year is outside `years` (the first year of indicators, this year)."""
    m = _NAME.match(unicodedata.normalize("NFKC", file_name))
    example = EXAMPLE_NAME.get(source, EXAMPLE_NAME["training"])
    if not m:
        template = "模板" in file_name or "template" in file_name.lower()
        raise SourceError(
            source,
            file_name,
            ("这是模板的文件名，填好后请重新命名。" if template else "")
            + f"文件名应为「乡镇代码_年份_名称」，如 {example}",
            ("this is the template's name: rename the filled-in file. " if template else "")
            + f"the file name must be <township code>_<year>_<name>, e.g. {example}",
            "file-name",
        )
    township, year = m.group(1), int(m.group(2))
    if years and not years[0] <= year <= years[1]:
        raise SourceError(
            source,
            file_name,
            f"文件名中的年份 {year} 不在 {years[0]}–{years[1]} 年之间：请检查文件名",
            f"the year in the file name, {year}, is not between {years[0]} and {years[1]}: check the file name",
            "file-year",
        )
    return township, year


def name_parts(file_name: str) -> tuple[str | None, int | None]:
    """The township code and year a file's name gives, or None (for the record of a refused file)."""
    m = _NAME.match(unicodedata.normalize("NFKC", file_name))
    return (m.group(1), int(m.group(2))) if m else (None, None)


def no_records(source: str, file: str) -> SourceError:
    return SourceError(
        source,
        file,
        "文件中没有任何记录(只有表头、示例行或合计行)",
        "the file holds no records (only headers, the example row or totals)",
        "file-no-rows",
    )


def years_of(batch_extra: dict) -> tuple[int, int] | None:
    """The accepted years a parse was given (warehouse/pipeline.py: first_year, this year)."""
    years = batch_extra.get("years")
    return (int(years[0]), int(years[1])) if years else None


@dataclass
class FileLog:
    """What became of each file of a batch, and every issue found in it."""

    source: str
    files: list[dict] = field(default_factory=list)
    issues: list[dict] = field(default_factory=list)

    def parsed(self, file: str, township: str, year: int, rows: int, warnings: list[FileIssue]) -> None:
        self.files.append(_file_row(file, township, year, "parsed", rows))
        self.issues += [_issue_row(file, township, year, w) for w in warnings]

    def refused(self, file: str, exc: SourceError, township: str | None = None, year: int | None = None) -> None:
        self.files.append(_file_row(file, township, year, "refused", 0))
        issue = FileIssue(
            exc.rule,
            "refused",
            exc.message_zh,
            exc.message_en,
            getattr(exc, "sheet", None),
            getattr(exc, "row", None),
            getattr(exc, "column", None),
        )
        self.issues.append(_issue_row(file, township, year, issue))

    def frames(self) -> dict[str, pd.DataFrame]:
        files = pd.DataFrame(self.files, columns=["file_name", "township_code", "report_year", "status", "rows"])
        issues = pd.DataFrame(self.issues, columns=ISSUE_COLUMNS)
        return {FILES_TABLE: files.astype({"rows": "int64"}), ISSUES_TABLE: issues}


def _file_row(file: str, township: str | None, year: int | None, status: str, rows: int) -> dict:
    return {"file_name": file, "township_code": township, "report_year": year, "status": status, "rows": rows}


ISSUE_COLUMNS = ["file_name", "township_code", "report_year", "sheet_name", "row_number", "column_name", "value_text",
                 "rule", "level", "message_zh", "message_en"]  # fmt: skip


def _issue_row(file: str, township: str | None, year: int | None, issue: FileIssue) -> dict:
    return {
        "file_name": file,
        "township_code": township,
        "report_year": year,
        "sheet_name": issue.sheet,
        "row_number": issue.row,
        "column_name": issue.column,
        "value_text": issue.value,
        "rule": issue.rule,
        "level": issue.level,
        "message_zh": issue.message_zh,
        "message_en": issue.message_en,
    }


def tables_in(
    sheets: Sheets, mappings: dict[str, TableMapping], source: str, file: str
) -> tuple[dict[str, list[SheetTable]], list[FileIssue]]:
    """Which visible sheet holds which table, each sheet judged by its header (the table whose
    required columns it has, with the most recognised columns; a sheet named as fields.yaml
    says breaks a tie). Every sheet of a table is read (a ledger kept one sheet per quarter is
    read whole). Hidden sheets, sheets holding no table, and sheets whose header lacks a column
    of a table found complete elsewhere are named in warnings; a table found in no sheet refuses
    the file (naming the column its best header lacks)."""
    found: dict[str, list[SheetTable]] = {name: [] for name in mappings}
    incomplete: dict[str, list[tuple[str, Header]]] = {name: [] for name in mappings}
    warnings = [
        FileIssue(
            "sheet-hidden",
            "warn",
            f"隐藏的工作表「{name}」未读取",
            f"hidden sheet {name!r} was not read",
            name,
        )
        for name in sheets.hidden
    ]
    for sheet, rows in sheets.items():
        if not any(any(v is not None and str(v).strip() for v in row) for row in rows):
            continue  # an empty sheet (Sheet2, Sheet3)
        area = header_area(rows, sheets.merged.get(sheet))
        headers = {name: find_header(rows, m, area=area) for name, m in mappings.items()}
        complete = [
            (h.score(mappings[n]), mappings[n].sheet == sheet, n) for n, h in headers.items() if h and h.complete
        ]
        if complete:
            table = max(complete)[2]
            found[table].append(slice_table(rows, headers[table], sheet))
            continue
        meant = [
            (h.score(mappings[n]), mappings[n].sheet == sheet, n)
            for n, h in headers.items()
            if h and (mappings[n].sheet == sheet or _half(h, mappings[n]))
        ]
        if meant:  # the table this sheet comes closest to holding
            table = max(meant)[2]
            incomplete[table].append((sheet, headers[table]))
        elif not any(mappings[n].sheet == sheet for n in mappings) and not NOTE_SHEETS.search(sheet):
            warnings.append(
                FileIssue(
                    "sheet-not-read",
                    "warn",
                    f"工作表「{sheet}」中没有可识别的表格，未读取",
                    f"sheet {sheet!r} holds no recognised table and was not read",
                    sheet,
                )
            )
    for name, mapping in mappings.items():
        if found[name]:
            for sheet, header in incomplete[name]:  # the table is elsewhere: this sheet is not read
                why = header_refusal(header, mapping, source, file, sheet)
                warnings.append(
                    FileIssue("sheet-not-read", "warn", f"{why.message_zh}，该表未读取", f"{why.message_en}: not read",
                              sheet, why.row)
                )  # fmt: skip
            continue
        if incomplete[name]:
            sheet, header = max(incomplete[name], key=lambda sh: sh[1].score(mapping))
            raise header_refusal(header, mapping, source, file, sheet)
        expected = "、".join(c.fields[0] for c in mapping.columns if c.required)
        what = f"「{mapping.sheet}」工作表" if mapping.sheet else "报表"
        raise FileRefused(
            source,
            file,
            f"缺少{what}(或找不到其表头，应包含: {expected})",
            f"the workbook lacks the {mapping.sheet or mapping.table} table (no sheet with a header naming "
            f"{', '.join(c.fields[0] for c in mapping.columns if c.required)})",
            "header-missing",
        )
    return found, warnings


def _half(header: Header, mapping: TableMapping) -> bool:
    required = sum(c.required for c in mapping.columns)
    return header.score(mapping)[0] * 2 >= required
