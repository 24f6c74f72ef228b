"""`frames.take_text` and `take_rows` take exactly what Arrow's and pandas' take do,
a chunk at a time (Arrow's take of a chunked array copies the whole column first)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from receivables.domain.frames import take_rows, take_text

_text = st.none() | st.text(alphabet="aб0-", max_size=5)
_chunks = st.lists(st.lists(_text, max_size=6), min_size=1, max_size=5)


@settings(max_examples=300, deadline=None)
@given(chunks=_chunks, data=st.data())
def test_take_text_equals_arrows_take_in_any_order(chunks, data):
    values = pa.chunked_array([pa.array(c, pa.large_string()) for c in chunks], type=pa.large_string())
    n = len(values)
    indices = data.draw(st.lists(st.integers(0, n - 1), max_size=12) if n else st.just([]))
    if data.draw(st.booleans()):
        indices = sorted(indices)  # a mask's rows: each chunk's part as it is
    taken = take_text(values, indices)
    assert isinstance(taken, pa.ChunkedArray) and taken.type == values.type
    assert taken.to_pylist() == values.take(pa.array(indices, pa.int64())).to_pylist()


_MOST_ALLOCATED = """
import sys
import numpy as np, pyarrow as pa
from receivables.domain.frames import take_text
# the column in another pool than the one the take allocates from: that one's high-water mark is the take's
pool = pa.default_memory_pool()
other = pa.system_memory_pool() if pool.backend_name != "system" else pa.mimalloc_memory_pool()
values = pa.chunked_array([pa.array([f"{i:036d}" for i in range(start, start + 20_000)], pa.large_string(),
                                    memory_pool=other) for start in range(0, 200_000, 20_000)])
indices = np.flatnonzero(np.random.default_rng(1).random(len(values)) < 0.3)
before = pool.max_memory()
taken = take_text(values, indices) if sys.argv[1] == "ours" else values.take(pa.array(indices))
added = pool.max_memory() - before
assert taken.equals(values.take(pa.array(indices)))
print(added, taken.nbytes, values.nbytes, taken.num_chunks)
"""


@pytest.mark.parametrize("how", ["ours", "arrow"])
def test_ascending_positions_take_no_copy_of_the_column(how):
    """Ascending positions take each chunk's part: the most memory the take adds is its output's
    (measured in a fresh interpreter, Arrow's pool), where Arrow's own take of the chunked column
    copies the column first."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", _MOST_ALLOCATED, how], capture_output=True, text=True, check=True)
    added, output, column, chunks = map(int, out.stdout.split())
    if how == "ours":
        assert added < output + column / 10 and chunks == 10
    else:
        assert added >= column  # what `take_text` avoids


def test_take_text_refuses_positions_outside_the_column():
    values = pa.chunked_array([pa.array(["a"], pa.large_string()), pa.array(["b"], pa.large_string())])
    for bad in ([2], [-1, 0]):
        with pytest.raises(IndexError, match=f"position {bad[0]} is outside a column of 2 values"):
            take_text(values, bad)
    with pytest.raises(IndexError, match="position 0 is outside a column of 0 values"):
        take_text(pa.chunked_array([], pa.large_string()), [0])


def test_take_rows_equals_pandas_take_with_a_fresh_index():
    text = pd.Series(pd.arrays.ArrowStringArray(pa.chunked_array(
        [pa.array(["x", None], pa.large_string()), pa.array(["y", "z"], pa.large_string())])), dtype="str",
        index=[10, 11, 12, 13], name="number")
    df = pd.DataFrame({"number": text, "amount": np.array([1, 2, 3, 4]),
                       "partner": pd.Categorical(["a", "b", "a", None])}, index=text.index)
    for at in ([3, 0, 1], [0, 2, 3], []):
        expected = df.take(at).reset_index(drop=True)
        for col in df.columns:
            pd.testing.assert_series_equal(take_rows(df[col], at), expected[col])
