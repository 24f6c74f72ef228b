"""`frames.lexsort` sorts exactly as `np.lexsort`, packed or not."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from receivables.domain.frames import lexsort, stable_order

small = st.integers(-5, 5)
wide = st.integers(-(2**62), 2**62)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 40).flatmap(lambda n: st.lists(
    st.lists(st.one_of(small, wide) if n % 3 == 0 else small, min_size=n, max_size=n), min_size=1, max_size=4)))
def test_lexsort_equals_numpy_lexsort_with_ties_in_input_order(columns):
    keys = [np.asarray(c, dtype="int64") for c in columns]
    assert np.array_equal(lexsort(keys), np.lexsort(keys))


def test_boolean_and_narrow_keys_are_packed_and_still_exact():
    rng = np.random.default_rng(7)
    keys = [rng.integers(0, 3, 1000), rng.random(1000) < 0.5, rng.integers(-(10**9), 10**9, 1000)]
    assert np.array_equal(lexsort(keys), np.lexsort(keys))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 7), max_size=60), st.sampled_from([3, 40, 62, 63]))
def test_stable_order_equals_a_stable_argsort_whether_row_numbers_fit_beside_the_keys_or_not(values, bits):
    # few distinct values: many ties, whose input order must survive; `bits` up to 63 leaves no
    # room for the row numbers, so the stable argsort itself runs
    keys = np.asarray(values, dtype="int64") << (bits - 3)
    assert np.array_equal(stable_order(keys, bits), np.argsort(keys, kind="stable"))


def test_stable_order_leaves_its_keys_as_they_were():
    keys = np.array([5, 1, 5, 0], dtype="int64")
    assert stable_order(keys, 3).tolist() == [3, 1, 0, 2] and keys.tolist() == [5, 1, 5, 0]
