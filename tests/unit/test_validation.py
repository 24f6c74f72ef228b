"""The gate: good data passes; each kind of bad data fails naming the rule, count and examples."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from factories import email, frames, gid, order, payment, stage
from receivables.domain.aging import compute_aging
from receivables.domain.frames import with_keys
from receivables.extract import read_frames, write_frames
from receivables.validation import EXTRACT_READS, validate_aging, validate_extract

AS_OF = dt.date(2026, 11, 20)


def good(**kw):
    base = {"orders": [order("A", "2026-11-02", 1000), order("B", "2026-11-03", 500)],
            "stages": [stage("A", 1, "2026-11-05", 400), stage("A", 2, "2026-11-16", 600)],
            "payments": [payment("P1", "2026-11-05", 400, settles="A")],
            "contacts": [email("p1", 1, "buh@roga.example")]}
    base.update(kw)
    return frames(**base)


@pytest.fixture(scope="module")
def passing():
    return validate_extract(good(), as_of=AS_OF)


def test_good_data_passes(passing):
    assert passing.success, passing.summary_text()
    assert passing.summary_text().startswith("all ")


@pytest.mark.parametrize(("data", "rule", "example"), [
    (dict(orders=[order("A", "2026-11-02", -1000)]), "negative amount", "A"),
    (dict(orders=[order("A", "2026-11-02", float("nan"))]), "amount missing or not a number", "A"),
    (dict(orders=[order("A", "2026-11-02", 1000), order("A", "2026-11-02", 1000)]), "Ref_Key repeated", "A"),
    (dict(stages=[stage("A", 1, "2026-11-05", 400)]), "stages do not sum to the order amount", "A"),
    (dict(orders=[order("A", "3000-01-01", 1000)], stages=[]), "date outside", "A"),
    (dict(stages=[stage("A", 1, "0001-01-02", 1000)]), "stage date outside", None),
    # rows named by two columns: "<reference>#<line>"
    (dict(stages=[stage("A", 1, "2026-11-05", -400), stage("A", 2, "2026-11-16", 1400)]),
     "negative stage amount", gid("A") + "#1"),
    (dict(payments=[payment("P1", "2026-11-05", 100, settles="A", line=2)] * 2),
     "payment line repeated", gid("pay-P1") + "#2"),
    (dict(payments=[payment("P1", "2026-11-05", 1500, settles="A")]), "payments received exceed", "A"),
    (dict(contacts=[email("p1", 1, "buh@roga\r\n.example")]), "not a well-formed email", None),
    (dict(orders=[order("A", "2026-11-02", 1000, partner="ghost")], stages=[], payments=[]),
     "partner is not among the extracted partners", "A"),
])
def test_bad_data_fails_naming_the_rule_the_count_and_examples(data, rule, example, tmp_path):
    report = validate_extract(good(**data), as_of=AS_OF)
    # the validate task reads the extract's columns the gate uses only: the same report
    write_frames(with_keys(good(**data)), tmp_path)
    read = read_frames(tmp_path, EXTRACT_READS, columns=EXTRACT_READS)
    again = validate_extract(read, as_of=AS_OF)
    assert (again.checks, again.failures) == (report.checks, report.failures)
    assert not report.success
    text = report.summary_text()
    hit = [f for f in report.failures if rule in f.explanation]
    assert hit, text
    assert hit[0].failing >= 1 and "row(s)" in text
    if example:
        assert example in hit[0].examples


def test_references_are_checked_unique_on_their_keys_as_on_their_text():
    """The uniqueness rules run on the references' integer keys: orders without a Ref_Key are
    reported as such, not as repeated (GX skips missing text); a receipt's repeated line is
    found the same way when the payments carry no ``payment_key`` (frames not made by normalise)."""
    missing = [{**order(n, "2026-11-02", 1000), "document_ref": None} for n in ("A", "B")]
    rules = {f.explanation for f in validate_extract(good(orders=missing, stages=[], payments=[]),
                                                     as_of=AS_OF).failures}
    assert "order without Ref_Key" in rules and "Ref_Key repeated" not in rules
    data = good(payments=[payment("P1", "2026-11-05", 100, settles="A", line=2)] * 2)
    unkeyed = {**data, "payments": data["payments"].drop(columns=["payment_key"])}
    for frames_ in (data, unkeyed):
        hit = [f for f in validate_extract(frames_, as_of=AS_OF).failures if f.explanation == "payment line repeated"]
        assert hit and hit[0].failing == 2 and hit[0].examples[0] == gid("pay-P1") + "#2"


def test_report_saves_readable_json(tmp_path):
    report = validate_extract(good(orders=[order("A", "2026-11-02", -1)]), as_of=AS_OF)
    path = tmp_path / "v.json"
    report.save(path)
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert doc["success"] is False and doc["failures"][0]["frame"] == "orders" and doc["results"]


def test_aging_gate_passes_computed_aging_and_catches_inconsistency():
    aging = compute_aging(good(), AS_OF)
    assert validate_aging(aging, as_of=AS_OF).success
    broken = aging.copy()
    broken.loc[0, "outstanding"] = broken.loc[0, "outstanding"] + 1
    broken.loc[1, "bucket"] = "soon"
    report = validate_aging(broken, as_of=AS_OF)
    rules = {f.explanation for f in report.failures}
    assert {"outstanding ≠ amount − paid", "unknown aging bucket"} <= rules


def test_gx_gets_the_checked_columns_in_dtypes_it_compares_whole():
    """GX's between-check runs a Python function per value unless the column is numpy
    int/float or datetime64[ns]; the gate hands it those, except where a date does not fit."""
    import pandas as pd

    from receivables.validation import _for_gx

    df = pd.DataFrame({"key": ["a", "b"], "amount": pd.array([1, 2], dtype="Int64"),
                       "missing": pd.array([1, None], dtype="Int64"),
                       "day": pd.Series(["2026-01-01", None], dtype="datetime64[s]"),
                       "far": pd.Series(["2026-01-01", "3000-01-01"], dtype="datetime64[s]"), "other": [1, 2]})
    out = _for_gx(df, ["key", "amount", "missing", "day", "far", "key"])
    assert list(out.columns) == ["key", "amount", "missing", "day", "far"]
    assert [str(t) for t in out.dtypes] == ["str", "int64", "float64", "datetime64[ns]", "datetime64[s]"]
    assert out["missing"].isna().tolist() == [False, True] and out["far"].iloc[1].year == 3000


def test_gx_does_not_fingerprint_the_batches(monkeypatch):
    """GX's batch fingerprint (a hash of every row, a marker the gate never reads) was most of
    the gate's time at a million documents: the gate's context turns it off, and still checks."""
    from great_expectations.execution_engine import pandas_execution_engine

    def hashed(df):
        raise AssertionError("GX fingerprinted a batch")

    monkeypatch.setattr(pandas_execution_engine, "hash_pandas_dataframe", hashed)
    report = validate_extract(good(orders=[order("A", "2026-11-02", -1000)]), as_of=AS_OF)
    assert report.checks == 28 and "negative amount" in [f.explanation for f in report.failures]
    assert all(f.failing == 1 for f in report.failures), report.summary_text()


def test_missing_and_negative_amounts_are_counted_apart():
    orders = [order("A", "2026-11-02", -1000), order("B", "2026-11-03", float("nan")), order("C", "2026-11-03", 5)]
    report = validate_extract(good(orders=orders, stages=[], payments=[]), as_of=AS_OF)
    failing = {f.explanation: (f.failing, f.examples) for f in report.failures}
    assert failing["negative amount"] == (1, ["A"])
    assert failing["amount missing or not a number"] == (1, ["B"])


def test_cross_frame_rules_on_keys_equal_the_same_rules_joined_on_the_text():
    """The stage-total and self-settled payment rules join on integer keys; on a generated
    company with broken stage totals, overpaid orders, missing amounts and misspelt references
    they flag exactly the orders that grouping and merging the reference text flags."""
    import numpy as np
    from test_keys import _company

    from receivables.domain.normalise import as_of_view, normalise
    from receivables.validation import extract_checks

    raw = _company()
    stages = raw["Document_ЗаказКлиента_ЭтапыГрафикаОплаты"]
    for row in stages[::11]:
        row["СуммаПлатежа"] = row["СуммаПлатежа"] + 1
    stages[3]["СуммаПлатежа"] = None
    lines = raw["Document_ПоступлениеБезналичныхДенежныхСредств_РасшифровкаПлатежа"]
    for row in lines[::9]:
        row["Сумма"] = row["Сумма"] * 3
    frames = as_of_view(normalise(raw), AS_OF, extracted_on=AS_OF)
    data, _ = extract_checks(frames, as_of=AS_OF)

    orders, st, pay = frames["orders"], frames["stages"], frames["payments"]
    # each rule flags every order, in the orders' order; one it does not apply to passes
    totals = st.groupby("document_ref")["amount"].sum(min_count=1)
    applies = orders["document_ref"].isin(totals.index).to_numpy()
    with_stages = orders.loc[applies]
    diff = with_stages["amount"].astype("Float64") - with_stages["document_ref"].map(totals).astype("Float64")
    want = np.ones(len(orders), dtype=bool)
    want[applies] = diff.eq(0).fillna(False).astype(bool).to_numpy()
    got = data["stage_totals"]
    assert (~want).sum() > 10 and np.array_equal(got["stages_sum_to_amount"].to_numpy(), want)
    assert np.array_equal(got["document_number"], orders["document_number"])

    objects = frames["settlement_objects"]
    own = objects.loc[objects["object_ref"].notna(), ["settlement_ref", "object_ref"]]
    paid = pay.groupby("settlement_ref")["amount"].sum()
    merged = orders.merge(own, left_on=["settlement_ref", "document_ref"], right_on=["settlement_ref", "object_ref"])
    ok = merged["settlement_ref"].map(paid).fillna(0).le(merged["amount"].astype("Float64"))
    overpaid = merged.loc[~ok.fillna(False).astype(bool), "document_ref"]
    assert len(merged) > 100 and merged["document_ref"].is_unique
    want = ~orders["document_ref"].isin(overpaid).to_numpy()
    got = data["order_payments"]
    assert (~want).sum() > 5 and np.array_equal(got["payments_within_amount"].to_numpy(), want)
    assert np.array_equal(got["document_number"], orders["document_number"])


def test_settled_by_itself_looks_up_each_orders_settlement_object_and_copes_with_a_broken_catalog():
    import numpy as np

    from receivables.validation import _settled_by_itself

    # orders: (settlement key, document key); -1: no reference
    settle = np.array([0, 1, 2, 3, -1, 4, 5])
    order = np.array([10, 11, 12, 13, 14, -1, 16])
    # objects: settlement 0 -> order 10 (itself); 1 -> 99 (another document); 2 twice (broken:
    # another document first, then the order); 3 -> no object; 4 -> a document, but the order has
    # no reference; 5 absent
    obj_settlement = np.array([0, 1, 2, 2, 3, 4])
    obj_object = np.array([10, 99, 98, 12, -1, 14])
    got = _settled_by_itself(settle, order, obj_settlement, obj_object)
    assert got.tolist() == [True, False, True, False, False, False, False]
    # without repeats the lookup alone decides, the same way
    assert _settled_by_itself(settle[:2], order[:2], obj_settlement[:2], obj_object[:2]).tolist() == [True, False]
