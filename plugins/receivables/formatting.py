"""Russian formatting of money, dates and counts for letters, reports and claims.

Money arrives as integer kopecks and is formatted with integer arithmetic only: an
accountant must be able to sign every figure, so a float never touches an amount.
"""

from __future__ import annotations

import datetime as dt
import math
import operator
from decimal import Decimal
from typing import Any

MONTHS_GENITIVE = ("января", "февраля", "марта", "апреля", "мая", "июня", "июля", "августа",
                   "сентября", "октября", "ноября", "декабря")

RUBLE_SIGN = "₽"


def _kopecks(value: Any) -> int:
    """An exact integer number of kopecks, or an error (never a silent truncation).

    Accepts Python and NumPy integers, and integral Decimals or floats (pandas turns an
    int64 column with a gap into float64); a fractional kopeck is a bug upstream.
    """
    if isinstance(value, bool):
        raise TypeError(f"an amount in kopecks must be a number, not {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        pass
    if isinstance(value, (Decimal, float)):
        if value.is_finite() if isinstance(value, Decimal) else math.isfinite(value):
            if value == int(value):
                return int(value)
        raise ValueError(f"an amount in kopecks must be a whole number, got {value!r}")
    raise TypeError(f"an amount in kopecks must be an integer, got {type(value).__name__}")


def money_plain(kopecks: Any) -> str:
    """12500050 -> '125 000,50': a space between thousands, a comma before the kopecks."""
    k = _kopecks(kopecks)
    sign = "-" if k < 0 else ""
    rubles, kop = divmod(abs(k), 100)
    groups = f"{rubles:,}".replace(",", " ")
    return f"{sign}{groups},{kop:02d}"


def money(kopecks: Any) -> str:
    """12500050 -> '125 000,50 ₽'; -12345 -> '-123,45 ₽'."""
    return f"{money_plain(kopecks)} {RUBLE_SIGN}"


def rub(kopecks: Any) -> Decimal:
    """Kopecks as an exact Decimal of rubles: 12500050 -> Decimal('125000.50')."""
    return Decimal(_kopecks(kopecks)).scaleb(-2)


def _as_date(d: Any) -> dt.date:
    if d is None or d != d:  # None, NaN, NaT
        raise ValueError("no date to format")
    if isinstance(d, dt.datetime):
        return d.date()
    if isinstance(d, dt.date):
        return d
    if hasattr(d, "to_pydatetime"):  # pandas Timestamp, numpy datetime64 via pandas
        return d.to_pydatetime().date()
    return dt.date.fromisoformat(str(d)[:10])


def date_ru(d: Any) -> str:
    """2026-11-09 -> '09.11.2026'."""
    return _as_date(d).strftime("%d.%m.%Y")


def date_long_ru(d: Any) -> str:
    """2026-11-09 -> '9 ноября 2026 г.' (month in the genitive, as in letters and claims)."""
    d = _as_date(d)
    return f"{d.day} {MONTHS_GENITIVE[d.month - 1]} {d.year} г."


def plural_ru(n: int, one: str, few: str, many: str) -> str:
    """The Russian plural form for n: 1 день, 2 дня, 5 дней, 11 дней, 21 день, 111 дней."""
    n = abs(int(n))
    if n % 10 == 1 and n % 100 != 11:
        return one
    if 2 <= n % 10 <= 4 and not 12 <= n % 100 <= 14:
        return few
    return many


def days_ru(n: int) -> str:
    """3 -> '3 дня'."""
    return f"{n} {plural_ru(n, 'день', 'дня', 'дней')}"


def working_days_ru(n: int) -> str:
    """3 -> '3 рабочих дня'."""
    return f"{n} {plural_ru(n, 'рабочий день', 'рабочих дня', 'рабочих дней')}"


FILTERS = {
    "money": money, "money_plain": money_plain, "rub": rub, "date_ru": date_ru,
    "date_long_ru": date_long_ru, "days_ru": days_ru, "working_days_ru": working_days_ru,
    "plural_ru": plural_ru,
}


def install_filters(env: Any) -> None:
    """Register the formatters as Jinja2 filters (``{{ x | money }}``, ``{{ n | plural_ru('день', 'дня', 'дней') }}``)."""
    env.filters.update(FILTERS)
