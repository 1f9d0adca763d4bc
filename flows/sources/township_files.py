"""Township and year from a township file's name: `<9-digit code>_<year>_<anything>.<ext>`."""

from __future__ import annotations

import re

from flows.sources.mapping import SourceError

_NAME = re.compile(r"^(\d{9})_(\d{4})_")


def township_and_year(source: str, file_name: str) -> tuple[str, int]:
    m = _NAME.match(file_name)
    if not m:
        raise SourceError(
            source,
            file_name,
            "文件名应为「乡镇代码_年份_名称」，如 350481101_2023_学法培训台账.xlsx",
            "file name must be <township code>_<year>_<name>, e.g. 350481101_2023_学法培训台账.xlsx",
            "file-name",
        )
    return m.group(1), int(m.group(2))
