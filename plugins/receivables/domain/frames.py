"""Canonical frames: the typed shape of the extract every later step reads.

Column conventions (the contract between extraction, validation, aging and plan):
- references are lower-case GUID strings; an empty 1C reference becomes ``<NA>``;
- dates are ``datetime64[s]`` at midnight: calendar dates in the policy time zone;
- money is ``int64`` kopecks (exact; summed and compared without float error);
- text is pandas ``str`` with 1C's trailing spaces stripped;
- optionally, beside a reference column ``x_ref``, ``x_key``: the reference's run-wide
  integer key (`RefKeys`, -1 for none). Extraction numbers the references the compute joins
  millions of rows on (`onec.schema.KEYED`); frames built otherwise may lack them, and
  every step works without them (joining on the text instead).
"""

from __future__ import annotations

from typing import Any

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


#: threads the compute steps use for work that releases the GIL (Arrow kernels): the
#: 2-core workers this is sized for (issue 8 benchmark)
COMPUTE_THREADS = 2


def arrow_str(values):
    """`values` as Arrow strings (nulls for missing), without a per-element Python step.

    A column of several chunks (a raw frame's pages) stays chunked: the hash kernels take
    chunks as they are, where combining them would copy the column on every call.
    """
    import pandas as pd
    import pyarrow as pa

    if not isinstance(values, (pd.Series, pd.Index)) or values.dtype != "str":
        values = pd.Series(list(values) if isinstance(values, set) else values, dtype="str")
    arr = pa.array(values)
    if isinstance(arr, pa.ChunkedArray) and arr.num_chunks == 1:
        return arr.chunk(0)
    return arr


def member(values, universe):
    """`values.isin(universe)` by hashing: pandas' Arrow-string isin builds one Python
    scalar per element of `universe`, which costs seconds at a million rows. Missing
    values are never members."""
    import pyarrow.compute as pc

    found = pc.is_in(arrow_str(values), value_set=arrow_str(universe).drop_null(), skip_nulls=True)
    return found.to_numpy(zero_copy_only=False).astype(bool, copy=False)


def positions(keys, index):
    """Position of each of `keys` in the unique string `index` (-1 when absent); a missing
    key matches a missing index entry, as pandas' `get_indexer` does."""
    import numpy as np
    import pyarrow.compute as pc

    pos = pc.index_in(arrow_str(keys), value_set=arrow_str(index), skip_nulls=False)
    return pos.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.intp, copy=False)


def lookup(keys, mapping):
    """`keys.map(mapping)` for string keys and a Series `mapping` with a unique string index,
    hashed in Arrow: pandas' map converts both sides to Python objects first."""
    import pandas as pd
    import pyarrow.compute as pc
    from pandas.api.extensions import take

    if pc.count_distinct(arrow_str(mapping.index), mode="all").as_py() != len(mapping):
        return keys.map(mapping)  # pandas raises the same error it always did
    values = take(mapping.array, positions(keys, mapping.index), allow_fill=True)
    return pd.Series(values, index=keys.index, name=keys.name)


def sort_key(values, *, descending: bool = False):
    """Ranks of `values` in pandas' sort order with missing values last (as `sort_values`),
    for `np.lexsort`: the same ranks `sort_values` computes for each key."""
    import numpy as np
    import pandas as pd
    import pyarrow.compute as pc

    if isinstance(values, pd.Series) and values.dtype == "str" and values.dtype.storage == "pyarrow":
        # text: Arrow ranks it in C (byte order, as pandas sorts Arrow strings), without
        # factorize's hashing of every value and sorting of the distinct ones
        arr = arrow_str(values)
        codes = pc.rank(arr, sort_keys="ascending", tiebreaker="dense").to_numpy().astype("int64") - 1
        missing = arr.is_null().to_numpy(zero_copy_only=False)
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

    When the keys' ranges fit in 63 bits together they are packed into one int64 and sorted
    by one stable argsort: its timsort takes about linear time on the nearly sorted keys the
    pipeline's frames give (documents in reference order, stages by document), where lexsort
    makes one general sort pass per key (100k open documents' stages: 74 -> 6 ms).
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
    return np.argsort(packed, kind="stable")


def strictly_ascending(values) -> bool:
    """Whether the text `values` are strictly ascending in byte order (so also distinct), in one pass."""
    import pyarrow.compute as pc

    arr = arrow_str(values)
    return len(arr) > 1 and bool(pc.all(pc.less(arr.slice(0, len(arr) - 1), arr.slice(1))).as_py())


# -- run-wide integer keys of references ---------------------------------------------------

#: a raw frame's column of run-wide keys of reference field F is named F + RAW_KEY_SUFFIX
RAW_KEY_SUFFIX = "#key"
#: reference text that means "no reference" (besides missing): 1C's empty GUID, and what
#: text conversion makes of None
_NO_REF_TEXT = frozenset({"00000000-0000-0000-0000-000000000000", "", "none"})


def key_column(ref_column: str) -> str:
    """The canonical frames' key column beside a reference column: document_ref -> document_key."""
    return ref_column.removesuffix("_ref") + "_key"


class RefKeys:
    """Run-wide integer keys of 1C references, assigned while extracting, page by page.

    Equal references as `normalise.ref` cleans them (trimmed, lower-case) get equal keys
    0, 1, 2...; a missing or empty reference gets -1. Frames that carry these keys beside
    their reference text (the optional `*_key` columns) join millions of rows by indexing
    an array, instead of hashing 36-byte GUID text again in every step. One instance
    serves one extract: keys of different instances mean nothing to each other.
    """

    def __init__(self) -> None:
        #: a value as 1C sent it -> key; a clean reference text maps to its own key, so a
        #: value seen before in another spelling finds the same key
        self._key: dict[Any, int] = {None: -1}
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def codes(self, values: list[Any]) -> np.ndarray:
        """The keys of a page's values (int64): a dict lookup per value; the values not seen
        before are checked in one Arrow pass (1C sends clean GUIDs) and numbered together."""
        import numpy as np

        get = self._key.get
        try:
            out = list(map(get, values))
        except TypeError:  # an unhashable value (not a reference at all): one at a time
            return np.array([self._assign(v) for v in values], dtype=np.int64)
        if None in out:
            fresh = list(dict.fromkeys(v for v, k in zip(values, out, strict=True) if k is None))
            clean = _clean_refs(fresh)
            new = [v for v, ok in zip(fresh, clean, strict=True) if ok]
            self._key.update(zip(new, range(self._count, self._count + len(new)), strict=True))
            self._count += len(new)
            for v in (v for v, ok in zip(fresh, clean, strict=True) if not ok):
                self._assign(v)
            # (values not text are never remembered: each is cleaned again)
            out = [self._assign(v) if k is None else k for v, k in zip(values, map(get, values), strict=True)]
        return np.array(out, dtype=np.int64)

    def _assign(self, value: Any) -> int:
        """The key of one value, cleaned as `normalise.ref` cleans text."""
        if value is None or (isinstance(value, float) and value != value):
            return -1
        text = str(value).strip().lower()
        if text in _NO_REF_TEXT:
            key = -1
        else:
            key = self._key.get(text)
            if key is None:
                key = self._key[text] = self._count
                self._count += 1
        if isinstance(value, str):  # only text is remembered: 0 == False as dict keys, "0" != "false"
            self._key[value] = key
        return key


def _clean_refs(values: list[Any]):
    """Which of `values` are references as cleaning leaves them (ASCII text, lower-case,
    trimmed, not empty): one Arrow pass instead of cleaning each in Python."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        arr = pa.array(values, type=pa.string())
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return np.zeros(len(values), dtype=bool)
    ok = pc.and_(pc.string_is_ascii(arr), pc.equal(pc.ascii_lower(pc.utf8_trim_whitespace(arr)), arr))
    ok = pc.and_(ok, pc.invert(pc.is_in(arr, value_set=pa.array(sorted(_NO_REF_TEXT)))))
    return pc.fill_null(ok, False).to_numpy(zero_copy_only=False)


def frame_keys(df, ref_column: str):
    """The int64 keys beside `df[ref_column]`, or None when the frame carries none."""
    col = key_column(ref_column)
    return df[col].to_numpy(dtype="int64") if col in df.columns else None


def key_positions(keys, index):
    """`positions` for run-wide keys: the position of each of `keys` in `index` (-1 when
    absent; the first of repeated entries; a missing key, -1, matches a missing entry), by
    indexing one array as long as the keys' range instead of hashing."""
    import numpy as np

    keys, index = np.asarray(keys, dtype=np.int64), np.asarray(index, dtype=np.int64)
    size = int(max(keys.max(initial=-1), index.max(initial=-1))) + 2
    where = np.full(size, -1, dtype=np.intp)
    where[index[::-1] + 1] = np.arange(len(index) - 1, -1, -1, dtype=np.intp)  # the first wins
    return where[keys + 1]
