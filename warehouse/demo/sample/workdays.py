"""Days of the generated years as integer indices, with the State Council working-day calendar.

Dates are handled as day numbers counted from 1 January of the first year, so that sampling,
offsets and "k working days later" are numpy operations on whole columns.
"""

from __future__ import annotations

import datetime as dt

import chinese_calendar
import numpy as np

# Fewer acts around Spring Festival, a little less in December's year-end rush.
_MONTH_WEIGHT = np.array([0.8, 0.6, 1.0, 1.05, 1.0, 1.05, 1.0, 0.95, 1.05, 0.9, 1.1, 1.0])


def _is_workday(day: dt.date) -> bool:
    try:
        return chinese_calendar.is_workday(day)
    except NotImplementedError:  # a year the calendar does not cover: plain weekdays
        return day.weekday() < 5


class DayTable:
    """Day indices from first_year-01-01 to the end of last_year + 1."""

    def __init__(self, first_year: int, last_year: int):
        self.first_year = first_year
        self.start = np.datetime64(f"{first_year}-01-01", "D")
        end = np.datetime64(f"{last_year + 2}-01-01", "D")
        days = np.arange(self.start, end)
        self.n = len(days)
        self.workday = np.array([_is_workday(d) for d in days.astype(object)], dtype=bool)
        self.work_idx = np.flatnonzero(self.workday)
        self.cum = np.cumsum(self.workday)  # workdays in [0, i]
        self.month = days.astype("datetime64[M]").astype(int) % 12
        self._iso = np.datetime_as_string(days, unit="D").astype(object)
        self._weights: dict[tuple[int, float], np.ndarray] = {}

    def year_bounds(self, year: int) -> tuple[int, int]:
        """First and last day index of a year."""
        lo = int((np.datetime64(f"{year}-01-01", "D") - self.start).astype(int))
        hi = int((np.datetime64(f"{year + 1}-01-01", "D") - self.start).astype(int)) - 1
        return lo, hi

    def day(self, iso: str) -> int:
        return int((np.datetime64(iso, "D") - self.start).astype(int))

    def _probs(self, year: int, off_weight: float) -> np.ndarray:
        key = (year, off_weight)
        if key not in self._weights:
            lo, hi = self.year_bounds(year)
            w = np.where(self.workday[lo : hi + 1], 1.0, off_weight) * _MONTH_WEIGHT[self.month[lo : hi + 1]]
            self._weights[key] = w / w.sum()
        return self._weights[key]

    def sample(self, rng: np.random.Generator, year: int, n: int, off_weight: float = 0.06) -> np.ndarray:
        """n day indices in the year, mostly working days, seasonally weighted."""
        lo, _ = self.year_bounds(year)
        return lo + rng.choice(len(self._probs(year, off_weight)), size=n, p=self._probs(year, off_weight))

    def sample_between(self, rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """A day in [lo, hi] for each pair, moved to a working day inside the bounds when there is one."""
        idx = lo + np.floor(rng.random(len(lo)) * (hi - lo + 1)).astype(np.int64)
        nxt = self.work_idx[np.minimum(self.cum[idx], len(self.work_idx) - 1)]
        prv = self.work_idx[np.maximum(self.cum[idx] - 1, 0)]
        off = ~self.workday[idx]
        idx = np.where(off & (nxt <= hi), nxt, idx)
        idx = np.where(~self.workday[idx] & (prv >= lo), prv, idx)
        return idx

    def add_workdays(self, idx: np.ndarray, k: np.ndarray) -> np.ndarray:
        """The k-th working day after each day (k >= 1)."""
        pos = np.minimum(self.cum[idx] + k - 1, len(self.work_idx) - 1)
        return self.work_idx[pos]

    def workdays_between(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Working days d with a < d <= b."""
        return self.cum[b] - self.cum[a]

    def iso(self, idx: np.ndarray) -> np.ndarray:
        """YYYY-MM-DD strings (object array)."""
        idx = np.asarray(idx, dtype=np.int64)
        if idx.ndim == 1 and len(idx) and idx.min() >= 0 and idx.max() < self.n:
            return self._iso[idx]
        return np.datetime_as_string(self.start + idx, unit="D").astype(object)

    def dates(self, idx: np.ndarray) -> list[dt.date]:
        return list((self.start + np.asarray(idx, dtype=np.int64)).astype(object))

    def parts(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Year, month, day numbers."""
        d = self.start + np.asarray(idx, dtype=np.int64)
        y = d.astype("datetime64[Y]").astype(int) + 1970
        m = d.astype("datetime64[M]").astype(int) % 12 + 1
        day = (d - d.astype("datetime64[M]")).astype(int) + 1
        return y, m, day
