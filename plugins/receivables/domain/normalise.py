"""Raw 1C OData rows -> the canonical frames of `frames.py`, and the as-of view of them: of a
whole extract at once (`normalise`, `as_of_view`) or set by set as the extract task reads them
(`normalise_as_of`).

Vectorised over whole columns: a million orders normalise in seconds. Money becomes
integer kopecks (nullable ``Int64``: a missing or non-numeric amount stays missing for
the validation gate to report, rather than silently becoming zero).
"""

from __future__ import annotations

import datetime as dt
import gc
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from operator import itemgetter
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pandas.api.extensions import take

from receivables.domain import guid_keys
from receivables.domain.frames import (
    BOOL,
    CATEGORICAL,
    DATE,
    FLOAT,
    FRAMES,
    INT,
    KEYED,
    MONEY,
    REF,
    TEXT,
    RunningKeys,
    attach_keys,
    categorical_text,
    category_parts,
    concat_frames,
    frame_keys,
    is_categorical,
    key_positions,
    lookup,
    member,
    release_memory,
    text_buffers,
    text_category,
    with_keys,
)
from receivables.onec.schema import (
    CUSTOMER_PAYMENT,
    EMAIL_CONTACT,
    EMPTY_GUID,
    PHONE_CONTACT,
    READ_SETS,
)

Rows = Sequence[Mapping[str, Any]]
#: what `normalise` reads per entity set: the rows 1C sent, or the client's raw frame of them
#: (`ODataClient.fetch_frame`: one column per field, named as in 1C)
RawSet = Rows | pd.DataFrame


def _columns(rows: Rows, fields: Sequence[str]) -> list[list[Any]]:
    """The rows' values, one list per field (a missing key gives None).

    One C-level `itemgetter` pass and a transpose instead of `DataFrame.from_records`,
    which walks every dict once per column and then infers over a 2-D object array:
    this is most of normalising a million orders.
    """
    fields = list(fields)
    try:
        values = list(map(itemgetter(*fields), rows))
    except (KeyError, TypeError):  # a row without some field: the slow, forgiving way
        return [[r.get(f) for r in rows] for f in fields]
    if len(fields) == 1:
        return [values]
    return [list(col) for col in zip(*values, strict=True)]


def _series(values: list[Any]) -> pd.Series:
    """One column with the dtype `from_records` would infer (bool, float64, str, object).

    A column of text (GUIDs, numbers, dates: most of 1C's JSON) goes straight to Arrow:
    pandas' own inference looks at every element in Python first, ten times slower.
    """
    first = next((v for v in values if v is not None), None)
    if not isinstance(first, str):
        return pd.Series(values)  # numbers, booleans, all missing: let pandas infer
    try:
        arr = pa.array(values, type=pa.string())
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pd.Series(values)
    return pd.Series(arr, dtype="str")


def _frame(rows: RawSet, fields: Sequence[str]) -> pd.DataFrame:
    """The set's `fields` as columns: the one place where a raw set becomes a frame.

    A raw frame is taken as it is (its columns already have the dtypes `_series` would
    give the same values); a field it lacks is all missing, like a key absent from rows.
    """
    if isinstance(rows, pd.DataFrame):
        if rows.empty:
            return pd.DataFrame({f: pd.Series([], dtype=object) for f in fields})
        return pd.DataFrame({f: rows[f] if f in rows.columns else pd.Series([None] * len(rows), dtype=object)
                             for f in fields}, copy=False).reset_index(drop=True)
    if not rows:
        return pd.DataFrame({f: pd.Series([], dtype=object) for f in fields})
    return pd.DataFrame({f: _series(col) for f, col in zip(fields, _columns(rows, fields), strict=True)},
                        copy=False)


_NO_REF = pa.array([EMPTY_GUID, "", "none"])
#: byte positions of four of the empty GUID's zeros (hex digits in any GUID text): only text with
#: '0' at all four (1 GUID in 65 536) is compared with the empty GUID
_ZERO_AT = (0, 35, 19, 24)
#: bytes scanned per step when checking that reference text is canonical (cache-sized)
_SCAN_BLOCK = 1 << 20


def ref(s: pd.Series) -> pd.Series:
    arr = _arrow_text(s)
    if arr is not None:
        canonical = _canonical_refs(arr)
        if canonical is not None:  # what 1C sends: nothing to lower-case or trim
            return pd.Series(canonical, index=s.index, dtype="str")
    if arr is not None and pc.all(pc.string_is_ascii(arr)).as_py() is not False:
        # GUID text, all in Arrow: ASCII lower-casing is several times cheaper than
        # Unicode's (same result), and masking there avoids a numpy round trip per test
        out = pc.ascii_lower(pc.utf8_trim_whitespace(arr))
        if pc.all(pc.equal(out, arr)).as_py() is not False:
            out = arr  # already lower-case and unpadded: share the raw column's memory
        empty = pc.is_in(out, value_set=_NO_REF)
        if pc.any(empty).as_py():
            out = pc.if_else(empty, pa.scalar(None, out.type), out)
        return pd.Series(out, index=s.index, dtype="str")
    out = s.astype("str").str.strip().str.lower()
    return out.mask(s.isna() | (out == EMPTY_GUID) | (out == "") | (out == "none"))


def _canonical_refs(arr: pa.ChunkedArray) -> pa.ChunkedArray | None:
    """`ref` of reference text that lower-casing and trimming would not change, or None
    when some value might change (then the general path runs).

    One scan of the raw bytes (in numpy; a column of GUIDs at scale compiled,
    `guid_keys.empty_guid_rows`) instead of Arrow's trim, lower-case, compare and hash of every
    value (a million open documents hold ~45M references: 3.2 -> 0.4 s of CPU): the text is canonical when it holds no upper-case ASCII, non-ASCII, space or
    control byte. The empty references then keep the text's buffers under a new validity
    bitmap, and only values shaped like one ('', 'none', a GUID starting with '0') are
    compared."""
    # compiled where the numbering's compiled code is loaded anyway (`guid_keys.MIN_VALUES`)
    compiled = len(arr) >= guid_keys.MIN_VALUES and guid_keys.available()
    chunks = [_canonical_chunk(chunk, compiled=compiled) for chunk in arr.chunks]
    if any(chunk is None for chunk in chunks):
        return None
    return pa.chunked_array(chunks, type=arr.type)


def _canonical_chunk(chunk: pa.Array, *, compiled: bool = False) -> pa.Array | None:
    if not len(chunk):
        return chunk
    offsets, data = text_buffers(chunk)
    if len(data) == 36 * len(chunk) and (np.diff(offsets) == 36).all():
        # GUIDs only (no null, no other length)
        maybe = guid_keys.empty_guid_rows(data, _ZERO_AT) if compiled else _empty_guid_rows(data)
        if maybe is None:
            return None
    elif _changes_under_ref(data):
        return None
    else:
        length, start = np.diff(offsets), offsets[:-1]
        first = data[np.minimum(start, len(data) - 1)] if len(data) else np.zeros(len(chunk), np.uint8)
        maybe = np.flatnonzero((length == 0) | ((length == 4) & (first == ord("n"))))
        zero_led = np.flatnonzero((length == 36) & (first == ord("0")))  # one GUID in 16
        for at in _ZERO_AT[1:]:
            zero_led = zero_led[data[start[zero_led] + at] == ord("0")]
        maybe = np.concatenate([maybe, zero_led])
    if not len(maybe):
        return chunk
    empty = pc.is_in(chunk.take(pa.array(maybe)), value_set=_NO_REF).to_numpy(zero_copy_only=False)
    if not empty.any():
        return chunk
    valid = np.ones(chunk.offset + len(chunk), dtype=bool)
    valid[chunk.offset:] = chunk.is_valid().to_numpy(zero_copy_only=False)
    valid[chunk.offset + maybe[empty]] = False
    bitmap = pa.py_buffer(np.packbits(valid, bitorder="little"))
    _, offsets_buf, data_buf = chunk.buffers()
    return pa.Array.from_buffers(chunk.type, len(chunk), [bitmap, offsets_buf, data_buf], offset=chunk.offset)


def _empty_guid_rows(data: np.ndarray) -> np.ndarray | None:
    """For text of 36-byte values only: None when some byte could change under `ref`
    (`_changes_under_ref`), else the values shaped like the empty GUID ('0' at `_ZERO_AT`). One
    pass in cache-sized blocks of whole values: reading those bytes in a pass of their own waited
    on memory for every value (~0.3 s per 40M references)."""
    guids = data.reshape(-1, 36)
    rows = _SCAN_BLOCK // 36
    found = []
    for first in range(0, len(guids), rows):
        block = guids[first:first + rows]
        if _changes_under_ref(block.reshape(-1)):
            return None
        a, b, c, d = _ZERO_AT
        zero = np.flatnonzero((block[:, a] == ord("0")) & (block[:, b] == ord("0")))
        found.append(first + zero[(block[zero, c] == ord("0")) & (block[zero, d] == ord("0"))])
    return np.concatenate(found) if found else np.empty(0, dtype=np.intp)


def _changes_under_ref(data: np.ndarray) -> bool:
    """Whether text bytes hold anything trimming or lower-casing could change: a space or
    control byte, an upper-case ASCII letter, a non-ASCII byte (conservative: an inner space
    counts too). Scanned in cache-sized blocks into reused buffers."""
    signed = data.view(np.int8)  # non-ASCII bytes are negative
    hit = np.empty(min(_SCAN_BLOCK, len(data)), dtype=bool)
    shifted = np.empty(len(hit), dtype=np.uint8)
    for start in range(0, len(data), _SCAN_BLOCK):
        part = signed[start:start + _SCAN_BLOCK]
        n = len(part)
        if part.min() <= 32:  # one reduction: spaces, control bytes and non-ASCII
            return True
        np.subtract(part.view(np.uint8), 65, out=shifted[:n])  # 'A'..'Z' -> 0..25, the rest wraps above
        if np.less(shifted[:n], 26, out=hit[:n]).any():
            return True
    return False


def _arrow_text(s: pd.Series) -> pa.ChunkedArray | None:
    """The Arrow array behind an Arrow-backed text column (a raw frame's), else None."""
    if isinstance(s.dtype, pd.StringDtype) and s.dtype.storage == "pyarrow":
        arr = s.array._pa_array  # noqa: SLF001 (pandas has no public accessor for it)
        return arr if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type) else None
    return None


def _arrow_days(s: pd.Series) -> np.ndarray | None:
    """datetime64[D] of well-formed 'YYYY-MM-DD…' Arrow text, in C; None when any value is
    not a plain date (then `date` takes the careful path)."""
    arr = _arrow_text(s)
    if arr is None:
        return None
    day = pc.utf8_slice_codeunits(arr, 0, 10)
    empty = pc.or_kleene(pc.equal(day, "0001-01-01"), pc.not_equal(pc.utf8_length(day), 10))
    empty = pc.fill_null(empty, True)
    try:
        parsed = pc.cast(pc.if_else(empty, pa.scalar(None, pa.string()), day), pa.date32())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    return parsed.to_numpy(zero_copy_only=False).astype("datetime64[D]")


#: 1C's empty date (0001-01-01T00:00:00): no date
_EMPTY_DAY = np.datetime64("0001-01-01", "D")


def date(s: pd.Series) -> pd.Series:
    """'2026-03-20T10:15:00' -> 2026-03-20 as datetime64[s]; 1C's empty date -> NaT.

    Parsed through numpy's datetime64[D] so that years 0001 and 3000 survive parsing
    and reach the validation gate instead of becoming NaT silently. Timestamps the client
    parsed already (`schema.DATE_FIELDS`, datetime64[s]) are cut to their day.
    """
    if s.dtype == "datetime64[s]":
        days = s.to_numpy().astype("datetime64[D]")
        days[days == _EMPTY_DAY] = np.datetime64("NaT", "D")
        return pd.Series(days.astype("datetime64[s]"), index=s.index)
    days = _arrow_days(s)
    if days is not None:  # a raw frame's well-formed dates: parsed by Arrow
        return pd.Series(days.astype("datetime64[s]"), index=s.index)
    text = s.astype("str").str.slice(0, 10)
    text = text.where(s.notna() & (text != "0001-01-01") & (text.str.len() == 10), "NaT")
    try:
        days = np.array(text.to_numpy(dtype=object), dtype="datetime64[D]")
    except ValueError:
        days = np.array([_safe_day(t) for t in text.to_numpy(dtype=object)], dtype="datetime64[D]")
    return pd.Series(days.astype("datetime64[s]"), index=s.index)


def _safe_day(text: str) -> np.datetime64:
    try:
        return np.datetime64(text, "D")
    except ValueError:
        return np.datetime64("NaT", "D")


def money(s: pd.Series) -> pd.Series:
    """Rubles (JSON numbers) -> integer kopecks, exact for amounts with two decimals."""
    rubles = pd.to_numeric(s, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    with np.errstate(over="ignore", invalid="ignore"):  # absurd amounts become inf: missing below
        kop = np.rint(rubles * 100.0)
    out = _int64_or_missing(kop, ~(np.abs(kop) < 9e15))  # (NaN and inf compare False)
    out.index = s.index
    return out


def _int64_or_missing(values: np.ndarray, missing: np.ndarray) -> pd.Series:
    """Nullable Int64 of whole float64 `values` (ours: written to), `missing` where marked; built
    from the two arrays as they are (`pd.array` and a masked assignment copied and checked both)."""
    if missing.any():
        values[missing] = 0
    return pd.Series(pd.arrays.IntegerArray(values.astype("int64"), missing))


def text(s: pd.Series) -> pd.Series:
    arr = _arrow_text(s)
    if arr is not None and not any(_may_end_in_space(chunk) for chunk in arr.chunks):
        return pd.Series(arr, index=s.index, dtype="str")  # nothing to strip: the raw column's memory
    out = s.astype("str").str.rstrip()  # 1C pads fixed-length strings with spaces
    return out.mask(s.isna())


#: the byte before the last of the UTF-8 of every non-ASCII White_Space character: U+0085 and
#: U+00A0 (C2 xx), U+1680 (E1 9A 80), U+2000-200A, U+2028-2029, U+202F (E2 80 xx), U+205F (E2 81 9F),
#: U+3000 (E3 80 80); letters (Cyrillic: D0/D1 xx) never have it
_SPACE_PENULTIMATE = np.array([0xC2, 0x80, 0x81, 0x9A], dtype=np.uint8)


def _may_end_in_space(chunk: pa.Array) -> bool:
    """Whether any value of an Arrow text chunk might end in whitespace (so rstrip could change
    it), judged from its last two bytes: an ASCII space or control, or a non-ASCII character
    whose byte before the last is one of a White_Space character's (conservative)."""
    if not len(chunk):
        return False
    offsets, data = text_buffers(chunk)
    ends = offsets[1:][offsets[1:] > offsets[:-1]]  # non-empty values (nulls hold no bytes)
    if not len(ends):
        return False
    last = data[ends - 1]
    if (last <= 0x20).any():
        return True
    wide = ends[(last >= 0x80) & (ends >= 2)]
    return bool(np.isin(data[wide - 2], _SPACE_PENULTIMATE).any())


def boolean(s: pd.Series) -> pd.Series:
    return s.map(lambda v: v is True or v == "true").astype(bool) if s.dtype == object else s.astype(bool)


def _numbers(s: pd.Series) -> np.ndarray:
    """float64 of a column of numbers or numeric text; anything else becomes NaN.

    Arrow-backed text is parsed by Arrow when every value is a number, else by pandas."""
    arr = _arrow_text(s)
    if arr is not None:
        try:
            return pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
    return pd.to_numeric(s, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)


def integer(s: pd.Series) -> pd.Series:
    """Int64 arrives as text; anything not a whole finite number becomes missing."""
    num = _numbers(s)
    ok = np.isfinite(num) & (np.abs(num) < 2**53) & (num == np.floor(np.where(np.isfinite(num), num, 0)))
    out = _int64_or_missing(np.array(num, dtype="float64"), ~ok)
    out.index = s.index
    return out


def floating(s: pd.Series) -> pd.Series:
    return pd.to_numeric(s, errors="coerce").astype("float64")


def _per_category(convert):
    """`convert` for a categorical column too (the client's dictionary-encoded fields): the
    distinct values are converted once; text stays categorical (its converted categories,
    deduplicated and sorted), other kinds are taken from the converted values by code."""
    def converted(s: pd.Series) -> pd.Series:
        if not is_categorical(s):
            return convert(s)
        categories, codes = category_parts(s)
        values = convert(pd.Series(categories.astype(object) if categories.dtype != "str" else categories.array))
        if values.dtype == "str":
            out = text_category(values, codes)
        else:
            out = pd.Series(take(values.array, codes, allow_fill=True))
        out.index = s.index
        return out

    converted.__doc__ = convert.__doc__
    return converted


_CONVERT = {kind: _per_category(fn) for kind, fn in
            {REF: ref, DATE: date, MONEY: money, TEXT: text, BOOL: boolean, INT: integer, FLOAT: floating}.items()}


def convert(kind: str, s: pd.Series, *, categorical: bool = False) -> pd.Series:
    """`s` converted to the contract's `kind`; a categorical of the text when `categorical`
    (`frames.CATEGORICAL`), else plain values."""
    out = _CONVERT[kind](s)
    if categorical and not is_categorical(out):
        return text_category(out)
    if not categorical and is_categorical(out):
        return categorical_text(out)
    return out


def typed(df: pd.DataFrame, frame: str, ready: tuple[str, ...] = ()) -> pd.DataFrame:
    """Apply the kinds of `frames.FRAMES[frame]` to same-named columns, in contract order
    (`frames.CATEGORICAL`'s as categoricals); the `ready` columns are converted already and
    taken as they are."""
    spec, categorical = FRAMES[frame], CATEGORICAL.get(frame, frozenset())
    out = pd.DataFrame(index=df.index)
    for col, kind in spec.items():
        if col in ready:
            out[col] = df[col]
        else:
            values = df[col] if col in df.columns else pd.Series([None] * len(df), index=df.index, dtype=object)
            out[col] = convert(kind, values, categorical=col in categorical)
    return out.reset_index(drop=True)


def _rename(rows: RawSet, mapping: Mapping[str, str]) -> pd.DataFrame:
    df = _frame(rows, list(mapping))
    return df.rename(columns=dict(mapping))


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic GC: every few hundred new tuples it would rescan the millions of
    raw row dicts (which hold no cycles), several times over for a large extract."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def normalise(raw: Mapping[str, RawSet]) -> dict[str, pd.DataFrame]:
    """Every canonical frame from the raw sets of `onec.schema.READ_SETS` (row lists or
    the client's raw frames; both give the same frames), the `KEYED` references numbered together
    (`frames.with_keys`). The extract task normalises set by set instead (`normalise_as_of`, the
    same frames as this one's `as_of_view`); this whole-extract way is the plain one, what tests
    and the benchmark's row-by-row reference compare with."""
    with _gc_paused():
        made = {frame: make(raw) for frame, make in (("orders", _orders), ("stages", _stages),
                                                     ("settlement_objects", _settlement_objects))}
        frames = with_keys({**made, "payments": _payments(raw), **_small_frames(raw)})
    release_memory()
    return frames


#: the big documents' entity sets (as `onec.schema.READ_SETS` names them)
ORDERS, STAGES, SETTLEMENT_OBJECTS = ("Document_ЗаказКлиента", "Document_ЗаказКлиента_ЭтапыГрафикаОплаты",
                                      "Catalog_ОбъектыРасчетов")
#: (source, receipts' set, their lines' set) of the payments
PAYMENT_SETS = (
    ("bank", "Document_ПоступлениеБезналичныхДенежныхСредств",
     "Document_ПоступлениеБезналичныхДенежныхСредств_РасшифровкаПлатежа"),
    ("cash", "Document_ПриходныйКассовыйОрдер", "Document_ПриходныйКассовыйОрдер_РасшифровкаПлатежа"),
)


def _orders(raw: Mapping[str, RawSet]) -> pd.DataFrame:
    return typed(_rename(raw[ORDERS], {
        "Ref_Key": "document_ref", "Number": "document_number", "Date": "document_date",
        "Posted": "posted", "DeletionMark": "deleted", "Партнер_Key": "partner_ref",
        "Контрагент_Key": "counterparty_ref", "Организация_Key": "organization_ref",
        "Договор_Key": "contract_ref", "Менеджер_Key": "manager_ref", "СуммаДокумента": "amount",
        "Валюта_Key": "currency_ref", "Статус": "status", "ПорядокРасчетов": "settlement",
        "ОбъектРасчетов_Key": "settlement_ref"}), "orders")


def _stages(raw: Mapping[str, RawSet]) -> pd.DataFrame:
    return typed(_rename(raw[STAGES], {
        "Ref_Key": "document_ref", "LineNumber": "line", "ДатаПлатежа": "pay_date",
        "СуммаПлатежа": "amount", "ПроцентПлатежа": "percent", "ВариантОплаты": "option"}), "stages")


def _settlement_objects(raw: Mapping[str, RawSet]) -> pd.DataFrame:
    return typed(_rename(raw[SETTLEMENT_OBJECTS], {
        "Ref_Key": "settlement_ref", "Объект": "object_ref", "Объект_Type": "object_type",
        "ТипОбъектаРасчетов": "kind", "Партнер_Key": "partner_ref",
        "Организация_Key": "organization_ref"}), "settlement_objects")


def _small_frames(raw: Mapping[str, RawSet]) -> dict[str, pd.DataFrame]:
    """Partners, their contacts and segments, counterparties, contracts, managers, organizations."""
    frames: dict[str, pd.DataFrame] = {}
    frames["partners"] = typed(_rename(raw["Catalog_Партнеры"], {
        "Ref_Key": "partner_ref", "Code": "code", "Description": "partner_name",
        "НаименованиеПолное": "full_name", "ОсновнойМенеджер_Key": "main_manager_ref",
        "ЮрФизЛицо": "legal_form", "Клиент": "is_client", "DeletionMark": "deleted"}), "partners")
    kinds = typed(_rename(raw["Catalog_ВидыКонтактнойИнформации"],
                          {"Ref_Key": "kind_ref", "Description": "kind_name"}),
                  "contacts").loc[:, ["kind_ref", "kind_name"]].dropna(subset=["kind_ref"])
    contacts = typed(_rename(raw["Catalog_Партнеры_КонтактнаяИнформация"], {
        "Ref_Key": "partner_ref", "LineNumber": "line", "Тип": "type", "Вид_Key": "kind_ref",
        "АдресЭП": "email", "НомерТелефона": "phone", "Представление": "presentation"}), "contacts")
    # a lookup, not a merge: the merge's checks turn the references into Python strings while
    # holding the GIL that the big sets' threads need
    kind_names = kinds.drop_duplicates("kind_ref").set_index("kind_ref")["kind_name"]
    frames["contacts"] = contacts.assign(kind_name=lookup(contacts["kind_ref"], kind_names))
    frames["counterparties"] = typed(_rename(raw["Catalog_Контрагенты"], {
        "Ref_Key": "counterparty_ref", "Description": "name", "НаименованиеПолное": "full_name",
        "ИНН": "inn", "КПП": "kpp", "Партнер_Key": "partner_ref", "ЮрФизЛицо": "legal_form"}),
        "counterparties")
    frames["contracts"] = typed(_rename(raw["Catalog_ДоговорыКонтрагентов"], {
        "Ref_Key": "contract_ref", "Номер": "number", "Дата": "contract_date", "Description": "name",
        "Партнер_Key": "partner_ref", "Контрагент_Key": "counterparty_ref",
        "Организация_Key": "organization_ref", "ПорядокРасчетов": "settlement",
        "УстановленСрокОплаты": "has_term", "СрокОплаты": "term_days", "Статус": "status"}), "contracts")
    frames["managers"] = _managers(raw)
    frames["organizations"] = typed(_rename(raw["Catalog_Организации"], {
        "Ref_Key": "organization_ref", "Description": "organization_name",
        "НаименованиеПолное": "full_name", "ИНН": "inn", "КПП": "kpp"}), "organizations")
    seg_names = typed(_rename(raw["Catalog_СегментыПартнеров"],
                              {"Ref_Key": "segment_ref", "Description": "segment_name"}), "segments")
    members = typed(_rename(raw["InformationRegister_ПартнерыСегмента"],
                            {"Сегмент_Key": "segment_ref", "Партнер_Key": "partner_ref"}), "segments")
    segment_names = seg_names.drop_duplicates("segment_ref").set_index("segment_ref")["segment_name"]
    frames["segments"] = members.assign(segment_name=lookup(members["segment_ref"], segment_names))
    return frames


def _payments(raw: Mapping[str, RawSet], done: Callable[[str], Any] = lambda name: None, *,
              min_values: int | None = None) -> pd.DataFrame:
    """The receipts' lines of customer payments, each with its receipt's number and date.

    The receipts' references and their lines' are numbered together, both kinds of receipt on one
    numbering (`frames.RunningKeys`; `min_values`: as there): a line finds its receipt by key, and
    its key is the frame's ``payment_key``, the integer identity of ``payment_ref`` (equal text,
    equal key; missing, -1) on which the gate checks that a receipt's lines are not repeated."""
    parts = []
    numbering: RunningKeys | None = None
    for source, header, rows in PAYMENT_SETS:
        head = _rename(raw[header], {
            "Ref_Key": "payment_ref", "Number": "payment_number", "Date": "payment_date",
            "Posted": "posted", "DeletionMark": "deleted", "Организация_Key": "organization_ref",
            "ХозяйственнаяОперация": "operation"})
        receipt = ref(head["payment_ref"])
        # only posted, not deleted receipts of customer payments settle orders
        keep = boolean(head["posted"]) & ~boolean(head["deleted"]) & (_CONVERT[TEXT](head["operation"]) == CUSTOMER_PAYMENT)
        kept = np.flatnonzero(keep.to_numpy(dtype=bool))
        lines = _rename(raw[rows], {"Ref_Key": "payment_ref", "LineNumber": "line",
                                    "Партнер_Key": "partner_ref", "Сумма": "amount",
                                    "ОбъектРасчетов_Key": "settlement_ref"})
        lines["payment_ref"] = ref(lines["payment_ref"])
        if numbering is None:  # sized by the first (bank) receipts, with room for the cash ones; grown if short
            numbering = RunningKeys(len(receipt) + len(lines), distinct=len(receipt) * 5 // 4 + 1,
                                    min_values=min_values)
        receipt_keys = numbering.add(receipt)
        line_keys = numbering.add(lines["payment_ref"])
        # an inner join on the kept receipt (its first row), in the lines' order, by position;
        # the receipt's columns converted before they are taken (fewer rows, no text copied)
        at = key_positions(line_keys, receipt_keys if len(kept) == len(head) else receipt_keys[kept])
        hit = np.flatnonzero(at >= 0)
        row = kept[at[hit]]
        every_line = len(hit) == len(lines)
        joined = lines if every_line else lines.take(hit)
        joined = joined.reset_index(drop=True)
        del lines
        done(rows)  # what the join took of the lines is its own (or it is all of them): the set can go
        for col, kind in (("payment_number", TEXT), ("payment_date", DATE), ("organization_ref", REF)):
            joined[col] = convert(kind, head[col], categorical=col in CATEGORICAL["payments"]
                                  ).take(row).reset_index(drop=True)
        del head
        done(header)  # (and the receipts, before the lines' columns are converted)
        # one value for every line: a categorical of it as it stands (as text it was factorized per row)
        joined["source"] = pd.Categorical.from_codes(np.zeros(len(joined), dtype=np.int8),
                                                     dtype=pd.CategoricalDtype(pd.Index([source], dtype="str")))
        part = typed(joined, "payments", ready=("payment_ref", "payment_number", "payment_date", "organization_ref"))
        part["payment_key"] = line_keys if every_line else line_keys[hit]
        parts.append(part)
        del joined, receipt_keys, line_keys
    if not parts:
        return typed(pd.DataFrame(), "payments").assign(payment_key=np.empty(0, dtype="int64"))
    return concat_frames(parts)


def _managers(raw: Mapping[str, RawSet]) -> pd.DataFrame:
    users = _rename(raw["Catalog_Пользователи"], {"Ref_Key": "manager_ref", "Description": "manager_name",
                                                  "Недействителен": "invalid"})
    ci = typed(_rename(raw["Catalog_Пользователи_КонтактнаяИнформация"], {
        "Ref_Key": "partner_ref", "LineNumber": "line", "Тип": "type", "АдресЭП": "email",
        "НомерТелефона": "phone", "Представление": "presentation"}), "contacts")
    ci = ci.sort_values(["partner_ref", "line"])
    emails = ci[(ci["type"] == EMAIL_CONTACT)].assign(
        email=lambda d: d["email"].fillna(d["presentation"])).drop_duplicates("partner_ref")
    phones = ci[(ci["type"] == PHONE_CONTACT)].assign(
        phone=lambda d: d["phone"].fillna(d["presentation"])).drop_duplicates("partner_ref")
    users["manager_ref"] = ref(users["manager_ref"])
    users = users.merge(emails[["partner_ref", "email"]].rename(columns={"partner_ref": "manager_ref"}),
                        on="manager_ref", how="left")
    users = users.merge(phones[["partner_ref", "phone"]].rename(columns={"partner_ref": "manager_ref"}),
                        on="manager_ref", how="left")
    return typed(users, "managers")


def as_of_view(frames: Mapping[str, pd.DataFrame], as_of: dt.date, *,
               extracted_on: dt.date | None = None) -> dict[str, pd.DataFrame]:
    """What existed on the as-of date: later documents and payments are dropped.

    Rows dated implausibly far in the future (more than a month after the extraction
    date, e.g. year 3000) are kept so that the validation gate reports them.
    """
    out = dict(frames)
    for name in AS_OF_DATES:
        out[name] = _until(frames[name], name, as_of, extracted_on)
    out["stages"] = _live_stages(frames["stages"], out["orders"])
    return out


#: the frames dated by a column (their documents' or receipts' date) that the as-of view cuts
AS_OF_DATES = {"orders": "document_date", "payments": "payment_date"}


def _until(df: pd.DataFrame, name: str, as_of: dt.date, extracted_on: dt.date | None) -> pd.DataFrame:
    """`as_of_view`'s rows of frame `name`: none dated after the as-of date, short of the horizon."""
    col = AS_OF_DATES[name]
    cutoff = np.datetime64(as_of, "s")
    horizon = np.datetime64(max(as_of, extracted_on or dt.date.today()) + dt.timedelta(days=31), "s")
    later = (df[col] > cutoff) & (df[col] <= horizon)
    if later.any():  # usually nothing is later (a daily run as of today): no copy then
        return df.loc[~later].reset_index(drop=True)
    return df


def _live_stages(stages: pd.DataFrame, orders: pd.DataFrame) -> pd.DataFrame:
    """The stages of the as-of view's `orders`."""
    stage_keys, order_keys = frame_keys(stages, "document_ref"), frame_keys(orders, "document_ref")
    if stage_keys is not None and order_keys is not None:
        live = key_positions(stage_keys, order_keys[order_keys >= 0]) >= 0
    else:
        live = member(stages["document_ref"], orders["document_ref"])
    return stages if live.all() else stages.loc[live].reset_index(drop=True)


def normalise_as_of(fetch: Callable[[str], RawSet], as_of: dt.date, emit: Callable[[str, pd.DataFrame], Any], *,
                    extracted_on: dt.date | None = None, min_values: int | None = None) -> dict[str, int]:
    """`as_of_view(normalise(raw), ...)`, frame by frame, for an extract that writes each frame
    and lets it go: `fetch(entity set)` reads a raw set when it is needed (each once), `emit(frame
    name, frame)` takes a finished frame. Returns the rows read per entity set.

    The same frames, keys included, as the whole-extract way; but only the receipts' sets with the
    payments' frame being made from them, the document set being read with its frame, and each
    domain's numbering so far are held at once, never the whole raw extract and every frame beside
    it (at a million open documents ~1.3 GB of raw sets and as much again of frames). The
    references are numbered as each frame is made, in `KEYED`'s order (`frames.RunningKeys`);
    `min_values`: as there. At a million open documents the worker (the payments, then the settlement
    objects' own references and the small frames) takes this from 2.8 to ~1.75 s; the process peaks
    at ~1.8 GB keeping what the aging and plan tasks read back.
    """
    read: dict[str, int] = {}
    raw = _Reads(fetch, read)
    # the payments' frame (two joins of receipts and their lines: the longest to make) is made on a
    # worker while this thread makes the documents' frames. Every set is still read on this thread,
    # one at a time (1C is asked one thing at a time), the receipts' first: the worker then makes
    # the payments meanwhile, while the orders are read. Only the numbering waits: the payments'
    # settlement references are numbered here, after the settlement objects', in `KEYED`'s order
    for _, header, rows in PAYMENT_SETS:
        raw[header], raw[rows]  # noqa: B018 (read now, on this thread)
    with ThreadPoolExecutor(1, thread_name_prefix="normalise-payments") as pool:
        paid = pool.submit(_payments, raw, raw.done, min_values=min_values)
        _documents_as_of(raw, pool, paid, as_of, emit, extracted_on=extracted_on, min_values=min_values)
    return read


def _documents_as_of(raw: _Reads, worker: ThreadPoolExecutor, paid: Future, as_of: dt.date,
                     emit: Callable[[str, pd.DataFrame], Any], *, extracted_on: dt.date | None,
                     min_values: int | None) -> None:
    """`normalise_as_of`'s part on the calling thread: the documents, then the payments made on
    the `worker` (`paid`) numbered and cut, then the small frames."""
    orders = _orders(raw)
    raw.done(ORDERS)
    # each domain's columns name its things about three times over (a document: its order, stages
    # and settlement object; a settlement object: its order, itself and its payments), and there are
    # about as many of them as orders: room for that many, the table grown if it falls short
    running = {domain: RunningKeys(3 * len(orders), distinct=len(orders), min_values=min_values)
               for domain in KEYED}

    def number(domain: str, name: str, df: pd.DataFrame) -> list:
        return [running[domain].add(df[col]) for frame, col in KEYED[domain] if frame == name]

    def keyed(name: str, df: pd.DataFrame, beside: ThreadPoolExecutor | None = None) -> pd.DataFrame:
        # `beside`: a worker with nothing to do; every domain but the first is numbered there meanwhile
        # (compiled code that lets go of the GIL). Each domain's columns are still numbered in `KEYED`'s order
        first, *rest = KEYED
        there = {domain: beside.submit(number, domain, name, df) for domain in rest} if beside else {}
        keys = {first: number(first, name, df)}
        keys.update({domain: there[domain].result() if domain in there else number(domain, name, df)
                     for domain in rest})
        return attach_keys({name: df}, keys)[name]

    orders = _until(keyed("orders", orders), "orders", as_of, extracted_on)
    emit("orders", orders)
    orders = orders[["document_key"]]  # what the stages' cut needs of them
    stages = _stages(raw)
    raw.done(STAGES)
    emit("stages", _live_stages(keyed("stages", stages), orders))
    del stages, orders
    # by now the payments' worker has usually made them: the objects' two references are then numbered
    # side by side (at a million open documents ~0.15 s sooner; beside the orders' numbering, while the
    # worker was still making the payments, it raised the peak by ~0.15 GB)
    emit("settlement_objects", keyed("settlement_objects", _settlement_objects(raw),
                                     beside=worker if paid.done() else None))
    raw.done(SETTLEMENT_OBJECTS)
    # the small sets read here, then made into their frames on the worker while the payments are numbered
    for name in READ_SETS:
        if name not in raw.read:
            raw[name]  # noqa: B018 (read now, on this thread)
    small = worker.submit(_small_frames, raw)
    emit("payments", _until(keyed("payments", paid.result()), "payments", as_of, extracted_on))
    for name, df in small.result().items():
        emit(name, df)


class _Reads(Mapping):
    """The raw sets of `normalise_as_of`, each read on first use and dropped when `done`."""

    def __init__(self, fetch: Callable[[str], RawSet], read: dict[str, int]):
        self._fetch, self._read, self._sets = fetch, read, {}

    @property
    def read(self) -> dict[str, int]:
        """The rows read so far per set (a set read once is never read again)."""
        return self._read

    def __getitem__(self, name: str) -> RawSet:
        if name not in self._sets:
            if name in self._read:
                raise RuntimeError(f"{name} was read once already and let go")
            self._sets[name] = self._fetch(name)
            self._read[name] = len(self._sets[name])
        return self._sets[name]

    def done(self, name: str) -> None:
        self._sets.pop(name, None)
        release_memory()

    def __iter__(self) -> Iterator[str]:
        return iter(self._sets)

    def __len__(self) -> int:
        return len(self._sets)
