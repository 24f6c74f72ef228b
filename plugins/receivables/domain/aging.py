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
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pandas.api.extensions import take

from receivables.domain.calendar import get_calendar
from receivables.domain.frames import (
    COMPUTE_THREADS,
    arrow_str,
    frame_keys,
    key_positions,
    lexsort,
    lookup,
    member,
    positions,
    release_memory,
    sort_key,
    strictly_ascending,
    take_rows,
    take_text,
    text_category,
    with_keys,
)

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
    out = pd.Series(labels, dtype="str").take(idx)  # Arrow takes the text: no Python string per row
    out.index = days_overdue.index
    return out


def open_orders(orders: pd.DataFrame) -> np.ndarray:
    """Row positions of the posted, not deletion-marked orders with a positive amount."""
    keep = orders["posted"] & ~orders["deleted"] & orders["amount"].fillna(0).gt(0)
    return np.flatnonzero(keep.to_numpy(dtype=bool))


#: the order columns paying and dating an order reads, and those the snapshot carries: the
#: latter are taken only for the orders still owing (a third of the open ones, typically)
_PAY_COLUMNS = ["document_ref", "document_number", "document_date", "contract_ref", "amount",
                "document_key", "settlement_key"]
_ORDER_COLUMNS = ["document_ref", "document_number", "document_date", "partner_ref", "organization_ref",
                  "contract_ref", "manager_ref", "settlement", "amount"]

#: the frames and columns `compute_aging` reads from the extract, whose frames carry the integer
#: keys of the references (`with_keys`): the aging task loads these only, not the payments'
#: receipts, the contacts, the counterparties. The settlement objects' and payments' references
#: are joined on by their keys alone, so their text is not read (nor the orders' settlement object's)
AGING_READS: dict[str, tuple[str, ...]] = {
    "orders": tuple(dict.fromkeys([*_PAY_COLUMNS, *_ORDER_COLUMNS, "posted", "deleted"])),
    "stages": ("document_ref", "document_key", "line", "pay_date", "amount"),
    "contracts": ("contract_ref", "has_term", "term_days"),
    "payments": ("settlement_key", "amount"),
    "settlement_objects": ("settlement_key", "object_key"),
    "organizations": ("organization_ref", "organization_name"),
    "managers": ("manager_ref", "manager_name"),
    "partners": ("partner_ref", "partner_name"),
    "segments": ("partner_ref", "segment_name"),
}
#: reference text aging joins on only when some order's reference is missing or repeated (it then
#: dates the orders joining their stages on the text, `_paid_and_due_by_ref`); otherwise on the keys
TEXT_JOINS: dict[str, tuple[str, ...]] = {"stages": ("document_ref",)}


def aging_reads(orders: pd.DataFrame) -> dict[str, tuple[str, ...]]:
    """The frames and columns `compute_aging` reads, given the orders (read first, with
    `AGING_READS["orders"]`): without the join-only reference text (`TEXT_JOINS`) when every
    order's reference is keyed once — present and unique, as the gate requires before aging runs —
    since aging then joins the stages on their keys alone (at a million open documents 0.1 GB of
    text the aging task need not read)."""
    keys = frame_keys(orders, "document_ref")
    if keys is None or not _keyed_once(keys):
        return dict(AGING_READS)
    return {name: tuple(c for c in cols if c not in TEXT_JOINS.get(name, ())) for name, cols in AGING_READS.items()}


def _keyed_once(keys: np.ndarray) -> bool:
    """Whether every order has a reference key and no two orders share one."""
    if len(keys) and keys[0] >= 0 and (keys[1:] > keys[:-1]).all():
        return True  # ascending (normalise numbers the orders first, in order): distinct and present
    return not (keys < 0).any() and np.array_equal(key_positions(keys, keys), np.arange(len(keys)))


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


def _sums(code: np.ndarray, values: np.ndarray, size: int) -> np.ndarray:
    """Exact int64 totals of `values` per code 0..size-1. `np.bincount` adds in float64, which
    is exact while every partial sum stays below 2**53 (checked); `np.add.at` gives the same
    ten times slower (a million open documents' payments: 0.45 s against 0.05)."""
    values = np.asarray(values, dtype="int64")
    if len(values) and float(np.abs(values).max()) * len(values) >= 2.0**53:
        totals = np.zeros(size, dtype="int64")
        np.add.at(totals, code, values)
        return totals
    return np.bincount(code, weights=values, minlength=size).astype("int64")


def _group_sums(code: np.ndarray, groups: int, values: pd.Series) -> np.ndarray:
    """Each row's group total of `values` (int64, exact), the groups given as codes 0..groups-1."""
    return _sums(code, values.to_numpy(dtype="int64"), groups)[code]


def _fifo(total: np.ndarray, amount: np.ndarray, cum: np.ndarray) -> np.ndarray:
    """Share of `total` that covers each item when items are paid in order (cum = running sum)."""
    return np.clip(total - (cum - amount), 0, amount)


def _object_codes(refs: pd.Series, paid_refs: pd.Series, object_refs: pd.Series
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(code of each order's settlement object, code of each payment's (-1: none an order
    names), the object row each order's object is (-1: not in the catalog)); equal
    references get equal codes, a missing one -1.

    Normally every object an order names is in the catalog: its row, found by one hash of
    the catalog and of both reference columns, is the code. Otherwise the orders' own
    references are factorised and the payments and the catalog looked up in them.
    """
    n = len(refs)
    found = positions(pd.concat([refs, paid_refs], ignore_index=True), object_refs)
    missing = np.concatenate([refs.isna().to_numpy(), paid_refs.isna().to_numpy()])
    found[missing] = -1  # a missing reference names no object (positions matches missing to missing)
    obj = found[:n]
    if not (obj[~missing[:n]] < 0).any():
        return obj, found[n:], obj
    at, named = pd.factorize(refs)
    return at, positions(paid_refs, named), positions(refs, object_refs)


def allocate_payments(orders: pd.DataFrame, first_due: pd.Series, payments: pd.DataFrame,
                      objects: pd.DataFrame, live: np.ndarray | None = None) -> pd.Series:
    """Paid kopecks per order (indexed like `orders`).

    An order settled by itself (its own settlement object: ПоЗаказам, ПоЗаказамНакладным)
    gets all of its object's payments — an overpayment stays visible for the gate. Orders
    sharing an object (a contract's) get its payments oldest due date first, each up to
    its amount. With `live` (a mask) only those orders take part: the others get nothing
    and take nothing from the rest.
    """
    totals = _object_totals(orders, payments, objects, live)
    paid = _share_out(orders, totals, first_due.to_numpy(dtype="datetime64[s]")[totals.shared])
    return pd.Series(paid, index=orders.index, dtype="int64", copy=False)


class _Totals(NamedTuple):
    """`_object_totals`: what each order's settlement object was paid in all (int64 kopecks, an
    array of its own), and of the orders that share their object with others: their rows, their
    objects (dense codes) and the sort keys of their dates and numbers (the tie-breaks after the
    due date)."""

    paid: np.ndarray
    shared: np.ndarray
    group: np.ndarray
    date_key: np.ndarray
    number_key: np.ndarray


def _object_totals(orders: pd.DataFrame, payments: pd.DataFrame, objects: pd.DataFrame,
                   live: np.ndarray | None) -> _Totals:
    """`allocate_payments` up to the due dates: it needs no stage, so aging finds it on a worker
    thread while it sorts the stages."""
    keys = [frame_keys(df, "settlement_ref") for df in (orders, payments, objects)]
    if all(k is not None for k in keys):  # one numbering (`with_keys`): the keys are the codes
        at, paid_in = keys[0], keys[1]
        obj = np.where(at >= 0, key_positions(at, keys[2]), -1)
    else:
        at, paid_in, obj = _object_codes(orders["settlement_ref"], payments["settlement_ref"],
                                         objects["settlement_ref"])
    if live is not None:
        at, obj = np.where(live, at, -1), np.where(live, obj, -1)
    hit = paid_in >= 0
    n_codes = int(max(at.max(initial=-1), paid_in.max(initial=-1))) + 1
    # the last: no object (-1)
    by_object = _sums(paid_in[hit], payments["amount"].to_numpy(dtype="int64", na_value=0)[hit], n_codes + 1)
    del hit
    # (order-sized arrays are ~23 MB each at a million open documents: each goes once used, as
    # aging's peak is here)
    total = by_object[at]
    del by_object
    # own: the order's object names the order itself (repeated object keys are the gate's
    # to report; here the first row wins)
    named = np.flatnonzero(obj >= 0)
    own = np.zeros(len(orders), dtype=bool)
    object_key, document_key = frame_keys(objects, "object_ref"), frame_keys(orders, "document_ref")
    if object_key is not None and document_key is not None:  # one numbering (`with_keys`)
        named_object = object_key[obj[named]]
        own[named] = (named_object >= 0) & (named_object == document_key[named])
        del named_object
    else:
        same = pc.equal(arrow_str(objects["object_ref"]).take(pa.array(obj[named])),
                        arrow_str(orders["document_ref"]).take(pa.array(named)))
        own[named] = pc.fill_null(same, False).to_numpy(zero_copy_only=False)
    del named, obj
    on_shared = ~own & (at >= 0)
    del own
    counts = np.bincount(at[on_shared], minlength=n_codes + 1)
    # an order alone on an object it does not name (old data) also simply takes it all
    shared = np.flatnonzero(on_shared & (counts[at] > 1))
    del on_shared
    # the objects as dense codes (counts' positions are free now): with the ranks below they pack
    # into one integer, one argsort, where the objects' sparse codes left four keys to sort
    named = counts > 1
    np.cumsum(named, out=counts)
    group = counts[at[shared]] - 1
    del counts, named
    return _Totals(total, shared, group, sort_key(orders["document_date"].iloc[shared]),
                   sort_key(take_rows(orders["document_number"], shared)))


def _share_out(orders: pd.DataFrame, totals: _Totals, first_due: np.ndarray) -> np.ndarray:
    """Each order's paid kopecks: the object's whole total, except that orders sharing an object
    take its total oldest due date first (`first_due`: the shared orders', then date, number;
    ties keep order), each up to its amount. Written into `totals.paid`, which it returns."""
    paid, shared = totals.paid, totals.shared
    if len(shared):
        order = lexsort((totals.number_key, totals.date_key, sort_key(pd.Series(first_due)), totals.group))
        rows, group = shared[order], totals.group[order]
        amount = orders["amount"].to_numpy(dtype="int64")[rows]
        running = np.cumsum(amount)
        start = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
        cum = running - np.repeat(running[start] - amount[start], np.diff(np.r_[start, len(rows)]))
        paid[rows] = _fifo(paid[rows], amount, cum)  # (the shares are read before any is written)
    return paid


def _paid_and_due_by_ref(orders: pd.DataFrame, frames: Mapping[str, pd.DataFrame]
                         ) -> tuple[np.ndarray, np.ndarray]:
    """(paid kopecks, due date before rolling) per order, joining stages on the reference text."""
    sched = schedule(orders, frames["stages"], frames["contracts"])
    first_due = lookup(orders["document_ref"], sched.groupby("document_ref", sort=False)["pay_date"].min())
    paid = allocate_payments(orders, first_due, frames["payments"], frames["settlement_objects"])
    with_paid = orders[["document_ref"]].assign(paid=paid.to_numpy())

    # within an order, payments cover stages in date order
    sched = sched.merge(with_paid, on="document_ref", how="inner")
    cum = sched.groupby("document_ref", sort=False)["stage_amount"].cumsum()
    covered = _fifo(sched["paid"].to_numpy(), sched["stage_amount"].to_numpy(), cum.to_numpy())
    open_stage = sched.loc[covered < sched["stage_amount"].to_numpy()]
    due = open_stage.groupby("document_ref", sort=False)["pay_date"].min()
    last_stage = sched.groupby("document_ref", sort=False)["pay_date"].max()
    # stages may under-sum the amount (the gate reports that); the last stage then carries it
    raw_due = lookup(orders["document_ref"], due).fillna(lookup(orders["document_ref"], last_stage))
    return paid.to_numpy(), raw_due.to_numpy(dtype="datetime64[s]")


def _stage_positions(orders: pd.DataFrame, stages: pd.DataFrame) -> np.ndarray | None:
    """The order position of every stage row (-1: not an open order's), or None when the
    orders' references are missing or repeated; found through the references' keys."""
    keys = orders["document_key"].to_numpy()
    return key_positions(stages["document_key"].to_numpy(), keys) if _keyed_once(keys) else None


def _paid_and_due(orders: pd.DataFrame, frames: Mapping[str, pd.DataFrame], at: np.ndarray, live: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
    """`_paid_and_due_by_ref` for unique, present references: each stage row carries its order's
    position (`at`), so grouping, sorting and joining run on integers instead of GUID text.
    Orders not `live` (a mask) are carried along with an amount of 0 and share no payment."""
    n = len(orders)
    # what the objects were paid needs no stage: a worker finds it while this thread sorts them
    # (numpy's sorts and gathers release the GIL: ~0.4 s of each side's at a million open documents)
    with ThreadPoolExecutor(1, thread_name_prefix="aging") as pool:
        totals = pool.submit(_object_totals, orders, frames["payments"], frames["settlement_objects"], live)
        doc, date, amount, nat, start = _sorted_stages(orders, frames, at)
        totals = totals.result()
    # a shared order's earliest stage (NaT only if all are) is its first
    paid = _share_out(orders, totals, date[start[totals.shared]])
    del totals

    # within an order, payments cover stages in date order: a stage is open when what its order
    # paid, less its earlier stages, falls short of it (`_fifo(...) < amount`, in place)
    before = np.cumsum(amount)
    before -= np.repeat(before[start] - amount[start], np.diff(np.r_[start, len(doc)]))
    before -= amount  # the order's stages before this one
    left = paid[doc]
    left -= before
    del before
    open_dated = (left < amount) & (amount > 0)
    del left
    any_nat = nat.any()
    if any_nat:
        open_dated &= ~nat
    # stages are in order by document, then date (NaT last): a document's earliest open dated
    # stage is its first, its latest dated stage its last (np.minimum.at / maximum.at, ~10x slower)
    never = np.iinfo("int64").max
    due = np.full(n, never, dtype="int64")
    dated_open = np.flatnonzero(open_dated)
    del open_dated, amount
    first = _group_firsts(doc, dated_open)
    del dated_open
    due[doc[first]] = date[first].view("int64")
    del first
    if any_nat:
        last = np.full(n, np.iinfo("int64").min, dtype="int64")
        final = _group_lasts(doc, np.flatnonzero(~nat))
        last[doc[final]] = date[final].view("int64")
        del final
    else:  # every stage dated: each order's last is the one before the next order's first
        last = date[np.r_[start[1:] - 1, len(doc) - 1]].view("int64")
    # stages may under-sum the amount (the gate reports that); the last stage then carries it.
    # No dated stage leaves int64's least value: NaT's
    np.copyto(due, last, where=due == never)
    return paid, due.view("datetime64[s]")


def _sorted_stages(orders: pd.DataFrame, frames: Mapping[str, pd.DataFrame], at: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every order's stages (`at`: each stage row's order, -1 none), or one stage due on its date
    plus the contract's term when it sets one, sorted by order, date (NaT last) and line:
    (order, date, amount, NaT flags, the first row of each order)."""
    n = len(orders)
    stages, contracts = frames["stages"], frames["contracts"]
    have = np.flatnonzero(at >= 0)
    with_stages = np.zeros(n, dtype=bool)
    with_stages[at[have]] = True
    without = np.flatnonzero(~with_stages)
    del with_stages
    terms = contracts[["contract_ref", "has_term", "term_days"]].drop_duplicates("contract_ref")
    term_at = positions(orders["contract_ref"].iloc[without], terms["contract_ref"])  # one lookup, two columns
    found = term_at >= 0
    has_term = np.zeros(len(without), dtype=bool)
    has_term[found] = terms["has_term"].to_numpy(dtype=bool, na_value=False)[term_at[found]]
    days = np.zeros(len(without), dtype="int64")
    days[has_term] = terms["term_days"].to_numpy(dtype="int64", na_value=0)[term_at[has_term]]
    del term_at, found, has_term
    doc = np.concatenate([at[have], without])
    date = np.concatenate([
        stages["pay_date"].to_numpy(dtype="datetime64[s]")[have],
        (orders["document_date"].to_numpy()[without] + days.astype("timedelta64[D]")).astype("datetime64[s]")])
    line = np.concatenate([stages["line"].to_numpy(dtype="int64")[have],
                           np.ones(len(without), dtype="int64")])
    amount = np.concatenate([stages["amount"].to_numpy(dtype="int64")[have],
                             orders["amount"].to_numpy(dtype="int64")[without]])
    del have, without, days
    nat = np.isnat(date)
    # NaT sorts last, as in sort_values: just after the latest date, so the keys stay packable
    day = date.view("int64")
    any_nat = nat.any()
    # dates, as normalise gives them: in days, the keys leave room for the row numbers
    # (`frames.stable_order`)
    days = day // 86400  # (numpy divides by a constant with multiplications; its % divides each value)
    if np.array_equal(days[~nat] * 86400, day[~nat]) if any_nat else np.array_equal(days * 86400, day):
        day = days
    del days
    if any_nat:
        day = np.where(nat, day.max(where=~nat, initial=np.iinfo("int64").min) + 1, day)
    order = lexsort((line, day, doc))
    # (a stage-sized array is ~28 MB at a million open documents: each goes once used)
    del line, day
    doc, date, amount, nat = doc[order], date[order], amount[order], nat[order]
    del order
    start = np.flatnonzero(np.r_[True, doc[1:] != doc[:-1]])  # every order has at least one stage
    return doc, date, amount, nat, start


def _group_firsts(doc: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The first of `rows` (ascending positions into `doc`, grouped: equal values adjacent) of each group."""
    if not len(rows):
        return rows
    of = doc[rows]
    return rows[np.r_[True, of[1:] != of[:-1]]]


def _group_lasts(doc: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The last of `rows` (as `_group_firsts`) of each group."""
    if not len(rows):
        return rows
    of = doc[rows]
    return rows[np.r_[of[1:] != of[:-1], True]]


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
    frames = with_keys(frames)  # from normalise (the extract's Parquet) they are there already
    live = open_orders(frames["orders"])
    if not len(live):
        return empty_aging()
    # every order is paid and dated, the few not open carried along with an amount of 0: copying
    # the open ones (nearly all) would cost more than the extra rows
    is_live = np.zeros(len(frames["orders"]), dtype=bool)
    is_live[live] = True
    orders = frames["orders"][_PAY_COLUMNS].reset_index(drop=True)
    orders["amount"] = np.where(is_live, orders["amount"].to_numpy(dtype="int64", na_value=0), 0)
    stage_at = _stage_positions(orders, frames["stages"])
    if stage_at is not None:
        paid, raw_due = _paid_and_due(orders, frames, stage_at, is_live)
        rows = np.arange(len(orders))
        del stage_at
        release_memory()  # the dating's temporaries: the snapshot's columns come from other allocators
    else:  # repeated or missing references (the gate reports them): the open orders, joined on the text
        absent = [f"{name}.{col}" for name, cols in TEXT_JOINS.items() for col in cols
                  if col not in frames[name].columns]
        if absent:
            raise ValueError(f"aging joins on the reference text when an order's reference is missing or "
                             f"repeated, and the frames lack {', '.join(absent)}: read them by aging_reads")
        orders = orders.take(live).reset_index(drop=True)
        paid, raw_due = _paid_and_due_by_ref(orders, frames)
        rows = live
    outstanding = orders["amount"].to_numpy(dtype="int64") - paid
    keep = (outstanding > 0) & is_live[rows]
    if not keep.any():
        return empty_aging()
    # the snapshot's rows in reference order from the start: every column below is then built
    # in place, where sorting the finished snapshot took all of its columns once more
    pick = np.flatnonzero(keep)
    source = frames["orders"]
    refs = take_text(arrow_str(source["document_ref"]), rows[pick])
    if not strictly_ascending(refs):
        by_ref = pc.sort_indices(refs)
        pick, refs = pick[by_ref.to_numpy()], refs.take(by_ref)
    # those references, in order, are the snapshot's column (as normalise's Arrow text: not taken twice)
    columns = _ORDER_COLUMNS
    if isinstance(source["document_ref"].array, pd.arrays.ArrowStringArray):
        columns = [c for c in _ORDER_COLUMNS if c != "document_ref"]
    # the debts and the names need no due date: worker threads (hashing and taking in Arrow,
    # which releases the GIL) build them while this thread dates the orders; they take the
    # orders' columns too, a column each (one frame's take on this thread: ~0.7 s at 1M)
    with ThreadPoolExecutor(COMPUTE_THREADS, thread_name_prefix="aging") as pool:
        at = rows[pick]
        taken = dict(zip(columns, pool.map(lambda col: take_rows(source[col], at), columns),
                         strict=True))
        if "document_ref" not in taken:
            taken["document_ref"] = pd.Series(pd.arrays.ArrowStringArray(refs, dtype=source["document_ref"].dtype))
        orders = pd.DataFrame({col: taken[col] for col in _ORDER_COLUMNS}, copy=False)
        del taken
        orders["amount"] = orders["amount"].astype("int64")
        orders["paid"] = paid[pick]
        orders["outstanding"] = outstanding[pick]
        by_partner = pool.submit(_partner_columns, orders[["partner_ref", "outstanding"]], frames)
        by_contract = pool.submit(_contract_debt, orders[["contract_ref", "outstanding"]])
        names = {col: pool.submit(lookup, orders[ref_col], table) for col, ref_col, table in (
            ("organization_name", "organization_ref", _names(frames["organizations"], "organization_ref",
                                                              "organization_name")),
            ("manager_name", "manager_ref", _names(frames["managers"], "manager_ref", "manager_name")))}
        orders["due_date"] = cal.roll_forward(pd.Series(raw_due[pick]).astype("datetime64[s]"))
        as_of_ts = pd.Timestamp(as_of).as_unit("s")
        days = (as_of_ts - orders["due_date"]).dt.days.astype("int64")
        orders["days_overdue"] = days
        as_of_col = pd.Series(np.full(len(orders), as_of_ts.to_datetime64()), index=orders.index)
        orders["business_days_overdue"] = cal.working_days_between(orders["due_date"], as_of_col).astype("int64")
        orders["bucket"] = buckets(days, bucket_bounds)
        out = orders.assign(contract_debt=by_contract.result(), **by_partner.result(),
                            **{col: job.result() for col, job in names.items()})
    out["as_of_date"] = as_of_ts.to_datetime64()
    out["as_of_date"] = out["as_of_date"].astype("datetime64[s]")
    return out[AGING_COLUMNS]


def _names(df: pd.DataFrame, ref_col: str, name_col: str) -> pd.Series:
    """`name_col` by `ref_col` (the first of repeated references)."""
    return df.drop_duplicates(ref_col).set_index(ref_col)[name_col]


def _partner_columns(orders: pd.DataFrame, frames: Mapping[str, pd.DataFrame]) -> dict[str, pd.Series]:
    """The partner's debt (summed over integer codes: each reference hashed once), name and
    segment (looked up for the orders' few distinct partners) of each order."""
    partners = _names(frames["partners"], "partner_ref", "partner_name")
    seg = frames["segments"].dropna(subset=["segment_name"]).sort_values("segment_name")
    seg = _names(seg, "partner_ref", "segment_name")
    partner_code, partner_refs = pd.factorize(orders["partner_ref"])
    if (partner_code >= 0).all():
        debt = _group_sums(partner_code, len(partner_refs), orders["outstanding"])
    else:  # an order without a partner (the gate reports it): its debt is missing, as groupby gives
        debt = orders.groupby("partner_ref", sort=False, observed=True)["outstanding"].transform("sum")
    # names and segments of the few distinct partners, as categoricals of them (code -1: none)
    distinct = pd.Series(partner_refs, dtype="str")

    def per_order(table: pd.Series) -> pd.Series:
        names = pd.Series(take(table.array, positions(distinct, table.index), allow_fill=True), dtype="str")
        out = text_category(names, partner_code)
        out.index = orders.index
        return out

    return {"partner_debt": debt, "partner_name": per_order(partners), "segment": per_order(seg)}


def _contract_debt(orders: pd.DataFrame) -> pd.Series:
    """The contract's debt of each order ("" and missing are one contract here)."""
    contract = orders["contract_ref"]
    if member(contract, [""]).any():  # (per category for normalise's categorical)
        contract = contract.fillna("")
    contract_code, contracts = pd.factorize(contract, use_na_sentinel=False)
    return _group_sums(contract_code, len(contracts), orders["outstanding"])
