"""Eligibility and the plan: for every open document and policy step, act or why not (spec §5).

`build_plan` returns one row per (document, step) candidate with a `decision`
(`act`, `skip`, `hold`, `superseded`, `not_due`, `done`, `excluded`) and a `reason`
code, so "why was X (not) contacted?" always has an answer. Vectorised: no Python
loop runs over documents, only over the handful of pools and steps.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from receivables.domain.calendar import get_calendar
from receivables.domain.frames import (
    COMPUTE_THREADS,
    arrow_str,
    categorical_text,
    category_parts,
    concat_frames,
    is_categorical,
    lexsort,
    lookup,
    member,
    narrow_codes,
    packed_text_key,
    positions,
    release_memory,
    sort_key,
    stable_order,
    strictly_ascending,
)
from receivables.domain.policy import Policy
from receivables.onec.schema import PRIVATE_PERSON

PLAN_COLUMNS = [
    "document_ref", "document_number", "document_date", "partner_ref", "partner_name",
    "legal_form", "organization_ref", "organization_name", "contract_ref", "settlement", "pool",
    "step_id", "step_rank", "action", "template", "anchor_date", "due_day", "decision", "reason",
    "target", "sender", "assignee_ref", "manager_name", "manager_email", "manager_phone",
    "deadline_business_days", "amount", "paid", "outstanding", "due_date", "days_overdue",
    "business_days_overdue", "partner_debt",
]

#: the frames `build_plan` reads besides the aging snapshot: the plan task loads these only
PLAN_FRAMES = ("partners", "segments", "managers", "contacts")
#: documents per part of `plan_parts`: a part's candidates and output are what the plan holds at
#: once (at a million documents the whole plan is 4.6M rows, ~0.8 GB, and its temporaries ~0.6 GB)
PART_DOCUMENTS = 250_000

#: reason codes, in the order they are checked; the first that applies is reported
REASONS = {
    "no_pool": "no pool of the policy matches the document (segment, organization, settlement)",
    "before_campaign": "the document is dated before campaign_start",
    "excluded_segment": "the partner is in a segment the pool excludes",
    "below_partner_debt": "the debt (policy debt_basis) is below exclude.partner_debt_below",
    "below_document_amount": "the document amount is below exclude.document_amount_below",
    "already_done": "the register has sent_at for this document and step",
    "not_yet_due": "the step's due day is after the as-of date",
    "catch_up_expired": "more than catch_up_days have passed since the step's due day",
    "require_payment_percent": "more than require.payment_percent of the document is paid",
    "require_min_outstanding": "outstanding is below require.min_outstanding",
    "superseded": "a later step of the same action is due for the document in this run",
    "failed_permanently": "the last attempt to this target was refused permanently (e.g. SMTP 550); "
                          "a new address or a register edit re-arms it",
    "no_email": "the partner has no email address of the policy's recipient type; stays pending",
    "no_assignee": "the order and the partner have no manager to assign",
    "quiet_days": "the partner got an email within quiet_days; stays pending",
    "contact_limit_230fz": "230-ФЗ cap on messages to a private person reached; stays pending",
    "quiet_hours_230fz": "230-ФЗ forbids contacting a private person at this hour; stays pending",
    "due": "the step is due and will be performed",
}
_DECISION_OF = {
    "no_pool": "excluded", "before_campaign": "excluded", "excluded_segment": "excluded",
    "below_partner_debt": "excluded", "below_document_amount": "excluded",
    "already_done": "done", "not_yet_due": "not_due", "catch_up_expired": "excluded",
    "require_payment_percent": "excluded", "require_min_outstanding": "excluded",
}


#: the decision of every reason (pending steps that act get "due" and "act")
_DECISION = {**_DECISION_OF, "superseded": "superseded", "failed_permanently": "done",
             "no_email": "skip", "no_assignee": "skip", "quiet_days": "hold",
             "contact_limit_230fz": "hold", "quiet_hours_230fz": "hold", "due": "act"}
_REASON_NAMES = pd.Series(list(REASONS), dtype="str")
_DECISION_NAMES = pd.Series([_DECISION[r] for r in REASONS], dtype="str")
_REASON_CODE = {r: i for i, r in enumerate(REASONS)}
_CAPS = pd.Series(["contact_limit_230fz", "quiet_hours_230fz"], dtype="str")
_CAP_CODES = np.array([_REASON_CODE[name] for name in _CAPS], dtype="int64")
#: largest table of key combinations `_pairs_in` builds (bytes); beyond it, it sorts
_PAIR_TABLE_LIMIT = 1 << 24
#: the plan's text columns, each with far fewer distinct values than rows (a document has a row
#: per step; partners, organizations, steps, managers and decisions repeat far more): categories,
#: one integer code per candidate instead of a copy of the text (at a million open documents the
#: plan's 4.6M rows held ~3 GB of such copies). Sorted categories, so sorting by them is the text's
#: order; `plain_text` turns them back into text where rows leave the plan. Document numbers stay
#: text: as many as documents, sorting them for categories cost ~3x taking the text (1.6 vs 0.5 s
#: at a million documents) to save ~75 MB; the references are categories for free (already sorted).
CATEGORY_COLUMNS = ("document_ref", "partner_ref", "partner_name", "legal_form",
                    "organization_ref", "organization_name", "contract_ref", "settlement", "pool", "step_id",
                    "action", "template", "decision", "reason", "target", "sender", "assignee_ref",
                    "manager_name", "manager_email", "manager_phone")
_STEP_COLUMNS = ["pool", "step_id", "step_rank", "action", "anchor", "offset", "unit", "require_pct",
                 "require_min", "catch_up_days", "template", "assignee", "deadline_business_days"]


def _flags(mask) -> np.ndarray:
    """A boolean mask as a numpy array, missing counted as False."""
    if isinstance(mask, pd.Series):
        return mask.to_numpy(dtype=bool, na_value=False)
    return np.asarray(mask, dtype=bool)


def _codes(values: pd.Series) -> np.ndarray:
    """Integer codes of `values`, equal values equal codes, a missing value a code of its own."""
    if isinstance(values.array, pd.arrays.ArrowStringArray) and strictly_ascending(values):
        return np.arange(len(values), dtype="int64")  # aging's reference order: all distinct
    return pd.factorize(values, use_na_sentinel=False)[0].astype("int64", copy=False)


def _pairs_in(left: list[tuple[pd.Series, np.ndarray | None]], right: list[pd.Series]) -> np.ndarray:
    """`MultiIndex(left).isin(MultiIndex(right))` on integer codes (missing matches missing):
    building MultiIndexes of Arrow strings costs a Python object per value. Each left key
    is (values, positions taken of them, or None for all in order)."""
    def key(values: pd.Series, at: np.ndarray | None, universe: pd.Series) -> np.ndarray:
        found = positions(values, universe)
        return found if at is None else found[at]

    size = len(left[0][0]) if left[0][1] is None else len(left[0][1])
    # each right-hand key's distinct values and its codes in them, from one hashing
    coded = [pd.factorize(b, use_na_sentinel=False) for b in right]
    universes = [pd.Series(u) for _, u in coded]
    if np.prod([len(u) + 1 for u in universes], dtype="float64") <= _PAIR_TABLE_LIMIT:
        # few enough combinations for a table of them: one lookup per candidate, no sorting
        shape = tuple(len(u) + 1 for u in universes)  # last entry of each axis: absent
        table = np.zeros(shape, dtype=bool)
        table[tuple(codes for codes, _ in coded)] = True
        at = tuple(key(a, i, u) for (a, i), u in zip(left, universes, strict=True))
        return table[at]  # -1 (absent) reads the last entry, always False
    found = np.ones(size, dtype=bool)
    lkey = np.zeros(size, dtype="int64")
    rkey = np.zeros(len(right[0]), dtype="int64")
    for (a, at), (rb, _), universe in zip(left, coded, universes, strict=True):
        la = key(a, at, universe)
        found &= la >= 0
        keys, rkey = np.unique(rkey * len(universe) + rb, return_inverse=True)
        lkey = lkey * len(universe) + la
        at_key = np.clip(np.searchsorted(keys, lkey), 0, max(len(keys) - 1, 0))
        found &= (keys[at_key] == lkey) if len(keys) else False
        lkey = at_key  # a pair found keeps its right-hand code; the rest are already not found
        rkey = rkey.reshape(-1)
    return found


def _distinct(doc_code: np.ndarray) -> bool:
    """Whether the codes `_codes` gave name every document once (no two share a reference)."""
    return int(doc_code.max(initial=-1)) + 1 == len(doc_code)


def _register_tables(doc_refs: pd.Series, doc_code: np.ndarray, step_id: pd.Series, parts: list[pd.DataFrame]
                     ) -> list[np.ndarray] | None:
    """For each of `parts`, a documents x steps table (by document row; the last column: the
    missing step) marking the (document, step) pairs it holds, for `_in_register`; or None where
    it matches every candidate's keys instead. One hashing of all the parts' references that needs
    no candidate: the plan runs it beside the documents' sort, once for all of its parts."""
    if not any(len(p) for p in parts) or not _distinct(doc_code) or len(doc_refs) * len(step_id) > 4 * _PAIR_TABLE_LIMIT:
        return None
    doc = positions(pd.concat([p["document_ref"].astype("str") for p in parts], ignore_index=True), doc_refs)
    step = positions(pd.concat([p["step_id"].astype("str") for p in parts], ignore_index=True), step_id)
    tables, start = [], 0
    for p in parts:
        d, s = doc[start:start + len(p)], step[start:start + len(p)]
        start += len(p)
        found = (d >= 0) & (s >= 0)
        table = np.zeros((len(doc_refs), len(step_id)), dtype=bool)
        table[d[found], s[found]] = True
        tables.append(table)
    return tables


def _in_register(doc_refs: pd.Series, doc_code: np.ndarray, step_id: pd.Series, di: np.ndarray, si: np.ndarray,
                 parts: list[pd.DataFrame], *, order: tuple[np.ndarray, np.ndarray] | None = None,
                 located: list[np.ndarray] | None = None) -> list[np.ndarray]:
    """For each register part (its document_ref and step_id), whether it holds each candidate's
    (document, step) (missing matches missing; `step_id` ends with the missing step of candidates
    without one, row -1).

    With distinct documents (`doc_code` as `_codes` gives) each part's pairs are marked in a
    documents x steps table (`_register_tables`), read once per candidate; otherwise `_pairs_in`
    matches every candidate's keys. With `order` (the documents' order, or a part of it, and each
    candidate's place in it, as `_expand_index` gives) the table's rows are taken in that order
    first, so that the candidates read it in order (at a million documents reading it by document
    row waited on memory for every candidate). `located` is what `_register_tables` gave for the
    same arguments, when it ran already."""
    if not any(len(p) for p in parts):
        return [np.zeros(len(di), dtype=bool) for _ in parts]
    if located is None:
        located = _register_tables(doc_refs, doc_code, step_id, parts)
    if located is None:
        return [_pairs_in([(doc_refs, di), (step_id, si)], [p["document_ref"], p["step_id"]]) if len(p)
                else np.zeros(len(di), dtype=bool) for p in parts]
    # each candidate's cell as one flat position (si -1: the last column, the missing step): a
    # one-dimensional take, where indexing by two arrays walked numpy's general iterator
    n_steps = len(step_id)
    if order is None:
        cell = di * n_steps + si % n_steps
        return [table.ravel().take(cell) for table in located]
    doc_order, place = order  # (the documents of a part of the plan, `plan_parts`)
    cell = place * n_steps + si % n_steps
    return [table.take(doc_order, axis=0).ravel().take(cell) for table in located]


def _descending(days: np.ndarray) -> np.ndarray:
    """A `lexsort` key putting later `days` first and NaT last (as `sort_key(descending=True)`)."""
    nat = np.isnat(days)
    later_first = -days.astype("datetime64[s]").view("int64")
    return np.where(nat, later_first.max(where=~nat, initial=np.iinfo("int64").min) + 1, later_first)


def _with_missing(values: pd.Series) -> pd.Series:
    """`values` with a missing value appended: position -1 then reads as missing."""
    return pd.concat([values, pd.Series([None], dtype=values.dtype)], ignore_index=True)


def _document_order(docs: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(the documents' rows by date, then number, missing last, ties in row order; each row's
    dense rank of its (date, number)). Dates, a missing number's flag and the numbers' bytes
    (`packed_text_key`) are packed into one integer and sorted by one stable argsort where they
    fit in 63 bits (1C numbers do: a million documents 1.0 -> ~0.4 s); otherwise one Arrow sort
    of both keys, whose string comparisons stay within a date."""
    numbers = _one_chunk(arrow_str(docs["document_number"]))
    seconds = docs["document_date"].to_numpy(dtype="datetime64[s]").view("int64")
    nat = seconds == np.iinfo("int64").min
    packed = _packed_order_key(seconds, nat, numbers)
    if packed is not None:
        packed, bits = packed
        order = stable_order(packed, bits)
        differs = packed[order][1:] != packed[order][:-1]
    else:
        dates = pa.array(docs["document_date"])
        by = [("date", "ascending", "at_end"), ("number", "ascending", "at_end")]
        order = pc.sort_indices(pa.table({"date": dates, "number": numbers}), sort_keys=by).to_numpy()
        if len(order) < 2:
            return order, np.zeros(len(order), dtype="int64")
        day = seconds[order]  # NaT: one value
        number = numbers.take(pa.array(order))
        before, after = number.slice(0, len(order) - 1), number.slice(1)
        number_differs = pc.fill_null(pc.not_equal(before, after), True).to_numpy(zero_copy_only=False)
        both_missing = (pc.and_(before.is_null(), after.is_null())).to_numpy(zero_copy_only=False)
        differs = (day[1:] != day[:-1]) | (number_differs & ~both_missing)
    rank = np.empty(len(order), dtype="int64")
    rank[order] = np.concatenate([[0], np.cumsum(differs)]) if len(order) else []
    return order, rank


def _packed_order_key(seconds: np.ndarray, nat: np.ndarray, numbers: pa.Array) -> tuple[np.ndarray, int] | None:
    """(one int64 per document ordering as (date, NaT last; number, missing last) does, equal
    for equal pairs; how many bits they take), or None when they do not fit in 63 bits."""
    if not len(seconds):
        return np.zeros(0, dtype="int64"), 0
    known = seconds[~nat]
    step = 86400 if not (known % 86400).any() else 1  # dates at midnight: days are enough
    low = int(known.min()) // step if len(known) else 0
    day = np.where(nat, (int(known.max()) // step if len(known) else 0) - low + 1, seconds // step - low)
    day_bits = int(day.max()).bit_length()
    text = packed_text_key(numbers, max_bits=62 - day_bits)
    if text is None:
        return None
    key, bits = text
    missing = numbers.is_null().to_numpy(zero_copy_only=False).astype("int64")
    return (((day << 1) | missing) << bits) | key, day_bits + 1 + bits


def _pool_steps(step_pool: pd.Series) -> tuple[pd.Index, np.ndarray]:
    """(the pools' names in policy order, a table of each pool's step rows padded with -1 and a
    last row for no pool): what `_expand_index` expands documents by, found once per plan."""
    names = pd.Index(pd.unique(step_pool))
    by_pool = [np.flatnonzero(step_pool.eq(name).to_numpy(dtype=bool)) for name in names]
    width = max([len(ix) for ix in by_pool], default=1)
    table = np.full((len(names) + 1, width), -1, dtype="int64")  # last row: no pool
    for k, ix in enumerate(by_pool):
        table[k, :len(ix)] = ix
    return names, table


def _expand_index(doc_pool: np.ndarray, table: np.ndarray, doc_order: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The candidates of `docs.merge(steps, on="pool", how="left")` with the documents taken
    in `doc_order`, as integer positions: (document row, step row or -1, the document's place
    in `doc_order`) of each candidate, every document once per step of its pool (in policy
    order), or once without a step. `doc_pool`: each document's pool as a row of `table`
    (`_pool_steps`; -1: none). The places ascend along the candidates: per-document tables
    indexed by place are read in order, where indexing by row jumps around."""
    pool = doc_pool[doc_order]
    pool = np.where(pool < 0, len(table) - 1, pool)
    counts = np.maximum((table >= 0).sum(axis=1), 1)[pool]
    # positions in 32 bits where they fit (the candidates, and twice the documents: the assignee's
    # doubled rows): three candidate-sized arrays and everything taken through them, half the memory
    fits = max(int(counts.sum()), 2 * len(doc_order)) < np.iinfo(np.int32).max
    at = np.int32 if fits else np.int64
    di = np.repeat(doc_order.astype(at, copy=False), counts)
    within = np.arange(len(di), dtype=at) - np.repeat((np.cumsum(counts) - counts).astype(at), counts)
    si = table.astype(at)[np.repeat(pool, counts), within]
    return di, si, np.repeat(np.arange(len(doc_order), dtype=at), counts)


def _take(values: pd.Series, indices: np.ndarray, order: np.ndarray | None = None):
    """`values` at `indices`, -1 giving a missing value (int64 becomes float64, as in a join);
    with `order`, `values` in that order at `indices` (then no index is -1). Arrow strings are
    taken in pyarrow directly: pandas' take of a chunked array costs several times more, and
    the output's string columns are the bulk of the plan's work."""
    from pandas.api.extensions import take

    arr = values.array
    if order is not None and isinstance(arr, pd.arrays.NumpyExtensionArray | pd.arrays.DatetimeArray):
        return arr.to_numpy()[order][indices]  # `indices` ascend (build_plan): read in order
    if order is not None:
        indices = order[indices]
    if isinstance(arr, pd.arrays.ArrowStringArray):
        source = _one_chunk(pa.array(arr))
        missing = indices < 0
        picked = pa.array(indices, mask=missing) if missing.any() else pa.array(indices)
        return pd.arrays.ArrowStringArray(source.take(picked), dtype=arr.dtype)
    if isinstance(arr, pd.arrays.NumpyExtensionArray):
        if len(indices) and indices.min() >= 0:
            return arr.to_numpy()[indices]
        return take(arr.to_numpy(), indices, allow_fill=True)
    return arr.take(indices, allow_fill=True)


def _take_category(values: pd.Series, indices: np.ndarray, order: np.ndarray | None = None) -> pd.Categorical:
    """`_take` as a categorical of the text: the distinct values sorted as categories, a code
    per index (-1, or a missing value, a missing one), put in `order` first when given (as
    `_take`)."""
    return _coded_category(_category_codes(values), indices, order)


def _category_codes(values: pd.Series) -> tuple[np.ndarray, pd.CategoricalDtype]:
    """(a code per value, the categorical type): the distinct values sorted. Text already strictly
    ascending (the documents' references in aging's order) is its own categories; the codes are
    in the smallest integer type that holds them, as pandas keeps them. (One type for every part
    of a plan: pandas checks that categoricals it concatenates share their categories by hashing
    them, once per type; at a million documents a second each.)"""
    if isinstance(values.array, pd.arrays.ArrowStringArray) and not values.hasnans and strictly_ascending(values):
        codes, categories = np.arange(len(values)), values.array
    elif is_categorical(values) and values.cat.categories.is_monotonic_increasing:  # normalise's: sorted
        categories, codes = category_parts(values)
    else:
        codes, categories = pd.factorize(values, sort=True)
    return narrow_codes(codes, len(categories)), _text_categories(categories)


def _coded_category(coded: tuple[np.ndarray, pd.CategoricalDtype], indices: np.ndarray,
                    order: np.ndarray | None = None) -> pd.Categorical:
    """`_take_category` of values `_category_codes` coded (found once for every part of a plan)."""
    codes, categories = coded
    return _categorical(np.append(codes if order is None else codes[order], -1)[indices], categories)


def _one_chunk(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """`values` as one Arrow array: a single chunk as it is (`combine_chunks` copies even that;
    a plan's parts take from the same documents' text each time)."""
    if not isinstance(values, pa.ChunkedArray):
        return values
    return values.chunk(0) if values.num_chunks == 1 else values.combine_chunks()


def _part_bounds(ranks: np.ndarray, part_documents: int) -> Iterator[tuple[int, int]]:
    """(first, end) of each part of the documents in the plan's order, `ranks` their (date, number)
    ranks in that order (ascending): about `part_documents` each, a rank never split (documents
    sharing a date and a number interleave their candidates). No documents: one empty part."""
    start = 0
    while True:
        stop = min(start + part_documents, len(ranks))
        if stop < len(ranks):
            stop = int(np.searchsorted(ranks, ranks[stop - 1], side="right"))
        yield start, stop
        if stop >= len(ranks):
            return
        start = stop


def _categorical(codes: np.ndarray, categories) -> pd.Categorical:
    """A categorical of the text `categories` (sorted, distinct; or their type) from codes already
    narrowed."""
    dtype = categories if isinstance(categories, pd.CategoricalDtype) else _text_categories(categories)
    return pd.Categorical.from_codes(codes, dtype=dtype, validate=False)


def _text_categories(categories) -> pd.CategoricalDtype:
    return pd.CategoricalDtype(pd.Index(categories, dtype="str"))


def _step_integers(values: pd.Series, si: np.ndarray) -> pd.arrays.IntegerArray:
    """A step-level integer column at every candidate (`si`, -1: missing), as Int64 built from
    numpy (no masked take)."""
    per_step = pd.array(values, dtype="Int64")
    return pd.arrays.IntegerArray(_per_step(per_step.to_numpy(dtype="int64", na_value=0), 0)[si],
                                  _per_step(per_step.isna(), True)[si])


def plain_text(plan: pd.DataFrame) -> pd.DataFrame:
    """The plan (or some of its rows) with its categorical columns as text again, as every
    consumer outside the plan expects (comparisons, fills and concatenations with text)."""
    cats = [c for c in plan.columns if isinstance(plan[c].dtype, pd.CategoricalDtype)]
    if not cats:
        return plan
    return plan.assign(**{c: categorical_text(plan[c]) for c in cats})


def _steps_frame(policy: Policy) -> pd.DataFrame:
    rows = []
    for pool, rank, step in policy.steps():
        rows.append({
            "pool": pool.name, "step_id": step.id, "step_rank": rank, "action": step.action,
            "anchor": step.anchor, "offset": step.offset, "unit": step.unit,
            "require_pct": float(step.require.payment_percent) if step.require.payment_percent is not None else np.nan,
            "require_min": int(step.require.min_outstanding * 100) if step.require.min_outstanding is not None else -1,
            "catch_up_days": step.catch_up_days if step.catch_up_days is not None else -1,
            "template": step.template, "assignee": step.assignee or "",
            "deadline_business_days": step.deadline_business_days,
        })
    return pd.DataFrame(rows, columns=_STEP_COLUMNS)


def _per_step(values, fill) -> np.ndarray:
    """Step-level `values` as numpy with `fill` appended, so indexing by a step row of -1
    (no step) gives `fill`."""
    return np.append(np.asarray(values), fill)


def _in_segments(partners: tuple[pd.Series, np.ndarray], segments: _Segments, names: list[str]) -> np.ndarray:
    """Whether each document's partner is in one of the named segments; `partners` is (the
    distinct partners, each document's position among them): hashed once per partner."""
    distinct, partner_code = partners
    return member(distinct, segments.members(names))[partner_code]


def _pool_codes(docs: pd.DataFrame, partners: tuple[pd.Series, np.ndarray], segments: _Segments,
                policy: Policy) -> tuple[np.ndarray, list[str]]:
    """(the pool of each document as a position in the returned names, -1: none; the pools'
    names by rank): the matching pool of lowest rank (D365 hierarchy)."""
    pools = sorted(policy.pools, key=lambda p: p.rank)
    code = np.full(len(docs), -1, dtype="int64")
    for k, p in enumerate(pools):
        m = code < 0
        if p.match.segments:
            m &= _in_segments(partners, segments, p.match.segments)
        if p.match.organizations:
            m &= member(docs["organization_name"], list(p.match.organizations))
        if p.match.settlement:
            m &= member(docs["settlement"], list(p.match.settlement))
        np.copyto(code, k, where=m)
    return code, [p.name for p in pools]


def _document_reasons(docs: pd.DataFrame, pool: np.ndarray, partners: tuple[pd.Series, np.ndarray],
                      segments: _Segments, policy: Policy) -> np.ndarray:
    """The document-level reason of each document as a position in REASONS (-1: none);
    `pool` as `_pool_codes` gives it (pool names are unique: the policy checks)."""
    reason = np.where(pool < 0, _REASON_CODE["no_pool"], -1)
    campaign = np.datetime64(policy.campaign_start, "s")
    reason[(reason < 0) & (docs["document_date"].to_numpy() < campaign)] = _REASON_CODE["before_campaign"]
    debt = {"document": docs["outstanding"], "contract": docs["contract_debt"],
            "partner": docs["partner_debt"]}[policy.debt_basis].to_numpy()
    amount = docs["amount"].to_numpy()
    for k, p in enumerate(sorted(policy.pools, key=lambda p: p.rank)):
        in_pool = (reason < 0) & (pool == k)
        if p.exclude.segments:
            reason[in_pool & _in_segments(partners, segments, p.exclude.segments)] = \
                _REASON_CODE["excluded_segment"]
        if p.exclude.partner_debt_below > 0:
            hit = (reason < 0) & in_pool & (debt < int(p.exclude.partner_debt_below * 100))
            reason[hit] = _REASON_CODE["below_partner_debt"]
        if p.exclude.document_amount_below > 0:
            hit = (reason < 0) & in_pool & (amount < int(p.exclude.document_amount_below * 100))
            reason[hit] = _REASON_CODE["below_document_amount"]
    return reason


def _recipients(contacts: pd.DataFrame, policy: Policy) -> pd.Series:
    """partner_ref -> the address chosen by `recipient` (lowest LineNumber, numerically)."""
    c = contacts.loc[contacts["type"] == policy.recipient.contact_type].copy()
    c["address"] = c["email"].fillna(c["presentation"]).str.strip()
    c = c.loc[c["address"].notna() & c["address"].ne("")]
    c["not_preferred"] = True
    if policy.recipient.contact_kind:
        c["not_preferred"] = c["kind_name"].ne(policy.recipient.contact_kind)
    c = c.sort_values(["partner_ref", "not_preferred", "line"], kind="stable")
    return c.drop_duplicates("partner_ref").set_index("partner_ref")["address"]


def _letter_holds(partner_code: np.ndarray, partners: pd.Series, sent: pd.DataFrame, policy: Policy,
                  as_of: dt.date, *, caps: bool) -> tuple[np.ndarray, np.ndarray]:
    """(per document: its partner got an email within quiet_days; with `caps`, its partner got as
    many messages as a 230-ФЗ limit allows in a day, a week or a month) from `sent`, the
    register's emails sent (`_Shared.letters`); `partner_code` is each document's partner as a
    position in the distinct `partners` (a missing partner among them). Once per plan: every
    part reads it (`_contact_caps`)."""
    quiet = np.zeros(len(partner_code), dtype=bool)
    capped = np.zeros(len(partner_code), dtype=bool)
    if not len(sent) or not (policy.quiet_days > 0 or caps):
        return quiet, capped
    # letters and documents meet on integer codes of the documents' partners (the last code: a
    # partner none of them has, or none at all), hashed once for every window; a missing partner
    # is nobody's: its documents and letters are never counted
    letter_partner = positions(sent["partner_ref"], partners)
    doc_partner = partner_code
    no_partner = partners.isna().to_numpy()
    if no_partner.any():
        doc_partner = np.where(no_partner[partner_code], -1, partner_code)
        letter_partner[sent["partner_ref"].isna().to_numpy()] = -1
    day = (pd.to_datetime(sent["sent_at"], utc=True).dt.tz_convert(policy.tz).dt.tz_localize(None)
           .dt.normalize().to_numpy(dtype="datetime64[ns]"))
    as_of_day = np.datetime64(as_of, "ns")

    def per_document(counts: np.ndarray) -> np.ndarray:
        return np.append(counts, 0)[doc_partner]

    if policy.quiet_days > 0:
        recent = day > as_of_day - np.timedelta64(policy.quiet_days, "D")
        quiet = per_document(np.bincount(letter_partner[recent & (letter_partner >= 0)], minlength=len(partners))) > 0
    if caps:
        # one letter = one message, however many register rows it covered
        lim = policy.private_persons
        letter = pd.factorize(sent["external_ref"], use_na_sentinel=False)[0].astype("int64")
        first = np.unique((letter_partner + 1) * (letter.max(initial=0) + 1) + letter, return_index=True)[1]
        first = first[letter_partner[first] >= 0]
        for days, limit in ((1, lim.per_day), (7, lim.per_week), (30, lim.per_month)):
            window = first[day[first] > as_of_day - np.timedelta64(days, "D")]
            capped |= per_document(np.bincount(letter_partner[window], minlength=len(partners))) >= limit
    return quiet, capped


def _contact_caps(is_email: np.ndarray, doc_of: np.ndarray, private_person: np.ndarray,
                  holds: tuple[np.ndarray, np.ndarray], policy: Policy, now: dt.datetime | None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(quiet_days hold, 230-ФЗ hold as a position in _CAPS or -1) over the candidates; `doc_of`
    is the document of each candidate, `holds` what `_letter_holds` found per document."""
    # only email candidates (private persons' for the caps) are held
    quiet_doc, capped_doc = holds
    quiet = is_email & quiet_doc[doc_of]
    cap = np.full(len(is_email), -1, dtype=np.int8)  # position in _CAPS, -1: none (a byte a candidate)
    private = np.flatnonzero(is_email & private_person)
    cap[private[capped_doc[doc_of[private]]]] = 0
    if len(private) and now is not None:
        local = now.astimezone(policy.tz)
        lim = policy.private_persons
        working = bool(get_calendar().is_working(np.array([local.date()], dtype="datetime64[D]"))[0])
        lo, hi = lim.weekday_hours if working else lim.weekend_hours
        if not lo <= local.hour < hi:
            cap[private[cap[private] < 0]] = 1
    return quiet, cap


class _Segments:
    """The segments' members by the segment names a pool lists, each set built once per plan."""

    def __init__(self, segments: pd.DataFrame) -> None:
        self._segments = segments
        self._members: dict[tuple[str, ...], pd.Series] = {}

    def members(self, names: list[str]) -> pd.Series:
        """The partners in any of the segments `names` (repeats kept: `member` hashes the text as
        it is, where a set of them made a Python string of every member first)."""
        key = tuple(names)
        if key not in self._members:
            rows = self._segments["segment_name"].isin(names)
            self._members[key] = self._segments.loc[rows, "partner_ref"].dropna()
        return self._members[key]


@dataclass(frozen=True)
class _Shared:
    """What the plan of any documents reads besides their aging rows, prepared once per plan
    (`plan_parts` builds several parts from it)."""

    partners: pd.DataFrame  # partner_ref, legal_form, main_manager_ref: a row per partner
    segments: _Segments
    managers: pd.DataFrame  # by manager_ref
    recipients: pd.Series  # partner_ref -> address (`_recipients`)
    steps: pd.DataFrame  # `_steps_frame`
    step_id: pd.Series  # the steps' ids and a missing one (row -1: a candidate without a step)
    done: pd.DataFrame  # the register's sent (document_ref, step_id)
    refused: pd.DataFrame  # the register's permanent refusals (document_ref, step_id, target)
    letters: pd.DataFrame  # the register's emails sent (partner_ref, sent_at, external_ref)

    @classmethod
    def of(cls, frames: Mapping[str, pd.DataFrame], policy: Policy, register: pd.DataFrame) -> _Shared:
        steps = _steps_frame(policy)
        sent = register["sent_at"].notna()
        return cls(
            partners=frames["partners"][["partner_ref", "legal_form", "main_manager_ref"]]
            .drop_duplicates("partner_ref"),
            segments=_Segments(frames["segments"]),
            managers=frames["managers"].set_index("manager_ref"),
            recipients=_recipients(frames["contacts"], policy),
            steps=steps,
            step_id=_with_missing(steps["step_id"]),
            done=register.loc[sent, ["document_ref", "step_id"]],
            refused=register.loc[~sent & register["status"].eq("failed")
                                 & register["detail"].fillna("").str.startswith("permanent"),
                                 ["document_ref", "step_id", "target"]],
            letters=register.loc[sent & register["action"].eq("email"), ["partner_ref", "sent_at", "external_ref"]],
        )


def build_plan(aging: pd.DataFrame, frames: Mapping[str, pd.DataFrame], policy: Policy,
               register: pd.DataFrame, as_of: dt.date, *, now: dt.datetime | None = None
               ) -> pd.DataFrame:
    """Every (document, step) candidate with its decision and reason.

    `aging` comes from `compute_aging` for `as_of`; of `frames` only `PLAN_FRAMES` are read;
    `register` is `collection_register` (at least document_ref, step_id, action, partner_ref,
    sent_at, external_ref);
    `now` (aware) enables the 230-ФЗ hour check when the plan is about to be acted on.

    Candidates are carried as integer positions (`di`: the document's row, `si`: the
    step's row or -1) and every check runs on document- or step-level arrays taken at
    those positions; each output column is built once, at the end: text as categories
    (`CATEGORY_COLUMNS`, one code per candidate), numbers by one take.
    """
    [plan] = _parts(aging, _Shared.of(frames, policy, register), policy, as_of, now, max(len(aging), 1))
    return plan


def _parts(aging: pd.DataFrame, shared: _Shared, policy: Policy, as_of: dt.date, now: dt.datetime | None,
           part_documents: int) -> Iterator[pd.DataFrame]:
    """The plan of the documents in `aging` in parts (`plan_parts`): what is per document is
    found once for all of them, the candidates and the output part by part."""
    cal = get_calendar()
    partners = shared.partners
    # the partner's columns by position: `aging.merge(partners, how="left")` copies every column
    # each document's partner as a code among the few distinct partners: the partners' columns,
    # addresses and letters are looked up for those only
    partner_code, distinct = pd.factorize(aging["partner_ref"], use_na_sentinel=False)
    distinct = pd.Series(distinct, dtype="str")
    at = positions(distinct, partners["partner_ref"])[partner_code]
    docs = aging.reset_index(drop=True).assign(  # categoricals: codes of the few partners' values
        legal_form=_take_category(partners["legal_form"], at),
        main_manager_ref=_take_category(partners["main_manager_ref"], at))
    doc_code = _codes(docs["document_ref"])  # cheap in aging's reference order
    steps, step_id, reg, refused, mgrs = shared.steps, shared.step_id, shared.done, shared.refused, shared.managers
    manager_ref, main_ref = docs["manager_ref"], docs["main_manager_ref"]

    def managers_at() -> list[np.ndarray]:
        at, main_at = positions(manager_ref, mgrs.index), positions(main_ref, mgrs.index)
        # the order's manager, else the partner's main one
        return [at, main_at, np.where(manager_ref.isna().to_numpy(), main_at, at)]

    def _part(doc_order: np.ndarray) -> pd.DataFrame:
        """The plan of the documents at `doc_order` (rows of `docs` in the plan's order)."""
        di, si, place = _expand_index(doc_pool, pool_table, doc_order)
        no_step = si < 0

        def per_candidate(values: np.ndarray) -> np.ndarray:
            """A document-level array at every candidate: put in output order first, so that
            the candidates read it in order (by document row they jump across all documents,
            each read waiting on memory at a million documents)."""
            return values[doc_order][place]

        def doc_col(col: str) -> np.ndarray:
            return per_candidate(docs[col].to_numpy())

        def targets():
            """The candidates' targets (a worker finds them while this thread settles the reasons):
            (is_email, assignee_missing, address, target_at, the jobs taking their columns)."""
            # manager positions per document, chosen per candidate
            is_email = _per_step(steps["action"].eq("email").to_numpy(dtype=bool), False)[si]
            is_case = _per_step(steps["action"].eq("case").to_numpy(dtype=bool), False)[si]
            by_partner = _per_step(steps["assignee"].eq("partner_manager").to_numpy(dtype=bool), False)[si]
            # assignee: the order's manager, the partner's for partner_manager steps; a case
            # goes to the order's manager, else the partner's
            use_main = np.where(is_case, per_candidate(no_manager), by_partner)
            assignee_at = np.where(use_main, di + n_docs, di)
            # positions among the few managers and addresses: int32 per candidate
            assignee_mgr = np.where(use_main, per_candidate(main_manager.astype(np.int32)),
                                    per_candidate(order_manager.astype(np.int32)))
            assignee_missing = np.where(use_main, per_candidate(main_ref.isna().to_numpy()),
                                        per_candidate(no_manager))
            contact_mgr = per_candidate(contact_manager.astype(np.int32))
            address = per_candidate(address_of)
            target_at = assignee_mgr.copy()  # built in place: three passes, one new array
            np.add(target_at, len(recipients), out=target_at, where=assignee_mgr >= 0)
            np.copyto(target_at, address, where=is_email)
            jobs = {"assignee_ref": pool.submit(_coded_category, coded["assignee_ref"], assignee_at)}
            for col, source in (("manager_name", "manager_name"), ("manager_email", "email"),
                                 ("manager_phone", "phone")):
                jobs[col] = pool.submit(_take_category, mgrs[source], contact_mgr)
            jobs["target"] = pool.submit(_take_category, target_from, target_at)
            return is_email, assignee_missing, address, target_at, jobs

        targeting = pool.submit(targets)
        taking = {col: pool.submit(_step_integers, steps[col], si) for col in ("step_rank", "deadline_business_days")}
        for col in doc_columns:
            if col in coded:
                taking[col] = pool.submit(_coded_category, coded[col], place, doc_order)
            else:
                taking[col] = pool.submit(_take, docs[col], place, doc_order)
        for col in ("step_id", "action", "template"):
            taking[col] = pool.submit(_take_category, steps[col], si)

        # due day of every candidate
        anchor_is_date = _per_step(steps["anchor"].eq("document_date").to_numpy(dtype=bool), False)[si]
        offset = _per_step(steps["offset"].fillna(0).astype("int64").to_numpy(), 0)[si]
        business_unit = _per_step(steps["unit"].eq("business_days").to_numpy(dtype=bool), False)[si]
        # the due date's anchor, then the document date's where a step counts from it: one
        # candidate-sized array (a `where` of two took two more)
        anchor = doc_col("due_date").astype("datetime64[s]", copy=False)
        by_date = np.flatnonzero(anchor_is_date)
        anchor[by_date] = docs["document_date"].to_numpy()[di[by_date]]
        due_day = anchor + offset.astype("timedelta64[D]")
        business = np.flatnonzero(business_unit)  # the calendar only for steps counted in working days
        due_day[business] = cal.add_working_days_each(
            anchor[business], si[business], steps["offset"].fillna(0).astype("int64").to_numpy()).astype("datetime64[s]")
        due_day[no_step] = np.datetime64("NaT")
        # (candidate-sized temporaries go as soon as they are used: at a million documents each
        # is ~37 MB, and the output's columns are being built beside them)
        del anchor_is_date, offset, business_unit, business, by_date

        # reasons as codes into REASONS (-1: none yet): a first-wins update is an integer store
        # where a mask over Arrow strings would rebuild the column every time
        code = per_candidate(doc_reason.astype(np.int8))  # a byte a candidate: few reasons

        def give(hit, name: str, *, step_only: bool = False) -> None:
            """The reason of every candidate that has none yet and `hit`s."""
            hit = (code < 0) & _flags(hit)
            if step_only:
                hit &= ~no_step
            code[hit] = _REASON_CODE[name]

        # the sent steps, and the (document, step) pairs with a permanent refusal to some target
        # (which target is checked below, once targets are known, for those candidates only)
        done, refused_pair = _in_register(docs["document_ref"], doc_code, step_id, di, si, [reg, refused],
                                          order=(doc_order, place), located=located_rows)
        give(done, "already_done")
        as_of_ts = np.datetime64(as_of, "s")
        give(due_day > as_of_ts, "not_yet_due")
        catch_up = _per_step(steps["catch_up_days"].fillna(-1).to_numpy(dtype="float64"), -1.0)[si]
        known = ~np.isnat(due_day)
        late = np.floor_divide((as_of_ts - np.where(known, due_day, as_of_ts)).astype("int64"), 86400)
        give((catch_up >= 0) & known & (late > catch_up), "catch_up_expired")
        del catch_up, known, late
        pct = per_candidate(pct_of)
        require_pct = _per_step(steps["require_pct"].to_numpy(dtype="float64"), np.nan)[si]
        give(~np.isnan(require_pct) & (pct > require_pct), "require_payment_percent")
        # checked for the candidates of steps that require a minimum only (few steps do)
        require_min = _per_step(steps["require_min"].fillna(-1).to_numpy(dtype="float64"), -1.0)
        needs = np.flatnonzero((require_min >= 0)[si])
        below = np.zeros(len(si), dtype=bool)
        below[needs] = docs["outstanding"].to_numpy()[doc_order][place[needs]] < require_min[si[needs]]
        give(below, "require_min_outstanding")
        del pct, require_pct, below, needs

        # several due steps of one action for one document: only the latest due day acts
        rows = np.flatnonzero((code < 0) & ~no_step)
        rank = steps["step_rank"].to_numpy(dtype="int64")
        # per (document, action) the latest due day, then the highest rank, then the first
        # candidate: candidates come document by document, so the sort is nearly linear
        if _distinct(doc_code):  # each document's place in the output: ascending along the candidates
            document = place[rows]
        else:
            document = doc_code[di[rows]]
        action = _codes(steps["action"])[si[rows]]
        order = lexsort((-rank[si[rows]], _descending(due_day[rows]), action, document))
        document, action = document[order], action[order]
        first = np.flatnonzero(np.r_[len(rows) > 0, (document[1:] != document[:-1]) | (action[1:] != action[:-1])])
        superseded = np.zeros(len(di), dtype=bool)
        superseded[rows] = True
        superseded[rows[order[first]]] = False
        give(superseded, "superseded")
        del rows, document, action, order, first, superseded

        is_email, assignee_missing, address, target_at, jobs = targeting.result()
        taking.update(jobs)
        out = {}
        out["anchor_date"] = anchor
        out["due_day"] = due_day
        # a sender code per document, then per candidate: one gather of small codes
        out["sender"] = _categorical(per_candidate(sender_of), sender_names)
        give(is_email & (address < 0), "no_email", step_only=True)
        del address
        maybe = np.flatnonzero(refused_pair)
        if len(maybe):  # the candidates whose (document, step) was refused: was it to their target?
            failed = np.zeros(len(di), dtype=bool)
            left = [(docs["document_ref"], di), (step_id, si), (_with_missing(target_from), target_at)]
            failed[maybe] = _pairs_in(
                [(values.iloc[at[maybe]].astype("str").reset_index(drop=True), None) for values, at in left],
                [refused[c].astype("str") for c in ("document_ref", "step_id", "target")])
            give(failed, "failed_permanently", step_only=True)
        give(~is_email & assignee_missing, "no_assignee", step_only=True)
        private = per_candidate(private_of)
        quiet, cap = _contact_caps(is_email, di, private, holds, policy, now)
        give(quiet, "quiet_days", step_only=True)
        capped = (code < 0) & ~no_step & (cap >= 0)
        code[capped] = _CAP_CODES[cap[capped]]
        code[(code < 0) & ~no_step] = _REASON_CODE["due"]
        out["decision"] = _take_category(_DECISION_NAMES, code)
        out["reason"] = _take_category(_REASON_NAMES, code)
        out.update({col: job.result() for col, job in taking.items()})
        plan = pd.DataFrame({col: out[col] for col in PLAN_COLUMNS}, copy=False)  # fresh arrays, ours
        # the candidates' document ranks ascend (they come in document order), so they are in output
        # order unless some rank's steps are not: only documents sharing a date and a number interleave,
        # and without such documents (1C numbers are unique within a year) nothing is checked per candidate
        ranks = doc_rank[doc_order]
        if (ranks[1:] == ranks[:-1]).any():
            doc_key = ranks[place]
            rank_key = _per_step(sort_key(steps["step_rank"]), len(steps))[si]  # no step: last, as missing
            if ((doc_key[1:] == doc_key[:-1]) & (rank_key[1:] < rank_key[:-1])).any():
                plan = plan.take(lexsort((rank_key, doc_key))).reset_index(drop=True)
        return plan

    # worker threads (hashing, factorizing and gathering in C, which releases the GIL) find what
    # needs no candidate beside the documents' sort, then build the output's columns while this
    # thread settles the reasons: the documents' and steps' columns as soon as the candidates are
    # known, the targets' once known
    with ThreadPoolExecutor(COMPUTE_THREADS, thread_name_prefix="plan") as pool:
        located = pool.submit(_register_tables, docs["document_ref"], doc_code, step_id, [reg, refused])
        managers = pool.submit(managers_at)
        # candidates come in output order (documents by date and number): the final sort is (almost)
        # a no-op. The documents themselves stay in aging's order: most output columns are codes now,
        # so reordering every document column first no longer pays for itself
        # (the sort on its own frame: this thread adds the pool column to `docs` meanwhile)
        ordering = pool.submit(_document_order, docs[["document_number", "document_date"]])
        pool_code, pool_names = _pool_codes(docs, (distinct, partner_code), shared.segments, policy)
        docs["pool"] = _take(pd.Series(pool_names, dtype="str"), pool_code)
        # each document's pool as a row of the pools' step table: looked up among the few pools
        # once, where each part hashed every document's pool name again
        step_pools, pool_table = _pool_steps(steps["pool"])
        doc_pool = np.append(positions(pd.Series(pool_names, dtype="str"), step_pools), -1)[pool_code]
        doc_reason = _document_reasons(docs, pool_code, (distinct, partner_code), shared.segments, policy)
        # the documents' columns the output takes: categories' codes found once for every part (so
        # that the parts share their categories), text in one chunk (a part takes from it)
        doc_columns = [col for col in PLAN_COLUMNS if col in docs.columns and col != "manager_name"]
        coded = {col: pool.submit(_category_codes, docs[col]) for col in doc_columns if col in CATEGORY_COLUMNS}
        for col in doc_columns:
            if col not in CATEGORY_COLUMNS and isinstance(docs[col].array, pd.arrays.ArrowStringArray):
                docs[col] = pd.arrays.ArrowStringArray(_one_chunk(pa.array(docs[col].array)), dtype=docs[col].dtype)
        n_docs = len(docs)
        no_manager = manager_ref.isna().to_numpy()
        if not mgrs.index.is_unique:
            lookup(docs["manager_ref"], mgrs["manager_name"])  # raises as the lookup always did
        order_manager, main_manager, contact_manager = managers.result()
        recipients = shared.recipients
        address_of = positions(distinct, recipients.index).astype(np.int32)[partner_code]
        # the target: the partner's address for email, else the assignee's name
        target_from = pd.concat([recipients.reset_index(drop=True), mgrs["manager_name"].reset_index(drop=True)],
                                ignore_index=True)
        assignee_refs = concat_frames([manager_ref.to_frame("ref"), main_ref.to_frame("ref")])["ref"]
        coded["assignee_ref"] = pool.submit(_category_codes, assignee_refs)
        # the sender of each organization, read per candidate through the organization's code
        org_code, orgs = pd.factorize(docs["organization_name"], use_na_sentinel=False)
        default, by_org = policy.senders.default, policy.senders.by_organization
        senders = pd.Series([by_org.get(o, default) if isinstance(o, str) else default for o in orgs], dtype="str")
        sender_code, sender_names = pd.factorize(senders, sort=True)
        sender_of = narrow_codes(sender_code, len(sender_names))[org_code]
        private_of = docs["legal_form"].eq(PRIVATE_PERSON).to_numpy(dtype=bool, na_value=False)
        with np.errstate(divide="ignore", invalid="ignore"):
            pct_of = (docs["paid"] * 100.0 / docs["amount"]).to_numpy(dtype="float64")  # a ratio
        holds = _letter_holds(partner_code, distinct, shared.letters, policy, as_of, caps=bool(private_of.any()))
        # (all of the above while a worker sorts the documents: only the parts need their order)
        doc_order, doc_rank = ordering.result()
        located_rows = located.result()
        coded = {col: job.result() for col, job in coded.items()}
        for first_doc, last_doc in _part_bounds(doc_rank[doc_order], part_documents):
            # (freed memory stays with the process between parts: the next part reuses it, where
            # pages handed back to the system cost as much again to fault in)
            yield _part(doc_order[first_doc:last_doc])
    release_memory()  # the candidates' temporaries (~0.6 GB for a million documents in one part)


def plan_parts(aging: pd.DataFrame, frames: Mapping[str, pd.DataFrame], policy: Policy,
               register: pd.DataFrame, as_of: dt.date, *, now: dt.datetime | None = None,
               part_documents: int = PART_DOCUMENTS) -> Iterator[pd.DataFrame]:
    """`build_plan` in parts of about `part_documents` documents each, in the plan's order: the
    parts one after another are the whole plan's rows, with the same categories.

    Every check is of one document (the partner's and contract's debts are the snapshot's
    columns; letters, refusals and contact caps come from the register), so a part is the plan
    of its documents; what is per document (pools, reasons, managers, the output's categories)
    is found once for all parts. Documents sharing a date and a number stay in one part."""
    if part_documents < 1:
        raise ValueError(f"part_documents must be at least 1, not {part_documents}")
    yield from _parts(aging, _Shared.of(frames, policy, register), policy, as_of, now, part_documents)


def explain(plan: pd.DataFrame, document_number: str, orders: pd.DataFrame | None = None,
            as_of: dt.date | None = None) -> list[str]:
    """Plain-English lines saying what happens to one order and why (seed 000 item 5)."""
    rows = plan.loc[plan["document_number"].eq(document_number)]
    if rows.empty:
        why = "it is not an open receivable on this date"
        if orders is not None:
            o = orders.loc[orders["document_number"].eq(document_number)]
            if o.empty:
                why = "no customer order with this number exists in 1C (as of this date)"
            elif not bool(o["posted"].iloc[0]):
                why = "the order is not posted"
            elif bool(o["deleted"].iloc[0]):
                why = "the order is marked for deletion"
            else:
                why = "the order is fully paid (nothing outstanding)"
        when = f" as of {as_of.isoformat()}" if as_of else ""
        return [f"{document_number}: nothing is due{when}: {why}"]
    lines = []
    for r in rows.itertuples(index=False):
        step = r.step_id if isinstance(r.step_id, str) else "-"
        due = pd.Timestamp(r.due_day).date().isoformat() if pd.notna(r.due_day) else "-"
        lines.append(f"{r.document_number} step {step}: {r.decision} ({r.reason}: "
                     f"{REASONS.get(r.reason, r.reason)}); step due day {due}")
    if not rows["decision"].eq("act").any():
        lines.append(f"{document_number}: nothing is due for this order now")
    return lines
