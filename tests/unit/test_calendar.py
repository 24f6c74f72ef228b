"""The vectorised production calendar equals holidays.RU day by day (2013–2027)."""

from __future__ import annotations

import datetime as dt

import holidays
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from receivables.domain.calendar import get_calendar

RU = holidays.RU(years=range(2012, 2029), language="ru")
FIRST, LAST = dt.date(2013, 1, 1), dt.date(2027, 12, 31)
ALL_DAYS = [FIRST + dt.timedelta(days=i) for i in range((LAST - FIRST).days + 1)]
days = st.dates(min_value=FIRST, max_value=LAST)
cal = get_calendar()


def arr(ds):
    return np.array(ds, dtype="datetime64[D]")


def test_is_working_equals_holidays_on_every_day_2013_2027():
    assert (cal.is_working(arr(ALL_DAYS)) == np.array([RU.is_working_day(d) for d in ALL_DAYS])).all()


def test_roll_forward_equals_holidays_on_every_day_2013_2027():
    expected = arr([RU.get_nth_working_day(d, 0) for d in ALL_DAYS])
    assert (cal.roll_forward(arr(ALL_DAYS)) == expected).all()


@settings(max_examples=300, deadline=None)
@given(ds=st.lists(days, min_size=1, max_size=30), n=st.integers(min_value=0, max_value=40))
def test_add_working_days_equals_holidays_nth_working_day(ds, n):
    expected = arr([RU.get_nth_working_day(d, n) for d in ds])
    assert (cal.add_working_days(arr(ds), n) == expected).all()


def _count(a: dt.date, b: dt.date) -> int:
    if b >= a:
        return sum(RU.is_working_day(a + dt.timedelta(days=i)) for i in range(1, (b - a).days + 1))
    return -_count(b, a)


@settings(max_examples=300, deadline=None)
@given(a=days, b=days)
def test_working_days_between_counts_like_holidays(a, b):
    assert cal.working_days_between(arr([a]), arr([b]))[0] == _count(a, b)


@settings(max_examples=200, deadline=None)
@given(d=days, n=st.integers(min_value=1, max_value=30))
def test_going_back_n_working_days_lands_on_the_nth_working_day_before(d, n):
    back = cal.add_working_days_date(d, -n)
    assert back < d and RU.is_working_day(back)
    # working days in [back, d) are exactly n
    assert _count(back, d) == n - 1 + int(RU.is_working_day(d))


@pytest.mark.parametrize(("year", "count"), [(2024, 248), (2025, 247), (2026, 247)])
def test_yearly_working_day_counts_match_the_official_calendar(year, count):
    assert cal.working_days_in_year(year) == count


@pytest.mark.parametrize(("start", "n", "expected"), [
    ("2025-10-24", 10, "2025-11-10"), ("2026-11-03", 3, "2026-11-09"), ("2026-12-30", 1, "2027-01-11")])
def test_ru_rules_examples(start, n, expected):
    assert cal.add_working_days_date(dt.date.fromisoformat(start), n) == dt.date.fromisoformat(expected)


@pytest.mark.parametrize("day", ["2024-04-27", "2024-11-02", "2024-12-28", "2025-11-01", "2027-02-20"])
def test_working_saturdays_are_working_days(day):
    d = dt.date.fromisoformat(day)
    assert d.weekday() == 5 and cal.is_working_date(d) and cal.roll_forward_date(d) == d


def test_series_keep_index_and_nat_passes_through():
    s = pd.Series(pd.to_datetime(["2026-11-04", None]).astype("datetime64[s]"), index=[10, 20])
    out = cal.add_working_days(s, 1)
    assert list(out.index) == [10, 20] and str(out.dtype) == "datetime64[s]"
    assert out.iloc[0] == pd.Timestamp("2026-11-05") and pd.isna(out.iloc[1])
    between = cal.working_days_between(s, pd.Series(pd.to_datetime(["2026-11-09", "2026-11-09"]).astype("datetime64[s]"), index=[10, 20]))
    assert between.iloc[0] == 3 and pd.isna(between.iloc[1])


def test_out_of_range_dates_are_a_clear_error():
    with pytest.raises(ValueError, match="outside the production calendar"):
        cal.is_working(arr([dt.date(1990, 1, 1)]))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(days, st.none()), max_size=40), st.lists(st.integers(-15, 15), min_size=1, max_size=4),
       st.data())
def test_add_working_days_each_equals_add_working_days(ds, ns, data):
    which = data.draw(st.lists(st.integers(0, len(ns) - 1), min_size=len(ds), max_size=len(ds)))
    values = np.array([d if d is not None else "NaT" for d in ds], dtype="datetime64[D]")
    got = cal.add_working_days_each(values, np.array(which, dtype="int64"), np.array(ns))
    want = cal.add_working_days(values, np.array(ns, dtype="int64")[np.array(which, dtype="int64")])
    np.testing.assert_array_equal(got, want)


def test_add_working_days_each_fails_like_add_working_days():
    far = np.array(["1999-12-31", "2026-01-01"], dtype="datetime64[D]")
    with pytest.raises(ValueError, match="outside the production calendar"):
        cal.add_working_days_each(far, np.array([0, 0]), np.array([1]))
    edge = np.array(["2035-12-20"], dtype="datetime64[D]")
    with pytest.raises(ValueError, match="leaves the production calendar"):
        cal.add_working_days_each(edge, np.array([0]), np.array([30]))


@settings(max_examples=200, deadline=None)
@given(ds=st.lists(days, min_size=1, max_size=20), data=st.data())
def test_add_working_days_with_an_n_per_date_equals_one_n_at_a_time(ds, data):
    # one n for all dates takes a formula of its own; an n per date chooses among all three
    ns = data.draw(st.lists(st.integers(-30, 30), min_size=len(ds), max_size=len(ds)))
    expected = [cal.add_working_days(arr([d]), n)[0] for d, n in zip(ds, ns, strict=True)]
    assert cal.add_working_days(arr(ds), np.array(ns)).tolist() == expected
