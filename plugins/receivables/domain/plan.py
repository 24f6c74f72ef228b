"""Eligibility and the plan: for every open document and policy step, act or why not (spec §5).

`build_plan` returns one row per (document, step) candidate with a `decision`
(`act`, `skip`, `hold`, `superseded`, `not_due`, `done`, `excluded`) and a `reason`
code, so "why was X (not) contacted?" always has an answer. Vectorised: no Python
loop runs over documents, only over the handful of pools and steps.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import numpy as np
import pandas as pd

from receivables.domain.calendar import get_calendar
from receivables.domain.frames import lookup, member, positions, sort_key
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


def _flags(mask) -> np.ndarray:
    """A boolean mask as a numpy array, missing counted as False."""
    if isinstance(mask, pd.Series):
        return mask.to_numpy(dtype=bool, na_value=False)
    return np.asarray(mask, dtype=bool)


def _codes(values: pd.Series) -> np.ndarray:
    """Integer codes of `values`, equal values equal codes, a missing value a code of its own."""
    return pd.factorize(values, use_na_sentinel=False)[0].astype("int64", copy=False)


def _pairs_in(left: list[pd.Series], right: list[pd.Series]) -> np.ndarray:
    """`MultiIndex(left).isin(MultiIndex(right))` on integer codes (missing matches missing):
    building MultiIndexes of Arrow strings costs a Python object per value."""
    found = np.ones(len(left[0]), dtype=bool)
    lkey = np.zeros(len(left[0]), dtype="int64")
    rkey = np.zeros(len(right[0]), dtype="int64")
    for a, b in zip(left, right, strict=True):
        universe = b.drop_duplicates()
        la, rb = positions(a, universe), positions(b, universe)
        found &= la >= 0
        keys, rkey = np.unique(rkey * len(universe) + rb, return_inverse=True)
        lkey = lkey * len(universe) + la
        at = np.clip(np.searchsorted(keys, lkey), 0, max(len(keys) - 1, 0))
        found &= (keys[at] == lkey) if len(keys) else False
        lkey = at  # a pair found keeps its right-hand code; the rest are already not found
        rkey = rkey.reshape(-1)
    return found


def _map_few(values: pd.Series, mapping: Mapping) -> pd.Series:
    """`values.map(mapping)` for a column of few distinct values: maps the distinct ones only."""
    codes, uniques = pd.factorize(values, use_na_sentinel=False)
    mapped = pd.Series(uniques).map(mapping)
    return pd.Series(mapped.array.take(codes), index=values.index, name=values.name)


def _expand(docs: pd.DataFrame, steps: pd.DataFrame, doc_order: np.ndarray
            ) -> tuple[pd.DataFrame, np.ndarray]:
    """`docs.merge(steps, on="pool", how="left")` with the documents taken in `doc_order`:
    every document once per step of its pool (in policy order), or once with empty step
    columns. Built by integer takes instead of a join on Arrow strings; also returns the
    document (row of `docs`) of each candidate."""
    names = pd.Index(pd.unique(steps["pool"]))
    by_pool = [np.flatnonzero(steps["pool"].eq(name).to_numpy(dtype=bool)) for name in names]
    width = max(len(ix) for ix in by_pool)
    table = np.full((len(names) + 1, width), -1, dtype="int64")  # last row: no pool
    for k, ix in enumerate(by_pool):
        table[k, :len(ix)] = ix
    pool = positions(docs["pool"], names)[doc_order]
    pool = np.where(pool < 0, len(names), pool)
    counts = np.maximum((table >= 0).sum(axis=1), 1)[pool]
    di = np.repeat(doc_order, counts)
    within = np.arange(len(di)) - np.repeat(np.cumsum(counts) - counts, counts)
    si = table[np.repeat(pool, counts), within]
    cols = {c: _take(docs[c], di) for c in docs.columns}
    for c in steps.columns:
        if c != "pool":
            cols[c] = _take(steps[c], si)
    return pd.DataFrame(cols), di


def _take(values: pd.Series, indices: np.ndarray):
    """`values` at `indices`, -1 giving a missing value (int64 becomes float64, as in a join)."""
    from pandas.api.extensions import take

    arr = values.array
    if isinstance(arr, pd.arrays.NumpyExtensionArray):
        return take(arr.to_numpy(), indices, allow_fill=True)
    return arr.take(indices, allow_fill=True)


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
    return pd.DataFrame(rows)


def _in_segments(partner_refs: pd.Series, segments: pd.DataFrame, names: list[str]) -> pd.Series:
    members = set(segments.loc[segments["segment_name"].isin(names), "partner_ref"].dropna())
    return pd.Series(member(partner_refs, members), index=partner_refs.index)


def assign_pools(docs: pd.DataFrame, segments: pd.DataFrame, policy: Policy) -> pd.Series:
    """The pool of each document: the matching pool of lowest rank (D365 hierarchy)."""
    pool = pd.Series(pd.NA, index=docs.index, dtype="str")
    for p in sorted(policy.pools, key=lambda p: p.rank):
        m = pool.isna()
        if p.match.segments:
            m &= _in_segments(docs["partner_ref"], segments, p.match.segments)
        if p.match.organizations:
            m &= docs["organization_name"].isin(p.match.organizations)
        if p.match.settlement:
            m &= docs["settlement"].isin(p.match.settlement)
        pool = pool.mask(m, p.name)
    return pool


def _document_reasons(docs: pd.DataFrame, segments: pd.DataFrame, policy: Policy) -> pd.Series:
    reason = pd.Series(pd.NA, index=docs.index, dtype="str")
    reason = reason.mask(docs["pool"].isna(), "no_pool")
    campaign = np.datetime64(policy.campaign_start, "s")
    reason = reason.mask(reason.isna() & (docs["document_date"] < campaign), "before_campaign")
    debt = {"document": docs["outstanding"], "contract": docs["contract_debt"],
            "partner": docs["partner_debt"]}[policy.debt_basis]
    for p in policy.pools:
        in_pool = reason.isna() & docs["pool"].eq(p.name)
        if p.exclude.segments:
            hit = in_pool & _in_segments(docs["partner_ref"], segments, p.exclude.segments)
            reason = reason.mask(hit, "excluded_segment")
        if p.exclude.partner_debt_below > 0:
            hit = reason.isna() & in_pool & (debt < int(p.exclude.partner_debt_below * 100))
            reason = reason.mask(hit, "below_partner_debt")
        if p.exclude.document_amount_below > 0:
            hit = reason.isna() & in_pool & (docs["amount"] < int(p.exclude.document_amount_below * 100))
            reason = reason.mask(hit, "below_document_amount")
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


def _contact_caps(cand: pd.DataFrame, register: pd.DataFrame, policy: Policy, as_of: dt.date,
                  now: dt.datetime | None) -> tuple[pd.Series, pd.Series]:
    """(quiet_days hold, 230-ФЗ hold) masks over email candidates."""
    # only email candidates (private persons' for the caps) are looked up
    is_email = cand["action"].eq("email").to_numpy(dtype=bool)
    quiet = np.zeros(len(cand), dtype=bool)
    cap = np.full(len(cand), -1, dtype="int64")  # position in _CAPS, -1: none
    sent = register.loc[register["sent_at"].notna() & register["action"].eq("email"),
                        ["partner_ref", "sent_at", "external_ref"]].copy()
    if len(sent):
        sent["day"] = pd.to_datetime(sent["sent_at"], utc=True).dt.tz_convert(policy.tz).dt.tz_localize(None).dt.normalize()
    as_of_ts = pd.Timestamp(as_of)
    if policy.quiet_days > 0 and len(sent):
        recent = sent.loc[sent["day"] > as_of_ts - pd.Timedelta(days=policy.quiet_days)]
        rows = np.flatnonzero(is_email)
        quiet[rows] = member(cand["partner_ref"].iloc[rows], recent["partner_ref"])
    private = np.flatnonzero(is_email & cand["legal_form"].eq(PRIVATE_PERSON).to_numpy(dtype=bool, na_value=False))
    if len(private):
        lim = policy.private_persons
        partner = cand["partner_ref"].iloc[private]
        if len(sent):
            # one letter = one message, however many register rows it covered
            msgs = sent.drop_duplicates(["partner_ref", "external_ref"])
            for days, limit in ((1, lim.per_day), (7, lim.per_week), (30, lim.per_month)):
                window = msgs.loc[msgs["day"] > as_of_ts - pd.Timedelta(days=days)]
                counts = window.groupby("partner_ref").size()
                over = lookup(partner, counts).fillna(0).ge(limit).to_numpy(dtype=bool)
                hit = private[over & (cap[private] < 0)]
                cap[hit] = 0
        if now is not None:
            local = now.astimezone(policy.tz)
            working = bool(get_calendar().is_working(np.array([local.date()], dtype="datetime64[D]"))[0])
            lo, hi = lim.weekday_hours if working else lim.weekend_hours
            if not lo <= local.hour < hi:
                cap[private[cap[private] < 0]] = 1
    return (pd.Series(quiet, index=cand.index),
            pd.Series(_CAPS.array.take(cap, allow_fill=True), index=cand.index))


def build_plan(aging: pd.DataFrame, frames: Mapping[str, pd.DataFrame], policy: Policy,
               register: pd.DataFrame, as_of: dt.date, *, now: dt.datetime | None = None
               ) -> pd.DataFrame:
    """Every (document, step) candidate with its decision and reason.

    `aging` comes from `compute_aging` for `as_of`; `register` is `collection_register`
    (at least document_ref, step_id, action, partner_ref, sent_at, external_ref);
    `now` (aware) enables the 230-ФЗ hour check when the plan is about to be acted on.
    """
    cal = get_calendar()
    partners = frames["partners"][["partner_ref", "legal_form", "main_manager_ref"]].drop_duplicates("partner_ref")
    docs = aging.merge(partners, on="partner_ref", how="left")
    docs["pool"] = assign_pools(docs, frames["segments"], policy)
    docs["doc_reason"] = _document_reasons(docs, frames["segments"], policy)

    steps = _steps_frame(policy)
    if len(steps):
        # documents in output order up front, so the final sort is (almost) a no-op
        number_key, date_key = sort_key(docs["document_number"]), sort_key(docs["document_date"])
        doc_order = np.lexsort((number_key, date_key))
        # only what the plan reads or returns (manager_name is looked up again below)
        used = [c for c in docs.columns if c != "manager_name" and (
            c in PLAN_COLUMNS or c in ("doc_reason", "manager_ref", "main_manager_ref"))]
        cand, doc_of = _expand(docs[used], steps, doc_order)
    else:
        cand = docs.assign(step_id=pd.NA).reset_index(drop=True)
        number_key, date_key = sort_key(cand["document_number"]), sort_key(cand["document_date"])
        doc_of = np.arange(len(cand))

    has_step = cand["step_id"].notna()
    anchor = cand["document_date"].where(cand["anchor"].eq("document_date"), cand["due_date"])
    offset = cand["offset"].fillna(0).astype("int64")
    business = cal.add_working_days(anchor.astype("datetime64[s]"), offset.to_numpy())
    calendar_days = anchor + pd.to_timedelta(offset, unit="D")
    cand["anchor_date"] = anchor.astype("datetime64[s]")
    cand["due_day"] = business.where(cand["unit"].eq("business_days"), calendar_days).astype("datetime64[s]")
    cand.loc[~has_step, "due_day"] = pd.NaT

    # reasons as codes into REASONS (-1: none yet): a first-wins update is an integer store
    # where a mask over Arrow strings would rebuild the column every time
    code = positions(cand["doc_reason"], _REASON_NAMES)
    no_step = ~has_step.to_numpy(dtype=bool)

    def give(hit, name: str, *, step_only: bool = False) -> None:
        """The reason of every candidate that has none yet and `hit`s."""
        hit = (code < 0) & _flags(hit)
        if step_only:
            hit &= ~no_step
        code[hit] = _REASON_CODE[name]

    reg = register.loc[register["sent_at"].notna(), ["document_ref", "step_id"]].drop_duplicates()
    if len(reg):
        give(_pairs_in([cand["document_ref"], cand["step_id"]], [reg["document_ref"], reg["step_id"]]),
             "already_done")
    as_of_ts = np.datetime64(as_of, "s")
    give(cand["due_day"] > as_of_ts, "not_yet_due")
    late = (as_of_ts - cand["due_day"]).dt.days
    give(cand["catch_up_days"].fillna(-1).ge(0) & late.gt(cand["catch_up_days"]), "catch_up_expired")
    pct = cand["paid"] * 100.0 / cand["amount"]  # a ratio for a threshold, not money
    give(cand["require_pct"].notna() & (pct > cand["require_pct"]), "require_payment_percent")
    give(cand["require_min"].ge(0) & (cand["outstanding"] < cand["require_min"]), "require_min_outstanding")

    # several due steps of one action for one document: only the latest due day acts
    rows = np.flatnonzero((code < 0) & ~no_step)
    sub = cand[["document_ref", "action", "due_day", "step_rank"]].iloc[rows]
    order = np.lexsort((sort_key(sub["step_rank"], descending=True),
                        sort_key(sub["due_day"], descending=True)))
    group = _codes(sub["document_ref"]) * (len(rows) + 1) + _codes(sub["action"])
    first = np.unique(group[order], return_index=True)[1]
    superseded = np.zeros(len(cand), dtype=bool)
    superseded[rows] = True
    superseded[rows[order[first]]] = False
    give(superseded, "superseded")

    # targets
    mgrs = frames["managers"].set_index("manager_ref")
    cand["assignee_ref"] = cand["manager_ref"].where(cand["assignee"].ne("partner_manager"),
                                                     cand["main_manager_ref"])
    cand.loc[cand["action"].eq("case"), "assignee_ref"] = cand["manager_ref"].fillna(cand["main_manager_ref"])
    contact_mgr = cand["manager_ref"].fillna(cand["main_manager_ref"])
    cand["manager_name"] = lookup(contact_mgr, mgrs["manager_name"])
    cand["manager_email"] = lookup(contact_mgr, mgrs["email"])
    cand["manager_phone"] = lookup(contact_mgr, mgrs["phone"])
    address = lookup(cand["partner_ref"], _recipients(frames["contacts"], policy))
    is_email = cand["action"].eq("email")
    cand["target"] = address.where(is_email, lookup(cand["assignee_ref"], mgrs["manager_name"]))
    cand["sender"] = _map_few(cand["organization_name"], policy.senders.by_organization).fillna(
        policy.senders.default)

    give(is_email & address.isna(), "no_email", step_only=True)
    refused = register.loc[register["sent_at"].isna() & register["status"].eq("failed")
                           & register["detail"].fillna("").str.startswith("permanent"),
                           ["document_ref", "step_id", "target"]]
    if len(refused):
        give(_pairs_in([cand[c].astype("str") for c in ("document_ref", "step_id", "target")],
                       [refused[c].astype("str") for c in ("document_ref", "step_id", "target")]),
             "failed_permanently", step_only=True)
    give(~is_email & cand["assignee_ref"].isna(), "no_assignee", step_only=True)
    quiet, cap = _contact_caps(cand, register, policy, as_of, now)
    give(quiet, "quiet_days", step_only=True)
    capped = (code < 0) & ~no_step & _flags(cap.notna())
    code[capped] = positions(cap, _REASON_NAMES)[capped]
    code[(code < 0) & ~no_step] = _REASON_CODE["due"]
    reason = pd.Series(_REASON_NAMES.array.take(code, allow_fill=True), index=cand.index)
    decision = pd.Series(_DECISION_NAMES.array.take(code, allow_fill=True), index=cand.index)
    cand["decision"] = decision
    cand["reason"] = reason
    for col in ("step_rank", "deadline_business_days"):
        cand[col] = cand[col].astype("Int64")
    out = cand[PLAN_COLUMNS]
    final = np.lexsort((sort_key(out["step_rank"]), number_key[doc_of], date_key[doc_of]))
    if not np.array_equal(final, np.arange(len(out))):
        out = out.take(final)
    return out.reset_index(drop=True)


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
