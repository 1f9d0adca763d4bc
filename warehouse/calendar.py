"""Working days on the State Council holiday calendar (with 调休 make-up days), from the
maintained `chinese_calendar` package. A year it does not cover is a clear error here; the
indicator computation asks only for covered years (covered_years) and marks ENF08 of the others
`calendar_not_covered`, so the calendar never stops the county."""

from __future__ import annotations

from datetime import date, timedelta
from importlib.metadata import version

import pandas as pd


class CalendarNotCovered(RuntimeError):
    pass


def workday_frame(first_year: int, last_year: int) -> pd.DataFrame:
    """day, is_workday, workday_seq (running count of working days) for the years given."""
    import chinese_calendar

    days, flags = [], []
    d, end = date(first_year, 1, 1), date(last_year, 12, 31)
    try:
        while d <= end:
            flags.append(chinese_calendar.is_workday(d))
            days.append(d)
            d += timedelta(days=1)
    except NotImplementedError:
        raise CalendarNotCovered(
            f"节假日日历不覆盖 {d.year} 年：请升级 chinese-calendar (当前 {version('chinese-calendar')}) / "
            f"the holiday calendar does not cover {d.year}: upgrade the chinese-calendar package "
            f"(installed {version('chinese-calendar')})"
        ) from None
    df = pd.DataFrame({"day": days, "is_workday": flags})
    df["workday_seq"] = df["is_workday"].cumsum().astype("int32")
    return df


def covered_years() -> tuple[int, int]:
    """The first and last year the installed calendar covers."""
    import chinese_calendar

    years = sorted({d.year for d in chinese_calendar.holidays})
    return years[0], years[-1]
