"""The emulator answers like 1C over raw HTTP (hand-built query strings, urllib)."""

from __future__ import annotations

import base64
import datetime as dt
import json
import urllib.error
import urllib.request

import pytest

from receivables.onec.emulator.generator import generate_company
from receivables.onec.emulator.server import EmulatorServer

USER, PASSWORD = "Администратор", "1c-demo"
TOKEN = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()


@pytest.fixture(scope="module")
def srv():
    with EmulatorServer(generate_company(seed=2, scale=0.02, end_date=dt.date(2026, 11, 20))) as s:
        yield s


def call(srv, path, *, method="GET", body=None, token=TOKEN):
    req = urllib.request.Request(f"{srv.url}/{path}", method=method,
                                 data=json.dumps(body, ensure_ascii=False).encode() if body is not None else None,
                                 headers={"Authorization": f"Basic {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read()


def q(text: str) -> str:
    return urllib.request.quote(text, safe="$=&,()'?/+")


def test_select_filter_orderby_top_skip_inlinecount(srv):
    status, _, body = call(srv, q("Catalog_Партнеры?$format=json&$select=Ref_Key,Description"
                                  "&$orderby=Description desc&$top=3&$skip=1&$inlinecount=allpages"))
    doc = json.loads(body)
    assert status == 200 and isinstance(doc["odata.count"], str) and len(doc["value"]) == 3
    assert set(doc["value"][0]) == {"Ref_Key", "Description"}
    names = [r["Description"] for r in doc["value"]]
    assert names == sorted(names, key=str.lower, reverse=True)
    name = names[0].replace("'", "''")
    status, _, body = call(srv, q(f"Catalog_Партнеры?$format=json&$filter=Description eq '{name}' and "
                                  "DeletionMark eq false&$select=Description"))
    assert [r["Description"] for r in json.loads(body)["value"]] == [names[0]]


def test_count_and_single_entity(srv):
    status, _, body = call(srv, q("Catalog_Партнеры/$count"))
    n = int(body)
    assert status == 200 and n == len(srv.dataset.rows("Catalog_Партнеры"))
    ref = srv.dataset.rows("Catalog_Партнеры")[0]["Ref_Key"]
    status, _, body = call(srv, q(f"Catalog_Партнеры(guid'{ref}')?$format=json"))
    doc = json.loads(body)
    assert doc["Ref_Key"] == ref and doc["odata.metadata"].endswith("Catalog_Партнеры/@Element")
    status, _, body = call(srv, q("Catalog_Партнеры(guid'00000000-0000-0000-0000-00000000abcd')?$format=json"))
    assert status == 404 and json.loads(body)["odata.error"]["code"] == "9"


@pytest.mark.parametrize(("path", "status", "code"), [
    ("Catalog_Партнеры?$format=json&$filter=Description+eq+'x'", 500, "-1"),
    ("Catalog_Нет?$format=json", 404, "9"),
    ("Catalog_Партнеры?$format=json&$select=Нет", 400, "6"),
    ("Catalog_Партнеры?$format=json&$filter=Description eq", 400, "14"),
])
def test_errors_like_1c(srv, path, status, code):
    got, _, body = call(srv, q(path))
    assert got == status and json.loads(body)["odata.error"]["code"] == code


def test_without_format_json_the_answer_is_atom(srv):
    status, headers, body = call(srv, q("Catalog_Партнеры?$top=1"))
    assert status == 200 and "atom" in headers["Content-Type"] and body.startswith(b"<?xml")


def test_wrong_credentials_401(srv):
    bad = base64.b64encode(f"{USER}:nope".encode()).decode()
    assert call(srv, q("Catalog_Партнеры/$count"), token=bad)[0] == 401
    assert call(srv, q("Catalog_Партнеры/$count"), token=None)[0] == 401


def test_post_with_client_key_location_duplicate_and_patch(srv):
    ref = "7a1b2c3d-0000-4000-8000-00000000beef"
    body = {"Ref_Key": ref, "Description": "Долг", "ПотенциальнаяСуммаПродажи": "много", "Лишнее": 1}
    status, headers, raw = call(srv, q("Catalog_СделкиСКлиентами?$format=json"), method="POST", body=body)
    doc = json.loads(raw)
    assert status == 201 and doc["Ref_Key"] == ref and "Лишнее" not in doc
    assert doc["ПотенциальнаяСуммаПродажи"] == 0  # a wrong type is silently dropped, like 1C
    assert ref in urllib.request.unquote(headers["Location"])
    status, _, raw = call(srv, q("Catalog_СделкиСКлиентами?$format=json"), method="POST", body=body)
    assert status == 500
    status, _, raw = call(srv, q(f"Catalog_СделкиСКлиентами(guid'{ref}')?$format=json"), method="PATCH",
                          body={"Статус": "Выиграна"})
    assert status == 200 and json.loads(raw)["Статус"] == "Выиграна"


def test_metadata_lists_published_sets(srv):
    status, _, body = call(srv, "$metadata")
    assert status == 200 and "Document_ЗаказКлиента_ЭтапыГрафикаОплаты".encode() in body
