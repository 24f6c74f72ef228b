"""The 1C OData client against the emulator over real HTTP (no request mocking)."""

from __future__ import annotations

import datetime as dt

import pytest

from receivables.onec.client import (
    NotPublished,
    ODataAuthError,
    ODataClient,
    ODataConfig,
    ODataNotFound,
    ODataProtocolError,
    ODataServerError,
    build_query,
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
