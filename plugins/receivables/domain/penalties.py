"""Penalties on a late payment, in Decimal (ru-rules.md): ст. 395 ГК РФ by key-rate
periods, a contractual rate per day with an optional cap, and 1/300 of the key rate.

Delay runs from the day after the due date (moved past days off by ст. 193) to the
payment or calculation date inclusive; a partial payment reduces the base from the day
after it; each period is rounded half-up to kopecks.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

KEY_RATE_FROM = dt.date(2016, 8, 1)
MORATORIUM = (dt.date(2022, 4, 1), dt.date(2022, 10, 1))
METHODS = ("cbr_395", "contract", "cbr_1_300")
KOPECK = Decimal("0.01")


class PenaltyError(ValueError):
    """The penalty cannot be computed honestly (dates outside the rate table, bad input)."""


@dataclass(frozen=True)
class KeyRates:
    """Key rate by effective date, and the last date the table is known to be complete for."""

    changes: tuple[tuple[dt.date, Decimal], ...]
    covered_through: dt.date

    @classmethod
    def load(cls, csv_path: Path, meta_path: Path | None = None) -> KeyRates:
        rows = []
        with open(csv_path, encoding="utf-8") as fh:
            for r in csv.DictReader(fh):
                rows.append((dt.date.fromisoformat(r["date_from"]), Decimal(r["rate_percent"])))
        rows.sort()
        meta_path = meta_path or csv_path.with_suffix(".meta.json")
        covered = rows[-1][0]
        if meta_path.exists():
            covered = dt.date.fromisoformat(json.loads(meta_path.read_text(encoding="utf-8"))["covered_through"])
        return cls(tuple(rows), covered)

    def rate_on(self, day: dt.date) -> Decimal:
        rate = None
        for start, value in self.changes:
            if start > day:
                break
            rate = value
        if rate is None:
            raise PenaltyError(f"no key rate is known for {day} (the table starts {self.changes[0][0]})")
        return rate

    def changes_within(self, start: dt.date, end: dt.date) -> list[dt.date]:
        return [d for d, _ in self.changes if start < d <= end]


@dataclass(frozen=True)
class Period:
    start: dt.date
    end: dt.date
    days: int
    rate: Decimal  # percent: a year for cbr_395 and cbr_1_300, a day for contract
    base: Decimal
    amount: Decimal
    year_days: int | None = None
    note: str = ""

    def to_json(self) -> dict:
        return {"from": self.start.isoformat(), "to": self.end.isoformat(), "days": self.days,
                "rate": str(self.rate), "base": f"{self.base:.2f}", "amount": f"{self.amount:.2f}",
                **({"year_days": self.year_days} if self.year_days else {}), **({"note": self.note} if self.note else {})}


@dataclass(frozen=True)
class Penalty:
    method: str
    principal: Decimal
    due: dt.date
    due_shifted: dt.date
    end: dt.date
    total: Decimal
    periods: list[Period] = field(default_factory=list)
    capped: bool = False

    def to_json(self) -> dict:
        return {"method": self.method, "principal": f"{self.principal:.2f}", "due": self.due.isoformat(),
                "due_shifted": self.due_shifted.isoformat(), "to": self.end.isoformat(),
                "total": f"{self.total:.2f}", "capped": self.capped, "periods": [p.to_json() for p in self.periods]}


def _round(x: Decimal) -> Decimal:
    return x.quantize(KOPECK, rounding=ROUND_HALF_UP)


def _year_days(year: int) -> int:
    return 366 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 365


def _segments(start: dt.date, end: dt.date, cuts: Iterable[dt.date]) -> list[tuple[dt.date, dt.date]]:
    """[start, end] split before each cut day (a cut day starts a new segment)."""
    points = sorted({c for c in cuts if start < c <= end})
    out, s = [], start
    for c in points:
        out.append((s, c - dt.timedelta(days=1)))
        s = c
    out.append((s, end))
    return out


def _base_on(day: dt.date, principal: Decimal, payments: Sequence[tuple[dt.date, Decimal]]) -> Decimal:
    """Principal less payments made before `day` (a payment counts from the next day)."""
    return principal - sum((a for d, a in payments if d < day), Decimal(0))


def compute(method: str, *, principal: Decimal, due: dt.date, end: dt.date,
            payments: Sequence[tuple[dt.date, Decimal]] = (), rates: KeyRates | None = None,
            rate_per_day: Decimal | None = None, cap_percent: Decimal | None = None,
            roll_forward=None) -> Penalty:
    """The penalty on `principal` due on `due`, counted to `end` (payment or calculation date).

    `payments` are partial payments before `end` (date, amount); `roll_forward` moves a
    due date off a day off (ст. 193), the production calendar's by default.
    """
    if method not in METHODS:
        raise PenaltyError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    principal = Decimal(principal)
    if principal <= 0:
        raise PenaltyError(f"principal must be positive, got {principal}")
    if roll_forward is None:
        from receivables.domain.calendar import get_calendar

        roll_forward = get_calendar().roll_forward_date
    shifted = roll_forward(due)
    start = shifted + dt.timedelta(days=1)
    payments = sorted((d, Decimal(a)) for d, a in payments if d <= end)
    if end < start:
        return Penalty(method, principal, due, shifted, end, Decimal("0.00"))
    cuts = [d + dt.timedelta(days=1) for d, _ in payments]
    if method in ("cbr_395", "cbr_1_300"):
        if rates is None:
            raise PenaltyError("key rates are needed for this method")
        if method == "cbr_395" and start < KEY_RATE_FROM:
            raise PenaltyError(f"the delay starts {start}: before {KEY_RATE_FROM} ст. 395 used other rates "
                               "(average deposit rates), which this calculator does not have")
        if end > rates.covered_through:
            raise PenaltyError(f"the key-rate table is known complete through {rates.covered_through}, the "
                               f"calculation runs to {end}: add the newer key-rate decisions to "
                               "include/data/cbr_key_rate.csv and move covered_through forward")
    periods: list[Period] = []
    if method == "cbr_395":
        years = [dt.date(y, 1, 1) for y in range(start.year + 1, end.year + 1)]
        arose_before = shifted < MORATORIUM[0]
        mor = [MORATORIUM[0], MORATORIUM[1] + dt.timedelta(days=1)] if arose_before else []
        for s, e in _segments(start, end, [*rates.changes_within(start, end), *years, *cuts, *mor]):
            base = _base_on(s, principal, payments)
            if base <= 0:
                continue
            rate, ydays, days = rates.rate_on(s), _year_days(s.year), (e - s).days + 1
            if arose_before and MORATORIUM[0] <= s <= MORATORIUM[1]:
                periods.append(Period(s, e, days, rate, base, Decimal("0.00"), ydays,
                                      "мораторий (постановление Правительства РФ № 497)"))
                continue
            periods.append(Period(s, e, days, rate, base, _round(base * rate / 100 * days / ydays), ydays))
    elif method == "contract":
        if rate_per_day is None:
            raise PenaltyError("the contract method needs --rate-per-day (percent of the debt a day)")
        for s, e in _segments(start, end, cuts):
            base = _base_on(s, principal, payments)
            if base <= 0:
                continue
            days = (e - s).days + 1
            periods.append(Period(s, e, days, Decimal(rate_per_day), base,
                                  _round(base * Decimal(rate_per_day) / 100 * days)))
    else:  # cbr_1_300: one rate, in force on the payment or calculation date
        rate = rates.rate_on(end)
        for s, e in _segments(start, end, cuts):
            base = _base_on(s, principal, payments)
            if base <= 0:
                continue
            days = (e - s).days + 1
            periods.append(Period(s, e, days, rate, base, _round(base * rate / 100 / 300 * days)))
    total = sum((p.amount for p in periods), Decimal("0.00"))
    capped = False
    if method == "contract" and cap_percent is not None:
        cap = _round(principal * Decimal(cap_percent) / 100)
        if total > cap:
            total, capped = cap, True
    return Penalty(method, principal, due, shifted, end, _round(total), periods, capped)


def to_dict(p: Penalty) -> dict:
    return asdict(p)
