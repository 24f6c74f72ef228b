"""Eligibility rules of spec §5, one test per rule, on hand-made frames."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from factories import PARTNER_MANAGER, email, frames, gid, order, partner, payment, register
from receivables.domain.aging import compute_aging
from receivables.domain.plan import PLAN_COLUMNS, build_plan, plan_parts
from receivables.domain.policy import parse_policy


def policy(steps=None, **overrides):
    raw = {
        "campaign_start": "2026-11-01",
        "pools": [{"name": "default", "rank": 100, "steps": steps or [
            {"id": "unpaid_order", "action": "email", "anchor": "document_date", "offset": 3,
             "unit": "business_days", "require": {"payment_percent": 0}, "template": "unpaid_order"}]}],
    }
    raw.update(overrides)
    return parse_policy(raw)


def plan_for(f, as_of, pol=None, reg=None, now=None):
    pol = pol or policy()
    aging = compute_aging(f, as_of, bucket_bounds=pol.aging_buckets)
    return build_plan(aging, f, pol, reg if reg is not None else register(), as_of, now=now)


def decision(p, number, step="unpaid_order"):
    row = p.loc[p["document_number"].eq(number) & p["step_id"].eq(step)]
    assert len(row) == 1, p[["document_number", "step_id", "decision", "reason"]]
    return row.iloc[0]["decision"], row.iloc[0]["reason"]


WITH_EMAIL = {"contacts": [email("p1", 1, "buh@roga.example")]}


def test_seed000_order_of_tuesday_3_november_is_due_on_monday_9_november():
    # 2026-11-04 is a holiday: 3 working days after 11-03 are 11-05, 11-06, 11-09
    f = frames(orders=[order("ТД00-000001", "2026-11-03", 1000), order("ТД00-000002", "2026-11-05", 1000)],
               **WITH_EMAIL)
    p = plan_for(f, dt.date(2026, 11, 6))
    assert decision(p, "ТД00-000001") == ("not_due", "not_yet_due")
    p = plan_for(f, dt.date(2026, 11, 9))
    assert decision(p, "ТД00-000001") == ("act", "due")
    assert p.loc[p["document_number"].eq("ТД00-000001"), "due_day"].iloc[0] == pd.Timestamp("2026-11-09")
    assert decision(p, "ТД00-000002") == ("not_due", "not_yet_due")


def test_documents_before_campaign_start_are_never_acted_on():
    f = frames(orders=[order("A", "2026-10-30", 1000)], **WITH_EMAIL)
    assert decision(plan_for(f, dt.date(2026, 11, 20)), "A") == ("excluded", "before_campaign")


def test_require_payment_percent_zero_means_no_payment_at_all():
    f = frames(orders=[order("A", "2026-11-02", 1000)], payments=[payment("P", "2026-11-03", 1, settles="A")],
               **WITH_EMAIL)
    assert decision(plan_for(f, dt.date(2026, 11, 20)), "A") == ("excluded", "require_payment_percent")


def test_settlement_filter_leaves_contract_settled_orders_out_of_the_pool():
    f = frames(orders=[order("A", "2026-11-02", 1000, settlement="ПоДоговорамКонтрагентов")], **WITH_EMAIL)
    p = plan_for(f, dt.date(2026, 11, 20))
    assert p.loc[0, "reason"] == "no_pool" and p.loc[0, "decision"] == "excluded"


def test_lowest_line_number_is_compared_as_a_number_not_text():
    f = frames(orders=[order("A", "2026-11-02", 1000)],
               contacts=[email("p1", 10, "ten@roga.example"), email("p1", 2, "two@roga.example")])
    p = plan_for(f, dt.date(2026, 11, 20))
    assert p.loc[0, "target"] == "two@roga.example"


def test_contact_kind_is_preferred_when_the_policy_names_one():
    f = frames(orders=[order("A", "2026-11-02", 1000)],
               contacts=[email("p1", 1, "first@roga.example"),
                         email("p1", 5, "bills@roga.example", kind="Email для счетов")])
    pol = policy(recipient={"contact_kind": "Email для счетов"})
    assert plan_for(f, dt.date(2026, 11, 20), pol).loc[0, "target"] == "bills@roga.example"


def test_no_email_is_skipped_and_stays_pending_until_an_address_appears():
    f = frames(orders=[order("A", "2026-11-02", 1000)])
    assert decision(plan_for(f, dt.date(2026, 11, 20)), "A") == ("skip", "no_email")
    reg = register([{"document_ref": gid("A"), "step_id": "unpaid_order", "action": "email",
                     "status": "skipped", "sent_at": None}])
    f2 = frames(orders=[order("A", "2026-11-02", 1000)], **WITH_EMAIL)
    assert decision(plan_for(f2, dt.date(2026, 11, 23), reg=reg), "A") == ("act", "due")


def test_a_sent_step_is_done_and_nulling_sent_at_rearms_it():
    f = frames(orders=[order("A", "2026-11-02", 1000)], **WITH_EMAIL)
    sent = {"document_ref": gid("A"), "step_id": "unpaid_order", "action": "email", "status": "sent",
            "partner_ref": gid("p1"), "sent_at": "2026-11-06T07:00:00Z", "external_ref": "<m1@x>"}
    assert decision(plan_for(f, dt.date(2026, 11, 20), reg=register([sent])), "A") == ("done", "already_done")
    rearmed = {**sent, "sent_at": None}
    assert decision(plan_for(f, dt.date(2026, 11, 20), reg=register([rearmed])), "A") == ("act", "due")


LADDER = [
    {"id": "due_today", "action": "email", "anchor": "due_date", "offset": 0, "unit": "calendar_days",
     "template": "due_today"},
    {"id": "overdue_1", "action": "email", "anchor": "due_date", "offset": 1, "unit": "calendar_days",
     "template": "overdue"},
    {"id": "overdue_3", "action": "email", "anchor": "due_date", "offset": 3, "unit": "calendar_days",
     "template": "overdue", "catch_up_days": 2},
    {"id": "call", "action": "task", "anchor": "due_date", "offset": 5, "unit": "business_days",
     "assignee": "partner_manager", "template": "call_manager"},
]


def test_only_the_latest_due_step_of_an_action_acts_the_rest_are_superseded():
    f = frames(orders=[order("A", "2026-11-10", 1000)], **WITH_EMAIL)
    p = plan_for(f, dt.date(2026, 11, 13), policy(LADDER))  # due 11-10: all three emails due
    assert decision(p, "A", "overdue_3") == ("act", "due")
    assert decision(p, "A", "overdue_1") == ("superseded", "superseded")
    assert decision(p, "A", "due_today") == ("superseded", "superseded")


def test_catch_up_days_limits_how_late_a_step_may_fire():
    f = frames(orders=[order("A", "2026-11-10", 1000)], **WITH_EMAIL)
    p = plan_for(f, dt.date(2026, 11, 16), policy(LADDER))  # overdue_3 due 11-13, + 2 days = 11-15
    assert decision(p, "A", "overdue_3") == ("excluded", "catch_up_expired")
    assert decision(p, "A", "overdue_1") == ("act", "due")


def test_task_goes_to_the_partner_manager_when_the_policy_says_so():
    f = frames(orders=[order("A", "2026-11-02", 1000)], **WITH_EMAIL)
    p = plan_for(f, dt.date(2026, 11, 20), policy(LADDER))
    row = p.loc[p["step_id"].eq("call")].iloc[0]
    assert row["decision"] == "act" and row["assignee_ref"] == PARTNER_MANAGER and row["target"] == "Петров Пётр"


def test_task_without_any_manager_is_skipped():
    f = frames(orders=[order("A", "2026-11-02", 1000, manager=None)], partners=[partner("p1", manager=None)],
               **WITH_EMAIL)
    assert decision(plan_for(f, dt.date(2026, 11, 20), policy(LADDER)), "A", "call") == ("skip", "no_assignee")


def test_min_outstanding_requirement():
    steps = [{"id": "case", "action": "case", "anchor": "due_date", "offset": 0, "unit": "calendar_days",
              "require": {"min_outstanding": 50000}, "template": "debt_case"}]
    f = frames(orders=[order("A", "2026-11-02", 49999.99), order("B", "2026-11-02", 50000)], **WITH_EMAIL)
    p = plan_for(f, dt.date(2026, 11, 20), policy(steps))
    assert decision(p, "A", "case") == ("excluded", "require_min_outstanding")
    assert decision(p, "B", "case") == ("act", "due")


def test_pools_by_rank_segment_match_and_exclusions():
    seg = [{"partner_ref": gid("p1"), "segment_ref": gid("vip"), "segment_name": "Крупный опт"},
           {"partner_ref": gid("p2"), "segment_ref": gid("bad"), "segment_name": "Черный список"}]
    pools = [
        {"name": "vip", "rank": 10, "match": {"segments": ["Крупный опт"]},
         "steps": [{"id": "vip_mail", "action": "email", "anchor": "document_date", "offset": 1,
                    "template": "unpaid_order"}]},
        {"name": "rest", "rank": 100, "exclude": {"segments": ["Черный список"], "partner_debt_below": 500},
         "steps": [{"id": "rest_mail", "action": "email", "anchor": "document_date", "offset": 1,
                    "template": "unpaid_order"}]},
    ]
    f = frames(orders=[order("A", "2026-11-02", 1000), order("B", "2026-11-02", 1000, partner="p2"),
                       order("C", "2026-11-02", 400, partner="p3")],
               partners=[partner("p1"), partner("p2"), partner("p3")], segments=seg,
               contacts=[email("p1", 1, "a@x.example"), email("p2", 1, "b@x.example"), email("p3", 1, "c@x.example")])
    p = plan_for(f, dt.date(2026, 11, 20), parse_policy({"campaign_start": "2026-11-01", "pools": pools}))
    assert decision(p, "A", "vip_mail") == ("act", "due")
    assert p.loc[p["document_number"].eq("B"), "reason"].iloc[0] == "excluded_segment"
    assert p.loc[p["document_number"].eq("C"), "reason"].iloc[0] == "below_partner_debt"


def test_quiet_days_hold_a_partner_recently_emailed():
    f = frames(orders=[order("A", "2026-11-02", 1000)], **WITH_EMAIL)
    other = {"document_ref": gid("Z"), "step_id": "unpaid_order", "action": "email", "status": "sent",
             "partner_ref": gid("p1"), "sent_at": "2026-11-18T07:00:00Z", "external_ref": "<z@x>"}
    p = plan_for(f, dt.date(2026, 11, 20), policy(quiet_days=5), reg=register([other]))
    assert decision(p, "A") == ("hold", "quiet_days")
    p = plan_for(f, dt.date(2026, 11, 24), policy(quiet_days=5), reg=register([other]))
    assert decision(p, "A") == ("act", "due")


def _sent(n, day):
    return [{"document_ref": gid(f"S{n}-{i}"), "step_id": "unpaid_order", "action": "email", "status": "sent",
             "partner_ref": gid("p1"), "sent_at": f"{day}T07:00:00Z", "external_ref": f"<{n}-{i}@x>"}
            for i in range(n)]


@pytest.mark.parametrize(("sent", "expected"), [
    (_sent(1, "2026-11-20"), ("act", "due")),
    (_sent(2, "2026-11-20"), ("hold", "contact_limit_230fz")),
    (_sent(4, "2026-11-16"), ("hold", "contact_limit_230fz")),
])
def test_230fz_caps_messages_to_private_persons(sent, expected):
    f = frames(orders=[order("A", "2026-11-02", 1000)], partners=[partner("p1", legal_form="ЧастноеЛицо")],
               **WITH_EMAIL)
    assert decision(plan_for(f, dt.date(2026, 11, 20), reg=register(sent)), "A") == expected


def test_230fz_caps_do_not_apply_to_companies():
    f = frames(orders=[order("A", "2026-11-02", 1000)], **WITH_EMAIL)
    assert decision(plan_for(f, dt.date(2026, 11, 20), reg=register(_sent(5, "2026-11-20"))), "A") == ("act", "due")


def test_230fz_forbids_night_contact_with_private_persons():
    f = frames(orders=[order("A", "2026-11-02", 1000)], partners=[partner("p1", legal_form="ЧастноеЛицо")],
               **WITH_EMAIL)
    night = dt.datetime(2026, 11, 20, 4, 0, tzinfo=dt.UTC)  # 07:00 Moscow on a working day
    assert decision(plan_for(f, dt.date(2026, 11, 20), now=night), "A") == ("hold", "quiet_hours_230fz")
    day = dt.datetime(2026, 11, 20, 7, 0, tzinfo=dt.UTC)  # 10:00 Moscow
    assert decision(plan_for(f, dt.date(2026, 11, 20), now=day), "A") == ("act", "due")


def test_sender_follows_the_organization():
    f = frames(orders=[order("A", "2026-11-02", 1000)], **WITH_EMAIL)
    pol = policy(senders={"default": "debt@a.example", "by_organization": {"ООО «СантехОпт»": "buh@b.example"}})
    assert plan_for(f, dt.date(2026, 11, 20), pol).loc[0, "sender"] == "buh@b.example"


def test_a_permanent_refusal_is_not_retried_until_the_address_changes():
    f = frames(orders=[order("A", "2026-11-02", 1000)], **WITH_EMAIL)
    refused = {"document_ref": gid("A"), "step_id": "unpaid_order", "action": "email", "status": "failed",
               "partner_ref": gid("p1"), "sent_at": None, "target": "buh@roga.example",
               "detail": "permanent: 550 no such user"}
    assert decision(plan_for(f, dt.date(2026, 11, 20), reg=register([refused])), "A") == ("done", "failed_permanently")
    moved = {**refused, "target": "old@roga.example"}
    assert decision(plan_for(f, dt.date(2026, 11, 20), reg=register([moved])), "A") == ("act", "due")
    temporary = {**refused, "detail": "temporary: 451 try later"}
    assert decision(plan_for(f, dt.date(2026, 11, 20), reg=register([temporary])), "A") == ("act", "due")


def test_plan_rows_are_ordered_by_date_number_and_step_with_repeated_numbers_interleaved():
    # two orders share a date and a number (a repeated number is the gate's to report, but
    # the plan still lists both): their candidates interleave by step, as a stable sort would
    steps = [{"id": "remind", "action": "email", "anchor": "document_date", "offset": 3, "unit": "business_days",
              "template": "unpaid_order"},
             {"id": "call", "action": "task", "anchor": "document_date", "offset": 5, "unit": "business_days",
              "template": "call_manager", "assignee": "order_manager"}]
    pol = policy(steps)
    f = frames(orders=[order("Б-2", "2026-11-05", 1000), dict(order("Б-2", "2026-11-05", 700), document_ref=gid("copy")),
                       order("А-1", "2026-11-05", 500), order("В-3", "2026-11-02", 900)], **WITH_EMAIL)
    aging = compute_aging(f, dt.date(2026, 11, 20), bucket_bounds=pol.aging_buckets)
    p = build_plan(aging, f, pol, register(), dt.date(2026, 11, 20))
    candidates = aging[["document_ref", "document_number", "document_date"]].merge(
        pd.DataFrame({"step_id": ["remind", "call"], "step_rank": [1, 2]}), how="cross")
    expected = candidates.sort_values(["document_date", "document_number", "step_rank"], kind="stable")
    assert list(zip(p["document_ref"], p["step_id"], strict=True)) == list(zip(expected["document_ref"], expected["step_id"], strict=True))
    assert list(p["document_number"]) == ["В-3", "В-3", "А-1", "А-1", "Б-2", "Б-2", "Б-2", "Б-2"]
    assert list(p["step_id"])[4:] == ["remind", "remind", "call", "call"]
    # in parts of one document, the two sharing a date and a number stay in one part
    parts = list(plan_parts(aging, f, pol, register(), dt.date(2026, 11, 20), part_documents=1))
    assert [list(part["document_number"].unique()) for part in parts] == [["В-3"], ["А-1"], ["Б-2"]]
    pd.testing.assert_frame_equal(pd.concat(parts, ignore_index=True), p)
    with pytest.raises(ValueError, match="part_documents must be at least 1, not 0"):
        next(plan_parts(aging, f, pol, register(), dt.date(2026, 11, 20), part_documents=0))


def test_a_plan_of_no_documents_is_one_empty_part():
    pol = policy()
    f = frames(orders=[order("А-1", "2026-11-05", 500)], **WITH_EMAIL)
    aging = compute_aging(f, dt.date(2026, 11, 20), bucket_bounds=pol.aging_buckets).iloc[:0]
    [part] = plan_parts(aging, f, pol, register(), dt.date(2026, 11, 20), part_documents=3)
    assert part.empty and list(part.columns) == PLAN_COLUMNS


@pytest.mark.parametrize("repeat_a_document", [False, True])
def test_register_lookup_by_table_equals_matching_every_candidate(repeat_a_document):
    # `_in_register` marks (document, step) pairs in a documents x steps table when documents are
    # distinct (rows by document, or by place in the documents' order), else matches each
    # candidate's keys; all must give the same answer
    import numpy as np

    from receivables.domain.plan import _codes, _in_register, _pairs_in, _with_missing

    rng = np.random.default_rng(3)
    refs = [gid(f"d{i}") for i in range(40)] + [None]
    if repeat_a_document:
        refs[5] = refs[4]
    doc_refs = pd.Series(refs, dtype="str")
    step_id = _with_missing(pd.Series(["s1", "s2", "s3"], dtype="str"))
    doc_order = rng.permutation(len(refs))  # candidates document by document, as _expand_index gives
    counts = rng.integers(0, 14, len(refs))
    di, place = np.repeat(doc_order, counts), np.repeat(np.arange(len(refs)), counts)
    si = rng.integers(-1, 3, len(di))
    reg = pd.DataFrame({"document_ref": pd.Series([refs[i] for i in rng.integers(0, len(refs), 60)] + [gid("gone")],
                                                  dtype="str"),
                        "step_id": pd.Series([["s1", "s2", "s3", None][i] for i in rng.integers(0, 4, 61)], dtype="str")})
    got, again = _in_register(doc_refs, _codes(doc_refs), step_id, di, si, [reg, reg.iloc[::-1]])
    by_place, _ = _in_register(doc_refs, _codes(doc_refs), step_id, di, si, [reg, reg], order=(doc_order, place))
    want = _pairs_in([(doc_refs, di), (step_id, si)], [reg["document_ref"], reg["step_id"]])
    assert got.any() and not got.all()
    assert np.array_equal(got, want) and np.array_equal(again, want) and np.array_equal(by_place, want)
    # a part of the documents' order (`plan_parts`): its candidates, their places within the part
    first = np.searchsorted(place, 17)
    part, = _in_register(doc_refs, _codes(doc_refs), step_id, di[first:], si[first:], [reg],
                         order=(doc_order[17:], place[first:] - 17))
    assert np.array_equal(part, want[first:]) and part.any()


@settings(max_examples=150, deadline=None)
@given(st.lists(st.none() | st.text(max_size=6), max_size=30), st.lists(st.text(max_size=6), max_size=4),
       st.booleans())
def test_categorical_text_is_the_text_pandas_gives(values, unused, ordered_categories):
    """`frames.categorical_text` (an Arrow take of the categories by the codes) gives what
    ``astype("str")`` gives, missing values missing, index and name kept, whatever the
    categories' order and unused categories; non-text categories take pandas' own way."""
    from receivables.domain.frames import categorical_text

    categories = pd.Index(sorted(set(v for v in values if v is not None) | set(unused),
                                 reverse=not ordered_categories), dtype="str")
    series = pd.Series(pd.Categorical(values, categories=categories), name="col",
                       index=pd.RangeIndex(10, 10 + 2 * len(values), 2))
    got = categorical_text(series)
    want = series.astype("str").where(series.notna(), None)
    pd.testing.assert_series_equal(got, want)
    numbers = pd.Series(pd.Categorical([1, None, 2]))
    pd.testing.assert_series_equal(categorical_text(numbers), numbers.astype("str").where(numbers.notna(), None))


def test_few_valued_columns_are_sorted_categories_and_plain_text_gives_text_back():
    """The plan carries organizations, steps, managers, decisions and reasons as categories (a
    small code per candidate); sorting by one is sorting by its text, and `plain_text` returns
    exactly the text columns (missing values missing) that rows leaving the plan must have."""
    from receivables.domain.plan import CATEGORY_COLUMNS, PLAN_COLUMNS, plain_text

    steps = [{"id": "z_call", "action": "task", "anchor": "due_date", "offset": 0, "unit": "calendar_days",
              "assignee": "order_manager", "template": "call_manager"},
             {"id": "a_mail", "action": "email", "anchor": "due_date", "offset": 0, "unit": "calendar_days",
              "template": "overdue"}]
    f = frames(orders=[order("A", "2026-11-02", 1000), order("B", "2026-11-03", 500, manager=None),
                       order("C", "2026-10-01", 700)], **WITH_EMAIL)
    p = plan_for(f, dt.date(2026, 11, 20), pol=policy(steps))
    assert set(CATEGORY_COLUMNS) <= set(PLAN_COLUMNS)
    for col in CATEGORY_COLUMNS:
        assert isinstance(p[col].dtype, pd.CategoricalDtype), col
        cats = list(p[col].cat.categories)
        assert cats == sorted(cats), col
    assert p["step_id"].sort_values().tolist() == sorted(p["step_id"].tolist())
    text = plain_text(p)
    assert not any(isinstance(t, pd.CategoricalDtype) for t in text.dtypes)
    for col in CATEGORY_COLUMNS:
        assert str(text[col].dtype) == "str", col
        assert text[col].isna().tolist() == p[col].isna().tolist()
        assert text[col].dropna().tolist() == p[col].dropna().astype(object).tolist()
    assert p["assignee_ref"].isna().any() and p["manager_name"].notna().any()  # B has no manager
    assert plain_text(text) is text
