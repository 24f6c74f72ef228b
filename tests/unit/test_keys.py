"""Run-wide integer keys of references (`frames.RefKeys`): numbered while extracting, they
stand for the reference text exactly, and every step gives the same result with them as
without them."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from receivables.domain.frames import RefKeys, key_positions, positions
from receivables.domain.normalise import ref

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # benchmarks/ lives at the repo root

GUIDS = ["b1c89d94-cb6a-11e6-aede-5404a6b4b8ed", "0c7a7c9e-1f2d-4b3a-9c8d-7e6f5a4b3c2d",
         "f00dbabe-0000-4000-8000-000000000001"]
#: a reference as 1C or a hand-made extract may spell it, and what is no reference at all
_spelling = st.sampled_from(GUIDS).flatmap(lambda g: st.sampled_from([g, g.upper(), f" {g} ", g.title()]))
_value = (_spelling | st.sampled_from(["00000000-0000-0000-0000-000000000000", "", "None", "  ", "ÀБ-1", "àб-1"])
          | st.none() | st.just(float("nan")) | st.integers(0, 3) | st.booleans())


def _pages(values: list, size: int) -> list[list]:
    return [values[i:i + size] for i in range(0, len(values), size)]


@settings(max_examples=200, deadline=None)
@given(values=st.lists(_value, max_size=30), page=st.integers(1, 7))
def test_keys_are_equal_exactly_when_the_cleaned_references_are(values, page):
    keys = RefKeys()
    codes = np.concatenate([keys.codes(p) for p in _pages(values, page)] or [np.empty(0, dtype=np.int64)])
    cleaned = ref(pd.Series(values, dtype=object))
    assert ((codes == -1) == cleaned.isna().to_numpy()).all()
    present = codes >= 0
    pairs = set(zip(codes[present].tolist(), cleaned[present].tolist(), strict=True))
    # a bijection between keys and cleaned texts: as many pairs as distinct keys and texts
    assert len(pairs) == len({k for k, _ in pairs}) == len({t for _, t in pairs}) == len(keys)
    assert sorted({k for k, _ in pairs}) == list(range(len(keys)))  # numbered 0, 1, 2...


def test_keys_of_a_value_seen_again_in_a_later_page_or_another_set_stay_the_same():
    keys = RefKeys()
    first = keys.codes([GUIDS[0], GUIDS[1].upper(), None])
    again = keys.codes([GUIDS[1], f" {GUIDS[0].upper()} ", "00000000-0000-0000-0000-000000000000"])
    assert first.tolist() == [0, 1, -1]
    assert again.tolist() == [1, 0, -1]
    assert keys.codes([{"not": "a reference"}, GUIDS[2]]).tolist() == [2, 3]  # unhashable: one at a time


@settings(max_examples=100, deadline=None)
@given(keys=st.lists(st.integers(-1, 8), max_size=20), index=st.lists(st.integers(-1, 8), max_size=12))
def test_key_positions_find_what_positions_finds_on_the_text(keys, index):
    def text(values):
        return pd.Series([None if v < 0 else f"k{v}" for v in values], dtype="str")

    expected = positions(text(keys), text(index))
    assert key_positions(np.array(keys, dtype=np.int64), np.array(index, dtype=np.int64)).tolist() == \
        expected.tolist()


# -- the compute gives the same with the keys as without ---------------------------------

AS_OF = dt.date(2026, 11, 20)


def _company(quirks: bool) -> dict[str, list[dict]]:
    from receivables.onec.emulator.generator import generate_company

    ds = generate_company(seed=11, scale=0.05, end_date=AS_OF)
    raw = {name: [dict(r) for r in ds.rows(name)] for name in ds.names()}
    if quirks:  # what the gate reports, and spellings only cleaning makes equal
        orders, lines = raw["Document_ЗаказКлиента"], raw["Document_ПоступлениеБезналичныхДенежныхСредств_РасшифровкаПлатежа"]
        for row in lines[::7]:
            row["ОбъектРасчетов_Key"] = row["ОбъектРасчетов_Key"].upper()
        for row in orders[::13]:
            row["ОбъектРасчетов_Key"] = f" {row['ОбъектРасчетов_Key']} "
        orders[5]["ОбъектРасчетов_Key"] = "00000000-0000-0000-0000-000000000000"
        orders[8]["ОбъектРасчетов_Key"] = "1e1e1e1e-0000-4000-8000-00000000dead"  # not in the catalog
        orders[9]["Ref_Key"] = orders[9]["Ref_Key"].upper()
    return raw


def _raw_frames(raw: dict[str, list[dict]], keys: RefKeys | None) -> dict[str, pd.DataFrame]:
    from receivables.extract import ORDER_BY
    from receivables.onec.client import _order_fields, frame_from_pages
    from receivables.onec.schema import KEYED, READ_SETS

    out = {}
    for name, fields in READ_SETS.items():
        rows = raw[name]
        pages = _pages(rows, 97) or [[]]
        out[name], _ = frame_from_pages(pages, list(fields), _order_fields(ORDER_BY[name]), keys, KEYED.get(name, ()))
    return out


def _compute(raw_frames: dict[str, pd.DataFrame]):
    from receivables.domain.aging import compute_aging
    from receivables.domain.normalise import as_of_view, normalise
    from receivables.domain.plan import build_plan
    from receivables.domain.policy import parse_policy

    from benchmarks.bench_compute import POLICY, make_register

    policy = parse_policy(POLICY)
    frames = as_of_view(normalise(raw_frames), AS_OF, extracted_on=AS_OF)
    aging = compute_aging(frames, AS_OF, bucket_bounds=policy.aging_buckets)
    now = dt.datetime.combine(AS_OF, dt.time(11), tzinfo=policy.tz)
    register = make_register(raw_frames)  # a fifth of the orders had a step sent, some refused
    return frames, aging, build_plan(aging, frames, policy, register, AS_OF, now=now)


@pytest.mark.parametrize("quirks", [False, True], ids=["clean", "quirks"])
def test_aging_and_plan_are_the_same_with_the_keys_as_without(quirks):
    raw = _company(quirks)
    keyed_frames, keyed_aging, keyed_plan = _compute(_raw_frames(raw, RefKeys()))
    frames, aging, plan = _compute(_raw_frames(raw, None))
    assert {"document_key", "settlement_key"} <= set(keyed_frames["orders"].columns)
    assert "settlement_key" in keyed_frames["payments"].columns
    assert "document_key" in keyed_frames["stages"].columns
    assert len(aging) > 20 and (plan["decision"] == "act").any()
    for name, df in frames.items():
        pd.testing.assert_frame_equal(keyed_frames[name][list(df.columns)], df, obj=name)
    pd.testing.assert_frame_equal(keyed_aging, aging)
    pd.testing.assert_frame_equal(keyed_plan, plan)


def test_key_columns_agree_with_the_reference_text_of_the_normalised_frames():
    from receivables.domain.normalise import normalise

    frames = normalise(_raw_frames(_company(quirks=True), RefKeys()))
    pairs = []
    for name, col in (("orders", "document_ref"), ("orders", "settlement_ref"), ("stages", "document_ref"),
                      ("settlement_objects", "settlement_ref"), ("payments", "settlement_ref")):
        df = frames[name]
        key = df[col.removesuffix("_ref") + "_key"]
        assert ((key == -1) == df[col].isna()).all(), (name, col)
        pairs += list(zip(key[key >= 0], df[col][key >= 0], strict=True))
    pairs = set(pairs)
    assert len(pairs) == len({k for k, _ in pairs}) == len({t for _, t in pairs})
