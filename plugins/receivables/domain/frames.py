"""Canonical frames: the typed shape of the extract every later step reads.

Column conventions (the contract between extraction, validation, aging and plan):
- references are lower-case GUID strings; an empty 1C reference becomes ``<NA>``;
- dates are ``datetime64[s]`` at midnight: calendar dates in the policy time zone;
- money is ``int64`` kopecks (exact; summed and compared without float error);
- text is pandas ``str`` with 1C's trailing spaces stripped;
- the `CATEGORICAL` reference and text columns are pandas categoricals of that text (sorted
  categories): few distinct values over millions of rows, a small integer code per row;
- beside the reference columns aging joins on (`KEYED`), ``x_key`` for ``x_ref``: an int64
  key of the reference, one numbering per kind of thing referred to (documents, settlement
  objects), -1 for none (`with_keys`; normalise adds them, aging numbers frames without them);
- the payments' ``payment_key``: the same of ``payment_ref``, numbered as the receipts join their
  lines (`normalise._payments`), the identity the gate checks a receipt's lines by.
"""

from __future__ import annotations

REF = "ref"
DATE = "date"
MONEY = "money"
TEXT = "text"
BOOL = "bool"
INT = "int"
FLOAT = "float"

#: frame name -> {column: kind}
FRAMES: dict[str, dict[str, str]] = {
    "orders": {
        "document_ref": REF,
        "document_number": TEXT,
        "document_date": DATE,
        "posted": BOOL,
        "deleted": BOOL,
        "partner_ref": REF,
        "counterparty_ref": REF,
        "organization_ref": REF,
        "contract_ref": REF,
        "manager_ref": REF,
        "amount": MONEY,
        "currency_ref": REF,
        "status": TEXT,
        "settlement": TEXT,
        "settlement_ref": REF,
    },
    "stages": {
        "document_ref": REF,
        "line": INT,
        "pay_date": DATE,
        "amount": MONEY,
        "percent": FLOAT,
        "option": TEXT,
    },
    "settlement_objects": {
        "settlement_ref": REF,
        "object_ref": REF,
        "object_type": TEXT,
        "kind": TEXT,
        "partner_ref": REF,
        "organization_ref": REF,
    },
    # one row per payment allocation line (РасшифровкаПлатежа) of a posted, not
    # deleted customer receipt dated on or before the as-of date
    "payments": {
        "payment_ref": REF,
        "payment_number": TEXT,
        "payment_date": DATE,
        "source": TEXT,  # bank | cash
        "line": INT,
        "partner_ref": REF,
        "organization_ref": REF,
        "settlement_ref": REF,
        "amount": MONEY,
    },
    "partners": {
        "partner_ref": REF,
        "code": TEXT,
        "partner_name": TEXT,
        "full_name": TEXT,
        "main_manager_ref": REF,
        "legal_form": TEXT,
        "is_client": BOOL,
        "deleted": BOOL,
    },
    "contacts": {
        "partner_ref": REF,
        "line": INT,
        "type": TEXT,
        "kind_ref": REF,
        "kind_name": TEXT,
        "email": TEXT,
        "phone": TEXT,
        "presentation": TEXT,
    },
    "counterparties": {
        "counterparty_ref": REF,
        "name": TEXT,
        "full_name": TEXT,
        "inn": TEXT,
        "kpp": TEXT,
        "partner_ref": REF,
        "legal_form": TEXT,
    },
    "contracts": {
        "contract_ref": REF,
        "number": TEXT,
        "contract_date": DATE,
        "name": TEXT,
        "partner_ref": REF,
        "counterparty_ref": REF,
        "organization_ref": REF,
        "settlement": TEXT,
        "has_term": BOOL,
        "term_days": INT,
        "status": TEXT,
    },
    # users; email and phone are the first lines of their contact information
    "managers": {
        "manager_ref": REF,
        "manager_name": TEXT,
        "invalid": BOOL,
        "email": TEXT,
        "phone": TEXT,
    },
    "organizations": {
        "organization_ref": REF,
        "organization_name": TEXT,
        "full_name": TEXT,
        "inn": TEXT,
        "kpp": TEXT,
    },
    "segments": {
        "partner_ref": REF,
        "segment_ref": REF,
        "segment_name": TEXT,
    },
}


#: frame -> its columns held as categoricals of their text (references and enumerations that
#: repeat over the big frames' rows: ~45 bytes of text per row become a 1-4 byte code). The raw
#: frames bring them dictionary-encoded (`onec.schema.REPEATING_FIELDS`); normalise converts
#: the distinct values only. Unique references (documents, settlement objects, receipts) stay text.
CATEGORICAL: dict[str, frozenset[str]] = {
    "orders": frozenset({"partner_ref", "counterparty_ref", "organization_ref", "contract_ref", "manager_ref",
                         "currency_ref", "status", "settlement"}),
    "stages": frozenset({"option"}),
    "settlement_objects": frozenset({"object_type", "kind", "partner_ref", "organization_ref"}),
    "payments": frozenset({"source", "partner_ref", "organization_ref"}),
}

#: threads the compute steps use for work that releases the GIL (Arrow kernels): the
#: 2-core workers this is sized for (issue 8 benchmark)
COMPUTE_THREADS = 2


def release_memory() -> None:
    """Give the memory a compute step freed back to the system (glibc's heaps, Arrow's pool).

    The steps' temporaries, gigabytes at a million open documents, are freed into the worker
    threads' own allocator arenas, which the next step (its allocations made by other threads,
    much of them through Arrow's allocator) mostly does not reuse: run one after another in a
    process (`airflow dags test`, the CLI), normalise's left ~0.8 GB under aging's peak. A task
    process ends after its step anyway; elsewhere this costs the next step the first touch of
    the pages it takes back.
    """
    import ctypes

    import pyarrow as pa

    pa.default_memory_pool().release_unused()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: its allocator returns memory its own way
        pass


def arrow_str(values):
    """`values` as Arrow strings (nulls for missing), without a per-element Python step.

    A column of several chunks (a raw frame's pages) stays chunked: the hash kernels take
    chunks as they are, where combining them would copy the column on every call.
    """
    import pandas as pd
    import pyarrow as pa

    if is_categorical(values):
        values = categorical_text(pd.Series(values))
    elif not isinstance(values, (pd.Series, pd.Index)) or values.dtype != "str":
        values = pd.Series(list(values) if isinstance(values, set) else values, dtype="str")
    arr = pa.array(values)
    if isinstance(arr, pa.ChunkedArray) and arr.num_chunks == 1:
        return arr.chunk(0)
    return arr


def take_text(values, indices):
    """Arrow text `values` (an Array, or a ChunkedArray: a raw frame's pages) at `indices`
    (positions, none negative), a chunk at a time.

    Arrow's take of a chunked array concatenates its chunks first: a copy of the whole column
    to take part of it (a million open documents' order references: 120 MB to take 42, ~4x the
    time). Ascending `indices` (a mask's rows) give each chunk's part as it is; others are taken
    ascending and then put in their order (copies of the output, never of the column)."""
    import numpy as np
    import pyarrow as pa

    idx = np.asarray(indices, dtype=np.int64)
    if not isinstance(values, pa.ChunkedArray):
        return values.take(pa.array(idx))
    bounds = np.cumsum([0, *(len(c) for c in values.chunks)])
    if len(idx) and (idx.min() < 0 or idx.max() >= bounds[-1]):
        bad = idx[(idx < 0) | (idx >= bounds[-1])][0]
        raise IndexError(f"position {bad} is outside a column of {bounds[-1]} values")
    if values.num_chunks <= 1:
        return values.take(pa.array(idx))
    if len(idx) > 1 and not (idx[1:] >= idx[:-1]).all():
        order = np.argsort(idx, kind="stable")
        inverse = np.empty_like(order)
        inverse[order] = np.arange(len(order))
        ascending = take_text(values, idx[order])
        del order
        return pa.chunked_array([ascending.combine_chunks().take(pa.array(inverse))], type=values.type)
    cut = np.searchsorted(idx, bounds)
    return pa.chunked_array([chunk.take(pa.array(idx[a:b] - first)) for chunk, a, b, first
                             in zip(values.chunks, cut[:-1], cut[1:], bounds[:-1], strict=True) if b > a],
                            type=values.type)


def take_rows(values, indices):
    """`values` (a Series) at `indices` (positions, none negative) with a fresh index: Arrow
    text a chunk at a time (`take_text`), the rest by pandas' take."""
    import pandas as pd
    import pyarrow as pa

    if isinstance(values.array, pd.arrays.ArrowStringArray):
        taken = take_text(pa.array(values.array), indices)
        return pd.Series(pd.arrays.ArrowStringArray(taken, dtype=values.dtype), name=values.name, copy=False)
    return values.take(indices).reset_index(drop=True)


def is_categorical(values) -> bool:
    import pandas as pd

    return isinstance(getattr(values, "dtype", None), pd.CategoricalDtype)


def category_parts(values) -> tuple:
    """(categories, codes as a numpy array) of a categorical Series, Index or array."""
    import numpy as np
    import pandas as pd

    arr = values.array if isinstance(values, (pd.Series, pd.Index)) else values
    return arr.categories, np.asarray(arr.codes)


def narrow_codes(codes, n: int):
    """Codes of `n` categories in the smallest integer type that holds them, as pandas keeps them."""
    import numpy as np

    return codes.astype(next(t for t in (np.int8, np.int16, np.int32, np.int64) if n < np.iinfo(t).max), copy=False)


def text_category(values, codes=None):
    """A categorical Series of the text `values` (sorted distinct values as categories, missing
    values code -1). With `codes`, `values` are the text of some codes' categories (converted,
    so possibly repeated or missing): the result is then one value per code (-1: missing), its
    categories the values some code names (whatever the codes' history, the same values give
    the same categories)."""
    import numpy as np
    import pandas as pd

    values = pd.Series(values, dtype="str") if not isinstance(values, pd.Series) else values
    new, uniques = pd.factorize(values, sort=True)
    if codes is not None:
        # code -1 takes the appended -1 (missing); gathered in the narrowest type that holds them
        new = narrow_codes(np.append(new, -1), len(uniques))[codes]
        used = np.zeros(len(uniques) + 1, dtype=bool)
        used[new] = True  # -1: the last entry, not a category
        used = used[:-1]
        if not used.all():
            uniques = uniques[used]
            new = narrow_codes(np.append(np.cumsum(used) - 1, -1), len(uniques))[new]
    dtype = pd.CategoricalDtype(pd.Index(uniques, dtype="str"))
    out = pd.Categorical.from_codes(new, dtype=dtype, validate=False)
    return pd.Series(out, index=values.index if codes is None else None)


def used_categories(values):
    """A categorical Series with only the categories its values use (in their order), the
    codes renumbered: one count of the codes, where pandas' `remove_unused_categories` sorts
    them."""
    import numpy as np
    import pandas as pd

    cat = values.array
    codes = np.asarray(cat.codes)
    used = np.bincount(codes + 1, minlength=len(cat.categories) + 1)[1:] > 0  # (code -1: missing)
    if used.all():
        return values
    new = narrow_codes(np.append(np.cumsum(used) - 1, -1), int(used.sum()))[codes]
    dtype = pd.CategoricalDtype(cat.categories[used], ordered=cat.ordered)
    return pd.Series(pd.Categorical.from_codes(new, dtype=dtype, validate=False), index=values.index,
                     name=values.name)


def concat_frames(frames):
    """`pd.concat(frames, ignore_index=True)`, with a column categorical in every frame
    categorical in the result (its categories united): pandas' concat of categoricals whose
    categories differ makes Python objects of them."""
    import numpy as np
    import pandas as pd

    frames = list(frames)
    columns = list(frames[0].columns)
    # (categoricals of one dtype in every frame pandas concatenates as they are)
    united = [c for c in columns if all(c in df.columns and is_categorical(df[c]) for df in frames)
              and any(df[c].dtype != frames[0][c].dtype for df in frames)]
    out = pd.concat([df.drop(columns=united) for df in frames], ignore_index=True)
    for col in united:  # (concatenated apart: pandas would first make Python objects of them)
        # every frame's categories one after another, its codes moved past the frames' before:
        # `text_category` unites the repeated values (pandas' union_categoricals hashed them as
        # Python objects: 0.13 s for a million open documents' payments' two such columns)
        parts = [df[col].array for df in frames]
        starts = np.cumsum([0, *(len(p.categories) for p in parts)])
        codes = np.concatenate([np.where(np.asarray(p.codes) >= 0, np.asarray(p.codes, dtype=np.int64) + start, -1)
                                for p, start in zip(parts, starts, strict=False)])
        categories = pd.concat([pd.Series(p.categories.array) for p in parts], ignore_index=True)
        out[col] = text_category(categories, codes)
    return out[[c for c in columns if c in out.columns] + [c for c in out.columns if c not in columns]]


def categorical_text(values):
    """A categorical Series of text as a ``str`` Series (missing stays missing), the values
    taken from the categories by one Arrow take of the codes: pandas' ``astype("str")`` goes
    through a Python object per row (~0.4 s a million rows per column)."""
    import pandas as pd
    import pyarrow as pa

    categories = values.cat.categories
    if categories.dtype != "str" or not isinstance(categories.array, pd.arrays.ArrowStringArray):
        return values.astype("str").where(values.notna(), None)
    source = pa.array(categories.array)
    if isinstance(source, pa.ChunkedArray):
        source = source.combine_chunks()
    codes = values.cat.codes.to_numpy()
    taken = source.take(pa.array(codes, mask=codes < 0))
    return pd.Series(pd.arrays.ArrowStringArray(taken, dtype=categories.dtype), index=values.index,
                     name=values.name)


def member(values, universe):
    """`values.isin(universe)` by hashing: pandas' Arrow-string isin builds one Python
    scalar per element of `universe`, which costs seconds at a million rows. Missing
    values are never members."""
    import numpy as np
    import pyarrow.compute as pc

    if is_categorical(values):  # the distinct values once, then one lookup per code
        categories, codes = category_parts(values)
        return np.append(member(categories, universe), False)[codes]
    found = pc.is_in(arrow_str(values), value_set=arrow_str(universe).drop_null(), skip_nulls=True)
    return found.to_numpy(zero_copy_only=False).astype(bool, copy=False)


def positions(keys, index):
    """Position of each of `keys` in the unique string `index` (-1 when absent); a missing
    key matches a missing index entry, as pandas' `get_indexer` does."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from receivables.domain.guid_keys import guid_keys

    if is_categorical(keys):
        at, codes = _category_positions(keys, index)
        return at[codes]
    keys, index = arrow_str(keys), arrow_str(index)
    chunks = [c for arr in (index, keys) for c in (arr.chunks if isinstance(arr, pa.ChunkedArray) else [arr])]
    codes = guid_keys(chunks)  # references: numbered together, then found by array indexing
    if codes is not None:
        return key_positions(codes[len(index):], codes[:len(index)])
    pos = pc.index_in(keys, value_set=index, skip_nulls=False)
    return pos.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.intp, copy=False)


def _category_positions(keys, index) -> tuple:
    """`positions` of a categorical's distinct values once: (each category's position in `index`,
    then a missing key's, which finds a missing entry; the codes, a missing one pointing last)."""
    import numpy as np
    import pandas as pd

    categories, codes = category_parts(keys)
    at = np.append(positions(categories, index), positions(pd.Series([None], dtype="str"), index))
    return at, np.where(codes < 0, len(categories), codes)


def lookup(keys, mapping):
    """`keys.map(mapping)` for string keys and a Series `mapping` with a unique string index,
    hashed in Arrow: pandas' map converts both sides to Python objects first. Categorical keys
    are looked up per category; text found for them is a categorical of it (`text_category`)."""
    import pandas as pd
    import pyarrow.compute as pc
    from pandas.api.extensions import take

    if pc.count_distinct(arrow_str(mapping.index), mode="all").as_py() != len(mapping):
        return keys.map(mapping)  # pandas raises the same error it always did
    if is_categorical(keys) and mapping.dtype == "str":  # text of each category: a categorical of it
        at, codes = _category_positions(keys, mapping.index)
        out = text_category(pd.Series(take(mapping.array, at, allow_fill=True), dtype="str"), codes)
        out.index, out.name = keys.index, keys.name
        return out
    values = take(mapping.array, positions(keys, mapping.index), allow_fill=True)
    return pd.Series(values, index=keys.index, name=keys.name)


def sort_key(values, *, descending: bool = False):
    """Ranks of `values` in pandas' sort order with missing values last (as `sort_values`),
    for `np.lexsort`: the same ranks `sort_values` computes for each key."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(values, pd.Series) and values.dtype == "str" and values.dtype.storage == "pyarrow":
        # text: Arrow ranks it in C (byte order, as pandas sorts Arrow strings), without
        # factorize's hashing of every value and sorting of the distinct ones
        arr = arrow_str(values)
        missing = arr.is_null().to_numpy(zero_copy_only=False)
        packed = packed_text_key(arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr)
        if packed is not None:  # short codes (document numbers): ranked as integers, ~5x faster
            distinct, ranks = np.unique(packed[0][~missing], return_inverse=True)
            codes = np.zeros(len(arr), dtype="int64")
            codes[~missing] = ranks
            n = len(distinct)
        else:
            codes = pc.rank(arr, sort_keys="ascending", tiebreaker="dense").to_numpy().astype("int64") - 1
            n = int(codes[~missing].max()) + 1 if (~missing).any() else 0
    else:
        codes, uniques = pd.factorize(values, sort=True)
        codes = codes.astype("int64", copy=False)
        n = len(uniques)
        missing = codes < 0
    if descending:
        codes = n - codes - 1
    return np.where(missing, n, codes)


def lexsort(keys):
    """`np.lexsort(keys)` (the last key primary, ties in input order) for integer keys.

    When the keys' ranges fit in 63 bits together they are packed into one int64 and put in
    order by `stable_order` (100k open documents' stages: 74 -> 6 ms against lexsort's one general
    sort pass per key); otherwise lexsort.
    """
    import numpy as np

    keys = [np.asarray(k) for k in keys]
    if not keys or not len(keys[0]) or any(k.dtype.kind not in "biu" for k in keys):
        return np.lexsort(keys)
    spans = [(int(k.min()), int(k.max())) for k in keys]
    widths = [(hi - lo).bit_length() for lo, hi in spans]
    if sum(widths) > 63:
        return np.lexsort(keys)
    packed = np.zeros(len(keys[0]), dtype="int64")
    for k, (lo, _), width in zip(reversed(keys), reversed(spans), reversed(widths), strict=True):
        packed <<= width
        packed |= k.astype("int64", copy=False) - lo
    return stable_order(packed, sum(widths))


def stable_order(packed, bits: int):
    """`np.argsort(packed, kind="stable")` of non-negative int64 keys of at most `bits` bits.

    Where the keys leave room for their row numbers below them, the keys so widened are distinct
    and sorted by value, which keeps ties in row order by itself: numpy sorts plain int64 values
    with its vectorised (SIMD) sort, ~10x faster than the stable argsort's timsort of the keys
    (a million documents' order: 120 -> 9 ms on an AVX-512 worker). Otherwise the stable argsort.
    `packed` is not changed."""
    import numpy as np

    row_bits = max(len(packed) - 1, 1).bit_length()
    if bits + row_bits > 63:
        return np.argsort(packed, kind="stable")
    order = np.left_shift(packed, row_bits)
    order |= np.arange(len(packed), dtype=np.int64)
    order.sort()
    order &= (1 << row_bits) - 1
    return order


def packed_text_key(arr, *, max_bits: int = 63):
    """(an int64 per value of the Arrow text `arr` that orders as the text's bytes do — Arrow's
    and pandas' order of text — equal text, equal key; its width in bits), or None when that
    takes more than `max_bits` bits or some value holds a NUL byte. A null gets the smallest key
    (callers place nulls themselves).

    Each byte position is a field of just enough bits for the bytes found there (a shorter
    value's missing byte is 0, below any byte it could have), the first position most
    significant. Short codes like 1C document numbers ('ТД07-001308': a shared prefix, a few
    digits) fit one integer, sorted by one numpy argsort instead of string comparisons."""
    import numpy as np

    offsets, data = text_buffers(arr)
    length = np.diff(offsets)
    valid = arr.is_valid().to_numpy(zero_copy_only=False)
    key = np.zeros(len(length), dtype=np.int64)
    if not valid.any():
        return key, 0
    if not len(data) or (data == 0).any():
        return None if len(data) else (key, 0)
    if valid.all() and (length == length[0]).all():  # one length, no null (1C's numbers)
        return _packed_fixed_width(data.reshape(len(length), -1), max_bits)
    start, last = offsets[:-1], len(data) - 1
    bits = 0
    for j in range(int(length.max())):
        has = length > j
        byte = np.where(has, data[np.minimum(start + j, last)], 0)
        lo, hi = int(byte[valid].min()), int(byte[valid].max())  # 0 when some value is shorter
        width = (hi - lo).bit_length()
        bits += width
        if bits > max_bits:
            return None
        if width:
            key <<= width
            key |= np.where(valid, byte.astype(np.int64) - lo, 0)
    return key, bits


def _packed_fixed_width(rows, max_bits: int):
    """`packed_text_key` of values of one length (`rows`: their bytes, a row each): the same key,
    each byte position read once (its bounds, then its field), not through the offsets."""
    import numpy as np

    lo, hi = (_column_reduce(rows, f).astype(np.int64) for f in (np.minimum, np.maximum))
    widths = [int(w).bit_length() for w in hi - lo]
    bits = sum(widths)
    if bits > max_bits:
        return None
    key = np.zeros(len(rows), dtype=np.int64)
    for j in np.flatnonzero(widths):  # (positions every value shares take no bits)
        key <<= widths[j]
        key |= rows[:, j] - lo[j]
    return key, bits


def _column_reduce(rows, ufunc, block: int = 256):
    """`ufunc.reduce(rows, axis=0)` of a C-contiguous 2-D array of narrow rows, `block` rows at a
    time as one wide row: numpy's reduction over the first axis of a (1M, 15) byte array runs one
    15-byte inner loop per row (~40 ms), of the blocks a few thousand long ones (~1 ms)."""
    n, width = rows.shape
    whole = n - n % block
    if not whole:
        return ufunc.reduce(rows, axis=0)
    out = ufunc.reduce(ufunc.reduce(rows[:whole].reshape(-1, block * width), axis=0).reshape(block, width), axis=0)
    return ufunc(out, ufunc.reduce(rows[whole:], axis=0)) if whole < n else out


def strictly_ascending(values) -> bool:
    """Whether the text `values` (or an Arrow array of text) are strictly ascending in byte order
    (so also distinct), in one pass."""
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = values if isinstance(values, (pa.Array, pa.ChunkedArray)) else arrow_str(values)
    return len(arr) > 1 and bool(pc.all(pc.less(arr.slice(0, len(arr) - 1), arr.slice(1))).as_py())


# -- integer keys of references -------------------------------------------------------------

#: the reference columns normalise numbers with integer keys (`with_keys`), by what they name:
#: those aging joins millions of rows on — orders to their stages, orders and payment lines to
#: settlement objects, an order to the object settled by it (its own object names it).
#: Keys of one domain are comparable; across domains they mean nothing.
KEYED: dict[str, tuple[tuple[str, str], ...]] = {
    "document": (("orders", "document_ref"), ("stages", "document_ref"), ("settlement_objects", "object_ref")),
    "settlement": (("orders", "settlement_ref"), ("settlement_objects", "settlement_ref"),
                   ("payments", "settlement_ref")),
}


def key_column(ref_column: str) -> str:
    """The key column beside a reference column: document_ref -> document_key."""
    return ref_column.removesuffix("_ref") + "_key"


def text_buffers(chunk) -> tuple:
    """(the chunk's value offsets, int64, len + 1, from 0; the bytes they point into, from the
    first value's start) — a string or large_string chunk's buffers, without copying them where
    they already are so (read-only views then)."""
    import numpy as np
    import pyarrow as pa

    _, offsets_buf, data_buf = chunk.buffers()
    width = np.int64 if pa.types.is_large_string(chunk.type) else np.int32
    offsets = np.frombuffer(offsets_buf, dtype=width)[chunk.offset:chunk.offset + len(chunk) + 1]
    offsets = offsets.astype(np.int64, copy=False)  # large_string's: the buffer itself, read-only
    data = (np.frombuffer(data_buf, dtype=np.uint8)[offsets[0]:offsets[-1]] if data_buf is not None
            else np.empty(0, dtype=np.uint8))
    return (offsets - offsets[0] if offsets[0] else offsets), data


def _numbering(columns) -> list:
    """One dictionary encoding of the reference text `columns` together: each one's int64 keys
    (equal references, equal keys; a missing one -1; numbered in order of first appearance)."""
    import numpy as np
    import pyarrow as pa

    from receivables.domain.guid_keys import guid_keys

    chunks = []
    for values in columns:
        arr = arrow_str(values)  # pandas' str columns: large_string, so the chunks share a type
        chunks += arr.chunks if isinstance(arr, pa.ChunkedArray) else [arr]
    if not chunks:
        return [np.empty(0, dtype="int64") for _ in columns]
    # GUID text as numbers: several times faster than hashing text. A domain's references
    # mostly name the things of its longest column (every order, every settlement object)
    codes = guid_keys(chunks, distinct=max(len(v) for v in columns))
    if codes is None:
        # combine_chunks unifies the chunks' dictionaries: one numbering for all
        codes = pa.chunked_array(chunks).dictionary_encode().combine_chunks().indices
        codes = codes.fill_null(-1).to_numpy(zero_copy_only=False).astype("int64", copy=False)
    bounds = np.cumsum([0, *(len(v) for v in columns)])
    return [codes[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def domain_keys(frames, domain: str) -> list:
    """The int64 keys of `KEYED[domain]`'s reference columns of `frames` (those it has), numbered
    together (`_numbering`), in `KEYED`'s order."""
    return _numbering([frames[name][col] for name, col in KEYED[domain] if name in frames])


class RunningKeys:
    """One domain's keys numbered a column at a time, each column's as soon as it is added, on
    from the columns before: the keys numbering them all together would give (`_numbering`: first
    appearance, missing -1), without holding the columns before. GUID text as numbers
    (`guid_keys.Numbering`) when at least `min_values` references are `expected`; from the first
    value that is not canonical GUID text on (or without numba, or below that), Arrow's hashing of
    the text against the distinct values numbered so far."""

    def __init__(self, expected: int, *, distinct: int | None = None, min_values: int | None = None):
        from receivables.domain.guid_keys import MIN_VALUES, Numbering

        self._numbering = (Numbering(expected, distinct=distinct)
                           if expected >= (MIN_VALUES if min_values is None else min_values) else None)
        self._seen = None  # Arrow's way: the distinct text so far, in key order

    def add(self, values):
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        arr = arrow_str(values)
        chunks = arr.chunks if isinstance(arr, pa.ChunkedArray) else [arr]
        if self._numbering is not None:
            keys = self._numbering.add(chunks)
            if keys is not None:
                return keys
            self._seen, self._numbering = self._numbering.seen(), None
        text = pa.chunked_array([c.cast(pa.large_string()) for c in chunks], type=pa.large_string())
        seen = self._seen if self._seen is not None else pa.array([], pa.large_string())
        # the values seen before are hashed once a column; the new ones are numbered on among themselves
        # (unique keeps first appearance: they are numbered in that order)
        found = pc.index_in(text, value_set=seen)
        new = np.flatnonzero(pc.and_(pc.is_valid(text), pc.is_null(found)).to_numpy(zero_copy_only=False))
        keys = found.fill_null(-1).to_numpy().astype(np.int64)
        if len(new):
            values = text.take(pa.array(new))
            firsts = pc.unique(values)
            keys[new] = pc.index_in(values, value_set=firsts).to_numpy().astype(np.int64) + len(seen)
            self._seen = pa.concat_arrays([seen, firsts.combine_chunks() if isinstance(firsts, pa.ChunkedArray)
                                           else firsts])
        else:
            self._seen = seen
        return keys


def attach_keys(frames, keys: dict) -> dict:
    """`frames` with each domain's keys (`domain_keys`, by domain name) beside their reference
    columns; the frames themselves are not modified."""
    out = dict(frames)
    for domain, codes in keys.items():
        for (name, col), key in zip([c for c in KEYED[domain] if c[0] in frames], codes, strict=True):
            out[name] = out[name].assign(**{key_column(col): key})
    return out


def with_keys(frames):
    """`frames` with the `KEYED` reference columns' integer keys beside them (``x_key`` for
    ``x_ref``): each domain's columns numbered together in one pass (`_numbering`: GUID text
    as 128-bit numbers at scale, else one hashing of the text), the two domains side by side in
    threads (Arrow and the compiled numbering release the GIL). Later steps join on the keys by
    indexing an array, where each join on the text would hash the GUIDs again. Frames that
    have every key already are returned as they are (so frames put together from different
    extracts must drop their keys first); otherwise every key is numbered anew. The frames
    themselves are not modified."""
    from concurrent.futures import ThreadPoolExecutor

    if all(key_column(col) in frames[name].columns for cols in KEYED.values() for name, col in cols
           if name in frames):
        return frames
    with ThreadPoolExecutor(COMPUTE_THREADS, thread_name_prefix="keys") as pool:
        jobs = {domain: pool.submit(domain_keys, frames, domain) for domain in KEYED}
        return attach_keys(frames, {domain: job.result() for domain, job in jobs.items()})


def frame_keys(df, ref_column: str):
    """The int64 keys beside `df[ref_column]`, or None when the frame carries none."""
    col = key_column(ref_column)
    return df[col].to_numpy(dtype="int64") if col in df.columns else None


def key_positions(keys, index):
    """`positions` for keys of one numbering: the position of each of `keys` in `index` (-1 when
    absent; the first of repeated entries; a missing key, -1, matches a missing entry), by
    indexing one array as long as the keys' range instead of hashing."""
    import numpy as np

    keys, index = np.asarray(keys, dtype=np.int64), np.asarray(index, dtype=np.int64)
    size = int(max(keys.max(initial=-1), index.max(initial=-1))) + 2
    where = np.full(size, -1, dtype=np.intp)
    where[index[::-1] + 1] = np.arange(len(index) - 1, -1, -1, dtype=np.intp)  # the first wins
    return where[keys + 1]
