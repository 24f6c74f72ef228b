"""1C JSON quirks become the canonical types of frames.py."""

from __future__ import annotations

import datetime as dt
import itertools
import threading

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from receivables.domain.normalise import date, money, ref, text


def test_money_becomes_exact_integer_kopecks():
    s = money(pd.Series([125000.5, 0.29, 1.005, 99999999.99, None, "abc", float("nan")]))
    assert s.tolist()[:4] == [12500050, 29, 100, 9999999999]  # 1.005 is 1.00499.. in binary: 100
    assert s.isna().tolist()[4:] == [True, True, True]
    assert str(s.dtype) == "Int64"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.none(),
                          st.integers(-(10**17), 10**17).map(lambda k: k / 100)), max_size=20), st.booleans())
def test_money_and_integers_are_missing_exactly_where_no_whole_int64_is_meant(values, shuffled_index):
    from receivables.domain.normalise import integer

    index = pd.RangeIndex(len(values))[::-1] if shuffled_index else None
    s = pd.Series(values, dtype="float64", index=index)
    kop, num = money(s), integer(s)
    assert str(kop.dtype) == str(num.dtype) == "Int64" and kop.index.equals(s.index) and num.index.equals(s.index)
    for v, k, n in zip(values, kop, num, strict=True):
        cents = None if v is None or not np.isfinite(v * 100.0) else np.rint(v * 100.0)
        assert (k is pd.NA) == (cents is None or abs(cents) >= 9e15)
        assert k is pd.NA or k == int(cents)
        whole = v is not None and np.isfinite(v) and abs(v) < 2**53 and v == np.floor(v)
        assert (n is pd.NA) != whole and (n is pd.NA or n == int(v))


def test_empty_reference_and_case():
    s = ref(pd.Series(["00000000-0000-0000-0000-000000000000", "B1C89D94-CB6A-11E6-AEDE-5404A6B4B8ED", None]))
    assert s.isna().tolist() == [True, False, True]
    assert s.iloc[1] == "b1c89d94-cb6a-11e6-aede-5404a6b4b8ed"


def test_dates_keep_impossible_years_for_the_gate_and_empty_date_is_missing():
    s = date(pd.Series(["2026-03-20T10:15:00", "0001-01-01T00:00:00", "3000-01-01T00:00:00", None, "junk"]))
    assert str(s.dtype) == "datetime64[s]"
    assert s.iloc[0] == pd.Timestamp("2026-03-20")
    assert s.iloc[2].year == 3000
    assert s.isna().tolist() == [False, True, False, True, True]


def test_fixed_length_strings_lose_trailing_spaces():
    assert text(pd.Series(["ТД00-000123   ", None])).tolist()[0] == "ТД00-000123"


def test_as_of_view_keeps_far_future_rows_for_the_gate():
    from factories import frames, order
    from receivables.domain.normalise import as_of_view

    f = frames(orders=[order("A", "2026-11-02", 1), order("B", "2026-11-25", 1), order("C", "3000-01-01", 1)])
    view = as_of_view(f, dt.date(2026, 11, 20), extracted_on=dt.date(2026, 11, 23))
    assert view["orders"]["document_number"].tolist() == ["A", "C"]


# -- raw frames (ODataClient.fetch_frame) give what row lists give ------------------------

def _frames_equal(a: dict[str, pd.DataFrame], b: dict[str, pd.DataFrame]) -> None:
    assert set(a) == set(b)
    for name in a:
        pd.testing.assert_frame_equal(a[name], b[name], obj=name)


def _raw_frames(raw: dict[str, list[dict]], page: int) -> dict[str, pd.DataFrame]:
    """Each set as the extract reads it (`extract.fetch_set`): pages of `page` rows, converted one by one."""
    from receivables.extract import frame_of_pages
    from receivables.onec.schema import READ_SETS

    out = {}
    for name in READ_SETS:
        rows = raw[name]
        out[name] = frame_of_pages(name, [rows[i:i + page] for i in range(0, len(rows), page)] or [[]])
    return out


def test_raw_frames_normalise_exactly_like_row_lists():
    from receivables.domain.normalise import normalise
    from receivables.onec.emulator.generator import generate_company

    ds = generate_company(seed=5, scale=0.02, end_date=dt.date(2026, 11, 20))
    raw = {name: [dict(r) for r in ds.rows(name)] for name in ds.names()}
    frames = _raw_frames(raw, page=37)
    assert str(frames["Document_ЗаказКлиента"]["Ref_Key"].dtype) == "str"  # Arrow-backed text
    assert frames["Document_ЗаказКлиента"]["Партнер_Key"].dtype == "category"  # dictionary-encoded
    assert frames["Document_ЗаказКлиента"]["Date"].dtype == "datetime64[s]"  # parsed page by page
    assert len(frames["Document_ЗаказКлиента"]) == len(raw["Document_ЗаказКлиента"]) > 0
    _frames_equal(normalise(frames), normalise(raw))


def test_repeating_columns_are_sorted_categories_of_the_text_plain_columns_text():
    """`frames.CATEGORICAL` columns are categoricals of exactly the text the plain path gives
    (sorted categories, each used), whichever way the raw set came; the rest is plain."""
    from receivables.domain.frames import CATEGORICAL, FRAMES
    from receivables.domain.normalise import normalise
    from receivables.onec.emulator.generator import generate_company

    ds = generate_company(seed=7, scale=0.01, end_date=dt.date(2026, 11, 20))
    raw = {name: [dict(r) for r in ds.rows(name)] for name in ds.names()}
    raw["Document_ЗаказКлиента"][0]["Партнер_Key"] = "  " + raw["Document_ЗаказКлиента"][0]["Партнер_Key"].upper()
    raw["Document_ЗаказКлиента"][1]["Организация_Key"] = "00000000-0000-0000-0000-000000000000"
    for frames in (normalise(raw), normalise(_raw_frames(raw, page=50))):
        for name, spec in FRAMES.items():
            for col in spec:
                values = frames[name][col]
                if col not in CATEGORICAL.get(name, ()):
                    assert values.dtype != "category", (name, col)
                    continue
                assert values.dtype == "category", (name, col)
                cats = list(values.cat.categories)
                assert cats == sorted(cats) and set(values.dropna()) == set(cats), (name, col)
        orders = frames["orders"]
        assert orders["partner_ref"].iloc[0] == raw["Document_ЗаказКлиента"][0]["Партнер_Key"].strip().lower()
        assert pd.isna(orders["organization_ref"].iloc[1])  # the empty reference: missing


def test_raw_frame_text_columns_are_one_contiguous_array():
    """Pages' text becomes one buffer per column (not one per page, scattered among freed
    page memory), nulls and empty pages included."""
    import pyarrow as pa

    from receivables.onec.client import frame_from_pages

    pages = [[{"Ref_Key": f"k{i}", "Description": None if i % 3 else f"имя {i}"} for i in range(j, j + 4)]
             for j in range(0, 12, 4)] + [[]]
    df, _ = frame_from_pages(pages, ["Ref_Key", "Description"], ["Ref_Key"])
    for col in df.columns:
        arr = df[col].array._pa_array
        assert arr.num_chunks == 1 and arr.type == pa.large_string()
    assert df["Ref_Key"].tolist() == [f"k{i}" for i in range(12)]
    assert df["Description"].isna().tolist() == [bool(i % 3) for i in range(12)]
    assert df["Description"].iloc[3] == "имя 3"


def test_raw_frames_keep_odd_values_for_the_gate_as_row_lists_do():
    """Money as text, a page of integers then a page of floats, mixed types, an all-missing
    field and a field 1C left out: the frame path gives the same frames as the rows path."""
    from receivables.domain.normalise import normalise
    from receivables.onec.schema import READ_SETS

    raw: dict[str, list[dict]] = {name: [] for name in READ_SETS}
    guid = "b1c89d94-cb6a-11e6-aede-5404a6b4b8e{}"
    raw["Document_ЗаказКлиента"] = [
        {f: None for f in READ_SETS["Document_ЗаказКлиента"]} | {
            "Ref_Key": guid.format(i), "Number": f"ТД00-00000{i}  ", "Date": date_, "Posted": posted,
            "DeletionMark": False, "СуммаДокумента": amount}
        for i, (date_, posted, amount) in enumerate([
            ("2026-03-20T10:15:00", True, 100), ("3000-01-01T00:00:00", True, 200),  # page 1: ints
            ("junk", "true", 100.5), ("0001-01-01T00:00:00", False, "12x"),  # page 2: mixed
            (None, None, None)])]
    del raw["Document_ЗаказКлиента"][3]["Статус"]  # a field 1C did not send
    frames = _raw_frames(raw, page=2)
    # the first page's timestamps were parsed, the second's were not: the column is 1C's text again
    assert frames["Document_ЗаказКлиента"]["Date"].tolist()[:4] == [
        "2026-03-20T10:15:00", "3000-01-01T00:00:00", "junk", "0001-01-01T00:00:00"]
    orders = normalise(frames)["orders"]
    _frames_equal(normalise(frames), normalise(raw))
    assert orders["amount"].isna().tolist() == [False, False, False, True, True]  # "12x" stays bad
    assert orders["document_date"].iloc[1].year == 3000


def test_raw_frame_dictionary_encodes_text_of_the_fields_asked_and_only_text():
    """Asked-for fields holding text become categoricals of it (missing values and all-missing
    pages included); a field whose pages disagree in type is what it would be unencoded."""
    from receivables.onec.client import frame_from_pages

    pages = [[{"k": f"r{i}", "a": ["x", "y", None][i % 3], "b": "1" if i < 4 else 2} for i in range(j, j + 4)]
             for j in range(0, 12, 4)] + [[{"k": "r12", "a": None, "b": None}], []]
    df, _ = frame_from_pages(pages, ["k", "a", "b"], ["k"], categorical=["a", "b"])
    plain, _ = frame_from_pages(pages, ["k", "a", "b"], ["k"])
    assert df["a"].dtype == "category" and df["a"].cat.categories.dtype == "str"
    pd.testing.assert_series_equal(df["a"].astype("str"), plain["a"])
    assert df["a"].isna().sum() == 5
    pd.testing.assert_series_equal(df["b"], plain["b"])  # text on one page, numbers on others
    assert df["k"].dtype == "str"


def test_raw_frame_parses_1c_timestamps_page_by_page_and_keeps_any_other_text_as_it_came():
    """The asked-for timestamp fields become datetime64[s] when every page holds 1C's timestamp
    text (the empty date, year 3000, missing values and empty pages included); one page of
    anything else (an impossible day, a date alone, a space for the 'T', a number) leaves the
    whole column exactly the text the unparsed frame has."""
    from receivables.onec.client import frame_from_pages

    good = ["2026-03-20T10:15:00", "0001-01-01T00:00:00", "3000-12-31T23:59:59", None, "2024-02-29T00:00:00"]

    def pages(values):
        rows = [{"k": f"r{i}", "d": v, "e": v} for i, v in enumerate(values)]
        return [rows[i:i + 2] for i in range(0, len(rows), 2)] + [[]]

    df, _ = frame_from_pages(pages(good), ["k", "d", "e"], ["k"], dates=["d"])
    assert df["d"].dtype == "datetime64[s]"
    assert df["d"].tolist()[:3] == [pd.Timestamp("2026-03-20 10:15:00"), pd.Timestamp("0001-01-01").as_unit("s"),
                                    pd.Timestamp("3000-12-31 23:59:59")]
    assert df["d"].isna().tolist() == [False, False, False, True, False]
    assert df["e"].dtype == "str"  # not asked for: text
    for odd in ("2026-02-30T00:00:00", "2026-11-20", "2026-11-20 10:15:00", "2026-1-05T00:00:00", 20261120):
        values = [*good, odd]
        parsed, _ = frame_from_pages(pages(values), ["k", "d"], ["k"], dates=["d"])
        plain, _ = frame_from_pages(pages(values), ["k", "d"], ["k"])
        pd.testing.assert_frame_equal(parsed, plain, obj=repr(odd))


def test_raw_frame_drops_page_repeats_and_keeps_conflicting_duplicates():
    from receivables.onec.client import frame_from_pages

    a, b, c = ({"Ref_Key": k, "Description": d} for k, d in (("a", "A"), ("b", "B"), ("c", "C")))
    b2 = {"Ref_Key": "b", "Description": "B changed"}
    df, dropped = frame_from_pages([[a, b], [b, c], [b2]], ["Ref_Key", "Description"], ["Ref_Key"])
    assert dropped == 1
    assert df.to_dict("records") == [a, b, c, b2]


_value = st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.floats(allow_nan=False) | st.text(max_size=12)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), page=st.integers(1, 3))
def test_raw_frames_match_row_lists_for_any_values(data, page):
    from receivables.domain.normalise import normalise
    from receivables.onec.schema import READ_SETS

    raw = {}
    for name, fields in READ_SETS.items():
        rows = data.draw(st.lists(st.fixed_dictionaries({f: _value for f in fields}), max_size=4))
        for i, row in enumerate(rows):  # distinct rows: the frame path drops verbatim repeats
            row[next(iter(fields))] = f"key-{i}"
        raw[name] = rows
    _frames_equal(normalise(_raw_frames(raw, page)), normalise(raw))


def test_converters_give_the_same_on_arrow_text_as_on_python_objects():
    """The Arrow fast paths of ref, date and integer (raw frames' text) agree with the careful
    path, and fall back to it for malformed values."""
    import pyarrow as pa

    from receivables.domain.normalise import integer

    dates = ["2026-03-20T10:15:00", "0001-01-01T00:00:00", "3000-01-01T00:00:00", None, "2026-02-30T00:00:00",
             "junk", "2026-01-05"]
    numbers = ["1", "2", None, "3.5", "1e3", "x", " 7"]
    refs = ["00000000-0000-0000-0000-000000000000", " B1C89D94-CB6A-11E6-AEDE-5404A6B4B8ED ", None, "None", "", "ÀБ"]
    for values, convert in ((dates, date), (dates[:4], date), (numbers, integer), (numbers[:3], integer),
                            (refs, ref), (refs[:5], ref)):
        arrow = convert(pd.Series(pa.array(values, type=pa.string()), dtype="str"))
        pd.testing.assert_series_equal(arrow, convert(pd.Series(values, dtype=object)))
    # the client's parsed timestamps (`schema.DATE_FIELDS`): the same days, the empty date missing
    parsed = pd.Series(pa.array(dates[:4], type=pa.string()).cast(pa.timestamp("s")).to_pandas())
    assert parsed.dtype == "datetime64[s]"
    pd.testing.assert_series_equal(date(parsed), date(pd.Series(dates[:4], dtype=object)))


_GUID = st.builds(lambda h: f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}",
                  st.text("0123456789abcdef", min_size=32, max_size=32))
_REF_VALUES = st.one_of(
    _GUID, _GUID.map(str.upper), _GUID.map(lambda g: g + " "), _GUID.map(lambda g: "\t" + g),
    st.sampled_from(["00000000-0000-0000-0000-000000000000", "", "none", "None", " ", "0", "n0ne", "ё", "a b"]),
    st.none(), st.text(max_size=6))


@settings(max_examples=200, deadline=None)
@given(values=st.lists(_REF_VALUES, max_size=30), cuts=st.lists(st.integers(0, 30), max_size=3),
       large=st.booleans(), skip=st.integers(0, 2))
def test_ref_of_arrow_text_equals_the_careful_path_for_any_chunking(values, cuts, large, skip):
    """`ref` on a raw frame's text (chunked, sliced chunks, string or large_string) gives what
    the Python path gives: the canonical scan (`_canonical_refs`) may only answer when nothing
    would change, and masks exactly the empty references."""
    import pyarrow as pa

    kind = pa.large_string() if large else pa.string()
    bounds = sorted({0, len(values), *(min(c, len(values)) for c in cuts)})
    # each chunk a slice of a longer array, so chunk offsets are not zero
    chunks = [pa.array(["X"] * skip + values[a:b], type=kind).slice(skip) for a, b in itertools.pairwise(bounds)]
    arrow = pd.Series(pa.chunked_array(chunks, type=kind), dtype="str")
    got = ref(arrow)
    want = ref(pd.Series(values, dtype=object))
    assert got.isna().tolist() == want.isna().tolist()
    assert got.dropna().tolist() == want.dropna().tolist()


def test_canonical_scan_declines_text_that_ref_would_change():
    import pyarrow as pa

    from receivables.domain.normalise import _canonical_refs

    guid = "b1c89d94-cb6a-11e6-aede-5404a6b4b8ed"
    same = pa.chunked_array([pa.array([guid, "00000000-0000-0000-0000-000000000000", None, "none", ""])])
    out = _canonical_refs(same)
    assert out is not None and out.to_pylist() == [guid, None, None, None, None]
    assert out.chunks[0].buffers()[2].address == same.chunks[0].buffers()[2].address  # text shared, not copied
    for changed in (guid.upper(), guid + " ", " " + guid, "ё" + guid, "a\x00b"):
        assert _canonical_refs(pa.chunked_array([pa.array([guid, changed])])) is None


def test_text_keeps_raw_text_only_when_no_value_could_lose_a_trailing_space():
    """`text`'s shortcut (`_may_end_in_space`) is checked against Arrow's rstrip for every
    Unicode character at the end of a value: whatever rstrip would change, the check flags."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from receivables.domain.normalise import _may_end_in_space

    chars = [chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    for prefix in ("", "Ж", "a"):
        values = pa.array([prefix + c for c in chars], type=pa.large_string())
        stripped = pc.utf8_rtrim_whitespace(values)
        changed = pc.not_equal(stripped, values).to_numpy(zero_copy_only=False)
        assert changed.any()  # spaces are among them
        for c in np.flatnonzero(changed):
            assert _may_end_in_space(values.slice(c, 1)), hex(ord(chars[c]))
    assert not _may_end_in_space(pa.array(["ТД00-000123", "Оплата", None, "", "ПоЗаказам"]))


@settings(max_examples=100, deadline=None)
@given(values=st.lists(st.one_of(st.none(), st.text(max_size=5), st.sampled_from(["ТД00-1  ", "ПоЗаказам", "р", "x\u3000"])),
                       max_size=20), cut=st.integers(0, 20))
def test_text_of_arrow_text_equals_the_careful_path(values, cut):
    import pyarrow as pa

    chunks = [pa.array(values[:cut], type=pa.large_string()), pa.array(values[cut:], type=pa.large_string())]
    got = text(pd.Series(pa.chunked_array(chunks), dtype="str"))
    want = text(pd.Series(values, dtype=object))
    assert got.isna().tolist() == want.isna().tolist()
    assert got.dropna().tolist() == want.dropna().tolist()


@pytest.mark.parametrize("odd", [False, True], ids=["clean", "odd-references"])
@pytest.mark.parametrize("min_values", [None, 0], ids=["arrow-hashing", "compiled-guid-keys"])
def test_the_extract_set_by_set_gives_the_whole_extracts_frames(min_values, odd):
    """`normalise_as_of` (the extract task's way: each raw set read when needed and let go, each
    frame handed on when made) gives `as_of_view(normalise(raw))`'s frames, keys and all; also
    where a reference that is not GUID text makes the compiled numbering hand over to Arrow's
    part-way, and with an as-of date that cuts orders, their stages and payments."""
    from receivables.domain import guid_keys
    from receivables.domain.normalise import as_of_view, normalise, normalise_as_of
    from receivables.onec.emulator.generator import generate_company

    end, as_of = dt.date(2026, 11, 20), dt.date(2026, 10, 15)
    ds = generate_company(seed=6, scale=0.03, end_date=end)
    raw = _raw_frames({name: [dict(r) for r in ds.rows(name)] for name in ds.names()}, page=41)
    if odd:
        stages, lines = raw["Document_ЗаказКлиента_ЭтапыГрафикаОплаты"], \
            raw["Document_ПоступлениеБезналичныхДенежныхСредств_РасшифровкаПлатежа"]
        stages.loc[3, "Ref_Key"] = "not a reference"
        lines.loc[5, "ОбъектРасчетов_Key"] = lines.loc[5, "ОбъектРасчетов_Key"].upper()
        lines.loc[6, "ОбъектРасчетов_Key"] = "   "
    with pytest.MonkeyPatch.context() as mp:
        if min_values == 0:
            mp.setattr(guid_keys, "MIN_VALUES", 0)  # normalise's own numbering compiled as well
        expected = as_of_view(normalise(raw), as_of, extracted_on=end)
    fetched: list[str] = []
    asking: set = set()
    got: dict[str, pd.DataFrame] = {}

    def fetch(name: str) -> pd.DataFrame:
        fetched.append(name)
        asking.add(threading.current_thread())
        return raw[name]

    read = normalise_as_of(fetch, as_of, got.__setitem__, extracted_on=end, min_values=min_values)
    assert sorted(fetched) == sorted(raw) and read == {name: len(raw[name]) for name in fetched}
    assert asking == {threading.current_thread()}  # 1C is asked by the caller's thread alone, one set at a time
    assert list(got) == list(expected)
    _frames_equal(got, expected)
    # payment_key: one key per receipt reference and back, over both kinds of receipt
    pays = got["payments"]
    pairs = set(zip(pays["payment_ref"].tolist(), pays["payment_key"].tolist(), strict=True))
    assert len(pairs) == len({r for r, _ in pairs}) == len({k for _, k in pairs}) > 10
    assert set(pays["source"]) == {"bank", "cash"} and (pays["payment_key"] >= 0).all()
    assert len(expected["orders"]) < len(raw["Document_ЗаказКлиента"])  # the as-of date cut some
    assert len(expected["stages"]) < len(raw["Document_ЗаказКлиента_ЭтапыГрафикаОплаты"])


_GUID_BYTES = b"0123456789abcdef-"


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 12).flatmap(lambda n: st.lists(
    st.one_of(st.sampled_from(_GUID_BYTES), st.integers(0, 255)), min_size=36 * n, max_size=36 * n)),
    st.integers(0, 7))
def test_compiled_guid_scan_answers_as_the_numpy_scan(values, skip):
    """`guid_keys.empty_guid_rows` (64-bit words at a time) equals `_empty_guid_rows` on any
    bytes, at any alignment: None when some byte could change under `ref`, else the same rows."""
    import numpy as np

    from receivables.domain import guid_keys
    from receivables.domain.normalise import _ZERO_AT, _empty_guid_rows

    data = np.frombuffer(bytes(skip) + bytes(values), dtype=np.uint8)[skip:]  # (unaligned words too)
    want, got = _empty_guid_rows(data), guid_keys.empty_guid_rows(data, _ZERO_AT)
    assert (got is None) == (want is None)
    assert want is None or got.tolist() == want.tolist()


def test_compiled_guid_scan_sees_every_byte_ref_could_change_wherever_it_is():
    import numpy as np

    from receivables.domain import guid_keys
    from receivables.domain.normalise import _ZERO_AT, _changes_under_ref

    empty, guid = b"00000000-0000-0000-0000-000000000000", b"b1c89d94-cb6a-11e6-aede-5404a6b4b8ed"
    guids = np.frombuffer(empty + guid + empty, dtype=np.uint8)  # 108 bytes: 13 words and 4 more
    assert guid_keys.empty_guid_rows(guids, _ZERO_AT).tolist() == [0, 2]
    for byte in range(256):
        for at in (0, 5, 8, 13, 71, 103, 104, 107):  # places in a word, and in the bytes after the words
            data = guids.copy()
            data[at] = byte
            assert (guid_keys.empty_guid_rows(data, _ZERO_AT) is None) == _changes_under_ref(data), (byte, at)


@pytest.mark.parametrize("odd", [None, "B1C89D94-CB6A-11E6-AEDE-5404A6B4B8ED", "b1c89d94-cb6a-11e6-aede-5404a6b4b8e "])
def test_ref_takes_the_compiled_scan_at_scale_and_answers_as_before(monkeypatch, odd):
    """At `guid_keys.MIN_VALUES` values (lowered here) `ref`'s canonical scan of GUID columns runs
    compiled: the same references and empty ones, and text it would change still goes the careful way."""
    import pyarrow as pa

    from receivables.domain import guid_keys

    guids = ["b1c89d94-cb6a-11e6-aede-5404a6b4b8ed", "00000000-0000-0000-0000-000000000000",
             "0a1b2c3d-0000-0000-0000-000000000000", "00000000-0000-0000-0000-000000000001"] * 3
    values = guids + ([odd] if odd else [])
    want = ref(pd.Series(values, dtype=object))
    monkeypatch.setattr(guid_keys, "MIN_VALUES", 0)
    got = ref(pd.Series(pa.chunked_array([pa.array(values[:5]), pa.array(values[5:])]), dtype="str"))
    assert got.isna().tolist() == want.isna().tolist() and got.dropna().tolist() == want.dropna().tolist()
