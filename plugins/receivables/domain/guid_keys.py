"""Integer keys of GUID text in one pass each, compiled with numba.

Numbering millions of references is hashing 36-byte strings: Arrow's dictionary encoding
(and pandas' factorize) spend ~300-400 ns a value at 8M values on a 2-core worker, two
cache misses each (the slot, then the stored text to compare). Canonical GUID text is a
128-bit number: parsed in one sequential pass (~20-40 ns a value), the numbers go into an
open-addressing table of numbers. The keys are those of Arrow's dictionary encoding exactly
(first appearance order, nulls -1), which is what the callers fall back to: when numba is
missing, when some text is not canonical GUID text, and below `MIN_VALUES`.

Compiled code is cached beside this file (numba's ``cache=True``); still, a process pays
~1.2 s the first time it uses it (importing numba, loading the code), so small inputs, where
Arrow takes a fraction of that, never load it.
"""

from __future__ import annotations

import threading

import numpy as np

#: values per call below which Arrow's hashing (~0.3 s at a million) beats loading the
#: compiled code into a fresh task process
MIN_VALUES = 1_000_000

#: hex digit values of the bytes of canonical GUID text; 0xFF: not a lower-case hex digit
_HEX = np.full(256, 0xFF, dtype=np.uint8)
_HEX[np.frombuffer(b"0123456789abcdef", dtype=np.uint8)] = np.arange(16, dtype=np.uint8)


def _parse(data, offsets, valid, hexv, out):  # pragma: no cover - compiled
    """Each valid value of the text (`offsets` into `data`) as two words in `out`; False when
    one is not 36 bytes of lower-case hex digits with dashes at 8, 13, 18 and 23."""
    for i in range(len(offsets) - 1):
        if not valid[i]:
            continue
        s = offsets[i]
        if offsets[i + 1] - s != 36:
            return False
        if data[s + 8] != 45 or data[s + 13] != 45 or data[s + 18] != 45 or data[s + 23] != 45:
            return False
        hi = np.uint64(0)
        lo = np.uint64(0)
        bad = np.uint8(0)
        for j in range(18):  # digits 0-15 and two dashes' places
            if j == 8 or j == 13:
                continue
            v = hexv[data[s + j]]
            bad |= v
            hi = (hi << np.uint64(4)) | np.uint64(v)
        for j in range(19, 36):
            if j == 23:
                continue
            v = hexv[data[s + j]]
            bad |= v
            lo = (lo << np.uint64(4)) | np.uint64(v)
        if bad > 15:
            return False
        out[i, 0] = hi
        out[i, 1] = lo
    return True


def _number(words, valid, keys):  # pragma: no cover - compiled
    """Number the valid rows' words in order of first appearance into `keys` (-1 invalid);
    returns how many distinct. Linear probing on a table of at least twice the rows (a power
    of two), slots hashed with a 64-bit finaliser (1C's GUIDs are time-based: their raw bits
    cluster). Each row costs a few cache misses (~150 ns at millions of rows on a 2-core
    worker, 30 ns when the table fits in cache): memory, not arithmetic, bounds it."""
    n = len(keys)
    size = 2
    while size < 2 * n:
        size *= 2
    mask = np.uint64(size - 1)
    slots = np.full(size, -1, dtype=np.int64)
    first = np.empty(max(n, 1), dtype=np.int64)  # each key's first row
    count = 0
    for i in range(n):
        if not valid[i]:
            keys[i] = -1
            continue
        hi = words[i, 0]
        lo = words[i, 1]
        h = hi ^ (lo * np.uint64(0x9E3779B97F4A7C15))
        h ^= h >> np.uint64(33)
        h *= np.uint64(0xFF51AFD7ED558CCD)
        h ^= h >> np.uint64(33)
        h *= np.uint64(0xC4CEB9FE1A85EC53)
        h ^= h >> np.uint64(33)
        p = h & mask
        while True:
            code = slots[p]
            if code < 0:
                slots[p] = count
                first[count] = i
                keys[i] = count
                count += 1
                break
            f = first[code]
            if words[f, 0] == hi and words[f, 1] == lo:
                keys[i] = code
                break
            p = (p + np.uint64(1)) & mask
    return count


_compiled: list = []
_compiling = threading.Lock()


def _kernels():
    """(parse, number) compiled on first use (loaded from numba's cache when it has them), or
    None when numba is missing."""
    with _compiling:
        if not _compiled:
            try:
                from numba import njit
            except ImportError:  # pragma: no cover - numba is in requirements.txt
                _compiled.append(None)
            else:
                _compiled.append((njit(nogil=True, cache=True)(_parse), njit(nogil=True, cache=True)(_number)))
        return _compiled[0]


def available() -> bool:
    return _kernels() is not None


def guid_keys(chunks, *, min_values: int | None = None) -> np.ndarray | None:
    """int64 keys of the text `chunks` (Arrow string or large_string arrays) numbered
    together: equal text, equal key; null -1; in order of first appearance. None (hash the
    text instead) for fewer than `min_values` values (`MIN_VALUES`), when numba is missing,
    or when some non-null value is not canonical (lower-case) GUID text."""
    from receivables.domain.frames import text_buffers

    n = sum(len(c) for c in chunks)
    if n < (MIN_VALUES if min_values is None else min_values):
        return None
    kernels = _kernels()
    if kernels is None:
        return None
    parse, number = kernels
    words = np.empty((n, 2), dtype=np.uint64)  # invalid rows are never read
    valid = np.empty(n, dtype=np.bool_)
    start = 0
    for chunk in chunks:
        end = start + len(chunk)
        valid[start:end] = chunk.is_valid().to_numpy(zero_copy_only=False)
        offsets, data = text_buffers(chunk)
        if len(chunk) and not parse(data, offsets, valid[start:end], _HEX, words[start:end]):
            return None
        start = end
    keys = np.empty(n, dtype=np.int64)
    number(words, valid, keys)
    return keys
