"""Integer keys of GUID text in one pass each, compiled with numba.

Numbering millions of references is hashing 36-byte strings: Arrow's dictionary encoding
(and pandas' factorize) spend ~300-400 ns a value at 8M values on a 2-core worker, two
cache misses each (the slot, then the stored text to compare). Canonical GUID text is a
128-bit number: parsed a block at a time, the numbers go into an open-addressing table that
holds the numbers themselves (~70 ns a value at 8M values). The keys are those of Arrow's
dictionary encoding exactly (first appearance order, nulls -1), which is what the callers fall
back to: when numba is missing, when some text is not canonical GUID text, and below
`MIN_VALUES`.

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


#: rows parsed per step into a buffer that stays in cache
_PARSE_BLOCK = 4096
#: rows hashed ahead of probing the table: their slots are read together, so the cache misses
#: of a block overlap instead of each waiting for the one before
_PROBE_BLOCK = 16


def _number_chunk(data, offsets, valid, hexv, slots, count, keys):  # pragma: no cover - compiled
    """Number one chunk's GUID text into `keys` (first appearance order, -1 null), continuing
    from `count` distinct values in `slots`; returns (count, slots), slots grown at 70% full,
    or (-1, slots) when some valid value is not 36 bytes of lower-case hex digits with dashes at
    8, 13, 18 and 23.

    A slot is (high word, low word, key + 1; 0 empty), linear probing, hashed with a 64-bit
    finaliser (1C's GUIDs are time-based: their raw bits cluster). The text is parsed a block at
    a time into a buffer that stays in cache; then the slots of a few rows are read together
    before any is probed, and a slot holds the value itself: a row waits on memory about once,
    where a table of keys beside the values took three dependent misses."""
    words = np.empty((_PARSE_BLOCK, 2), dtype=np.uint64)
    at = np.empty(_PROBE_BLOCK, dtype=np.uint64)
    n = len(keys)
    for base in range(0, n, _PARSE_BLOCK):
        m = min(_PARSE_BLOCK, n - base)
        for b in range(m):
            i = base + b
            if not valid[i]:
                continue
            s = offsets[i]
            if offsets[i + 1] - s != 36:
                return -1, slots
            if data[s + 8] != 45 or data[s + 13] != 45 or data[s + 18] != 45 or data[s + 23] != 45:
                return -1, slots
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
                return -1, slots
            words[b, 0] = hi
            words[b, 1] = lo
        if 10 * (count + m) > 7 * len(slots):  # grow: every value to its slot in a table twice as big
            old = slots
            slots = np.zeros((2 * len(old), 3), dtype=np.uint64)
            while 10 * (count + m) > 7 * len(slots):
                slots = np.zeros((2 * len(slots), 3), dtype=np.uint64)
            mask = np.uint64(len(slots) - 1)
            for k in range(len(old)):
                if old[k, 2]:
                    h = old[k, 0] ^ (old[k, 1] * np.uint64(0x9E3779B97F4A7C15))
                    h = (h ^ (h >> np.uint64(33))) * np.uint64(0xFF51AFD7ED558CCD)
                    p = (h ^ (h >> np.uint64(33))) & mask
                    while slots[p, 2]:
                        p = (p + np.uint64(1)) & mask
                    slots[p, 0], slots[p, 1], slots[p, 2] = old[k, 0], old[k, 1], old[k, 2]
        mask = np.uint64(len(slots) - 1)
        for first in range(0, m, _PROBE_BLOCK):
            last = min(first + _PROBE_BLOCK, m)
            touched = np.uint64(0)
            for b in range(first, last):
                h = words[b, 0] ^ (words[b, 1] * np.uint64(0x9E3779B97F4A7C15))
                h = (h ^ (h >> np.uint64(33))) * np.uint64(0xFF51AFD7ED558CCD)
                p = (h ^ (h >> np.uint64(33))) & mask
                at[b - first] = p
                touched += slots[p, 2]  # independent reads: their misses overlap
            for b in range(first, last):
                i = base + b
                if not valid[i]:
                    keys[i] = -1
                    continue
                p = at[b - first]
                while True:
                    code = slots[p, 2]
                    if code == 0:
                        count += 1
                        slots[p, 0], slots[p, 1], slots[p, 2] = words[b, 0], words[b, 1], count
                        keys[i] = count - 1
                        break
                    if slots[p, 0] == words[b, 0] and slots[p, 1] == words[b, 1]:
                        keys[i] = np.int64(code) - 1
                        break
                    p = (p + np.uint64(1)) & mask
            if touched == np.uint64(1) << np.uint64(63):  # keeps the reads: never true (keys < 2**63)
                return -1, slots
    return count, slots


#: bytes of a 64-bit word: every high bit, every low seven bits, a one in every byte
_HIGH, _LOW7, _ONES = np.uint64(0x8080808080808080), np.uint64(0x7F7F7F7F7F7F7F7F), np.uint64(0x0101010101010101)


def _scan_guids(words, tail, data, rows, zero_at):  # pragma: no cover - compiled
    """For GUID-shaped text (`rows` values of 36 bytes, `data`; `words`: its whole 64-bit words,
    `tail`: the bytes after them): -1 when some byte could change under `normalise.ref` (a space
    or control byte, a non-ASCII byte, an upper-case ASCII letter: what `_changes_under_ref`
    looks for), else how many values have '0' at the four places `zero_at` (shaped like the
    empty GUID), their rows first in `rows`.

    The bytes are tested eight at a time in a word (carry-free tests per byte: a high bit; below
    33: (w - 33) & ~w & high; 64 < byte < 91: the test for a byte between two bounds), a pass
    that vectorises, where numpy took five passes over every byte."""
    below = _ONES * np.uint64(33)
    upper_lo, upper_hi = _ONES * np.uint64(127 - 64), _ONES * np.uint64(127 + 91)
    seen = np.uint64(0)
    for i in range(len(words)):
        w = words[i]
        low = w & _LOW7
        seen |= (w & _HIGH) | ((w - below) & ~w & _HIGH) | ((upper_hi - low) & ~w & (low + upper_lo) & _HIGH)
    for b in tail:
        seen |= np.uint64((b <= 32) | (b >= 128) | ((b >= 65) & (b <= 90)))
    if seen:
        return -1
    a, b, c, d = zero_at
    found = 0
    for i in range(len(rows)):
        s = 36 * i
        if data[s + a] == 48 and data[s + b] == 48 and data[s + c] == 48 and data[s + d] == 48:
            rows[found] = i
            found += 1
    return found


_compiled: dict = {}
_compiling = threading.Lock()


def _kernels(name: str = "number"):
    """A kernel compiled on first use (loaded from numba's cache when it has it): the numbering
    ("number") or the canonical scan ("scan"); None when numba is missing."""
    with _compiling:
        if name not in _compiled:
            try:
                from numba import njit
            except ImportError:  # pragma: no cover - numba is in requirements.txt
                _compiled[name] = None
            else:
                _compiled[name] = njit(nogil=True, cache=True)({"number": _number_chunk, "scan": _scan_guids}[name])
        return _compiled[name]


def empty_guid_rows(data: np.ndarray, zero_at: tuple[int, int, int, int]) -> np.ndarray | None:
    """`normalise._empty_guid_rows` in one compiled pass (~6x faster at a million values): the
    rows of the 36-byte values in `data` with '0' at the four byte places `zero_at` (shaped like
    the empty GUID: `normalise._ZERO_AT`), or None when some byte could change under `ref`. Only
    where `available()`."""
    whole = len(data) // 8 * 8
    rows = np.empty(len(data) // 36, dtype=np.intp)
    found = _kernels("scan")(data[:whole].view(np.uint64), data[whole:], data, rows, tuple(zero_at))
    return rows[:found] if found >= 0 else None


def available() -> bool:
    return _kernels() is not None


def guid_keys(chunks, *, min_values: int | None = None, distinct: int | None = None) -> np.ndarray | None:
    """int64 keys of the text `chunks` (Arrow string or large_string arrays) numbered
    together: equal text, equal key; null -1; in order of first appearance. None (hash the
    text instead) for fewer than `min_values` values (`MIN_VALUES`), when numba is missing,
    or when some non-null value is not canonical (lower-case) GUID text. `distinct`: how
    many distinct values to make room for (`Numbering`)."""
    n = sum(len(c) for c in chunks)
    if n < (MIN_VALUES if min_values is None else min_values):
        return None
    numbering = Numbering(n, distinct=distinct)
    return numbering.add(chunks)


class Numbering:
    """`guid_keys` of text that comes in steps: each `add` numbers its chunks on from the ones
    before (the same keys as numbering all of them at once), so that a step can run as soon as
    its text exists. `add` gives None, for this and every later step, once some value is not
    canonical GUID text or numba is missing: the caller numbers the whole text another way."""

    def __init__(self, expected: int, *, distinct: int | None = None):
        # room for `distinct` values (by default, 70% of the `expected` ones) before the table
        # grows, at 24 bytes a slot: at most a few probes, mostly within the first slot's cache
        # line. References repeat (a document's stages, lines and objects name it again), so a
        # caller that knows roughly how many things they name spares the table half its size
        room = expected if distinct is None else -(-10 * distinct // 7)
        self._slots = np.zeros((1 << max(room - 1, 1).bit_length(), 3), dtype=np.uint64)
        self._count = 0
        self._number = _kernels()

    def add(self, chunks) -> np.ndarray | None:
        from receivables.domain.frames import text_buffers

        if self._number is None:
            return None
        keys = np.empty(sum(len(c) for c in chunks), dtype=np.int64)
        start = 0
        for chunk in chunks:
            end = start + len(chunk)
            valid = chunk.is_valid().to_numpy(zero_copy_only=False)
            offsets, data = text_buffers(chunk)
            count, self._slots = self._number(data, offsets, valid, _HEX, self._slots, self._count, keys[start:end])
            if count < 0:
                self._number = None
                return None
            self._count = count
            start = end
        return keys

    def seen(self):
        """The distinct values numbered so far, in key order, as canonical GUID text (a large_string
        array): what a numbering of the text needs to go on from here where this one declined."""
        import pyarrow as pa

        taken = self._slots[(self._slots[:, 2] > 0) & (self._slots[:, 2] <= self._count)]
        words = taken[np.argsort(taken[:, 2]), :2]  # (high, low) by key
        shifts = np.arange(60, -4, -4, dtype=np.uint64)
        digits = np.concatenate([(words[:, [w]] >> shifts) & np.uint64(15) for w in (0, 1)], axis=1)
        text = np.full((len(words), 36), ord("-"), dtype=np.uint8)
        text[:, _DIGIT_PLACES] = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)[digits]
        offsets = np.arange(0, 36 * (len(words) + 1), 36, dtype=np.int64)
        return pa.LargeStringArray.from_buffers(len(words), pa.py_buffer(offsets), pa.py_buffer(text.tobytes()))


#: where canonical GUID text has its 32 digits (the dashes at 8, 13, 18 and 23 between)
_DIGIT_PLACES = np.array([i for i in range(36) if i not in (8, 13, 18, 23)])
