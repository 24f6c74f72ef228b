"""Russian money, dates and plurals, exactly."""

from __future__ import annotations

import datetime as dt

import pytest

from receivables.formatting import date_long_ru, date_ru, days_ru, money, money_plain, plural_ru


@pytest.mark.parametrize(("kopecks", "text"), [
    (0, "0,00 ₽"), (5, "0,05 ₽"), (100, "1,00 ₽"), (12500050, "125 000,50 ₽"),
    (100000000, "1 000 000,00 ₽"), (-12345, "-123,45 ₽"), (99999999999, "999 999 999,99 ₽")])
def test_money(kopecks, text):
    assert money(kopecks) == text


def test_money_plain_has_no_sign():
    assert money_plain(12500050) == "125 000,50"


def test_dates():
    assert date_ru(dt.date(2026, 11, 9)) == "09.11.2026"
    assert date_long_ru(dt.date(2026, 11, 9)) == "9 ноября 2026 г."


@pytest.mark.parametrize(("n", "word"), [(1, "день"), (2, "дня"), (4, "дня"), (5, "дней"), (11, "дней"),
                                         (12, "дней"), (21, "день"), (22, "дня"), (25, "дней"), (111, "дней"),
                                         (101, "день")])
def test_plurals(n, word):
    assert plural_ru(n, "день", "дня", "дней") == word
    assert days_ru(n) == f"{n} {word}"
