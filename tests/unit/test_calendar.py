"""ENF08 counts working days on the State Council calendar with 调休 make-up days."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from tests.fixtures import mini
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


def test_a_year_the_calendar_does_not_cover_degrades_only_enf08(mini_run, tmp_path, monkeypatch, caplog):
    """An installed calendar that ends with 2022 (as an old chinese-calendar would): the county is
    computed, ENF08 of 2023 is `calendar_not_covered` (NULL, a warning), every other figure as
    with the full calendar; 2022's ENF08, decided and published within the calendar, is judged."""
    import shutil

    import duckdb

    from warehouse import compute

    work = tmp_path / "work.duckdb"
    shutil.copyfile(mini_run.settings.work_db, work)
    query = "select * from mart.indicator_value order by year, township_code, indicator_code"
    con = duckdb.connect(str(work))
    try:
        before = con.execute(query).fetchall()
        monkeypatch.setattr(compute, "covered_years", lambda: (2004, 2022))

        def old_calendar(first_year: int, last_year: int):
            if last_year > 2022:
                raise CalendarNotCovered(f"the holiday calendar does not cover {last_year}")
            return workday_frame(first_year, last_year)

        monkeypatch.setattr(compute, "workday_frame", old_calendar)
        with caplog.at_level("WARNING", logger="fazhi"):
            compute.compute_indicators(con, first_year=2022)
        after = con.execute(query).fetchall()
    finally:
        con.close()
    changed = {(b[0], b[1], b[4]): (a[9], a[13]) for b, a in zip(before, after, strict=True) if a != b}
    assert changed == {
        (2023, mini.A, "ENF08"): (None, "calendar_not_covered"),
        (2023, mini.COUNTY, "ENF08"): (None, "calendar_not_covered"),
    }
    assert {(r[0], r[1], r[4]): (r[9], r[13]) for r in after}[(2022, mini.A, "ENF08")] == (1.0, "ok")
    assert any("ENF08" in m and "2023" in m and "chinese-calendar" in m for m in caplog.messages)
