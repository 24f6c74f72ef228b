"""The 1C OData client against the emulator over real HTTP (no request mocking)."""

from __future__ import annotations

import codecs
import datetime as dt
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from receivables.onec.client import (
    NotPublished,
    ODataAuthError,
    ODataClient,
    ODataConfig,
    ODataError,
    ODataNotFound,
    ODataProtocolError,
    ODataServerError,
    _PageReader,
    build_query,
    frame_from_pages,
    page_columns,
)
from receivables.onec.emulator.generator import generate_company
from receivables.onec.emulator.server import EmulatorServer
from receivables.onec.schema import READ_SETS

USER, PASSWORD = "Администратор", "1c-demo"
SET = "Catalog_Партнеры"


@pytest.fixture(scope="module")
def company():
    return generate_company(seed=11, scale=0.02, end_date=dt.date(2026, 11, 20))


@pytest.fixture
def server(company):
    with EmulatorServer(company, user=USER, password=PASSWORD) as srv:
        yield srv


def client_for(srv, **kw) -> ODataClient:
    cfg = dict(base_url=srv.url, login=USER, password=PASSWORD, timeout=5, backoff=0.01, backoff_cap=0.05,
               max_retries=3)
    cfg.update(kw)
    return ODataClient(ODataConfig(**cfg))


def total(client: ODataClient, name: str) -> int:
    return client.count(name)


def test_query_string_uses_percent20_and_utf8_never_plus():
    q = build_query({"$filter": "Description eq 'ООО Рога и копыта'", "$select": "Ref_Key,Description"})
    assert "+" not in q and "%20" in q and "%D0%9E" in q and "$select=Ref_Key,Description" in q


@pytest.mark.parametrize("delta", [-1, 0, 1])
def test_paging_at_page_boundaries_reads_every_row_once(server, delta):
    with client_for(server) as c:
        n = total(c, SET)
        size = n + delta
        rows = c.fetch_all(SET, ["Ref_Key", "Description"], orderby="Ref_Key", page_size=size)
    assert len(rows) == n == len({r["Ref_Key"] for r in rows})
    gets = [r for r in server.requests if SET in r.path and "$count" not in r.path]
    expected_pages = n // size + 1
    assert len(gets) == expected_pages


def test_no_plus_ever_reaches_1c_even_with_spaces_and_cyrillic(server):
    with client_for(server) as c:
        name = c.fetch_all(SET, ["Ref_Key", "Description"], orderby="Ref_Key")[0]["Description"]
        found = c.fetch_all(SET, ["Ref_Key", "Description"], orderby="Ref_Key",
                            filter=f"Description eq '{name.replace(chr(39), chr(39) * 2)}'")
    assert [r["Description"] for r in found] == [name]
    assert server.requests and all("+" not in r.query for r in server.requests)


def test_cyrillic_login_is_sent_as_utf8_and_a_wrong_password_is_a_clear_401(server):
    with client_for(server) as c:
        assert c.count(SET) > 0
    with client_for(server, password="wrong") as c, pytest.raises(ODataAuthError) as err:
        c.count(SET)
    assert "Администратор" in str(err.value) and "password" in str(err.value)
    assert "wrong" not in str(err.value)


def test_unpublished_set_and_field_are_named_with_the_publishing_hint(company):
    published = {name: set(fields) for name, fields in READ_SETS.items() if name != "Catalog_Организации"}
    published["Catalog_Партнеры"].discard("ЮрФизЛицо")
    with EmulatorServer(company, user=USER, password=PASSWORD, published=published) as srv, \
            client_for(srv) as c, pytest.raises(NotPublished) as err:
        c.check_published({n: list(f) for n, f in READ_SETS.items()})
    msg = str(err.value)
    assert "Catalog_Организации" in msg and "ЮрФизЛицо" in msg
    assert "Настройка стандартного интерфейса OData" in msg
    assert err.value.missing_sets == ["Catalog_Организации"]


def test_unknown_set_is_not_found_with_the_hint(server):
    with client_for(server) as c, pytest.raises(ODataNotFound, match="Настройка стандартного интерфейса OData"):
        c.fetch_all("Catalog_НетТакого", ["Ref_Key"], orderby="Ref_Key")


def test_a_500_is_retried_then_succeeds(server):
    server.faults.add("status", entity_set=SET, status=500, times=2)
    with client_for(server) as c:
        assert len(c.fetch_all(SET, ["Ref_Key"], orderby="Ref_Key")) == c.count(SET)
    statuses = [r.status for r in server.requests if r.path.endswith(SET)]
    assert statuses[:3] == [500, 500, 200]


def test_a_500_forever_fails_clearly_after_the_retries(server):
    server.faults.add("status", entity_set=SET, status=503, times=100)
    with client_for(server) as c, pytest.raises(ODataServerError) as err:
        c.fetch_all(SET, ["Ref_Key"], orderby="Ref_Key")
    assert "HTTP 503" in str(err.value) and "4 attempts" in str(err.value)
    assert "\n" not in str(err.value)


def test_timeouts_are_retried_with_the_connection_timeout(server):
    server.faults.add("delay", entity_set=SET, seconds=1.5, times=1)
    with client_for(server, timeout=0.5) as c:
        assert c.fetch_all(SET, ["Ref_Key"], orderby="Ref_Key")


@pytest.mark.parametrize("kind", ["malformed_json", "truncated_json"])
def test_malformed_json_fails_clearly(server, kind):
    server.faults.add(kind, entity_set=SET, times=1)
    with client_for(server) as c, pytest.raises(ODataProtocolError, match="not valid JSON"):
        c.fetch_all(SET, ["Ref_Key"], orderby="Ref_Key")


def test_an_odata_error_inside_a_200_is_an_error_with_1c_text(server):
    server.faults.add("odata_error_200", entity_set=SET, times=1)
    with client_for(server) as c, pytest.raises(ODataServerError) as err:
        c.fetch_all(SET, ["Ref_Key"], orderby="Ref_Key")
    assert "code" in str(err.value) and "{" not in str(err.value)


def test_rows_repeated_across_pages_are_read_once(server):
    server.faults.add("duplicate_rows", entity_set=SET, times=1, after=1)
    with client_for(server) as c:
        n = c.count(SET)
        rows = c.fetch_all(SET, ["Ref_Key"], orderby="Ref_Key", page_size=max(2, n // 3))
    assert len({r["Ref_Key"] for r in rows}) == len(rows)


def test_body_labelled_windows_1251_is_still_decoded_as_utf8(server):
    server.faults.add("charset_1251", entity_set=SET, times=1)
    with client_for(server) as c:
        names = [r["Description"] for r in c.fetch_all(SET, ["Ref_Key", "Description"], orderby="Ref_Key")]
    assert any(any("а" <= ch <= "я" for ch in n.lower()) for n in names)


def test_post_with_client_ref_then_get_finds_it(server):
    ref = "3f2a1b4c-0000-4000-8000-000000000001"
    with client_for(server) as c:
        assert c.get_entity("Catalog_СделкиСКлиентами", ref) is None
        created = c.post("Catalog_СделкиСКлиентами", {"Ref_Key": ref, "Description": "Долг"})
        assert created["Ref_Key"] == ref
        assert c.get_entity("Catalog_СделкиСКлиентами", ref)["Description"] == "Долг"


def test_frame_of_rows_repeated_across_pages_reads_them_once(server):
    server.faults.add("duplicate_rows", entity_set=SET, times=1, after=1, rows=3)
    with client_for(server) as c:
        n = c.count(SET)
        df = c.fetch_frame(SET, ["Ref_Key", "Description"], orderby="Ref_Key", page_size=max(2, n // 3))
    assert len(df) == n == df["Ref_Key"].nunique()
    assert list(df.columns) == ["Ref_Key", "Description"]


def test_frame_and_rows_of_every_set_normalise_alike(server):
    """What extract.fetch_raw reads (frames built page by page) normalises exactly like the
    rows of fetch_all; small pages, so that every set spans several."""
    import pandas as pd

    from receivables.domain.normalise import normalise
    from receivables.extract import ORDER_BY

    with client_for(server) as c:
        frames = {n: c.fetch_frame(n, list(f), orderby=ORDER_BY[n], page_size=50) for n, f in READ_SETS.items()}
        rows = {n: c.fetch_all(n, list(f), orderby=ORDER_BY[n], page_size=50) for n, f in READ_SETS.items()}
    assert {n: len(df) for n, df in frames.items()} == {n: len(r) for n, r in rows.items()}
    assert len(frames["Document_ЗаказКлиента"]) > 50
    left, right = normalise(frames), normalise(rows)
    for name in right:
        pd.testing.assert_frame_equal(left[name], right[name], obj=name)


def test_extract_writes_the_frames_of_the_whole_read_set_by_set(server, tmp_path):
    """The extract task reads and normalises set by set (`normalise_as_of`), writing each frame as it
    is made: its Parquet files hold the frames of reading every set and normalising them together;
    a rerun into the same folder replaces the extract whole, and a failed one leaves the last good
    extract as it was."""
    import pandas as pd

    from receivables.domain.normalise import as_of_view, normalise
    from receivables.extract import extract, fetch_raw, read_frames

    as_of, today = dt.date(2026, 10, 30), dt.date(2026, 11, 20)
    with client_for(server) as c:
        stats = extract(c, as_of, tmp_path, extracted_on=today)
        whole = as_of_view(normalise(fetch_raw(c)), as_of, extracted_on=today)
    got = read_frames(tmp_path / "extract")
    assert set(got) == set(whole) and stats["frames"] == {name: len(df) for name, df in whole.items()}
    for name, df in whole.items():
        pd.testing.assert_frame_equal(got[name], df, obj=name)
    assert stats["rows_read"] == {name: len(server.dataset.rows(name)) for name in READ_SETS}
    assert stats["documents_read"] > len(whole["orders"]) > 0  # the as-of date cut some
    assert sorted(p.name for p in (tmp_path / "extract").iterdir()) == sorted(
        [f"{name}.parquet" for name in whole] + ["stats.json"])

    before = {p.name: p.read_bytes() for p in (tmp_path / "extract").iterdir()}
    with client_for(server, max_retries=0) as c:
        calls = {"n": 0}
        fetch_frame = c.fetch_frame

        def failing(name, *a, **kw):  # the third set read fails: 1C went away mid-extract
            calls["n"] += 1
            if calls["n"] == 3:
                raise ODataError("1C went away", status=503)
            return fetch_frame(name, *a, **kw)

        c.fetch_frame = failing
        with pytest.raises(ODataError):  # as of another date: frames written in place would differ
            extract(c, today, tmp_path, extracted_on=today)
    assert {p.name: p.read_bytes() for p in (tmp_path / "extract").iterdir()} == before


# -- pages decoded straight into columns (fetch_frame) give what json.loads gives ----------

PAGE_FIELDS = ["Ref_Key", "Сумма", "Партнер/Description"]
_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6)
_json_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=3)
                            | st.dictionaries(st.text(max_size=4), inner, max_size=3), max_leaves=6)


def _same_page(reader: _PageReader, body: bytes) -> bool:
    """Whether the reader took the page (else fetch_frame goes the json.loads way), checking
    that what it took equals json.loads' columns and count, 1 vs 1.0 vs True included."""
    got = reader.decode(body)
    if got is None:
        return False
    doc = json.loads(body.decode("utf-8-sig"))
    assert "odata.error" not in doc
    rows, count = got
    assert repr(reader.columns(rows)) == repr(page_columns(doc["value"], PAGE_FIELDS))
    assert repr(count) == repr(doc.get("odata.count"))
    return True


@settings(max_examples=300, deadline=None)
@given(rows=st.lists(st.dictionaries(st.sampled_from([*PAGE_FIELDS, "Другое"]), _json_values) | _json_values,
                     max_size=4),
       count=_json_values, bom=st.booleans(), error=st.booleans(), ascii_only=st.booleans())
def test_page_reader_gives_what_json_loads_gives(rows, count, bom, error, ascii_only):
    doc = {"odata.metadata": "x", "odata.count": count, "value": rows}
    if error:
        doc["odata.error"] = {"code": 14, "message": {"value": "bad"}}
    body = (codecs.BOM_UTF8 if bom else b"") + json.dumps(doc, ensure_ascii=ascii_only).encode()
    taken = _same_page(_PageReader(PAGE_FIELDS), body)
    if not error and all(isinstance(r, dict) for r in rows) and "NaN" not in body.decode() \
            and "Infinity" not in body.decode():
        assert taken  # a plain page takes the fast way


@pytest.mark.parametrize("body, taken", [
    ('{"value": [{"Ref_Key": "a", "Ref_Key": "b", "Другое": 1}]}', True),  # the last of a repeated key
    ('{"value": [{"Ref\\u005fKey": "a"}], "odata.count": "7"}', True),  # an escaped field name
    ('{"value": [{"Сумма": 123456789012345678901234567890}, {"Сумма": -0.0}, {"Сумма": 1E2}]}', True),
    ('{"value": [{"Сумма": 1e400}]}', False),  # json.loads: inf
    ('{"value": [{"Ref_Key": "\\ud800"}]}', False),  # a lone surrogate
    ('{"value": [{"Ref_Key": "a"}, null]}', False),  # a row that is not an object
    ('{"value": {"Ref_Key": "a"}}', False),
    ('{"odata.error": null, "value": []}', False),
    ('[]', False),
    ('{"value": []} trailing', False),
    ('{"value": [{"Ref_Key": "a\nb"}]}', False),  # a raw control character
])
def test_page_reader_takes_only_plain_pages(body, taken):
    assert _same_page(_PageReader(PAGE_FIELDS), body.encode()) is taken


@pytest.mark.parametrize("kind, error", [("malformed_json", ODataProtocolError),
                                         ("truncated_json", ODataProtocolError),
                                         ("odata_error_200", ODataServerError)])
def test_frame_fails_like_rows_on_bad_pages(server, kind, error):
    server.faults.add(kind, entity_set=SET, times=2)
    with client_for(server) as c:
        with pytest.raises(error) as rows_err:
            c.fetch_all(SET, ["Ref_Key"], orderby="Ref_Key")
        with pytest.raises(error) as frame_err:
            c.fetch_frame(SET, ["Ref_Key"], orderby="Ref_Key")
    assert str(frame_err.value) == str(rows_err.value)


def test_frame_of_a_page_with_odd_rows_reads_them_as_rows_do():
    """A page the fast decoder does not take (a row that is not an object, NaN) still becomes
    the frame json.loads' rows give: such a row is all None, NaN stays NaN."""
    import pandas as pd

    rows = [{"Ref_Key": "a", "Сумма": float("nan")}, 5, {"Ref_Key": "c", "Сумма": 1}]
    body = json.dumps({"odata.count": "3", "value": rows}).encode()

    class OnePage(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    with ThreadingHTTPServer(("127.0.0.1", 0), OnePage) as httpd:
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        try:
            with ODataClient(ODataConfig(base_url=f"http://127.0.0.1:{httpd.server_port}/x")) as c:
                df = c.fetch_frame(SET, ["Ref_Key", "Сумма"], orderby="Ref_Key")
        finally:
            httpd.shutdown()
    pd.testing.assert_frame_equal(df, frame_from_pages([rows], ["Ref_Key", "Сумма"], ["Ref_Key"])[0])
    assert df["Ref_Key"].isna().tolist() == [False, True, False]
