"""Aging rules of spec §4, each on a small hand-made company."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from factories import frames, gid, order, payment, stage
from receivables.domain.aging import bucket_labels, buckets, compute_aging
from receivables.domain.normalise import as_of_view

AS_OF = dt.date(2026, 11, 20)


def one(aging: pd.DataFrame, number: str) -> pd.Series:
    row = aging.loc[aging["document_number"].eq(number)]
    assert len(row) == 1, f"{number} not in aging"
    return row.iloc[0]


def test_due_date_is_the_first_stage_not_covered_by_payments():
    f = frames(orders=[order("A", "2026-11-02", 1000)],
               stages=[stage("A", 1, "2026-11-05", 400), stage("A", 2, "2026-11-16", 600)],
               payments=[payment("P1", "2026-11-05", 400, settles="A")])
    row = one(compute_aging(f, AS_OF), "A")
    assert row["paid"] == 40000 and row["outstanding"] == 60000
    assert row["due_date"] == pd.Timestamp("2026-11-16")
    assert row["days_overdue"] == 4


def test_partial_payment_of_a_stage_keeps_that_stage_due():
    f = frames(orders=[order("A", "2026-11-02", 1000)],
               stages=[stage("A", 1, "2026-11-05", 400), stage("A", 2, "2026-11-16", 600)],
               payments=[payment("P1", "2026-11-05", 399.99, settles="A")])
    row = one(compute_aging(f, AS_OF), "A")
    assert row["due_date"] == pd.Timestamp("2026-11-05")
    assert row["outstanding"] == 60001


def test_due_date_on_a_holiday_moves_to_the_next_working_day():
    # 2026-11-04 is the Day of National Unity (ГК РФ ст. 193)
    f = frames(orders=[order("A", "2026-11-02", 100)], stages=[stage("A", 1, "2026-11-04", 100)])
    assert one(compute_aging(f, AS_OF), "A")["due_date"] == pd.Timestamp("2026-11-05")


def test_without_stages_the_contract_term_sets_the_due_date():
    contract = {"contract_ref": gid("c1"), "number": "1", "contract_date": "2025-01-01", "name": "Д",
                "partner_ref": gid("p1"), "counterparty_ref": gid("kp1"), "organization_ref": None,
                "settlement": "ПоЗаказам", "has_term": True, "term_days": 10, "status": "Действует"}
    f = frames(orders=[order("A", "2026-11-02", 100)], contracts=[contract])
    # 2026-11-12 is a Thursday: no shift
    assert one(compute_aging(f, AS_OF), "A")["due_date"] == pd.Timestamp("2026-11-12")


def test_without_stages_or_term_the_document_date_is_the_due_date():
    f = frames(orders=[order("A", "2026-11-03", 100)])
    row = one(compute_aging(f, AS_OF), "A")
    assert row["due_date"] == pd.Timestamp("2026-11-03")
    assert row["days_overdue"] == 17
    # working days in (2026-11-03, 2026-11-20]: 11-05..11-20 without 11-04 and weekends
    assert row["business_days_overdue"] == 12


def test_shared_settlement_object_pays_oldest_due_date_first():
    kw = {"settlement": "ПоДоговорамКонтрагентов", "contract": "c1"}
    f = frames(orders=[order("NEW", "2026-11-10", 300, **kw), order("OLD", "2026-11-01", 500, **kw)],
               payments=[payment("P1", "2026-11-12", 600, settles="c1")])
    aging = compute_aging(f, AS_OF)
    assert "OLD" not in set(aging["document_number"])  # fully covered first
    assert one(aging, "NEW")["paid"] == 10000 and one(aging, "NEW")["outstanding"] == 20000


def test_overpayment_of_an_order_settled_by_itself_stays_visible():
    f = frames(orders=[order("A", "2026-11-02", 100), order("B", "2026-11-02", 100)],
               payments=[payment("P1", "2026-11-03", 150, settles="A")])
    aging = compute_aging(f, AS_OF)
    assert "A" not in set(aging["document_number"])  # outstanding ≤ 0 is not open
    assert one(aging, "B")["outstanding"] == 10000


def test_payments_after_the_as_of_date_do_not_count():
    f = frames(orders=[order("A", "2026-11-02", 100)],
               payments=[payment("P1", "2026-11-21", 100, settles="A")])
    view = as_of_view(f, AS_OF, extracted_on=dt.date(2026, 11, 23))
    assert one(compute_aging(view, AS_OF), "A")["outstanding"] == 10000
    assert compute_aging(as_of_view(f, dt.date(2026, 11, 21)), dt.date(2026, 11, 21)).empty


def test_documents_dated_after_the_as_of_date_do_not_exist():
    f = frames(orders=[order("A", "2026-11-21", 100)])
    assert compute_aging(as_of_view(f, AS_OF, extracted_on=AS_OF), AS_OF).empty


def test_unposted_and_deleted_orders_are_not_receivables():
    f = frames(orders=[order("A", "2026-11-02", 100, posted=False), order("B", "2026-11-02", 100, deleted=True)])
    assert compute_aging(f, AS_OF).empty


@pytest.mark.parametrize(("days", "label"), [(-5, "not_due"), (0, "not_due"), (1, "1-30"), (30, "1-30"),
                                             (31, "31-60"), (60, "31-60"), (61, "61-90"), (90, "61-90"),
                                             (91, "91+"), (1000, "91+")])
def test_bucket_boundaries(days, label):
    assert buckets(pd.Series([days]), [30, 60, 90]).iloc[0] == label


def test_bucket_labels_follow_the_policy_bounds():
    assert bucket_labels([15, 45]) == ["not_due", "1-15", "16-45", "46+"]


def test_partner_and_contract_debt_bases():
    f = frames(orders=[order("A", "2026-11-02", 100), order("B", "2026-11-03", 250, contract="c2")])
    aging = compute_aging(f, AS_OF)
    assert set(aging["partner_debt"]) == {35000}
    assert one(aging, "A")["contract_debt"] == 10000 and one(aging, "B")["contract_debt"] == 25000


def test_payments_to_an_object_missing_from_the_catalog_still_pay_its_orders_oldest_first():
    """Orders naming a settlement object the catalog lacks (old or partial data) share its
    payments by due date, as if it were there (the fallback coding of allocate_payments)."""
    import pandas as pd

    from receivables.domain.aging import allocate_payments

    orders = pd.DataFrame({
        "document_ref": pd.Series(["a", "b", "c"], dtype="str"),
        "document_number": pd.Series(["2", "1", "3"], dtype="str"),
        "document_date": pd.to_datetime(["2026-01-02", "2026-01-01", "2026-01-03"]).astype("datetime64[s]"),
        "amount": [10_000, 10_000, 5_000],
        "settlement_ref": pd.Series(["s1", "s1", "own"], dtype="str"),
    })
    first_due = pd.Series(pd.to_datetime(["2026-02-01", "2026-03-01", "2026-02-01"]).astype("datetime64[s]"))
    payments = pd.DataFrame({"settlement_ref": pd.Series(["s1", "own", "elsewhere"], dtype="str"),
                             "amount": [15_000, 2_000, 9_999]})
    catalog = pd.DataFrame({"settlement_ref": pd.Series(["own"], dtype="str"),
                            "object_ref": pd.Series(["c"], dtype="str")})
    paid = allocate_payments(orders, first_due, payments, catalog)
    assert paid.tolist() == [10_000, 5_000, 2_000]


def test_debts_and_names_of_orders_without_a_partner_or_contract():
    # an order without a partner (the gate reports it) has no partner debt or name, as a
    # groupby over the partner leaves it; orders without a contract share one contract debt
    f = frames(orders=[order("A", "2026-11-02", 1000), order("B", "2026-11-03", 500, contract=None),
                       order("C", "2026-11-04", 300, contract=None), order("D", "2026-11-05", 200)])
    f["orders"].loc[f["orders"]["document_number"].eq("D"), "partner_ref"] = None
    a = compute_aging(f, dt.date(2026, 11, 20)).set_index("document_number")
    assert a.loc["A", "partner_debt"] == 180000 and a.loc["A", "partner_name"] == a.loc["C", "partner_name"]
    assert pd.notna(a.loc["A", "partner_name"])
    assert pd.isna(a.loc["D", "partner_debt"]) and pd.isna(a.loc["D", "partner_name"])
    assert a.loc["B", "contract_debt"] == a.loc["C", "contract_debt"] == 80000
    assert a.loc["D", "contract_debt"] == 120000  # D keeps A's contract


@pytest.mark.parametrize("with_repeat", [False, True])
def test_orders_not_open_change_nothing_even_repeating_a_reference(with_repeat):
    # a deleted order repeating an open order's Ref_Key (the gate reports it) sends aging down
    # the text-join path; the open orders' debts are what they are without it
    orders = [order("A", "2026-11-02", 1000), order("B", "2026-11-03", 500, settlement="ПоДоговорамКонтрагентов"),
              order("C", "2026-11-04", 300, settlement="ПоДоговорамКонтрагентов")]
    stages = [stage("A", 1, "2026-11-05", 400), stage("A", 2, "2026-11-20", 600)]
    payments = [payment("P1", "2026-11-06", 450, settles="A"), payment("P2", "2026-11-06", 600, settles="c1")]
    clean = frames(orders=orders, stages=stages, payments=payments)
    # and an unposted order on the contract, older than B and C, takes none of its payment
    closed = [order("D", "2026-10-02", 900, settlement="ПоДоговорамКонтрагентов", posted=False)]
    if with_repeat:
        closed.append(dict(order("A", "2026-10-01", 77), deleted=True))
    repeated = frames(orders=[*orders, *closed], stages=stages, payments=payments)
    assert repeated["orders"]["document_ref"].duplicated().any() == with_repeat
    want, got = compute_aging(clean, AS_OF), compute_aging(repeated, AS_OF)
    assert list(want["document_number"].sort_values()) == ["A", "C"] and want["paid"].sum() > 0
    pd.testing.assert_frame_equal(got, want)


def test_group_totals_are_exact_in_kopecks_also_beyond_float_precision():
    import numpy as np

    from receivables.domain.aging import _sums

    rng = np.random.default_rng(3)
    code, values = rng.integers(0, 50, 10_000), rng.integers(-10**9, 10**12, 10_000)
    want = np.zeros(50, dtype="int64")
    np.add.at(want, code, values)
    assert np.array_equal(_sums(code, values, 50), want)
    # float64 would round 2**60 + 1 + 1: the totals must still be exact
    assert _sums(np.array([0, 0, 1]), np.array([2**60 + 1, 1, 3]), 2).tolist() == [2**60 + 2, 3]
