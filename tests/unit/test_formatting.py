"""Russian money, dates and plurals, exactly (integer kopecks, no floats)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
from jinja2 import Environment

from receivables.formatting import (
    date_long_ru,
    date_ru,
    days_ru,
    install_filters,
    money,
    money_plain,
    plural_ru,
    rub,
    working_days_ru,
)


@pytest.mark.parametrize(("kopecks", "text"), [
    (0, "0,00 ₽"), (5, "0,05 ₽"), (100, "1,00 ₽"), (12500050, "125 000,50 ₽"),
    (100000000, "1 000 000,00 ₽"), (99999, "999,99 ₽"), (100000, "1 000,00 ₽"),
    (-12345, "-123,45 ₽"), (-5, "-0,05 ₽"), (-100000000, "-1 000 000,00 ₽"),
    (99999999999, "999 999 999,99 ₽"), (10**17 + 1, "1 000 000 000 000 000,01 ₽")])
def test_money(kopecks, text):
    assert money(kopecks) == text


def test_money_plain_has_no_sign():
    assert money_plain(12500050) == "125 000,50"
    assert money_plain(-7) == "-0,07"


def test_money_takes_numpy_and_whole_floats_but_never_rounds_a_fraction():
    assert money(np.int64(12500050)) == "125 000,50 ₽"
    assert money(12500050.0) == "125 000,50 ₽"  # an int64 column that went through NaN
    assert money(Decimal("12500050")) == "125 000,50 ₽"
    for bad in (1.5, float("nan"), Decimal("0.5"), Decimal("NaN")):
        with pytest.raises(ValueError, match="whole number"):
            money(bad)
    for bad in ("100", None, True):
        with pytest.raises(TypeError):
            money(bad)


def test_rub_is_an_exact_decimal():
    assert rub(12500050) == Decimal("125000.50") and str(rub(12500050)) == "125000.50"
    assert rub(1) == Decimal("0.01") and rub(-5) == Decimal("-0.05")
    assert sum(rub(1) for _ in range(10)) == Decimal("0.10")


@pytest.mark.parametrize("value", [dt.date(2026, 11, 9), dt.datetime(2026, 11, 9, 23, 59),
                                   pd.Timestamp("2026-11-09"), np.datetime64("2026-11-09"), "2026-11-09"])
def test_dates(value):
    assert date_ru(value) == "09.11.2026"
    assert date_long_ru(value) == "9 ноября 2026 г."


@pytest.mark.parametrize(("month", "name"), [(1, "января"), (2, "февраля"), (3, "марта"), (5, "мая"),
                                             (8, "августа"), (12, "декабря")])
def test_long_dates_use_the_genitive(month, name):
    assert date_long_ru(dt.date(2027, month, 1)) == f"1 {name} 2027 г."
    assert date_ru(dt.date(2027, month, 1)) == f"01.{month:02d}.2027"


@pytest.mark.parametrize("missing", [None, pd.NaT, float("nan")])
def test_a_missing_date_is_an_error_not_an_empty_cell(missing):
    with pytest.raises(ValueError):
        date_ru(missing)


@pytest.mark.parametrize(("n", "word"), [
    (0, "дней"), (1, "день"), (2, "дня"), (4, "дня"), (5, "дней"), (11, "дней"), (12, "дней"),
    (14, "дней"), (21, "день"), (22, "дня"), (25, "дней"), (101, "день"), (111, "дней"),
    (112, "дней"), (122, "дня"), (1001, "день"), (-1, "день"), (-3, "дня")])
def test_plurals(n, word):
    assert plural_ru(n, "день", "дня", "дней") == word
    assert days_ru(n) == f"{n} {word}"


def test_working_days():
    assert working_days_ru(1) == "1 рабочий день"
    assert working_days_ru(3) == "3 рабочих дня"
    assert working_days_ru(5) == "5 рабочих дней"
    assert working_days_ru(21) == "21 рабочий день"


def test_filters_in_jinja():
    env = Environment()
    install_filters(env)
    out = env.from_string("{{ a | money }}|{{ a | money_plain }}|{{ d | date_ru }}|{{ d | date_long_ru }}|"
                          "{{ n | days_ru }}|{{ n | plural_ru('заказ', 'заказа', 'заказов') }}").render(
        a=12500050, d=dt.date(2026, 11, 9), n=3)
    assert out == "125 000,50 ₽|125 000,50|09.11.2026|9 ноября 2026 г.|3 дня|заказа"
