"""The plan's document order: by date (missing last), then number in byte order (missing
last), ties in row order, with each row's dense rank of its (date, number) — whether the
pair packs into one integer (`frames.packed_text_key`) or Arrow sorts the text."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from receivables.domain.frames import packed_text_key
from receivables.domain.plan import _document_order

DATES = [None, "2026-03-01", "2026-03-01T08:00:00", "2026-03-02", "2025-12-31T10:00:00", "2001-01-01", "2035-12-31"]
#: short 1C-like numbers, Cyrillic, prefixes of each other, a NUL byte (cannot be packed)
NUMBER = st.one_of(st.none(), st.text(alphabet="ТД0189-ab\x00", max_size=5),
                   st.sampled_from(["ТД00-000001", "ТД00-00001", "", "ТД00-000001 ", "я" * 20]))


def _expected(docs: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Sorted by Python's comparison of the UTF-8 bytes: an oracle that shares no code."""
    def key(i: int) -> tuple:
        day, number = docs["document_date"].iloc[i], docs["document_number"].iloc[i]
        return (pd.isna(day), day if not pd.isna(day) else 0,
                number is None or pd.isna(number), number.encode() if isinstance(number, str) else b"")
    order = sorted(range(len(docs)), key=key)
    rank = np.empty(len(docs), dtype="int64")
    current, last = -1, None
    for i in order:
        if key(i) != last:
            current, last = current + 1, key(i)
        rank[i] = current
    return np.array(order, dtype="int64"), rank


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(DATES), NUMBER), max_size=30))
def test_document_order_sorts_by_date_then_number_bytes_with_missing_last(rows):
    docs = pd.DataFrame({
        "document_date": pd.Series(pd.to_datetime([d for d, _ in rows], format="ISO8601"), dtype="datetime64[s]"),
        "document_number": pd.Series([n for _, n in rows], dtype="str"),
    })
    order, rank = _document_order(docs)
    want_order, want_rank = _expected(docs)
    assert np.array_equal(order, want_order)
    assert np.array_equal(rank, want_rank)


def test_1c_numbers_pack_into_one_integer_and_keep_byte_order():
    numbers = pa.array(["ТД07-001308", "ТД01-199079", None, "ТД01-046992", "ТД01-04699", "ТД10-000001"])
    key, bits = packed_text_key(numbers)
    assert bits <= 40  # the shared prefix costs nothing, digits four bits each
    valid = [i for i in range(len(numbers)) if numbers[i].is_valid]
    by_key = sorted(valid, key=lambda i: key[i])
    assert [numbers[i].as_py() for i in by_key] == sorted(numbers[i].as_py() for i in valid)


def test_text_that_does_not_fit_is_declined():
    assert packed_text_key(pa.array(["a\x00b", "a"])) is None  # a NUL byte would tie with the padding
    assert packed_text_key(pa.array(["x" * 9, "y" * 9]), max_bits=8) is None


@settings(max_examples=200, deadline=None)
@given(st.lists(NUMBER, max_size=30), st.booleans())
def test_sort_key_of_text_is_dense_byte_order_ranks_with_missing_last(values, descending):
    from receivables.domain.frames import sort_key

    present = sorted({v.encode() for v in values if v is not None})
    n = len(present)
    want = [n if v is None else present.index(v.encode()) for v in values]
    if descending:
        want = [n if v is None else n - w - 1 for v, w in zip(values, want, strict=True)]
    got = sort_key(pd.Series(values, dtype="str"), descending=descending)
    assert got.tolist() == want


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["", "ТД", "Д-"]), st.integers(0, 12).flatmap(
    lambda n: st.lists(st.text(alphabet="0189-ab\x7f", min_size=n, max_size=n), min_size=1, max_size=30)))
def test_numbers_of_one_length_pack_as_the_general_way_packs_them(prefix, digits):
    # values of one byte length and no null take a shortcut (`_packed_fixed_width`); a null added
    # sends the same values the general way, which gives a null the key 0 and nothing else changes
    values = [prefix + d for d in digits]
    fixed = packed_text_key(pa.array(values))
    general = packed_text_key(pa.array([*values, None]))
    if general is None:
        assert fixed is None
    else:
        assert fixed[1] == general[1] and fixed[0].tolist() == general[0][:-1].tolist()


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 1500), st.integers(1, 20), st.integers(0, 2**32 - 1))
def test_column_bounds_a_block_of_rows_at_a_time_equal_numpys(n, width, seed):
    from receivables.domain.frames import _column_reduce

    rows = np.random.default_rng(seed).integers(0, 256, (n, width), dtype=np.uint8)
    for ufunc in (np.minimum, np.maximum):
        assert np.array_equal(_column_reduce(rows, ufunc), ufunc.reduce(rows, axis=0))
