"""The 1C OData emulator over real HTTP: query options, 1C quirks, writes, faults, control API.

Query strings are built by hand (``%20``, UTF-8 percent-encoding) and sent with
http.client, so what reaches the server is exactly what the test wrote.
"""

from __future__ import annotations

import base64
import datetime as dt
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import pytest

from receivables.onec.emulator.generator import generate_company
from receivables.onec.emulator.server import EmulatorServer
from receivables.onec.schema import EMPTY_GUID, READ_SETS, WRITE_SETS

USER, PASSWORD = "Администратор", "1c-demo"
END = dt.date(2026, 11, 20)
PARTNERS = "Catalog_Партнеры"
ORDERS = "Document_ЗаказКлиента"
STAGES = "Document_ЗаказКлиента_ЭтапыГрафикаОплаты"
TASKS = "Task_ЗадачаИсполнителя"
DEALS = "Catalog_СделкиСКлиентами"


@pytest.fixture(scope="module")
def company():
    return generate_company(seed=21, scale=0.02, end_date=END)


@pytest.fixture
def srv(company):
    with EmulatorServer(company, user=USER, password=PASSWORD) as server:
        yield server


class Answer:
    def __init__(self, status: int, headers: http.client.HTTPMessage, body: bytes):
        self.status, self.headers, self.body = status, headers, body

    @property
    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))

    @property
    def error(self) -> tuple[str, str]:
        err = self.json["odata.error"]
        assert err["message"]["lang"] == "ru"
        return err["code"], err["message"]["value"]


def basic(user: str, password: str, encoding: str = "utf-8") -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode(encoding)).decode()


def q(**params: Any) -> str:
    """A query string as the pipeline builds it: '%20' for spaces, never '+'."""
    return "&".join(f"{quote(k, safe='$')}={quote(str(v), safe=',()$:')}" for k, v in params.items())


def call(srv: EmulatorServer, resource: str, query: str = "", *, method: str = "GET", body: Any = None,
         auth: str | None = None, base: str | None = None, timeout: float = 10) -> Answer:
    path = (base if base is not None else srv.base_path) + ("/" + quote(resource, safe="/()$,:='") if resource else "")
    if query:
        path += "?" + query
    headers = {"Authorization": auth if auth is not None else basic(USER, PASSWORD)}
    data = None
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode("utf-8")
        headers["Content-Type"] = "application/json;charset=utf-8"
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=timeout)
    try:
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        return Answer(resp.status, resp.headers, resp.read())
    finally:
        conn.close()


def get_json(srv: EmulatorServer, resource: str, **params: Any) -> Any:
    answer = call(srv, resource, q(**{"$format": "json", **params}))
    assert answer.status == 200, answer.body[:300]
    return answer.json


# -- reading ----------------------------------------------------------------------------


def test_select_orderby_top_skip_inlinecount(srv, company):
    refs = sorted(p["Ref_Key"] for p in company.rows(PARTNERS))
    doc = get_json(srv, PARTNERS, **{"$select": "Ref_Key,Description", "$orderby": "Ref_Key", "$top": 5,
                                      "$skip": 2, "$inlinecount": "allpages"})
    assert doc["odata.metadata"] == f"{srv.url}/$metadata#{PARTNERS}"
    assert doc["odata.count"] == str(len(refs))  # a string, as 1C sends it
    assert [r["Ref_Key"] for r in doc["value"]] == refs[2:7]
    assert all(set(r) == {"Ref_Key", "Description"} for r in doc["value"])


def test_json_looks_like_1c(srv, company):
    answer = call(srv, STAGES, q(**{"$format": "json", "$top": 3}))
    assert answer.headers["Content-Type"] == "application/json;charset=utf-8"
    row = answer.json["value"][0]
    assert set(READ_SETS[STAGES]) <= set(row)
    assert isinstance(row["LineNumber"], str) and isinstance(row["СуммаПлатежа"], int | float)
    assert row["ДатаПлатежа"].endswith("T00:00:00")
    contract = get_json(srv, "Catalog_ДоговорыКонтрагентов", **{"$top": 1})["value"][0]
    assert isinstance(contract["СрокОплаты"], int) and isinstance(contract["УстановленСрокОплаты"], bool)
    partner = get_json(srv, PARTNERS, **{"$top": 1, "$select": "Code"})["value"][0]
    assert len(partner["Code"]) == 11 and partner["Code"].endswith(" ")
    raw = call(srv, PARTNERS, q(**{"$format": "json", "$top": 1, "$select": "Description"})).body
    assert "\\u04" not in raw.decode("utf-8") and any(0xD0 <= b <= 0xD1 for b in raw), "UTF-8, not \\u escapes"


def test_paging_a_big_set_reads_every_row_once(srv, company):
    n = len(company.rows(ORDERS))
    seen, skip, pages = [], 0, 0
    while True:
        page = get_json(srv, ORDERS, **{"$select": "Ref_Key", "$orderby": "Ref_Key", "$top": 400, "$skip": skip})
        seen += [r["Ref_Key"] for r in page["value"]]
        skip += len(page["value"])
        pages += 1
        if len(page["value"]) < 400:
            break
    assert len(seen) == n == len(set(seen)) and seen == sorted(seen)
    assert pages == n // 400 + 1


def test_orderby_desc_and_numeric_line_numbers(srv, company):
    doc = get_json(srv, ORDERS, **{"$select": "Ref_Key,СуммаДокумента", "$orderby": "СуммаДокумента desc,Ref_Key",
                                    "$top": 20})
    amounts = [r["СуммаДокумента"] for r in doc["value"]]
    assert amounts == sorted(amounts, reverse=True)
    assert amounts[0] == max(o["СуммаДокумента"] for o in company.rows(ORDERS))
    long_ref = company.truth["long_contact_partners"][0]
    lines = get_json(srv, "Catalog_Партнеры_КонтактнаяИнформация",
                     **{"$filter": f"Ref_Key eq guid'{long_ref}'", "$orderby": "LineNumber desc"})["value"]
    numbers = [int(r["LineNumber"]) for r in lines]
    assert numbers == sorted(numbers, reverse=True) and numbers[0] >= 10  # 10 > 9 > 2: as numbers


def _apostrophe_name(company) -> str:
    return next(p["Description"] for p in company.rows(PARTNERS) if "'" in p["Description"])


FILTERS = [
    ("Posted eq true and DeletionMark eq false", lambda o: o["Posted"] and not o["DeletionMark"]),
    ("Date ge datetime'2026-11-01T00:00:00'", lambda o: o["Date"] >= "2026-11-01T00:00:00"),
    ("(Статус eq 'Закрыт' or Статус eq 'КОтгрузке') and not (СуммаДокумента lt 10000)",
     lambda o: o["Статус"] in ("Закрыт", "КОтгрузке") and o["СуммаДокумента"] >= 10000),
    ("СуммаДокумента gt 100000.5", lambda o: o["СуммаДокумента"] > 100000.5),
    ("substringof('ТД00-0001', Number)", lambda o: "ТД00-0001" in o["Number"]),
    ("startswith(Number,'ТД00-00002')", lambda o: o["Number"].startswith("ТД00-00002")),
    ("endswith(Number,'7') and Posted ne false", lambda o: o["Number"].endswith("7") and o["Posted"]),
    ("ПорядокРасчетов eq 'ПоДоговорамКонтрагентов'", lambda o: o["ПорядокРасчетов"] == "ПоДоговорамКонтрагентов"),
]


@pytest.mark.parametrize("expr,expected", FILTERS, ids=[f[0][:40] for f in FILTERS])
def test_filters_match_python(srv, company, expr, expected):
    want = sorted(o["Ref_Key"] for o in company.rows(ORDERS) if expected(o))
    got = get_json(srv, ORDERS, **{"$select": "Ref_Key", "$orderby": "Ref_Key", "$filter": expr})["value"]
    assert [r["Ref_Key"] for r in got] == want
    count = call(srv, f"{ORDERS}/$count", q(**{"$filter": expr}))
    assert count.status == 200 and count.body.decode() == str(len(want))


def test_filter_by_guid_chain_uses_any_case_and_text_with_quotes(srv, company):
    orders = company.rows(ORDERS)
    chosen = [o["Ref_Key"] for o in orders[::37][:40]]
    expr = " or ".join(f"Ref_Key eq guid'{r.upper()}'" for r in chosen)
    got = get_json(srv, ORDERS, **{"$select": "Ref_Key", "$filter": expr, "$orderby": "Ref_Key"})["value"]
    assert [r["Ref_Key"] for r in got] == sorted(chosen)
    partner = orders[5]["Партнер_Key"]
    expr = f"Партнер_Key eq guid'{partner}' and Posted eq true"
    got = get_json(srv, ORDERS, **{"$select": "Ref_Key", "$filter": expr})["value"]
    assert len(got) == sum(1 for o in orders if o["Партнер_Key"] == partner and o["Posted"])
    name = _apostrophe_name(company)
    got = get_json(srv, PARTNERS, **{"$filter": f"Description eq '{name.replace(chr(39), chr(39) * 2)}'"})["value"]
    assert [r["Description"] for r in got] == [name]
    stages = get_json(srv, STAGES, **{"$filter": "LineNumber eq 2", "$select": "Ref_Key,LineNumber"})["value"]
    assert stages and {r["LineNumber"] for r in stages} == {"2"}


def test_count_without_filter_is_a_bare_integer(srv, company):
    answer = call(srv, f"{PARTNERS}/$count")
    assert answer.status == 200 and answer.body == str(len(company.rows(PARTNERS))).encode()


def test_single_entity_and_tabular_row_by_key(srv, company):
    partner = company.rows(PARTNERS)[3]
    doc = get_json(srv, f"{PARTNERS}(guid'{partner['Ref_Key']}')")
    assert doc["odata.metadata"] == f"{srv.url}/$metadata#{PARTNERS}/@Element"
    assert doc["Description"] == partner["Description"] and "value" not in doc
    small = get_json(srv, f"{PARTNERS}(guid'{partner['Ref_Key']}')", **{"$select": "Code"})
    assert set(small) == {"odata.metadata", "Code"}
    stage = company.rows(STAGES)[0]
    doc = get_json(srv, f"{STAGES}(Ref_Key=guid'{stage['Ref_Key']}',LineNumber={stage['LineNumber']})")
    assert doc["СуммаПлатежа"] == stage["СуммаПлатежа"]
    missing = call(srv, f"{PARTNERS}(guid'{EMPTY_GUID}')", q(**{"$format": "json"}))
    assert missing.status == 404 and missing.error[0] == "9"


def test_a_plus_in_the_query_string_is_http_500_code_minus_1(srv):
    answer = call(srv, PARTNERS, "$format=json&$filter=Description+eq+'x'")
    assert answer.status == 500 and answer.error[0] == "-1"
    assert call(srv, PARTNERS, "$format=json&$filter=Description%20eq%20'x'").status == 200
    assert [r.status for r in srv.requests] == [500, 200]
    assert "+" in srv.requests[0].query and "+" not in srv.requests[1].query


def test_without_format_json_the_answer_is_atom_xml(srv, company):
    answer = call(srv, PARTNERS, q(**{"$top": 3, "$select": "Ref_Key,Description"}))
    assert answer.status == 200 and answer.headers["Content-Type"].startswith("application/atom+xml")
    root = ET.fromstring(answer.body)
    ns = {"a": "http://www.w3.org/2005/Atom", "d": "http://schemas.microsoft.com/ado/2007/08/dataservices"}
    entries = root.findall("a:entry", ns)
    assert len(entries) == 3
    names = [e.find(".//d:Description", ns).text for e in entries]
    assert names == [p["Description"] for p in company.rows(PARTNERS)[:3]]


def test_unknown_set_is_404_code_9_in_russian(srv):
    answer = call(srv, "Catalog_НетТакого", q(**{"$format": "json"}))
    assert answer.status == 404
    code, message = answer.error
    assert code == "9" and "Catalog_НетТакого" in message and "Настройка стандартного интерфейса OData" in message


@pytest.mark.parametrize("params", [
    {"$select": "Ref_Key,НетТакогоПоля"},
    {"$filter": "НетТакогоПоля eq 1"},
    {"$orderby": "НетТакогоПоля"},
    {"$filter": "nosuchfunc(Description) eq 1"},
    {"$select": "Ref_Key", "$expand": "ОсновнойМенеджер"},
])
def test_unknown_field_or_method_is_400_code_6(srv, params):
    answer = call(srv, PARTNERS, q(**{"$format": "json", **params}))
    assert answer.status == 400 and answer.error[0] == "6"


@pytest.mark.parametrize("expr", [
    "Description eq",
    "(DeletionMark eq true",
    "Ref_Key eq 'not-a-guid-literal'",
    "Description eq 'unterminated",
    "DeletionMark eq true and",
    "ДатаПлатежа ge datetime'2026-13-45T00:00:00'",
    "Description",
    "Клиент eq 1 eq 2",
    "DeletionMark eq true )",
])
def test_malformed_filter_is_400_code_14(srv, expr):
    answer = call(srv, PARTNERS, q(**{"$format": "json", "$filter": expr}))
    assert answer.status == 400 and answer.error[0] == "14", (expr, answer.body)


def test_basic_auth_with_a_cyrillic_login(srv):
    assert call(srv, PARTNERS, q(**{"$format": "json", "$top": 1})).status == 200
    for auth in (basic(USER, "wrong"), "", basic("Гость", PASSWORD), basic(USER, PASSWORD, "cp1251"), "Basic !!!"):
        answer = call(srv, PARTNERS, q(**{"$format": "json"}), auth=auth)
        assert answer.status == 401, auth
        assert answer.headers["WWW-Authenticate"].startswith("Basic")
        assert "odata.error" in answer.json
    assert call(srv, "$metadata", auth="").status == 401


def test_metadata_lists_every_published_set_with_schema_types(srv):
    answer = call(srv, "$metadata")
    assert answer.status == 200 and answer.headers["Content-Type"].startswith("application/xml")
    meta = _parse_metadata(answer.body)
    assert set(meta) == set(READ_SETS) | set(WRITE_SETS)
    for name, fields in {**READ_SETS, **WRITE_SETS}.items():
        for f, edm in fields.items():
            assert meta[name][f] == edm, (name, f)


def _parse_metadata(body: bytes) -> dict[str, dict[str, str]]:
    root = ET.fromstring(body)
    types = {}
    for el in root.iter():
        if el.tag.endswith("}EntityType"):
            types[el.get("Name")] = {p.get("Name"): p.get("Type") for p in el if p.tag.endswith("}Property")}
    return {el.get("Name"): types[el.get("EntityType").rsplit(".", 1)[1]]
            for el in root.iter() if el.tag.endswith("}EntitySet")}


def test_published_limits_sets_and_fields(company):
    published = {name: set(fields) for name, fields in READ_SETS.items() if name != "Catalog_Организации"}
    published[PARTNERS].discard("ЮрФизЛицо")
    with EmulatorServer(company, user=USER, password=PASSWORD, published=published) as srv:
        meta = _parse_metadata(call(srv, "$metadata").body)
        assert "Catalog_Организации" not in meta and TASKS not in meta
        assert "ЮрФизЛицо" not in meta[PARTNERS] and "Description" in meta[PARTNERS]
        gone = call(srv, "Catalog_Организации", q(**{"$format": "json"}))
        assert gone.status == 404 and gone.error[0] == "9"
        bad = call(srv, PARTNERS, q(**{"$format": "json", "$select": "Ref_Key,ЮрФизЛицо"}))
        assert bad.status == 400 and bad.error[0] == "6"
        rows = get_json(srv, PARTNERS, **{"$top": 2})["value"]
        assert rows and all("ЮрФизЛицо" not in r and "DataVersion" not in r for r in rows)
        assert call(srv, TASKS, q(**{"$format": "json"}), method="POST", body={"Description": "x"}).status == 404


def test_service_document_lists_sets(srv):
    doc = get_json(srv, "")
    assert {s["name"] for s in doc["value"]} == set(READ_SETS) | set(WRITE_SETS)


# -- writes -----------------------------------------------------------------------------


def test_post_201_with_location_client_ref_then_duplicate_is_refused(srv, company):
    ref = "3f2a1b4c-0000-4000-8000-0000000000a1"
    assert call(srv, f"{TASKS}(guid'{ref}')", q(**{"$format": "json"})).status == 404
    body = {"Ref_Key": ref, "Description": "Напомнить об оплате", "Предмет": company.rows(ORDERS)[0]["Ref_Key"],
            "Предмет_Type": "StandardODATA.Document_ЗаказКлиента", "ПринятаКИсполнению": False,
            "СрокИсполнения": "2026-11-25T00:00:00", "Важность": "Обычная"}
    created = call(srv, TASKS, q(**{"$format": "json"}), method="POST", body=body)
    assert created.status == 201
    doc = created.json
    assert doc["Ref_Key"] == ref and doc["Description"] == "Напомнить об оплате"
    assert doc["odata.metadata"].endswith(f"$metadata#{TASKS}/@Element")
    assert re.fullmatch(r"ТД00-\d{9}", doc["Number"]) and doc["DataVersion"]
    assert set(WRITE_SETS[TASKS]) <= set(doc)
    location = unquote(created.headers["Location"])
    assert urlsplit(location).path.endswith(f"{TASKS}(guid'{ref}')")
    assert get_json(srv, f"{TASKS}(guid'{ref}')")["Важность"] == "Обычная"
    again = call(srv, TASKS, q(**{"$format": "json"}), method="POST", body=body)
    assert again.status == 500 and again.error[0] == "-1" and ref in again.error[1]
    other = call(srv, TASKS, q(**{"$format": "json"}), method="POST", body={"Description": "без ключа"}).json
    assert other["Ref_Key"] != ref and other["Number"] > doc["Number"]
    assert len([r for r in srv.requests if r.method == "POST"]) == 3
    assert len(company.rows(TASKS)) == 2


def test_unknown_fields_are_ignored_and_wrong_types_dropped(srv):
    body = {"Description": "Долг ООО «Ромашка»", "НетТакогоПоля": 1, "ПотенциальнаяСуммаПродажи": "много",
            "DeletionMark": "yes", "Партнер_Key": "not-a-guid", "ДатаНачала": "вчера", "Статус": "ВРаботе"}
    answer = call(srv, DEALS, q(**{"$format": "json"}), method="POST", body=body)
    assert answer.status == 201
    doc = answer.json
    assert "НетТакогоПоля" not in doc
    assert doc["ПотенциальнаяСуммаПродажи"] == 0 and doc["DeletionMark"] is False
    assert doc["Партнер_Key"] == EMPTY_GUID and doc["ДатаНачала"] == "0001-01-01T00:00:00"
    assert doc["Статус"] == "ВРаботе" and doc["Code"].startswith("ТД-")


def test_patch_changes_only_what_is_sent(srv):
    created = call(srv, DEALS, q(**{"$format": "json"}), method="POST",
                   body={"Description": "Сделка", "ПотенциальнаяСуммаПродажи": 1000.5}).json
    ref = created["Ref_Key"]
    answer = call(srv, f"{DEALS}(guid'{ref}')", q(**{"$format": "json"}), method="PATCH",
                  body={"Статус": "Завершена", "ПотенциальнаяСуммаПродажи": "x"})
    assert answer.status == 200
    doc = answer.json
    assert doc["Статус"] == "Завершена" and doc["ПотенциальнаяСуммаПродажи"] == 1000.5
    assert doc["Description"] == "Сделка" and doc["DataVersion"] != created["DataVersion"]
    missing = call(srv, f"{DEALS}(guid'{EMPTY_GUID}')", q(**{"$format": "json"}), method="PATCH", body={})
    assert missing.status == 404 and missing.error[0] == "9"
    assert call(srv, f"{DEALS}(guid'{ref}')", method="DELETE").status == 204
    assert call(srv, f"{DEALS}(guid'{ref}')", q(**{"$format": "json"})).status == 404


def test_writes_to_read_only_sets_are_refused(srv):
    answer = call(srv, PARTNERS, q(**{"$format": "json"}), method="POST", body={"Description": "x"})
    assert answer.status == 403 and answer.error[0] == "-1"


def test_dataset_changes_are_served_immediately(srv, company):
    ref = company.rows(PARTNERS)[0]["Ref_Key"]
    name = "Catalog_Партнеры_КонтактнаяИнформация"
    expr = f"Ref_Key eq guid'{ref}' and Тип eq 'АдресЭлектроннойПочты'"
    before = get_json(srv, name, **{"$filter": expr})["value"]
    company.add_rows(name, [{"Ref_Key": ref, "LineNumber": "30", "Тип": "АдресЭлектроннойПочты",
                             "АдресЭП": "late@client.example", "Представление": "late@client.example"}])
    try:
        after = get_json(srv, name, **{"$filter": expr})["value"]
        assert len(after) == len(before) + 1 and after[-1]["Вид_Key"] == EMPTY_GUID
        company.rows(PARTNERS)[0]["Description"] = "Переименован"  # in place, through the live list
        assert get_json(srv, f"{PARTNERS}(guid'{ref}')")["Description"] == "Переименован"
    finally:
        company.delete_rows(name, {"АдресЭП": "late@client.example"})
    assert len(get_json(srv, name, **{"$filter": expr})["value"]) == len(before)


# -- faults -----------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503])
def test_status_fault_then_recovery(srv, status):
    srv.faults.add("status", entity_set=PARTNERS, status=status, times=1)
    first = call(srv, PARTNERS, q(**{"$format": "json"}))
    assert first.status == status
    if status != 502:
        assert first.error[0] == "-1"
    assert call(srv, PARTNERS, q(**{"$format": "json"})).status == 200
    assert [r.fault for r in srv.requests] == ["status", None]


def test_fault_after_times_entity_set_and_method(srv):
    srv.faults.add("status", entity_set=PARTNERS, status=500, times=2, after=1)
    srv.faults.add("status", entity_set=TASKS, method="POST", status=503, times=1)
    statuses = [call(srv, PARTNERS, q(**{"$format": "json", "$top": 1})).status for _ in range(4)]
    assert statuses == [200, 500, 500, 200]
    assert call(srv, ORDERS, q(**{"$format": "json", "$top": 1})).status == 200
    assert call(srv, TASKS, q(**{"$format": "json"})).status == 200  # a GET is not the POST it waits for
    assert call(srv, TASKS, q(**{"$format": "json"}), method="POST", body={"Description": "x"}).status == 503


def test_delay_fault(srv):
    srv.faults.add("delay", entity_set=PARTNERS, seconds=0.6)
    started = time.monotonic()
    assert call(srv, PARTNERS, q(**{"$format": "json", "$top": 1})).status == 200
    assert time.monotonic() - started >= 0.6
    with pytest.raises(TimeoutError):
        srv.faults.add("delay", entity_set=PARTNERS, seconds=1.0)
        call(srv, PARTNERS, q(**{"$format": "json", "$top": 1}), timeout=0.3)


def test_reset_fault_drops_the_connection(srv):
    srv.faults.add("reset", entity_set=PARTNERS)
    with pytest.raises((ConnectionError, http.client.RemoteDisconnected)):
        call(srv, PARTNERS, q(**{"$format": "json"}))
    assert call(srv, PARTNERS, q(**{"$format": "json", "$top": 1})).status == 200
    assert srv.requests[0].status == 0 and srv.requests[0].fault == "reset"


def test_malformed_and_truncated_json(srv):
    srv.faults.add("malformed_json", entity_set=PARTNERS)
    bad = call(srv, PARTNERS, q(**{"$format": "json"}))
    assert bad.status == 200
    with pytest.raises(ValueError):
        json.loads(bad.body)
    srv.faults.add("truncated_json", entity_set=PARTNERS)
    full = call(srv, PARTNERS, q(**{"$format": "json"}))  # the fault fires on this one
    good = call(srv, PARTNERS, q(**{"$format": "json"}))
    assert full.status == 200 and good.body.startswith(full.body) and len(full.body) < len(good.body)
    with pytest.raises(ValueError):
        json.loads(full.body)
    srv.faults.add("truncated_json", entity_set=PARTNERS, lie_length=True)
    with pytest.raises(http.client.IncompleteRead):
        call(srv, PARTNERS, q(**{"$format": "json"}))


def test_odata_error_inside_http_200(srv):
    srv.faults.add("odata_error_200", entity_set=PARTNERS)
    answer = call(srv, PARTNERS, q(**{"$format": "json"}))
    assert answer.status == 200 and answer.error[0] == "-1"


def test_duplicate_rows_repeat_the_previous_page_without_losing_any(srv, company):
    n = len(company.rows(PARTNERS))
    srv.faults.add("duplicate_rows", entity_set=PARTNERS, after=1, rows=3)
    seen, skip, size = [], 0, 8
    while True:
        page = get_json(srv, PARTNERS, **{"$select": "Ref_Key", "$orderby": "Ref_Key", "$top": size,
                                           "$skip": skip})["value"]
        seen += [r["Ref_Key"] for r in page]
        skip += len(page)
        if len(page) < size:
            break
    assert len(seen) == n + 3 and len(set(seen)) == n
    assert [r.fault for r in srv.requests].count("duplicate_rows") == 1
    again = get_json(srv, PARTNERS, **{"$select": "Ref_Key", "$orderby": "Ref_Key", "$top": n, "$skip": 0})
    assert len(again["value"]) == n, "the next listing starts clean"


def test_gone_and_unauthorized_stay_until_cleared(srv):
    srv.faults.add("gone", entity_set=PARTNERS)
    for _ in range(3):
        answer = call(srv, PARTNERS, q(**{"$format": "json"}))
        assert answer.status == 404 and answer.error[0] == "9"
    assert call(srv, ORDERS, q(**{"$format": "json", "$top": 1})).status == 200
    srv.faults.clear()
    srv.faults.add("unauthorized")
    assert {call(srv, s, q(**{"$format": "json", "$top": 1})).status for s in (PARTNERS, ORDERS)} == {401}
    srv.faults.clear()
    assert call(srv, PARTNERS, q(**{"$format": "json", "$top": 1})).status == 200


def test_post_500_after_create_still_creates(srv, company):
    ref = "3f2a1b4c-0000-4000-8000-0000000000b2"
    srv.faults.add("post_500_after_create", entity_set=TASKS, method="POST")
    answer = call(srv, TASKS, q(**{"$format": "json"}), method="POST", body={"Ref_Key": ref, "Description": "x"})
    assert answer.status == 500 and answer.error[0] == "-1"
    assert company.get(TASKS, ref) is not None
    assert get_json(srv, f"{TASKS}(guid'{ref}')")["Ref_Key"] == ref


def test_charset_1251_label_on_a_utf8_body(srv, company):
    srv.faults.add("charset_1251", entity_set=PARTNERS)
    answer = call(srv, PARTNERS, q(**{"$format": "json", "$top": 2, "$select": "Description"}))
    assert answer.headers["Content-Type"] == "application/json;charset=windows-1251"
    names = [r["Description"] for r in json.loads(answer.body.decode("utf-8"))["value"]]
    assert names == [p["Description"] for p in company.rows(PARTNERS)[:2]]


def test_unknown_fault_kind_is_refused(srv):
    with pytest.raises(ValueError):
        srv.faults.add("meteor")


# -- control API and the request log ------------------------------------------------------


def _control(srv: EmulatorServer, method: str, path: str, body: Any = None) -> Answer:
    return call(srv, path, method=method, body=body, base="/_emulator", auth="")


def test_control_endpoint_drives_faults_and_reads_the_log(srv):
    created = _control(srv, "POST", "faults", {"kind": "status", "entity_set": PARTNERS, "status": 503, "times": 1})
    assert created.status == 201 and created.json["kind"] == "status"
    assert call(srv, PARTNERS, q(**{"$format": "json", "$top": 1})).status == 503
    assert call(srv, PARTNERS, q(**{"$format": "json", "$top": 1})).status == 200
    log = _control(srv, "GET", "requests").json
    assert [(r["method"], r["entity_set"], r["status"]) for r in log] == [("GET", PARTNERS, 503),
                                                                          ("GET", PARTNERS, 200)]
    assert log[0]["path"] == f"{srv.base_path}/{PARTNERS}" and "%24format=json" not in log[0]["query"]
    _control(srv, "POST", "faults", {"kind": "gone", "entity_set": PARTNERS})
    assert _control(srv, "GET", "faults").json["faults"][-1]["kind"] == "gone"
    assert call(srv, PARTNERS, q(**{"$format": "json"})).status == 404
    assert _control(srv, "DELETE", "faults").json == {"cleared": 2}
    assert call(srv, PARTNERS, q(**{"$format": "json", "$top": 1})).status == 200
    assert _control(srv, "POST", "faults", {"kind": "meteor"}).status == 400
    assert _control(srv, "DELETE", "requests").status == 200 and len(srv.requests) == 0
    health = _control(srv, "GET", "health").json
    assert health["ok"] and health["sets"][PARTNERS] > 0


def test_serve_prints_url_and_credentials_and_stops_on_sigterm(tmp_path):
    code = ("import datetime as dt; from receivables.onec.emulator.server import serve; "
            "serve(port=0, scale=0.01, seed=2, end_date=dt.date(2026, 11, 20))")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 60
        url = None
        while time.monotonic() < deadline and url is None:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            m = re.search(r"(http://127\.0\.0\.1:\d+/trade/odata/standard\.odata)", line)
            url = m.group(1) if m else None
        assert url, "".join(lines)
        for _ in range(3):
            lines.append(proc.stdout.readline())
        text = "".join(lines)
        assert USER in text and PASSWORD in text
        port = int(urlsplit(url).port)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/trade/odata/standard.odata/$metadata", headers={"Authorization": basic(USER, PASSWORD)})
        assert conn.getresponse().status == 200
        conn.close()
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
        assert proc.returncode == 0 and "stopped" in out
    finally:
        if proc.poll() is None:
            proc.kill()
