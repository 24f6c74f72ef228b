"""Russian formatting of money, dates and counts for letters, reports and claims.

Money arrives as integer kopecks and is formatted with integer arithmetic only.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

MONTHS_GENITIVE = ("января", "февраля", "марта", "апреля", "мая", "июня", "июля", "августа",
                   "сентября", "октября", "ноября", "декабря")


def money_plain(kopecks: int) -> str:
    """12500050 -> '125 000,50' (space between thousands, comma before kopecks)."""
    k = int(kopecks)
    sign = "-" if k < 0 else ""
    rub, kop = divmod(abs(k), 100)
    groups = f"{rub:,}".replace(",", " ")
    return f"{sign}{groups},{kop:02d}"


def money(kopecks: int) -> str:
    """12500050 -> '125 000,50 ₽'."""
    return f"{money_plain(kopecks)} ₽"


def rub(kopecks: int) -> Decimal:
    return Decimal(int(kopecks)).scaleb(-2)


def _as_date(d: Any) -> dt.date:
    if isinstance(d, dt.datetime):
        return d.date()
    if isinstance(d, dt.date):
        return d
    if hasattr(d, "date"):
        return d.date()  # pandas Timestamp
    return dt.date.fromisoformat(str(d)[:10])


def date_ru(d: Any) -> str:
    """2026-11-09 -> '09.11.2026'."""
    return _as_date(d).strftime("%d.%m.%Y")


def date_long_ru(d: Any) -> str:
    """2026-11-09 -> '9 ноября 2026 г.'."""
    d = _as_date(d)
    return f"{d.day} {MONTHS_GENITIVE[d.month - 1]} {d.year} г."


def plural_ru(n: int, one: str, few: str, many: str) -> str:
    """The Russian plural form for n: 1 день, 2 дня, 5 дней, 11 дней, 21 день."""
    n = abs(int(n))
    if n % 10 == 1 and n % 100 != 11:
        return one
    if 2 <= n % 10 <= 4 and not 12 <= n % 100 <= 14:
        return few
    return many


def days_ru(n: int) -> str:
    return f"{n} {plural_ru(n, 'день', 'дня', 'дней')}"


def working_days_ru(n: int) -> str:
    return f"{n} {plural_ru(n, 'рабочий день', 'рабочих дня', 'рабочих дней')}"


def install_filters(env: Any) -> None:
    """Register the formatters as Jinja2 filters."""
    env.filters.update({
        "money": money, "money_plain": money_plain, "date_ru": date_ru, "date_long_ru": date_long_ru,
        "days_ru": days_ru, "working_days_ru": working_days_ru, "plural_ru": plural_ru,
    })
