"""Row-by-row reference of aging (spec §4) and eligibility/plan (spec §5).

Deliberately straightforward: plain Python loops over dicts, one document and one step at
a time, with its own working-day arithmetic read from `holidays.RU` (not the vectorised
calendar). It is the baseline of the compute benchmark and the oracle of
tests/unit/test_reference_plan.py: on the same frames it must give the same aging rows
and the same plan as `compute_aging` and `build_plan`.

Inputs are the canonical frames of `receivables.domain.frames` (valid data: the gate
rejects the rest before aging runs).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Mapping, Sequence
from functools import cache, lru_cache
from typing import Any

import holidays
import numpy as np
import pandas as pd

from receivables.domain.policy import Policy
from receivables.onec.schema import PRIVATE_PERSON

Row = dict[str, Any]

DECISION_OF = {
    "no_pool": "excluded", "before_campaign": "excluded", "excluded_segment": "excluded",
    "below_partner_debt": "excluded", "below_document_amount": "excluded",
    "already_done": "done", "not_yet_due": "not_due", "catch_up_expired": "excluded",
    "require_payment_percent": "excluded", "require_min_outstanding": "excluded",
    "superseded": "superseded", "failed_permanently": "done", "no_email": "skip", "no_assignee": "skip",
    "quiet_days": "hold", "contact_limit_230fz": "hold", "quiet_hours_230fz": "hold", "due": "act",
}


# -- values ---------------------------------------------------------------------------

def _v(x: Any) -> Any:
    """pandas' missing markers (NaN, NaT, NA) -> None; timestamps -> dates."""
    if x is None:
        return None
    try:
        if pd.isna(x):
            return None
    except (TypeError, ValueError):
        pass
    if isinstance(x, pd.Timestamp):
        return x.date() if x.tzinfo is None else x  # calendar dates; moments keep their zone
    if isinstance(x, np.generic):  # numpy scalars -> int, float, bool
        return x.item()
    return x


def records(df: pd.DataFrame) -> list[Row]:
    """A frame as a list of plain dicts (None for missing, dates for timestamps)."""
    cols = list(df.columns)
    return [{c: _v(x) for c, x in zip(cols, values, strict=True)} for values in df.itertuples(index=False)]


# -- the production calendar, one day at a time -----------------------------------------

@lru_cache(maxsize=8)
def _holidays(year: int) -> holidays.HolidayBase:
    return holidays.RU(years=year, language="ru")


@cache
def is_working(day: dt.date) -> bool:
    return _holidays(day.year).is_working_day(day)


def roll_forward(day: dt.date) -> dt.date:
    """ГК РФ ст. 193: a day off moves to the next working day."""
    while not is_working(day):
        day += dt.timedelta(days=1)
    return day


def add_working_days(day: dt.date, n: int) -> dt.date:
    """n > 0: the n-th working day after `day`; 0: roll forward; n < 0: the |n|-th before."""
    if n == 0:
        return roll_forward(day)
    step = dt.timedelta(days=1 if n > 0 else -1)
    left = abs(n)
    while left:
        day += step
        if is_working(day):
            left -= 1
    return day


def working_days_between(start: dt.date, end: dt.date) -> int:
    """Working days in (start, end]; negative when end is before start."""
    sign, lo, hi = (1, start, end) if end >= start else (-1, end, start)
    count, day = 0, lo
    while day < hi:
        day += dt.timedelta(days=1)
        count += is_working(day)
    return sign * count


def bucket(days: int, bounds: Sequence[int]) -> str:
    if days <= 0:
        return "not_due"
    lower = 1
    for upper in bounds:
        if days <= upper:
            return f"{lower}-{upper}"
        lower = upper + 1
    return f"{lower}+"


def _first_by(rows: list[Row], key: str) -> dict[Any, Row]:
    out: dict[Any, Row] = {}
    for r in rows:
        if r[key] is not None and r[key] not in out:
            out[r[key]] = r
    return out


# -- aging -----------------------------------------------------------------------------

def aging(frames: Mapping[str, pd.DataFrame], as_of: dt.date, *,
          bucket_bounds: Sequence[int] = (30, 60, 90)) -> list[Row]:
    """One row per open order with outstanding > 0, sorted by document_ref."""
    orders = [o for o in records(frames["orders"])
              if o["posted"] and not o["deleted"] and o["amount"] is not None and o["amount"] > 0]
    contracts = _first_by(records(frames["contracts"]), "contract_ref")
    objects = _first_by(records(frames["settlement_objects"]), "settlement_ref")

    # the payment schedule of each order: its stages, or one stage at the contract's term
    stages: dict[str, list[tuple[dt.date, int, int]]] = defaultdict(list)
    open_refs = {o["document_ref"] for o in orders}
    for s in records(frames["stages"]):
        if s["document_ref"] in open_refs:
            stages[s["document_ref"]].append((s["pay_date"], s["line"], s["amount"]))
    for o in orders:
        if o["document_ref"] not in stages:
            c = contracts.get(o["contract_ref"])
            days = (c["term_days"] or 0) if c is not None and c["has_term"] else 0
            stages[o["document_ref"]] = [(o["document_date"] + dt.timedelta(days=days), 1, o["amount"])]
        stages[o["document_ref"]].sort(key=lambda st: (st[0], st[1]))

    # payments per settlement object
    total: dict[str, int] = defaultdict(int)
    for p in records(frames["payments"]):
        if p["settlement_ref"] is not None:
            total[p["settlement_ref"]] += p["amount"]

    # who shares an object: orders not named by their object, more than one on it
    sharing: dict[str, list[Row]] = defaultdict(list)
    for o in orders:
        obj = objects.get(o["settlement_ref"])
        own = obj is not None and obj["object_ref"] == o["document_ref"]
        if not own and o["settlement_ref"] is not None:
            sharing[o["settlement_ref"]].append(o)
    paid: dict[str, int] = {}
    for o in orders:
        paid[o["document_ref"]] = total.get(o["settlement_ref"], 0)
    for key, group in sharing.items():
        if len(group) < 2:
            continue  # alone on an object: takes all of it
        left = total.get(key, 0)
        group.sort(key=lambda o: (stages[o["document_ref"]][0][0], o["document_date"], o["document_number"]))
        for o in group:  # oldest due date first, each up to its amount
            share = min(max(left, 0), o["amount"])
            paid[o["document_ref"]] = share
            left -= o["amount"]

    partners = _first_by(records(frames["partners"]), "partner_ref")
    orgs = _first_by(records(frames["organizations"]), "organization_ref")
    mgrs = _first_by(records(frames["managers"]), "manager_ref")
    segment: dict[str, str] = {}
    for s in records(frames["segments"]):
        name = s["segment_name"]
        if name is not None and s["partner_ref"] is not None:
            if s["partner_ref"] not in segment or name < segment[s["partner_ref"]]:
                segment[s["partner_ref"]] = name

    rows: list[Row] = []
    for o in orders:
        ref = o["document_ref"]
        got = paid[ref]
        outstanding = o["amount"] - got
        if outstanding <= 0:
            continue
        # payments cover the stages in date order; the first not fully covered is due
        due, covered = None, got
        for pay_date, _line, amount in stages[ref]:
            if covered < amount:
                due = pay_date
                break
            covered -= amount
        if due is None:  # stages under-sum the amount: the last one carries the rest
            due = max(st[0] for st in stages[ref])
        due = roll_forward(due)
        days = (as_of - due).days
        rows.append({
            "as_of_date": as_of, "document_ref": ref, "document_number": o["document_number"],
            "document_date": o["document_date"], "partner_ref": o["partner_ref"],
            "partner_name": (partners.get(o["partner_ref"]) or {}).get("partner_name"),
            "organization_ref": o["organization_ref"],
            "organization_name": (orgs.get(o["organization_ref"]) or {}).get("organization_name"),
            "contract_ref": o["contract_ref"], "manager_ref": o["manager_ref"],
            "manager_name": (mgrs.get(o["manager_ref"]) or {}).get("manager_name"),
            "settlement": o["settlement"], "due_date": due, "amount": o["amount"], "paid": got,
            "outstanding": outstanding, "days_overdue": days,
            "business_days_overdue": working_days_between(due, as_of), "bucket": bucket(days, bucket_bounds),
            "segment": segment.get(o["partner_ref"]),
        })
    partner_debt: dict[Any, int] = defaultdict(int)
    contract_debt: dict[Any, int] = defaultdict(int)
    for r in rows:
        partner_debt[r["partner_ref"]] += r["outstanding"]
        contract_debt[r["contract_ref"] or ""] += r["outstanding"]
    for r in rows:
        r["partner_debt"] = partner_debt[r["partner_ref"]]
        r["contract_debt"] = contract_debt[r["contract_ref"] or ""]
    rows.sort(key=lambda r: r["document_ref"])
    return rows


# -- plan ------------------------------------------------------------------------------

def _recipients(contacts: list[Row], policy: Policy) -> dict[str, str]:
    """partner -> the first address of the recipient type (preferred kind first)."""
    best: dict[str, tuple[bool, int, str]] = {}
    for c in contacts:
        if c["type"] != policy.recipient.contact_type or c["partner_ref"] is None:
            continue
        address = c["email"] if c["email"] is not None else c["presentation"]
        address = address.strip() if address is not None else None
        if not address:
            continue
        not_preferred = (c["kind_name"] != policy.recipient.contact_kind) if policy.recipient.contact_kind else True
        key = (not_preferred, c["line"], address)
        if c["partner_ref"] not in best or key[:2] < best[c["partner_ref"]][:2]:
            best[c["partner_ref"]] = key
    return {p: k[2] for p, k in best.items()}


def _local_day(sent_at: Any, policy: Policy) -> dt.date:
    return pd.Timestamp(sent_at).tz_convert(policy.tz).date()


def plan(aging_rows: list[Row], frames: Mapping[str, pd.DataFrame], policy: Policy, register: pd.DataFrame,
         as_of: dt.date, *, now: dt.datetime | None = None) -> list[Row]:
    """Every (document, step) candidate with its decision and reason, one at a time."""
    partners = _first_by(records(frames["partners"]), "partner_ref")
    mgrs = _first_by(records(frames["managers"]), "manager_ref")
    members: dict[str, set[str]] = defaultdict(set)  # segment name -> partners
    for s in records(frames["segments"]):
        if s["segment_name"] is not None and s["partner_ref"] is not None:
            members[s["segment_name"]].add(s["partner_ref"])
    address_of = _recipients(records(frames["contacts"]), policy)
    reg = records(register)
    done = {(r["document_ref"], r["step_id"]) for r in reg if r["sent_at"] is not None}
    refused = {(r["document_ref"], r["step_id"], r["target"]) for r in reg
               if r["sent_at"] is None and r["status"] == "failed" and str(r["detail"] or "").startswith("permanent")}
    # letters sent, per partner: (message id, local day); a dict, as anyone would write it
    emails: dict[Any, list[tuple[Any, dt.date]]] = defaultdict(list)
    for r in reg:
        if r["sent_at"] is not None and r["action"] == "email":
            emails[r["partner_ref"]].append((r["external_ref"], _local_day(r["sent_at"], policy)))
    lim = policy.private_persons
    quiet_hour = False
    if now is not None:
        local = now.astimezone(policy.tz)
        lo, hi = lim.weekday_hours if is_working(local.date()) else lim.weekend_hours
        quiet_hour = not lo <= local.hour < hi

    def in_any(partner: str | None, names: list[str]) -> bool:
        return any(partner in members.get(n, ()) for n in names)

    out: list[Row] = []
    for d in aging_rows:
        p = partners.get(d["partner_ref"]) or {}
        legal_form, main_manager = p.get("legal_form"), p.get("main_manager_ref")
        pool = None
        for candidate in sorted(policy.pools, key=lambda x: x.rank):
            m = candidate.match
            if m.segments and not in_any(d["partner_ref"], m.segments):
                continue
            if m.organizations and d["organization_name"] not in m.organizations:
                continue
            if m.settlement and d["settlement"] not in m.settlement:
                continue
            pool = candidate
            break
        doc_reason = None
        if pool is None:
            doc_reason = "no_pool"
        elif d["document_date"] < policy.campaign_start:
            doc_reason = "before_campaign"
        else:
            debt = {"document": d["outstanding"], "contract": d["contract_debt"],
                    "partner": d["partner_debt"]}[policy.debt_basis]
            if pool.exclude.segments and in_any(d["partner_ref"], pool.exclude.segments):
                doc_reason = "excluded_segment"
            elif pool.exclude.partner_debt_below > 0 and debt < int(pool.exclude.partner_debt_below * 100):
                doc_reason = "below_partner_debt"
            elif pool.exclude.document_amount_below > 0 and d["amount"] < int(pool.exclude.document_amount_below * 100):
                doc_reason = "below_document_amount"

        steps = list(enumerate(pool.steps)) if pool is not None else []
        base = {**d, "legal_form": legal_form, "pool": pool.name if pool else None}
        contact_mgr = d["manager_ref"] if d["manager_ref"] is not None else main_manager
        m = mgrs.get(contact_mgr) or {}
        base.update(manager_name=m.get("manager_name"), manager_email=m.get("email"), manager_phone=m.get("phone"))
        base["sender"] = policy.senders.by_organization.get(d["organization_name"], policy.senders.default)
        if not steps:
            out.append({**base, "step_id": None, "step_rank": None, "action": None, "template": None,
                        "anchor_date": d["due_date"], "due_day": None, "decision": DECISION_OF.get(doc_reason),
                        "reason": doc_reason,
                        "assignee_ref": d["manager_ref"], "deadline_business_days": None,
                        "target": (mgrs.get(d["manager_ref"]) or {}).get("manager_name")})
            continue
        rows: list[Row] = []
        for rank, step in steps:
            anchor = d["document_date"] if step.anchor == "document_date" else d["due_date"]
            if step.unit == "business_days":
                due_day = add_working_days(anchor, step.offset)
            else:
                due_day = anchor + dt.timedelta(days=step.offset)
            reason = doc_reason
            if reason is None and (d["document_ref"], step.id) in done:
                reason = "already_done"
            if reason is None and due_day > as_of:
                reason = "not_yet_due"
            if reason is None and step.catch_up_days is not None and (as_of - due_day).days > step.catch_up_days:
                reason = "catch_up_expired"
            if (reason is None and step.require.payment_percent is not None
                    and d["paid"] * 100.0 / d["amount"] > float(step.require.payment_percent)):
                reason = "require_payment_percent"
            if (reason is None and step.require.min_outstanding is not None
                    and d["outstanding"] < int(step.require.min_outstanding * 100)):
                reason = "require_min_outstanding"
            if step.action == "case":
                assignee = d["manager_ref"] if d["manager_ref"] is not None else main_manager
            elif step.assignee == "partner_manager":
                assignee = main_manager
            else:
                assignee = d["manager_ref"]
            address = address_of.get(d["partner_ref"])
            target = address if step.action == "email" else (mgrs.get(assignee) or {}).get("manager_name")
            rows.append({**base, "step_id": step.id, "step_rank": rank, "action": step.action,
                         "template": step.template, "anchor_date": anchor, "due_day": due_day,
                         "reason": reason, "assignee_ref": assignee, "target": target, "address": address,
                         "deadline_business_days": step.deadline_business_days})
        # several due steps of one action: only the latest due day (then the later step) acts
        latest: dict[str, Row] = {}
        for r in rows:
            if r["reason"] is None:
                best = latest.get(r["action"])
                if best is None or (r["due_day"], r["step_rank"]) > (best["due_day"], best["step_rank"]):
                    latest[r["action"]] = r
        for r in rows:
            if r["reason"] is None and latest[r["action"]] is not r:
                r["reason"] = "superseded"
        for r in rows:
            is_email = r["action"] == "email"
            if r["reason"] is None and is_email and r["address"] is None:
                r["reason"] = "no_email"
            if r["reason"] is None and (r["document_ref"], r["step_id"], r["target"]) in refused:
                r["reason"] = "failed_permanently"
            if r["reason"] is None and not is_email and r["assignee_ref"] is None:
                r["reason"] = "no_assignee"
            sent = emails.get(d["partner_ref"], ())
            if r["reason"] is None and is_email and policy.quiet_days > 0 and any(
                    day > as_of - dt.timedelta(days=policy.quiet_days) for _ext, day in sent):
                r["reason"] = "quiet_days"
            if r["reason"] is None and is_email and legal_form == PRIVATE_PERSON:
                for days, limit in ((1, lim.per_day), (7, lim.per_week), (30, lim.per_month)):
                    messages = {ext for ext, day in sent if day > as_of - dt.timedelta(days=days)}
                    if len(messages) >= limit:
                        r["reason"] = "contact_limit_230fz"
                        break
                if r["reason"] is None and quiet_hour:
                    r["reason"] = "quiet_hours_230fz"
            if r["reason"] is None:
                r["reason"] = "due"
            r["decision"] = DECISION_OF[r["reason"]]
            del r["address"]
            out.append(r)
    return out


# -- comparing with the vectorised code --------------------------------------------------

PLAN_FIELDS = ("pool", "step_rank", "action", "template", "anchor_date", "due_day", "decision", "reason",
               "target", "sender", "assignee_ref", "manager_name", "manager_email", "manager_phone",
               "deadline_business_days", "amount", "paid", "outstanding", "due_date", "days_overdue",
               "business_days_overdue", "partner_debt", "legal_form")


def plan_table(rows: list[Row] | pd.DataFrame) -> dict[tuple[Any, Any], tuple[Any, ...]]:
    """(document_ref, step_id) -> the plan's fields, from either implementation."""
    if isinstance(rows, pd.DataFrame):
        rows = records(rows)
    return {(r["document_ref"], r["step_id"]): tuple(r[f] for f in PLAN_FIELDS) for r in rows}


def aging_table(rows: list[Row] | pd.DataFrame) -> list[dict[str, Any]]:
    """Aging rows as plain dicts in document_ref order, from either implementation."""
    if isinstance(rows, pd.DataFrame):
        rows = records(rows)
    return sorted(rows, key=lambda r: r["document_ref"])


def differences(expected: Mapping, actual: Mapping, limit: int = 5) -> list[str]:
    """Up to `limit` keys whose values differ, for a readable assertion message."""
    out = [f"only in reference: {k}" for k in expected.keys() - actual.keys()]
    out += [f"only in vectorised: {k}" for k in actual.keys() - expected.keys()]
    for k in expected.keys() & actual.keys():
        if expected[k] != actual[k]:
            pairs = [(f, e, a) for f, e, a in zip(PLAN_FIELDS, expected[k], actual[k], strict=True) if e != a]
            out.append(f"{k}: " + ", ".join(f"{f}: reference {e!r} != vectorised {a!r}" for f, e, a in pairs))
    return out[:limit]
