"""Russian production calendar, vectorised (ГК РФ ст. 191, 193; `holidays.RU`).

Working days come from `holidays.RU` (transfers and working Saturdays included). For
whole columns the calendar keeps one table: the number of working days up to each day
of the covered range. Every question — is it a working day, the n-th working day after
a date, working days between two dates — is then an array lookup, exact for working
Saturdays that numpy's weekmask cannot express.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache

import holidays
import numpy as np
import pandas as pd

FIRST_YEAR, LAST_YEAR = 2000, 2035


class ProductionCalendar:
    """Working days of Russia over [first_year, last_year]."""

    def __init__(self, first_year: int = FIRST_YEAR, last_year: int = LAST_YEAR):
        ru = holidays.RU(years=range(first_year, last_year + 1), language="ru")
        self.start = np.datetime64(f"{first_year}-01-01", "D")
        self.end = np.datetime64(f"{last_year}-12-31", "D")
        days = np.arange(self.start, self.end + 1, dtype="datetime64[D]")
        weekday = (days.astype("int64") + 3) % 7  # 1970-01-01 was a Thursday (3)
        off = np.isin(days, np.array(sorted(ru.keys()), dtype="datetime64[D]"))
        extra = np.isin(days, np.array(sorted(ru.weekend_workdays), dtype="datetime64[D]"))
        self.working = ((weekday < 5) & ~off) | extra
        #: ordinal[i] = working days in [start, start + i]
        self.ordinal = np.cumsum(self.working, dtype="int64")
        self.working_dates = days[self.working]
        self.range_text = f"{first_year}-01-01 … {last_year}-12-31"

    # -- internals -------------------------------------------------------------------

    def _index(self, days: np.ndarray) -> np.ndarray:
        """Day offsets into the table; NaT -> -1; outside the range -> ValueError."""
        nat = np.isnat(days)
        idx = (days - self.start).astype("int64")
        bad = ~nat & ((idx < 0) | (days > self.end))
        if bad.any():
            first = days[bad][0]
            raise ValueError(f"date {first} is outside the production calendar ({self.range_text})")
        return np.where(nat, -1, idx)

    @staticmethod
    def _days(values) -> tuple[np.ndarray, pd.Index | None]:
        if isinstance(values, pd.Series):
            return values.to_numpy(dtype="datetime64[s]").astype("datetime64[D]"), values.index
        return np.asarray(values, dtype="datetime64[D]"), None

    @staticmethod
    def _out(days: np.ndarray, index: pd.Index | None):
        if index is None:
            return days
        return pd.Series(days.astype("datetime64[s]"), index=index)

    # -- vectorised ----------------------------------------------------------------

    def is_working(self, values):
        days, index = self._days(values)
        idx = self._index(days)
        out = np.where(idx >= 0, self.working[np.clip(idx, 0, None)], False)
        return out if index is None else pd.Series(out, index=index)

    def roll_forward(self, values):
        """ГК РФ ст. 193: a non-working day moves to the next working day."""
        return self.add_working_days(values, 0)

    def add_working_days(self, values, n):
        """n > 0: the n-th working day after the date (not counting it); 0: roll forward;
        n < 0: the |n|-th working day before it."""
        days, index = self._days(values)
        idx = self._index(days)
        nat = idx < 0
        safe = np.clip(idx, 0, None)
        here = self.ordinal[safe]  # working days up to and including the date
        if np.ndim(n) == 0:  # one n for every date (roll_forward's 0): its one formula only
            n = int(n)
            target = here + n if n > 0 else here + (1 + n) - self.working[safe]
        else:
            n = np.broadcast_to(np.asarray(n, dtype="int64"), days.shape)
            work = self.working[safe].astype("int64")
            target = np.where(n > 0, here + n,                   # n-th after, date not counted
                     np.where(n == 0, here + 1 - work,           # the date, or the next working day
                              here - work + n + 1))              # |n|-th strictly before
        pos = target - 1  # 0-based position in working_dates
        if (~nat & ((pos < 0) | (pos >= len(self.working_dates)))).any():
            raise ValueError(f"working-day arithmetic leaves the production calendar ({self.range_text})")
        result = self.working_dates[np.clip(pos, 0, len(self.working_dates) - 1)]
        result = np.where(nat, np.datetime64("NaT"), result).astype("datetime64[D]")
        return self._out(result, index)

    def add_working_days_each(self, values, which, n):
        """`add_working_days(values, n[which])` for a few distinct `n` (a policy's step offsets)
        and many dates: each `n` is applied once to every day between the earliest and the
        latest date, and each value reads its answer from that table (the plan's candidates:
        millions of values, a few thousand distinct days, no per-value temporaries)."""
        days = np.asarray(values, dtype="datetime64[D]")
        which = np.asarray(which, dtype="int64")
        n = np.asarray(n, dtype="int64")
        idx = self._index(days)  # raises for a date outside the calendar, as add_working_days does
        known = idx >= 0
        if not known.any():
            return np.full(days.shape, np.datetime64("NaT"), dtype="datetime64[D]")
        lo, hi = int(idx[known].min()), int(idx[known].max())
        span = self.start + np.arange(lo, hi + 1)
        # results grow with the date, so the span leaves the calendar only where a value does
        table = np.stack([self.add_working_days(span, int(k)) for k in n]) if len(n) else np.empty((0, 0))
        result = table[which, np.clip(idx - lo, 0, None)]
        result[~known] = np.datetime64("NaT")
        return result

    def working_days_between(self, start, end):
        """Working days in (start, end] when end ≥ start, else minus those in (end, start]."""
        a, index = self._days(start)
        b, _ = self._days(end)
        ia, ib = self._index(a), self._index(b)
        nat = (ia < 0) | (ib < 0)
        count = self.ordinal[np.clip(ib, 0, None)] - self.ordinal[np.clip(ia, 0, None)]
        if index is None:
            return np.where(nat, 0, count)
        return pd.Series(pd.array(count, dtype="Int64"), index=index).mask(nat)

    def working_days_in_year(self, year: int) -> int:
        days = np.arange(np.datetime64(f"{year}-01-01", "D"), np.datetime64(f"{year + 1}-01-01", "D"))
        return int(self.is_working(days).sum())

    # -- scalars ---------------------------------------------------------------------

    def is_working_date(self, day: dt.date) -> bool:
        return bool(self.is_working(np.array([day], dtype="datetime64[D]"))[0])

    def add_working_days_date(self, day: dt.date, n: int) -> dt.date:
        return self.add_working_days(np.array([day], dtype="datetime64[D]"), n)[0].astype(dt.date)

    def roll_forward_date(self, day: dt.date) -> dt.date:
        return self.add_working_days_date(day, 0)


@lru_cache(maxsize=1)
def get_calendar() -> ProductionCalendar:
    return ProductionCalendar()
