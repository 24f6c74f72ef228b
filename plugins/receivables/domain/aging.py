"""Aging: what each open customer order owes as of a date, and since when (spec §4).

Vectorised: payments are summed per settlement object, shared objects are spread over
their orders oldest due date first, and within an order payments cover the payment
schedule's stages in date order; the earliest stage not fully covered gives the due
date, moved to the next working day when it falls on a day off (ГК РФ ст. 193).
All money is int64 kopecks.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from receivables.domain.calendar import get_calendar
from receivables.domain.frames import member

AGING_COLUMNS = [
    "as_of_date", "document_ref", "document_number", "document_date", "partner_ref", "partner_name",
    "organization_ref", "organization_name", "contract_ref", "manager_ref", "manager_name",
    "settlement", "due_date", "amount", "paid", "outstanding", "days_overdue",
    "business_days_overdue", "bucket", "partner_debt", "contract_debt", "segment",
]


def bucket_labels(bounds: Sequence[int]) -> list[str]:
    labels, lower = ["not_due"], 1
    for upper in bounds:
        labels.append(f"{lower}-{upper}")
        lower = upper + 1
    return labels + [f"{lower}+"]


def buckets(days_overdue: pd.Series, bounds: Sequence[int]) -> pd.Series:
    """not_due for days ≤ 0, then 1-30, 31-60, 61-90, 91+ (bounds from the policy)."""
    labels = bucket_labels(bounds)
    edges = np.asarray([0, *bounds])
    idx = np.searchsorted(edges, days_overdue.to_numpy(dtype="int64"), side="left")
    return pd.Series(np.asarray(labels, dtype=object)[idx], index=days_overdue.index, dtype="str")


def open_orders(orders: pd.DataFrame) -> pd.DataFrame:
    """Posted, not deletion-marked orders with a positive amount."""
    keep = orders["posted"] & ~orders["deleted"] & orders["amount"].fillna(0).gt(0)
    return orders.loc[keep].copy()


def schedule(orders: pd.DataFrame, stages: pd.DataFrame, contracts: pd.DataFrame) -> pd.DataFrame:
    """One row per (order, stage): the payment schedule, or one synthetic stage.

    Without stages an order is due on its date plus the contract's СрокОплаты when the
    contract sets one (УстановленСрокОплаты), else on its own date.
    """
    have = stages.loc[member(stages["document_ref"], orders["document_ref"]),
                      ["document_ref", "line", "pay_date", "amount"]]
    have = have.rename(columns={"amount": "stage_amount"})
    without = orders.loc[~member(orders["document_ref"], have["document_ref"]),
                         ["document_ref", "document_date", "contract_ref", "amount"]]
    terms = contracts[["contract_ref", "has_term", "term_days"]].drop_duplicates("contract_ref")
    without = without.merge(terms, on="contract_ref", how="left")
    days = without["term_days"].where(without["has_term"].fillna(False).astype(bool), 0)
    days = days.fillna(0).astype("int64").to_numpy()
    synthetic = pd.DataFrame({
        "document_ref": without["document_ref"].to_numpy(),
        "line": np.ones(len(without), dtype="int64"),
        "pay_date": without["document_date"].to_numpy() + days.astype("timedelta64[D]"),
        "stage_amount": without["amount"].to_numpy(dtype="int64"),
    })
    out = pd.concat([have.astype({"line": "int64", "stage_amount": "int64"}), synthetic],
                    ignore_index=True)
    out["pay_date"] = out["pay_date"].astype("datetime64[s]")
    return out.sort_values(["document_ref", "pay_date", "line"], kind="stable", ignore_index=True)


def _fifo(total: np.ndarray, amount: np.ndarray, cum: np.ndarray) -> np.ndarray:
    """Share of `total` that covers each item when items are paid in order (cum = running sum)."""
    return np.clip(total - (cum - amount), 0, amount)


def allocate_payments(orders: pd.DataFrame, first_due: pd.Series, payments: pd.DataFrame,
                      objects: pd.DataFrame) -> pd.Series:
    """Paid kopecks per order (indexed like `orders`).

    An order settled by itself (its own settlement object: ПоЗаказам, ПоЗаказамНакладным)
    gets all of its object's payments — an overpayment stays visible for the gate. Orders
    sharing an object (a contract's) get its payments oldest due date first, each up to
    its amount.
    """
    by_object = payments.groupby("settlement_ref", sort=False)["amount"].sum()
    total = orders["settlement_ref"].map(by_object).fillna(0).astype("int64")
    own_object = objects.set_index("settlement_ref")["object_ref"]
    own = orders["settlement_ref"].map(own_object).eq(orders["document_ref"]).fillna(False)
    shared_keys = orders["settlement_ref"].where(~own)
    shared_counts = shared_keys.map(shared_keys.value_counts()).fillna(0)
    # an order alone on an object it does not name (old data) also simply takes it all
    shared = ~own & shared_counts.gt(1)
    paid = total.copy()
    if shared.any():
        sub = pd.DataFrame({
            "settlement_ref": orders.loc[shared, "settlement_ref"],
            "due": first_due.loc[shared],
            "date": orders.loc[shared, "document_date"],
            "number": orders.loc[shared, "document_number"],
            "amount": orders.loc[shared, "amount"].astype("int64"),
            "total": total.loc[shared],
        }).sort_values(["settlement_ref", "due", "date", "number"], kind="stable")
        cum = sub.groupby("settlement_ref", sort=False)["amount"].cumsum()
        sub["paid"] = _fifo(sub["total"].to_numpy(), sub["amount"].to_numpy(), cum.to_numpy())
        paid.loc[sub.index] = sub["paid"]
    return paid.astype("int64")


AGING_DTYPES = {
    "as_of_date": "datetime64[s]", "document_date": "datetime64[s]", "due_date": "datetime64[s]",
    "amount": "int64", "paid": "int64", "outstanding": "int64", "days_overdue": "int64",
    "business_days_overdue": "int64", "partner_debt": "int64", "contract_debt": "int64",
}


def empty_aging() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series([], dtype=AGING_DTYPES.get(c, "str")) for c in AGING_COLUMNS})


def compute_aging(frames: Mapping[str, pd.DataFrame], as_of: dt.date, *,
                  bucket_bounds: Sequence[int] = (30, 60, 90)) -> pd.DataFrame:
    """The `aging_snapshot` rows for `as_of`: one per open order with outstanding > 0.

    `frames` is the as-of view of the extract (later documents and payments removed).
    """
    cal = get_calendar()
    orders = open_orders(frames["orders"]).reset_index(drop=True)
    if orders.empty:
        return empty_aging()
    orders["amount"] = orders["amount"].astype("int64")
    sched = schedule(orders, frames["stages"], frames["contracts"])
    first_due = orders["document_ref"].map(sched.groupby("document_ref", sort=False)["pay_date"].min())
    paid = allocate_payments(orders, first_due, frames["payments"], frames["settlement_objects"])
    orders["paid"] = paid.to_numpy()

    # within an order, payments cover stages in date order
    sched = sched.merge(orders[["document_ref", "paid"]], on="document_ref", how="inner")
    cum = sched.groupby("document_ref", sort=False)["stage_amount"].cumsum()
    covered = _fifo(sched["paid"].to_numpy(), sched["stage_amount"].to_numpy(), cum.to_numpy())
    open_stage = sched.loc[covered < sched["stage_amount"].to_numpy()]
    due = open_stage.groupby("document_ref", sort=False)["pay_date"].min()
    last_stage = sched.groupby("document_ref", sort=False)["pay_date"].max()

    orders["outstanding"] = orders["amount"] - orders["paid"]
    orders = orders.loc[orders["outstanding"] > 0].reset_index(drop=True)
    if orders.empty:
        return empty_aging()
    # stages may under-sum the amount (the gate reports that); the last stage then carries it
    raw_due = orders["document_ref"].map(due).fillna(orders["document_ref"].map(last_stage))
    orders["due_date"] = cal.roll_forward(raw_due.astype("datetime64[s]"))

    as_of_ts = pd.Timestamp(as_of).as_unit("s")
    days = (as_of_ts - orders["due_date"]).dt.days.astype("int64")
    orders["days_overdue"] = days
    as_of_col = pd.Series(np.full(len(orders), as_of_ts.to_datetime64()), index=orders.index)
    orders["business_days_overdue"] = cal.working_days_between(orders["due_date"], as_of_col).astype("int64")
    orders["bucket"] = buckets(days, bucket_bounds)
    orders["partner_debt"] = orders.groupby("partner_ref", sort=False)["outstanding"].transform("sum")
    orders["contract_debt"] = orders.groupby(orders["contract_ref"].fillna(""), sort=False)[
        "outstanding"].transform("sum")

    partners = frames["partners"][["partner_ref", "partner_name"]].drop_duplicates("partner_ref")
    orgs = frames["organizations"][["organization_ref", "organization_name"]].drop_duplicates("organization_ref")
    mgrs = frames["managers"][["manager_ref", "manager_name"]].drop_duplicates("manager_ref")
    seg = frames["segments"].dropna(subset=["segment_name"]).sort_values("segment_name")
    seg = seg.drop_duplicates("partner_ref")[["partner_ref", "segment_name"]].rename(columns={"segment_name": "segment"})
    out = orders.merge(partners, on="partner_ref", how="left").merge(seg, on="partner_ref", how="left").merge(
        orgs, on="organization_ref", how="left").merge(mgrs, on="manager_ref", how="left")
    out["as_of_date"] = as_of_ts.to_datetime64()
    out["as_of_date"] = out["as_of_date"].astype("datetime64[s]")
    return out[AGING_COLUMNS].sort_values("document_ref", ignore_index=True)
