"""The pull's clock: a record dated after it is in the future (rules *-R41 … of the export
suites). Kept apart from the GX expectations so parsers can use it without importing GX."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

SOURCE_TIMEZONE = ZoneInfo("Asia/Shanghai")  # the exports' dates and 更新时间 (docs/sources.md)
DEFAULT_CLOCK_SKEW_SECONDS = 300.0


def latest_allowed_at(clock: datetime, skew_seconds: float = DEFAULT_CLOCK_SKEW_SECONDS) -> str:
    """The latest date or 更新时间 a record may carry, written as the exports write it (local
    time, 'YYYY-MM-DD HH:MM:SS'): the clock plus the allowed skew. A date compares as the start
    of its day, so a date of today passes and a date of tomorrow does not (unless the skew
    reaches past midnight)."""
    return (clock.astimezone(SOURCE_TIMEZONE) + timedelta(seconds=skew_seconds)).strftime("%Y-%m-%d %H:%M:%S")
