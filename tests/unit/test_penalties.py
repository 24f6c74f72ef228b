"""Penalties to the kopeck (ru-rules.md), each rule on its own."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from decimal import Decimal as D
from pathlib import Path

import pytest

from receivables import settings
from receivables.domain.penalties import KeyRates, PenaltyError, compute

RATES = KeyRates.load(settings.key_rates_path())
d = dt.date


def total(method, **kw):
    return compute(method, rates=RATES, **kw).total


@pytest.mark.parametrize(("method", "extra", "expected"), [
    ("cbr_395", {}, D("9348.14")), ("contract", {"rate_per_day": D("0.1")}, D("16250.00")),
    ("cbr_1_300", {}, D("11375.00"))])
def test_worked_example_of_ru_rules_to_the_kopeck(method, extra, expected):
    # 250 000,00 due on a working Saturday (2024-12-28: no shift), paid 2025-03-03
    p = compute(method, principal=D("250000"), due=d(2024, 12, 28), end=d(2025, 3, 3), rates=RATES, **extra)
    assert p.total == expected and p.due_shifted == d(2024, 12, 28)


def test_395_splits_at_new_year_with_366_and_365_day_years():
    p = compute("cbr_395", principal=D("250000"), due=d(2024, 12, 28), end=d(2025, 3, 3), rates=RATES)
    assert [(x.start, x.end, x.days, x.year_days, x.amount) for x in p.periods] == [
        (d(2024, 12, 29), d(2024, 12, 31), 3, 366, D("430.33")),
        (d(2025, 1, 1), d(2025, 3, 3), 62, 365, D("8917.81"))]


def test_395_splits_at_a_key_rate_change():
    # 21% until 2025-06-08, 20% from 2025-06-09
    p = compute("cbr_395", principal=D("100000"), due=d(2025, 6, 2), end=d(2025, 6, 12), rates=RATES)
    assert [(x.start, x.days, x.rate) for x in p.periods] == [(d(2025, 6, 3), 6, D("21.00")),
                                                              (d(2025, 6, 9), 4, D("20.00"))]
    assert p.total == D("345.21") + D("219.18")


def test_due_date_in_the_new_year_holidays_moves_to_the_first_working_day():
    p = compute("cbr_395", principal=D("100000"), due=d(2025, 1, 3), end=d(2025, 1, 20), rates=RATES)
    assert p.due_shifted == d(2025, 1, 9) and p.periods[0].start == d(2025, 1, 10) and p.periods[0].days == 11


def test_partial_payment_reduces_the_base_from_the_next_day():
    p = compute("cbr_395", principal=D("100000"), due=d(2025, 2, 3), end=d(2025, 2, 28), rates=RATES,
                payments=[(d(2025, 2, 10), D("40000"))])
    assert [(x.start, x.end, x.base) for x in p.periods] == [
        (d(2025, 2, 4), d(2025, 2, 10), D("100000")), (d(2025, 2, 11), d(2025, 2, 28), D("60000"))]
    assert p.total == D("402.74") + D("621.37")


def test_contractual_penalty_is_capped_in_percent_of_the_debt():
    p = compute("contract", principal=D("250000"), due=d(2024, 12, 28), end=d(2025, 3, 3), rates=RATES,
                rate_per_day=D("0.1"), cap_percent=D("5"))
    assert p.total == D("12500.00") and p.capped


def test_2022_moratorium_stops_interest_on_debts_that_arose_before_april():
    p = compute("cbr_395", principal=D("100000"), due=d(2022, 3, 1), end=d(2022, 10, 10), rates=RATES)
    moratorium = [x for x in p.periods if x.note]
    assert moratorium and all(x.amount == 0 for x in moratorium)
    assert moratorium[0].start == d(2022, 4, 1) and moratorium[-1].end == d(2022, 10, 1)
    assert p.periods[-1].start == d(2022, 10, 2) and p.periods[-1].amount > 0
    later = compute("cbr_395", principal=D("100000"), due=d(2022, 5, 4), end=d(2022, 6, 1), rates=RATES)
    assert later.total > 0 and not any(x.note for x in later.periods)


def test_refuses_before_the_key_rate_era_and_past_the_table():
    with pytest.raises(PenaltyError, match="before 2016-08-01"):
        compute("cbr_395", principal=D("1000"), due=d(2016, 5, 4), end=d(2016, 9, 1), rates=RATES)
    with pytest.raises(PenaltyError, match="known complete through"):
        compute("cbr_395", principal=D("1000"), due=d(2026, 5, 4), end=RATES.covered_through + dt.timedelta(days=1),
                rates=RATES)


def test_nothing_accrues_before_the_delay_starts():
    assert total("cbr_395", principal=D("1000"), due=d(2025, 3, 3), end=d(2025, 3, 3)) == 0


def test_cli_json_has_total_as_a_string_and_periods():
    out = subprocess.run([str(Path(sys.executable).parent / "receivables"), "penalty", "--principal", "250000",
                          "--due", "2024-12-28", "--paid", "2025-03-03", "--method", "cbr_395", "--format", "json"],
                         capture_output=True, text=True, check=True)
    doc = json.loads(out.stdout)
    assert doc["total"] == "9348.14"
    assert doc["periods"][0] == {"from": "2024-12-29", "to": "2024-12-31", "days": 3, "rate": "21.00",
                                 "base": "250000.00", "amount": "430.33", "year_days": 366}
