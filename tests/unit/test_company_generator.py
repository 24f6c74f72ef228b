"""The generated company: deterministic, consistent, shaped like the seed-000 company."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest

from receivables.onec.emulator.generator import generate_company
from receivables.onec.schema import EMPTY_GUID, READ_SETS

END = dt.date(2026, 11, 20)


@pytest.fixture(scope="module")
def company():
    return generate_company(seed=4, scale=0.1, end_date=END)


def test_same_seed_same_company_other_seed_other_company(company):
    again = generate_company(seed=4, scale=0.1, end_date=END)
    assert again.sets == company.sets
    other = generate_company(seed=5, scale=0.1, end_date=END)
    assert other.rows("Document_ЗаказКлиента")[0] != company.rows("Document_ЗаказКлиента")[0]


def test_every_published_field_is_on_every_row(company):
    for name, fields in READ_SETS.items():
        for row in company.rows(name)[:50]:
            assert set(fields) <= set(row), name


def test_about_30_orders_a_working_day_at_scale_0_1(company):
    orders = company.rows("Document_ЗаказКлиента")
    per_day = Counter(o["Date"][:10] for o in orders)
    assert 200 <= len(per_day) <= 250  # working days in a year
    assert 25 <= len(orders) / len(per_day) <= 35


def test_stages_sum_exactly_to_the_order_amount(company):
    amounts = {o["Ref_Key"]: round(o["СуммаДокумента"] * 100) for o in company.rows("Document_ЗаказКлиента")}
    totals: Counter[str] = Counter()
    for s in company.rows("Document_ЗаказКлиента_ЭтапыГрафикаОплаты"):
        totals[s["Ref_Key"]] += round(s["СуммаПлатежа"] * 100)
    assert totals and all(amounts[k] == v for k, v in totals.items())


def test_no_payment_after_the_end_date_and_references_resolve(company):
    receipts = company.rows("Document_ПоступлениеБезналичныхДенежныхСредств") + company.rows(
        "Document_ПриходныйКассовыйОрдер")
    assert all(r["Date"][:10] <= END.isoformat() for r in receipts)
    objects = {o["Ref_Key"] for o in company.rows("Catalog_ОбъектыРасчетов")}
    lines = company.rows("Document_ПоступлениеБезналичныхДенежныхСредств_РасшифровкаПлатежа")
    assert all(line["ОбъектРасчетов_Key"] in objects for line in lines)
    partners = {p["Ref_Key"] for p in company.rows("Catalog_Партнеры")}
    assert all(o["Партнер_Key"] in partners for o in company.rows("Document_ЗаказКлиента"))


def test_partners_have_zero_one_or_two_emails_and_both_settlement_procedures(company):
    emails = Counter(c["Ref_Key"] for c in company.rows("Catalog_Партнеры_КонтактнаяИнформация")
                     if c["Тип"] == "АдресЭлектроннойПочты")
    n = len(company.rows("Catalog_Партнеры"))
    assert n - len(emails) > 0 and {1, 2} <= set(emails.values())
    assert any(c["LineNumber"] == "10" for c in company.rows("Catalog_Партнеры_КонтактнаяИнформация"))
    kinds = {c["ПорядокРасчетов"] for c in company.rows("Catalog_ДоговорыКонтрагентов")}
    assert {"ПоЗаказам", "ПоДоговорамКонтрагентов"} <= kinds
    assert any(p["ЮрФизЛицо"] == "ЧастноеЛицо" for p in company.rows("Catalog_Партнеры"))


def test_1c_json_quirks(company):
    stage = company.rows("Document_ЗаказКлиента_ЭтапыГрафикаОплаты")[0]
    assert isinstance(stage["LineNumber"], str)
    assert company.rows("Catalog_Партнеры")[0]["Code"].endswith(" ")
    cash = company.rows("Document_ПриходныйКассовыйОрдер")
    assert cash and all(r["Организация_Key"] != EMPTY_GUID for r in cash)
