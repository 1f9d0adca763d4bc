"""ENF08 counts working days on the State Council calendar with 调休 make-up days."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from warehouse.calendar import CalendarNotCovered, covered_years, workday_frame


def _working_days_after(decided: date, published: date) -> int:
    df = workday_frame(decided.year, published.year).set_index("day")
    return int(df.loc[published, "workday_seq"] - df.loc[decided, "workday_seq"])


@pytest.mark.parametrize(
    "decided, published, working, weekdays",
    [
        # Spring Festival 2023: 21-27 Jan off, Sat 28 and Sun 29 Jan are make-up working days
        (date(2023, 1, 20), date(2023, 2, 1), 5, 8),
        # National Day 2023: 29 Sep - 6 Oct off, Sat 7 and Sun 8 Oct are make-up working days
        (date(2023, 9, 28), date(2023, 10, 13), 7, 11),
        (date(2023, 9, 28), date(2023, 10, 16), 8, 12),
    ],
)
def test_working_days_follow_the_holiday_calendar(decided, published, working, weekdays):
    assert _working_days_after(decided, published) == working
    assert (
        int(
            np.busday_count(decided + (date(2000, 1, 2) - date(2000, 1, 1)), published, weekmask="1111100")
            + (published.weekday() < 5)
        )
        == weekdays
    )  # what a plain weekday count would say


def test_a_year_the_calendar_does_not_cover_fails_naming_the_package():
    _, last = covered_years()
    with pytest.raises(CalendarNotCovered) as err:
        workday_frame(last + 1, last + 1)
    assert "chinese-calendar" in str(err.value) and str(last + 1) in str(err.value)
