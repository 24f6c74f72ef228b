"""Integer keys of references (`frames.with_keys`): the reference columns aging joins on,
numbered per kind of thing referred to; they stand for the reference text exactly, and aging
and the plan on them give what the row-by-row reference gives on the text."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from receivables.domain.frames import KEYED, key_column, key_positions, positions, with_keys

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # benchmarks/ lives at the repo root

GUIDS = ["b1c89d94-cb6a-11e6-aede-5404a6b4b8ed", "0c7a7c9e-1f2d-4b3a-9c8d-7e6f5a4b3c2d",
         "f00dbabe-0000-4000-8000-000000000001", "5a5a5a5a-0000-4000-8000-000000000002",
         # the first's first half, then its second half (1C's time-based GUIDs share the node part)
         "b1c89d94-cb6a-11e6-aede-000000000001", "c1c89d94-cb6a-11e6-aede-5404a6b4b8ed"]
_ref = st.none() | st.sampled_from(GUIDS)


def _column(values: list, chunks: int) -> pd.Series:
    """Reference text as Arrow-backed pandas strings, in `chunks` pieces (as pages give)."""
    import pyarrow as pa

    step = max(1, -(-len(values) // chunks))
    parts = [pa.array(values[i:i + step], type=pa.large_string()) for i in range(0, len(values), step)]
    return pd.Series(pa.chunked_array(parts, type=pa.large_string()), dtype="str")


#: frame -> its keyed reference columns
_BY_FRAME: dict[str, list[str]] = {}
for _cols in KEYED.values():
    for _name, _col in _cols:
        _BY_FRAME.setdefault(_name, []).append(_col)


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_keys_are_equal_exactly_when_the_references_of_a_domain_are(data):
    frames = {}
    for name, cols in _BY_FRAME.items():
        n = data.draw(st.integers(0, 8))
        frames[name] = pd.DataFrame({col: _column(data.draw(st.lists(_ref, min_size=n, max_size=n)),
                                                  data.draw(st.integers(1, 3)))
                                     for col in cols})
    keyed = with_keys(frames)
    for cols in KEYED.values():  # documents' keys among themselves, settlement objects' likewise
        refs = pd.concat([keyed[n][c].astype(object) for n, c in cols], ignore_index=True)
        keys = np.concatenate([keyed[n][key_column(c)].to_numpy() for n, c in cols])
        assert keys.dtype == np.int64 and len(keys) == len(refs)
        assert ((keys == -1) == refs.isna().to_numpy()).all()
        pairs = set(zip(keys[keys >= 0].tolist(), refs[keys >= 0].tolist(), strict=True))
        assert len(pairs) == len({k for k, _ in pairs}) == len({r for _, r in pairs})
    assert all(key_column(c) not in frames[n].columns for n, cols in _BY_FRAME.items() for c in cols)  # untouched


def test_frames_with_every_key_are_kept_and_a_missing_key_renumbers_all():
    frames = {name: pd.DataFrame({col: pd.Series(GUIDS[:2], dtype="str") for col in cols})
              for name, cols in _BY_FRAME.items()}
    keyed = with_keys(frames)
    assert with_keys(keyed) is keyed
    stale = dict(keyed, stages=keyed["stages"].drop(columns="document_key"),
                 orders=keyed["orders"].assign(document_key=[7, 9]))
    again = with_keys(stale)
    for name, cols in _BY_FRAME.items():
        for col in cols:
            assert again[name][key_column(col)].tolist() == keyed[name][key_column(col)].tolist()


#: text near canonical GUID text: each must be numbered as text (upper-case digits, a dash moved or
#: replaced,
#: a non-hex letter, one byte short or long, Cyrillic, empty and 'none'); the empty GUID is a GUID
ODD_REFS = ["B1C89D94-cb6a-11e6-aede-5404a6b4b8ed", "b1c89d94c-b6a-11e6-aede-5404a6b4b8ed",
            "b1c89d94acb6a-11e6-aede-5404a6b4b8ed",
            "g1c89d94-cb6a-11e6-aede-5404a6b4b8ed", "b1c89d94-cb6a-11e6-aede-5404a6b4b8e",
            "b1c89d94-cb6a-11e6-aede-5404a6b4b8ed0", "б1c89d94-cb6a-11e6-aede-5404a6b4b8e", "", "none",
            "ref-1"]


def _arrow_chunks(values: list, cuts: list[int], large: bool) -> list:
    import pyarrow as pa

    kind = pa.large_string() if large else pa.string()
    whole = pa.array(values, type=kind)
    bounds = sorted({0, len(values), *(c for c in cuts if c <= len(values))})
    return [whole.slice(a, b - a) for a, b in zip(bounds[:-1], bounds[1:], strict=True)] or [whole]


@settings(max_examples=200, deadline=None)
@given(values=st.lists(_ref | st.sampled_from([*GUIDS[:2], *GUIDS[4:], "00000000-0000-0000-0000-000000000000"]), max_size=40),
       odd=st.none() | st.sampled_from(ODD_REFS),
       where=st.integers(0, 40), cuts=st.lists(st.integers(0, 40), max_size=3), large=st.booleans())
def test_guid_keys_number_like_arrow_and_decline_what_is_not_canonical_guid_text(values, odd, where, cuts, large):
    """The compiled numbering gives Arrow's dictionary encoding exactly (first appearance,
    nulls -1) on sliced chunks of either string type, and declines (None, so the text is
    hashed) as soon as one value is not lower-case GUID text."""
    import pyarrow as pa

    from receivables.domain.guid_keys import available, guid_keys

    assert available()  # numba is a requirement: the fast path is what runs
    if odd is not None:
        values = values[:where] + [odd] + values[where:]
    chunks = _arrow_chunks(values, cuts, large)
    got = guid_keys(chunks, min_values=0)
    assert guid_keys(chunks) is None  # small: Arrow's hashing, without loading compiled code
    if odd is not None:
        assert got is None
        return
    want = pa.chunked_array(chunks).dictionary_encode().combine_chunks().indices
    assert got.tolist() == want.fill_null(-1).to_numpy(zero_copy_only=False).tolist()


@pytest.mark.parametrize(("room", "grows"), [(None, True), (1, True), (2000, True), (4000, False)])
@pytest.mark.parametrize("sizes", [[4000], [2000, 2000], [1500, 1, 2499], [2000, 0, 1000, 1000]])
def test_guid_keys_table_grows_and_keeps_every_key(sizes, room, grows):
    """The compiled table is sized for 70% of the rows distinct (or for the `distinct` values the
    caller expects, `room`) and grows when fuller: values numbered before it grows (in earlier chunks)
    keep their keys, repeats after it find them; a caller's estimate short of the truth (1 or 2000
    for these 3990 distinct values) costs growing, never a key."""
    import uuid

    import pyarrow as pa

    from receivables.domain.guid_keys import Numbering

    rng = np.random.default_rng(7)
    distinct = [str(uuid.UUID(int=int(rng.integers(0, 2**63)) << 64 | i)) for i in range(3990)]
    values = distinct + [distinct[5], None, distinct[3989], distinct[0], None, distinct[2000],
                         distinct[1], distinct[3000], distinct[17], distinct[3988]]
    bounds = np.cumsum([0, *sizes])
    chunks = [pa.array(values[a:b], pa.large_string()) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    numbering = Numbering(len(values), distinct=room)
    first_size = len(numbering._slots)
    got = numbering.add(chunks)
    assert (len(numbering._slots) > first_size) == grows  # the growth path is the one under test
    want = pa.chunked_array(chunks).dictionary_encode().combine_chunks().indices
    assert got.tolist() == want.fill_null(-1).to_numpy(zero_copy_only=False).tolist()


@settings(max_examples=150, deadline=None)
@given(keys=st.lists(_ref | st.sampled_from(ODD_REFS[:1]), max_size=20), index=st.lists(_ref, max_size=6))
def test_positions_of_guid_text_equal_arrow_index_in(keys, index):
    """`positions` numbers canonical GUID text instead of hashing it: the same positions as
    Arrow's index_in (the first of repeated entries; missing finds missing), also when an
    odd value sends it down the text path."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from receivables.domain import guid_keys

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(guid_keys, "MIN_VALUES", 0)  # the compiled path, at any size
        got = positions(_column(keys, 2), _column(index, 1))
    want = pc.index_in(pa.array(keys, pa.large_string()), value_set=pa.array(index, pa.large_string()),
                       skip_nulls=False).fill_null(-1).to_numpy(zero_copy_only=False)
    assert got.tolist() == want.tolist()


@settings(max_examples=100, deadline=None)
@given(keys=st.lists(st.integers(-1, 8), max_size=20), index=st.lists(st.integers(-1, 8), max_size=12))
def test_key_positions_find_what_positions_finds_on_the_text(keys, index):
    def text(values):
        return pd.Series([None if v < 0 else f"k{v}" for v in values], dtype="str")

    expected = positions(text(keys), text(index))
    assert key_positions(np.array(keys, dtype=np.int64), np.array(index, dtype=np.int64)).tolist() == \
        expected.tolist()


@settings(max_examples=100, deadline=None)
@given(keys=st.lists(_ref, max_size=20), index=st.lists(_ref, max_size=6, unique=True),
       other=st.lists(_ref, max_size=8))
def test_categorical_references_give_what_their_text_gives(keys, index, other):
    """The frames' categorical columns (`frames.CATEGORICAL`) are looked up per category:
    positions, membership, lookups and concatenation give what the same text gives."""
    from receivables.domain.frames import (
        concat_frames,
        lookup,
        member,
        text_category,
        used_categories,
    )

    text, universe = pd.Series(keys, dtype="str"), pd.Series(index, dtype="str")
    cat = text_category(text)
    assert cat.dtype == "category" and list(cat.cat.categories) == sorted(set(text.dropna()))
    assert positions(cat, universe).tolist() == positions(text, universe).tolist()
    assert member(cat, universe).tolist() == member(text, universe).tolist()
    names = pd.Series([f"имя {i}" for i in range(len(index))], index=universe, dtype="str")
    found = lookup(cat, names)
    assert found.astype("str").tolist() == lookup(text, names).astype("str").tolist()
    assert found.dtype == "category" or not len(names)
    both = concat_frames([pd.DataFrame({"r": cat, "n": 1}), pd.DataFrame({"r": text_category(pd.Series(other,
                                                                                                      dtype="str")),
                                                                        "n": 2})])
    assert both["r"].dtype == "category" and list(both.columns) == ["r", "n"]
    assert both["r"].astype("str").tolist() == pd.Series(keys + other, dtype="str").tolist()
    assert list(both["r"].cat.categories) == sorted({v for v in keys + other if v is not None})
    # one categorical type in every frame: concatenated as it is; only the used categories kept
    same = concat_frames([pd.DataFrame({"r": cat}), pd.DataFrame({"r": cat.iloc[::-1]})])
    assert same["r"].dtype == cat.dtype
    assert same["r"].astype("str").tolist() == pd.Series(keys + keys[::-1], dtype="str").tolist()
    some = cat.iloc[: len(cat) // 2]
    used = used_categories(some)
    assert used.astype("str").tolist() == some.astype("str").tolist()
    assert list(used.cat.categories) == sorted(set(some.dropna().astype("str")))


# -- the compute gives the same with the keys as without ---------------------------------

AS_OF = dt.date(2026, 11, 20)


def _company() -> dict[str, list[dict]]:
    """A generated company with what the gate reports and spellings only cleaning makes equal."""
    from receivables.onec.emulator.generator import generate_company

    ds = generate_company(seed=11, scale=0.05, end_date=AS_OF)
    raw = {name: [dict(r) for r in ds.rows(name)] for name in ds.names()}
    orders, lines = raw["Document_ЗаказКлиента"], raw["Document_ПоступлениеБезналичныхДенежныхСредств_РасшифровкаПлатежа"]
    for row in lines[::7]:
        row["ОбъектРасчетов_Key"] = row["ОбъектРасчетов_Key"].upper()
    for row in orders[::13]:
        row["ОбъектРасчетов_Key"] = f" {row['ОбъектРасчетов_Key']} "
    orders[5]["ОбъектРасчетов_Key"] = "00000000-0000-0000-0000-000000000000"
    orders[8]["ОбъектРасчетов_Key"] = "1e1e1e1e-0000-4000-8000-00000000dead"  # not in the catalog
    orders[9]["Ref_Key"] = orders[9]["Ref_Key"].upper()
    return raw


@pytest.mark.parametrize("compiled", [False, True], ids=["arrow-hashing", "compiled-guid-keys"])
def test_aging_and_plan_on_keys_agree_with_the_row_by_row_reference(compiled, monkeypatch):
    """Also with the compiled GUID numbering forced at this size (it runs from a million values,
    where the row-by-row reference is far too slow to compare): normalise's keys, the payments'
    join and the plan's register lookup go through it."""
    from benchmarks import reference as R
    from benchmarks.bench_compute import POLICY, make_register

    from receivables.domain import guid_keys
    from receivables.domain.aging import compute_aging
    from receivables.domain.normalise import as_of_view, normalise
    from receivables.domain.plan import build_plan
    from receivables.domain.policy import parse_policy
    from receivables.onec.client import frame_from_pages

    if compiled:
        monkeypatch.setattr(guid_keys, "MIN_VALUES", 0)
    raw = _company()
    register = make_register({"Document_ЗаказКлиента": frame_from_pages([raw["Document_ЗаказКлиента"]],
                                                                         ["Ref_Key", "Number", "Партнер_Key"],
                                                                         ["Ref_Key"])[0]})
    policy = parse_policy(POLICY)
    frames = as_of_view(normalise(raw), AS_OF, extracted_on=AS_OF)
    assert {"document_key", "settlement_key"} <= set(frames["orders"].columns)
    now = dt.datetime.combine(AS_OF, dt.time(11), tzinfo=policy.tz)
    aging = compute_aging(frames, AS_OF, bucket_bounds=policy.aging_buckets)
    plan = build_plan(aging, frames, policy, register, AS_OF, now=now)
    ref_aging = R.aging(frames, AS_OF, bucket_bounds=policy.aging_buckets)
    ref_plan = R.plan(ref_aging, frames, policy, register, AS_OF, now=now)
    assert len(aging) > 20 and (plan["decision"] == "act").any()
    assert R.aging_table(ref_aging) == R.aging_table(aging)
    assert not R.differences(R.plan_table(ref_plan), R.plan_table(plan)) and len(ref_plan) == len(plan)
    # and the same from frames without keys (numbered by aging itself)
    bare = {name: df.drop(columns=[c for c in df.columns if c.endswith("_key")]) for name, df in frames.items()}
    pd.testing.assert_frame_equal(compute_aging(bare, AS_OF, bucket_bounds=policy.aging_buckets), aging)


@settings(max_examples=150, deadline=None)
@given(columns=st.lists(st.lists(_ref, max_size=12), max_size=4), odd=st.none() | st.sampled_from(ODD_REFS),
       where=st.integers(0, 40), compiled=st.booleans())
def test_running_keys_number_column_by_column_as_numbering_them_together_would(columns, odd, where, compiled):
    """`RunningKeys` gives each column's keys as it is added, on from the columns before: Arrow's
    dictionary encoding of all of them together; where a value is not GUID text the compiled
    numbering hands what it has numbered (`Numbering.seen`) over to Arrow's hashing, keys unchanged."""
    import pyarrow as pa

    from receivables.domain.frames import RunningKeys

    if odd is not None and columns:
        k = where % len(columns)
        columns[k] = columns[k][:where] + [odd] + columns[k][where:]
    running = RunningKeys(20, distinct=1, min_values=0 if compiled else 10**9)
    got = [running.add(_column(values, 2)).tolist() for values in columns]
    text = pa.chunked_array([pa.array(v, pa.large_string()) for v in columns] or [[]], type=pa.large_string())
    want = text.dictionary_encode().combine_chunks().indices.fill_null(-1).to_numpy(zero_copy_only=False).tolist()
    assert sum(got, []) == want


def test_numbering_hands_over_what_it_numbered_as_guid_text():
    import uuid

    import pyarrow as pa

    from receivables.domain.guid_keys import Numbering

    values = [str(uuid.UUID(int=(i * 0x9E3779B97F4A7C15) % 2**128)) for i in range(1, 50)] + [GUIDS[0], None]
    numbering = Numbering(len(values))
    numbering.add([pa.array(values, pa.large_string())])
    assert numbering.seen().to_pylist() == list(dict.fromkeys(v for v in values if v is not None))
