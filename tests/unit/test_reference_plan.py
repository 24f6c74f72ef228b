"""The vectorised aging and plan agree with the row-by-row reference (benchmarks/reference.py).

Seeded-random companies from the emulator's generator (shared contract objects, partial
payments, contract terms, private persons, several emails), random as-of dates, random
registers (sent steps, permanent refusals, recent emails) and random policies.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # benchmarks/ lives at the repo root
from benchmarks import reference as R  # noqa: E402

from receivables.domain.aging import compute_aging
from receivables.domain.normalise import as_of_view, normalise
from receivables.domain.plan import PLAN_FRAMES, build_plan, plan_parts
from receivables.domain.policy import parse_policy
from receivables.onec.emulator.generator import SEGMENTS, generate_company
from receivables.onec.schema import PRIVATE_PERSON

END = dt.date(2026, 11, 20)

STEPS = [
    {"id": "before_due_5", "action": "email", "anchor": "due_date", "offset": -5, "unit": "business_days",
     "template": "before_due", "catch_up_days": 4},
    {"id": "due_today", "action": "email", "anchor": "due_date", "offset": 0, "unit": "calendar_days",
     "template": "due_today", "catch_up_days": 0},
    {"id": "overdue_3", "action": "email", "anchor": "due_date", "offset": 3, "unit": "calendar_days",
     "template": "overdue"},
    {"id": "overdue_10", "action": "email", "anchor": "due_date", "offset": 10, "unit": "calendar_days",
     "template": "overdue", "require": {"min_outstanding": 5000}},
    {"id": "call_manager", "action": "task", "anchor": "due_date", "offset": 5, "unit": "business_days",
     "assignee": "order_manager", "template": "call"},
    {"id": "case_30", "action": "case", "anchor": "due_date", "offset": 30, "unit": "calendar_days",
     "template": "case"},
    {"id": "unpaid_order", "action": "email", "anchor": "document_date", "offset": 3, "unit": "business_days",
     "require": {"payment_percent": 0}, "template": "unpaid_order"},
    {"id": "remind_task", "action": "task", "anchor": "document_date", "offset": 7, "unit": "business_days",
     "assignee": "partner_manager", "template": "t", "require": {"payment_percent": 50}},
]


def company(seed: int, scale: float) -> dict[str, list[dict]]:
    ds = generate_company(seed=seed, scale=scale, end_date=END)
    return {name: ds.rows(name) for name in ds.names()}


def random_policy(rng: np.random.Generator) -> dict:
    ids = rng.permutation(len(STEPS))
    cut = int(rng.integers(1, len(STEPS)))
    ladder = [STEPS[i] for i in sorted(ids[:cut])]
    default = [STEPS[i] for i in sorted(ids[cut:])]
    segs = [str(s) for s in rng.choice(SEGMENTS, size=2, replace=False)]
    return {
        "campaign_start": str(END - dt.timedelta(days=int(rng.integers(20, 200)))),
        "debt_basis": str(rng.choice(["document", "contract", "partner"])),
        "quiet_days": int(rng.choice([0, 2, 5])),
        "aging_buckets": [15, 45] if rng.random() < 0.5 else [30, 60, 90],
        "recipient": {"contact_kind": "Email для счетов" if rng.random() < 0.5 else None},
        "senders": {"by_organization": {"ООО «СантехОпт»": "debt@santeh-opt.example"}},
        "pools": [
            {"name": "ladder", "rank": 50,
             "match": {"segments": segs[:1],
                       "settlement": ["ПоЗаказам", "ПоЗаказамНакладным", "ПоДоговорамКонтрагентов"]},
             "exclude": {"partner_debt_below": int(rng.choice([0, 10_000, 100_000]))}, "steps": ladder},
            {"name": "default", "rank": 100, "exclude": {"segments": segs[1:], "document_amount_below": 5000},
             "steps": default},
        ],
    }


def random_register(rng: np.random.Generator, aging: pd.DataFrame, frames: dict, as_of: dt.date) -> pd.DataFrame:
    """Sent steps, a few permanent refusals to the partner's real address, recent emails."""
    n = len(aging)
    pick = rng.random(n) < 0.3
    docs = aging.loc[pick, ["document_ref", "document_number", "partner_ref"]].reset_index(drop=True)
    step = rng.choice(STEPS, size=len(docs))
    sent_days = rng.integers(0, 40, size=len(docs))
    contacts = frames["contacts"]
    address = contacts.loc[contacts["email"].notna()].drop_duplicates("partner_ref").set_index("partner_ref")["email"]
    failed = rng.random(len(docs)) < 0.15
    rows = []
    for i, d in docs.iterrows():
        sent_at = pd.Timestamp(as_of - dt.timedelta(days=int(sent_days[i])), tz="UTC") + pd.Timedelta(hours=7)
        rows.append({
            "document_ref": d["document_ref"], "document_number": d["document_number"],
            "partner_ref": d["partner_ref"], "step_id": step[i]["id"], "action": step[i]["action"],
            "target": address.get(d["partner_ref"], "nobody@example.ru"),
            "status": "failed" if failed[i] else "sent", "sent_at": pd.NaT if failed[i] else sent_at,
            # a few messages cover two documents of one partner
            "external_ref": f"<m{int(rng.integers(0, max(1, len(docs) // 2)))}@bench>",
            "detail": "permanent: 550 mailbox unavailable" if failed[i] else None,
        })
    reg = pd.DataFrame(rows, columns=["document_ref", "document_number", "partner_ref", "step_id", "action",
                                      "target", "status", "sent_at", "external_ref", "detail"])
    reg["sent_at"] = pd.to_datetime(reg["sent_at"], utc=True)
    # one letter = one message: keep each external_ref to one partner
    reg["external_ref"] = reg["external_ref"] + reg["partner_ref"].str.slice(0, 4)
    return reg


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_vectorised_plan_equals_row_by_row_reference(seed):
    rng = np.random.default_rng(seed)
    raw = company(seed, 0.03)
    as_of = END - dt.timedelta(days=int(rng.integers(0, 60)))
    frames = as_of_view(normalise(raw), as_of, extracted_on=END)
    policy = parse_policy(random_policy(rng))

    aging = compute_aging(frames, as_of, bucket_bounds=policy.aging_buckets)
    ref_aging = R.aging(frames, as_of, bucket_bounds=policy.aging_buckets)
    assert len(aging) > 100
    assert R.aging_table(aging) == R.aging_table(ref_aging)

    register = random_register(rng, aging, frames, as_of)
    hour = int(rng.choice([3, 10, 23]))
    now = dt.datetime.combine(as_of, dt.time(hour), tzinfo=policy.tz)
    # given only the frames it declares (what the plan task reads), the plan is the reference's
    plan = build_plan(aging, {name: frames[name] for name in PLAN_FRAMES}, policy, register, as_of, now=now)
    ref_plan = R.plan(ref_aging, frames, policy, register, as_of, now=now)
    expected, actual = R.plan_table(ref_plan), R.plan_table(plan)
    assert len(plan) == len(ref_plan)
    assert R.differences(expected, actual) == []
    # rows neither sent nor failed (skipped, superseded, planned, pending) tell the plan nothing:
    # the plan task reads the register's sent and failed rows only (`read_register(sent_or_failed=True)`)
    quiet = aging.sample(n=min(200, len(aging)), random_state=seed)
    unsent = pd.DataFrame({
        "document_ref": quiet["document_ref"].to_numpy(), "document_number": quiet["document_number"].to_numpy(),
        "partner_ref": quiet["partner_ref"].to_numpy(), "step_id": [STEPS[i % len(STEPS)]["id"] for i in range(len(quiet))],
        "action": [STEPS[i % len(STEPS)]["action"] for i in range(len(quiet))], "target": "a@b.example",
        "status": [("skipped", "superseded", "planned", "pending")[i % 4] for i in range(len(quiet))],
        "sent_at": pd.NaT, "external_ref": None, "detail": "permanent: no_email"})
    unsent["sent_at"] = pd.to_datetime(unsent["sent_at"], utc=True)
    with_unsent = build_plan(aging, {name: frames[name] for name in PLAN_FRAMES}, policy,
                             pd.concat([register, unsent], ignore_index=True), as_of, now=now)
    assert R.differences(actual, R.plan_table(with_unsent)) == []
    # built in parts (a tenth of the documents each), the plan is the same rows with the same categories
    parts = list(plan_parts(aging, {name: frames[name] for name in PLAN_FRAMES}, policy, register, as_of, now=now,
                            part_documents=len(aging) // 10))
    assert len(parts) >= 10
    pd.testing.assert_frame_equal(pd.concat(parts, ignore_index=True), plan)
    # the data exercise more than one branch of the rules
    reasons = set(plan["reason"].dropna())
    assert {"due", "not_yet_due", "no_pool"} <= reasons, reasons
    assert len(reasons) >= 6, reasons


def test_reference_detects_a_changed_rule():
    """The comparison can fail: move one due day and the tables differ."""
    rng = np.random.default_rng(7)
    raw = company(7, 0.02)
    frames = as_of_view(normalise(raw), END, extracted_on=END)
    policy = parse_policy(random_policy(rng))
    aging = compute_aging(frames, END, bucket_bounds=policy.aging_buckets)
    plan = build_plan(aging, frames, policy, pd.DataFrame(columns=[
        "document_ref", "step_id", "action", "partner_ref", "sent_at", "external_ref", "status", "target",
        "detail"]).astype({"sent_at": "datetime64[ns, UTC]"}), END)
    expected = R.plan_table(R.plan(R.aging(frames, END, bucket_bounds=policy.aging_buckets), frames, policy,
                                   pd.DataFrame(columns=["document_ref", "step_id", "action", "partner_ref",
                                                         "sent_at", "external_ref", "status", "target",
                                                         "detail"]), END))
    assert R.differences(expected, R.plan_table(plan)) == []
    has_step = plan["due_day"].notna()
    plan.loc[plan.index[has_step][0], "due_day"] += pd.Timedelta(days=1)
    assert R.differences(expected, R.plan_table(plan)) != []
    assert PRIVATE_PERSON  # the generator makes private persons: the 230-ФЗ branch is reachable
