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
from receivables.domain.frames import member
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
    is_email = cand["action"].eq("email")
    quiet = pd.Series(False, index=cand.index)
    cap = pd.Series(pd.NA, index=cand.index, dtype="str")
    sent = register.loc[register["sent_at"].notna() & register["action"].eq("email"),
                        ["partner_ref", "sent_at", "external_ref"]].copy()
    if len(sent):
        sent["day"] = pd.to_datetime(sent["sent_at"], utc=True).dt.tz_convert(policy.tz).dt.tz_localize(None).dt.normalize()
    as_of_ts = pd.Timestamp(as_of)
    if policy.quiet_days > 0 and len(sent):
        recent = sent.loc[sent["day"] > as_of_ts - pd.Timedelta(days=policy.quiet_days)]
        quiet = is_email & pd.Series(member(cand["partner_ref"], recent["partner_ref"]), index=cand.index)
    private = is_email & cand["legal_form"].eq(PRIVATE_PERSON)
    if private.any():
        lim = policy.private_persons
        if len(sent):
            # one letter = one message, however many register rows it covered
            msgs = sent.drop_duplicates(["partner_ref", "external_ref"])
            for days, limit in ((1, lim.per_day), (7, lim.per_week), (30, lim.per_month)):
                window = msgs.loc[msgs["day"] > as_of_ts - pd.Timedelta(days=days)]
                counts = window.groupby("partner_ref").size()
                over = private & cand["partner_ref"].map(counts).fillna(0).ge(limit)
                cap = cap.mask(cap.isna() & over, "contact_limit_230fz")
        if now is not None:
            local = now.astimezone(policy.tz)
            working = bool(get_calendar().is_working(np.array([local.date()], dtype="datetime64[D]"))[0])
            lo, hi = lim.weekday_hours if working else lim.weekend_hours
            if not lo <= local.hour < hi:
                cap = cap.mask(cap.isna() & private, "quiet_hours_230fz")
    return quiet, cap


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
    cand = docs.merge(steps, on="pool", how="left") if len(steps) else docs.assign(step_id=pd.NA)
    cand = cand.reset_index(drop=True)

    has_step = cand["step_id"].notna()
    anchor = cand["document_date"].where(cand["anchor"].eq("document_date"), cand["due_date"])
    offset = cand["offset"].fillna(0).astype("int64")
    business = cal.add_working_days(anchor.astype("datetime64[s]"), offset.to_numpy())
    calendar_days = anchor + pd.to_timedelta(offset, unit="D")
    cand["anchor_date"] = anchor.astype("datetime64[s]")
    cand["due_day"] = business.where(cand["unit"].eq("business_days"), calendar_days).astype("datetime64[s]")
    cand.loc[~has_step, "due_day"] = pd.NaT

    reason = cand["doc_reason"].copy()
    reg = register.loc[register["sent_at"].notna(), ["document_ref", "step_id"]].drop_duplicates()
    done_keys = pd.MultiIndex.from_frame(reg) if len(reg) else None
    if done_keys is not None:
        done = pd.MultiIndex.from_frame(cand[["document_ref", "step_id"]]).isin(done_keys)
        reason = reason.mask(reason.isna() & done, "already_done")
    as_of_ts = np.datetime64(as_of, "s")
    reason = reason.mask(reason.isna() & (cand["due_day"] > as_of_ts), "not_yet_due")
    late = (as_of_ts - cand["due_day"]).dt.days
    expired = cand["catch_up_days"].fillna(-1).ge(0) & late.gt(cand["catch_up_days"])
    reason = reason.mask(reason.isna() & expired, "catch_up_expired")
    pct = cand["paid"] * 100.0 / cand["amount"]  # a ratio for a threshold, not money
    reason = reason.mask(reason.isna() & cand["require_pct"].notna() & (pct > cand["require_pct"]),
                         "require_payment_percent")
    reason = reason.mask(reason.isna() & cand["require_min"].ge(0) & (cand["outstanding"] < cand["require_min"]),
                         "require_min_outstanding")

    # several due steps of one action for one document: only the latest due day acts
    due_now = reason.isna() & has_step
    order = cand.loc[due_now].sort_values(["due_day", "step_rank"], ascending=False, kind="stable")
    winners = order.drop_duplicates(["document_ref", "action"]).index
    superseded = due_now & ~cand.index.isin(winners)
    reason = reason.mask(superseded, "superseded")

    decision = reason.map(_DECISION_OF).astype("str")
    decision = decision.mask(reason.eq("superseded"), "superseded")

    # targets
    mgrs = frames["managers"].set_index("manager_ref")
    cand["assignee_ref"] = cand["manager_ref"].where(cand["assignee"].ne("partner_manager"),
                                                     cand["main_manager_ref"])
    cand.loc[cand["action"].eq("case"), "assignee_ref"] = cand["manager_ref"].fillna(cand["main_manager_ref"])
    contact_mgr = cand["manager_ref"].fillna(cand["main_manager_ref"])
    cand["manager_name"] = contact_mgr.map(mgrs["manager_name"])
    cand["manager_email"] = contact_mgr.map(mgrs["email"])
    cand["manager_phone"] = contact_mgr.map(mgrs["phone"])
    address = cand["partner_ref"].map(_recipients(frames["contacts"], policy))
    is_email = cand["action"].eq("email")
    cand["target"] = address.where(is_email, cand["assignee_ref"].map(mgrs["manager_name"]))
    cand["sender"] = cand["organization_name"].map(policy.senders.by_organization).fillna(
        policy.senders.default)

    pending = reason.isna() & has_step
    reason = reason.mask(pending & is_email & address.isna(), "no_email")
    refused = register.loc[register["sent_at"].isna() & register["status"].eq("failed")
                           & register["detail"].fillna("").str.startswith("permanent"),
                           ["document_ref", "step_id", "target"]]
    if len(refused):
        same = pd.MultiIndex.from_frame(cand[["document_ref", "step_id", "target"]].astype("str")).isin(
            pd.MultiIndex.from_frame(refused.astype("str")))
        reason = reason.mask(reason.isna() & has_step & same, "failed_permanently")
    reason = reason.mask(reason.isna() & has_step & ~is_email & cand["assignee_ref"].isna(), "no_assignee")
    quiet, cap = _contact_caps(cand, register, policy, as_of, now)
    reason = reason.mask(reason.isna() & has_step & quiet, "quiet_days")
    reason = reason.mask(reason.isna() & has_step & cap.notna(), cap)
    decision = decision.mask(reason.eq("failed_permanently"), "done")
    decision = decision.mask(reason.isin(["no_email", "no_assignee"]), "skip")
    decision = decision.mask(reason.isin(["quiet_days", "contact_limit_230fz", "quiet_hours_230fz"]), "hold")
    acts = reason.isna() & has_step
    decision = decision.mask(acts, "act")
    reason = reason.mask(acts, "due")
    cand["decision"] = decision
    cand["reason"] = reason
    for col in ("step_rank", "deadline_business_days"):
        cand[col] = cand[col].astype("Int64")
    out = cand[PLAN_COLUMNS].sort_values(["document_date", "document_number", "step_rank"],
                                         kind="stable", ignore_index=True)
    return out


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
