"""1C JSON quirks become the canonical types of frames.py."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from receivables.domain.normalise import date, money, ref, text


def test_money_becomes_exact_integer_kopecks():
    s = money(pd.Series([125000.5, 0.29, 1.005, 99999999.99, None, "abc", float("nan")]))
    assert s.tolist()[:4] == [12500050, 29, 100, 9999999999]  # 1.005 is 1.00499.. in binary: 100
    assert s.isna().tolist()[4:] == [True, True, True]
    assert str(s.dtype) == "Int64"


def test_empty_reference_and_case():
    s = ref(pd.Series(["00000000-0000-0000-0000-000000000000", "B1C89D94-CB6A-11E6-AEDE-5404A6B4B8ED", None]))
    assert s.isna().tolist() == [True, False, True]
    assert s.iloc[1] == "b1c89d94-cb6a-11e6-aede-5404a6b4b8ed"


def test_dates_keep_impossible_years_for_the_gate_and_empty_date_is_missing():
    s = date(pd.Series(["2026-03-20T10:15:00", "0001-01-01T00:00:00", "3000-01-01T00:00:00", None, "junk"]))
    assert str(s.dtype) == "datetime64[s]"
    assert s.iloc[0] == pd.Timestamp("2026-03-20")
    assert s.iloc[2].year == 3000
    assert s.isna().tolist() == [False, True, False, True, True]


def test_fixed_length_strings_lose_trailing_spaces():
    assert text(pd.Series(["ТД00-000123   ", None])).tolist()[0] == "ТД00-000123"


def test_as_of_view_keeps_far_future_rows_for_the_gate():
    from factories import frames, order
    from receivables.domain.normalise import as_of_view

    f = frames(orders=[order("A", "2026-11-02", 1), order("B", "2026-11-25", 1), order("C", "3000-01-01", 1)])
    view = as_of_view(f, dt.date(2026, 11, 20), extracted_on=dt.date(2026, 11, 23))
    assert view["orders"]["document_number"].tolist() == ["A", "C"]
