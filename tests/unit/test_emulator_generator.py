"""The generated 1C company: deterministic, shaped like the spec, internally consistent."""

from __future__ import annotations

import datetime as dt
import re
import time
from collections import Counter, defaultdict

import holidays
import pytest

from receivables.onec.emulator.dataset import Dataset
from receivables.onec.emulator.generator import (
    CONTRACT_TYPE,
    RUB_KEY,
    generate_company,
    inn_checksum_ok,
)
from receivables.onec.schema import (
    BOOLEAN,
    CUSTOMER_PAYMENT,
    DATETIME,
    DOUBLE,
    EMAIL_CONTACT,
    EMPTY_GUID,
    GUID,
    INT32,
    INT64,
    ORDER_SETTLEMENTS,
    ORDER_STATUSES,
    ORDER_TYPE,
    PHONE_CONTACT,
    PRIVATE_PERSON,
    READ_SETS,
    WRITE_SETS,
)

END = dt.date(2026, 11, 20)
SCALE = 0.2
GUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$")
ORDERS = "Document_ЗаказКлиента"
STAGES = "Document_ЗаказКлиента_ЭтапыГрафикаОплаты"
BANK = "Document_ПоступлениеБезналичныхДенежныхСредств"
CASH = "Document_ПриходныйКассовыйОрдер"


@pytest.fixture(scope="module")
def ds() -> Dataset:
    return generate_company(seed=7, scale=SCALE, end_date=END)


def kop(x: float) -> int:
    return round(x * 100)


def refs(ds: Dataset, name: str) -> set[str]:
    return {r["Ref_Key"] for r in ds.rows(name)}


def test_same_seed_same_company_and_another_seed_another():
    a = generate_company(seed=3, scale=0.02, end_date=END)
    b = generate_company(seed=3, scale=0.02, end_date=END)
    c = generate_company(seed=4, scale=0.02, end_date=END)
    for name in READ_SETS:
        assert a.rows(name) == b.rows(name), name
    assert refs(a, ORDERS).isdisjoint(refs(c, ORDERS))
    assert [r["СуммаДокумента"] for r in a.rows(ORDERS)[:50]] != [r["СуммаДокумента"] for r in c.rows(ORDERS)[:50]]


def test_every_field_of_the_schema_on_every_row_in_1c_json_representation(ds):
    for name, fields in READ_SETS.items():
        rows = ds.rows(name)
        assert rows, f"{name} is empty"
        for row in rows:
            for f, edm in fields.items():
                assert f in row, (name, f)
                v = row[f]
                if edm == GUID:
                    assert isinstance(v, str) and GUID_RE.match(v), (name, f, v)
                elif edm == INT64:
                    assert isinstance(v, str) and v.isdigit(), (name, f, v)  # Int64 arrives as text
                elif edm == INT32:
                    assert isinstance(v, int) and not isinstance(v, bool), (name, f, v)
                elif edm == DOUBLE:
                    assert isinstance(v, int | float) and not isinstance(v, bool), (name, f, v)
                    assert round(v, 2) == v, (name, f, v)
                elif edm == BOOLEAN:
                    assert isinstance(v, bool), (name, f, v)
                elif edm == DATETIME:
                    assert isinstance(v, str) and DATE_RE.match(v), (name, f, v)
                else:
                    assert isinstance(v, str), (name, f, v)
    for name in WRITE_SETS:
        assert ds.rows(name) == []


def test_rows_are_sorted_by_ref_key_and_keys_are_unique(ds):
    for name, ent in ds.sets.items():
        keys = [ent.sort_key(r) for r in ent.rows]
        assert keys == sorted(keys), name
        assert len(keys) == len(set(keys)), name


def test_orders_per_working_day_numbers_dates_and_flags(ds):
    orders = ds.rows(ORDERS)
    ru = holidays.RU(years=[2025, 2026], language="ru")
    days = [END - dt.timedelta(days=i) for i in range(365)]
    working = sum(1 for d in days if ru.is_working_day(d))
    assert 0.85 * 300 * SCALE * working < len(orders) < 1.15 * 300 * SCALE * working
    dates = {dt.date.fromisoformat(r["Date"][:10]) for r in orders}
    assert all(ru.is_working_day(d) for d in dates)
    assert min(dates) >= END - dt.timedelta(days=364) and max(dates) <= END
    assert len({r["Date"][11:] for r in orders}) > 100, "orders have a time of day"
    numbers = [r["Number"] for r in sorted(orders, key=lambda r: r["Number"])]
    assert all(re.fullmatch(r"ТД00-\d{6}", n) for n in numbers) and len(set(numbers)) == len(numbers)
    by_number = sorted(orders, key=lambda r: r["Number"])
    assert [r["Date"] for r in by_number] == sorted(r["Date"] for r in orders), "numbered in date order"
    n = len(orders)
    assert 0.95 < sum(r["Posted"] for r in orders) / n < 0.99
    assert 0.003 < sum(r["DeletionMark"] for r in orders) / n < 0.02
    assert not any(r["Posted"] and r["DeletionMark"] for r in orders)
    assert {r["Статус"] for r in orders} == set(ORDER_STATUSES)
    amounts = [r["СуммаДокумента"] for r in orders]
    assert min(amounts) >= 3000 and max(amounts) <= 600000
    assert any(kop(a) % 100 for a in amounts), "some amounts have kopecks"
    assert {r["Валюта_Key"] for r in orders} == {RUB_KEY}


def test_working_saturdays_count_and_holidays_do_not():
    small = generate_company(seed=2, scale=0.05, end_date=dt.date(2025, 11, 30))
    days = Counter(r["Date"][:10] for r in small.rows(ORDERS))
    assert days["2024-12-28"] > 0 and days["2025-11-01"] > 0  # working Saturdays
    assert days["2025-01-03"] == 0 and days["2025-05-01"] == 0 and days["2025-11-02"] == 0


def test_settlement_objects_follow_the_settlement_procedure(ds):
    objects = {r["Ref_Key"]: r for r in ds.rows("Catalog_ОбъектыРасчетов")}
    contracts = {r["Ref_Key"]: r for r in ds.rows("Catalog_ДоговорыКонтрагентов")}
    procedures = Counter()
    for order in ds.rows(ORDERS):
        so = objects[order["ОбъектРасчетов_Key"]]
        contract = contracts[order["Договор_Key"]]
        assert order["ПорядокРасчетов"] == contract["ПорядокРасчетов"]
        assert order["Организация_Key"] == contract["Организация_Key"] == so["Организация_Key"]
        assert so["Партнер_Key"] == order["Партнер_Key"]
        procedures[order["ПорядокРасчетов"]] += 1
        if order["ПорядокРасчетов"] in ORDER_SETTLEMENTS:
            assert so["Объект"] == order["Ref_Key"] and so["Объект_Type"] == ORDER_TYPE
        else:
            assert order["ПорядокРасчетов"] == "ПоДоговорамКонтрагентов"
            assert so["Объект"] == contract["Ref_Key"] and so["Объект_Type"] == CONTRACT_TYPE
    assert set(procedures) == {"ПоЗаказам", "ПоДоговорамКонтрагентов", "ПоЗаказамНакладным"}
    shares = Counter(c["ПорядокРасчетов"] for c in contracts.values())
    n = len(contracts)
    assert 0.6 < shares["ПоЗаказам"] / n < 0.8
    assert 0.12 < shares["ПоДоговорамКонтрагентов"] / n < 0.3
    assert 0.04 < shares["ПоЗаказамНакладным"] / n < 0.17


def test_payment_schedule_stages_sum_exactly_to_the_order(ds):
    orders = {r["Ref_Key"]: r for r in ds.rows(ORDERS)}
    stages = defaultdict(list)
    for s in ds.rows(STAGES):
        stages[s["Ref_Key"]].append(s)
    assert 0.62 < len(stages) / len(orders) < 0.78
    counts = Counter(len(v) for v in stages.values())
    assert set(counts) == {1, 2}
    for ref, rows in stages.items():
        order = orders[ref]
        assert sum(kop(s["СуммаПлатежа"]) for s in rows) == kop(order["СуммаДокумента"])
        assert sum(s["ПроцентПлатежа"] for s in rows) == 100
        assert sorted(s["LineNumber"] for s in rows) == [str(i) for i in range(1, len(rows) + 1)]
        for s in rows:
            assert s["ДатаПлатежа"].endswith("T00:00:00") and s["ДатаПлатежа"][:10] >= order["Date"][:10]
            assert s["ВариантОплаты"] in ("ПредоплатаДоОтгрузки", "КредитПослеОтгрузки", "АвансДоОбеспечения")


def test_receipts_rows_headers_and_no_payment_after_end_date(ds):
    objects = refs(ds, "Catalog_ОбъектыРасчетов")
    partners = refs(ds, "Catalog_Партнеры")
    rows_per_doc = 0
    for doc in (BANK, CASH):
        headers = {r["Ref_Key"]: r for r in ds.rows(doc)}
        rows = defaultdict(list)
        for row in ds.rows(f"{doc}_РасшифровкаПлатежа"):
            rows[row["Ref_Key"]].append(row)
            assert row["ОбъектРасчетов_Key"] in objects and row["Партнер_Key"] in partners
        assert set(rows) == set(headers)
        for ref, h in headers.items():
            assert dt.date.fromisoformat(h["Date"][:10]) <= END
            assert sum(kop(r["Сумма"]) for r in rows[ref]) == kop(h["СуммаДокумента"])
            assert re.fullmatch(r"ТД00-\d{6}", h["Number"])
            if doc == CASH:
                assert h["СуммаДокумента"] <= 100_000
        ops = Counter(h["ХозяйственнаяОперация"] for h in headers.values())
        assert ops[CUSTOMER_PAYMENT] > 0.98 * len(headers) and len(ops) == 2
        assert any(not h["Posted"] for h in headers.values())
        assert any(h["DeletionMark"] for h in headers.values()) or doc == CASH
        rows_per_doc = max(rows_per_doc, max(len(v) for v in rows.values()))
    assert rows_per_doc == 2, "some bank receipts pay two orders of one partner"
    two = [v for v in _rows_by_ref(ds, f"{BANK}_РасшифровкаПлатежа").values() if len(v) == 2]
    kinds = {r["Ref_Key"]: r["Объект_Type"] for r in ds.rows("Catalog_ОбъектыРасчетов")}
    for a, b in two:
        assert a["Партнер_Key"] == b["Партнер_Key"]
        # two orders: distinct settlement objects, unless both settle by the (same) contract
        assert a["ОбъектРасчетов_Key"] != b["ОбъектРасчетов_Key"] or kinds[a["ОбъектРасчетов_Key"]] == CONTRACT_TYPE
    n_bank = len(ds.rows(f"{BANK}_РасшифровкаПлатежа"))
    n_cash = len(ds.rows(f"{CASH}_РасшифровкаПлатежа"))
    assert 0.1 < n_cash / (n_bank + n_cash) < 0.2


def _rows_by_ref(ds: Dataset, name: str) -> dict[str, list[dict]]:
    out = defaultdict(list)
    for r in ds.rows(name):
        out[r["Ref_Key"]].append(r)
    return out


def _paid_by_settlement(ds: Dataset, *, counted_only: bool) -> Counter:
    paid: Counter = Counter()
    for doc in (BANK, CASH):
        headers = {r["Ref_Key"]: r for r in ds.rows(doc)}
        for row in ds.rows(f"{doc}_РасшифровкаПлатежа"):
            h = headers[row["Ref_Key"]]
            if counted_only and not (h["Posted"] and not h["DeletionMark"]
                                     and h["ХозяйственнаяОперация"] == CUSTOMER_PAYMENT):
                continue
            paid[row["ОбъектРасчетов_Key"]] += kop(row["Сумма"])
    return paid


def test_payment_shares_and_the_generators_truth(ds):
    orders = [o for o in ds.rows(ORDERS) if o["ПорядокРасчетов"] in ORDER_SETTLEMENTS]
    counted = _paid_by_settlement(ds, counted_only=True)
    truth = ds.truth["paid_kopecks"]
    full = part = 0
    for o in orders:
        got = counted.get(o["ОбъектРасчетов_Key"], 0)
        assert got == truth.get(o["Ref_Key"], 0)
        assert got <= kop(o["СуммаДокумента"]), "never overpaid"
        full += got == kop(o["СуммаДокумента"])
        part += 0 < got < kop(o["СуммаДокумента"])
    assert 0.55 < full / len(orders) < 0.68
    assert 0.06 < part / len(orders) < 0.16
    # full payments arrive within 0–10 days of the order
    order_by_so = {o["ОбъектРасчетов_Key"]: o for o in orders}
    for doc in (BANK, CASH):
        headers = {r["Ref_Key"]: r for r in ds.rows(doc)}
        for row in ds.rows(f"{doc}_РасшифровкаПлатежа"):
            o = order_by_so.get(row["ОбъектРасчетов_Key"])
            h = headers[row["Ref_Key"]]
            if o is None or h["ХозяйственнаяОперация"] != CUSTOMER_PAYMENT:
                continue
            lag = (dt.date.fromisoformat(h["Date"][:10]) - dt.date.fromisoformat(o["Date"][:10])).days
            assert 0 <= lag <= 22


def test_unpaid_orders_exist_in_the_last_days_and_none_is_paid_before_it_exists(ds):
    orders = {o["Ref_Key"]: o for o in ds.rows(ORDERS)}
    recent = [o for o in orders.values() if o["Date"][:10] == END.isoformat()]
    assert recent and any(ds.truth["paid_kopecks"].get(o["Ref_Key"], 0) == 0 for o in recent)
    assert all(orders[ref]["Posted"] for ref in ds.truth["paid_kopecks"])


def test_partners_emails_phones_forms_and_codes(ds):
    partners = ds.rows("Catalog_Партнеры")
    assert len(partners) == round(1500 * SCALE)
    contacts = _rows_by_ref(ds, "Catalog_Партнеры_КонтактнаяИнформация")
    kinds = {r["Ref_Key"]: r["Description"] for r in ds.rows("Catalog_ВидыКонтактнойИнформации")}
    assert {"Email", "Email для счетов", "Телефон"} <= set(kinds.values())
    n_emails = Counter()
    for p in partners:
        lines = contacts.get(p["Ref_Key"], [])
        assert sorted(int(r["LineNumber"]) for r in lines) == list(range(1, len(lines) + 1))
        emails = [r for r in lines if r["Тип"] == EMAIL_CONTACT]
        for e in emails:
            assert "@" in e["АдресЭП"] and e["Представление"] == e["АдресЭП"] and e["НомерТелефона"] == ""
            assert kinds[e["Вид_Key"]] in ("Email", "Email для счетов")
        for ph in (r for r in lines if r["Тип"] == PHONE_CONTACT):
            assert ph["НомерТелефона"].startswith("+7") and ph["АдресЭП"] == "" and kinds[ph["Вид_Key"]] == "Телефон"
        n_emails[len(emails)] += 1
        assert len(p["Code"]) == 11 and p["Code"] != p["Code"].rstrip(), "fixed-length code keeps its spaces"
    n = len(partners)
    assert 0.08 < n_emails[0] / n < 0.23 and 0.55 < n_emails[1] / n < 0.75 and 0.12 < n_emails[2] / n < 0.3
    forms = Counter(p["ЮрФизЛицо"] for p in partners)
    assert set(forms) == {"КомпанияЮрЛицо", "ИндивидуальныйПредприниматель", PRIVATE_PERSON}
    assert 0.01 < forms[PRIVATE_PERSON] / n < 0.1
    assert len({p["Description"] for p in partners}) == n
    assert any("'" in p["Description"] for p in partners), "a name that needs '' escaping"


def test_a_partner_with_emails_on_lines_2_and_10(ds):
    contacts = _rows_by_ref(ds, "Catalog_Партнеры_КонтактнаяИнформация")
    long = ds.truth["long_contact_partners"]
    assert long
    for ref in long:
        emails = [r for r in contacts[ref] if r["Тип"] == EMAIL_CONTACT]
        assert sorted(int(r["LineNumber"]) for r in emails) == [2, 10]
        assert len(contacts[ref]) >= 10
        by_text = min(emails, key=lambda r: r["LineNumber"])
        by_number = min(emails, key=lambda r: int(r["LineNumber"]))
        assert by_text is not by_number, "'10' < '2' as text: the trap is armed"


def test_managers_users_segments_organizations(ds):
    users = {u["Ref_Key"]: u for u in ds.rows("Catalog_Пользователи")}
    managers = ds.meta["managers"]
    assert 15 <= len(managers) <= 20
    assert sum(users[m]["Недействителен"] for m in managers) == 1
    ci = _rows_by_ref(ds, "Catalog_Пользователи_КонтактнаяИнформация")
    for m in managers:
        types = {r["Тип"] for r in ci[m]}
        assert types == {EMAIL_CONTACT, PHONE_CONTACT}
        assert any(r["АдресЭП"].endswith("@santeh-opt.example") for r in ci[m])
    for p in ds.rows("Catalog_Партнеры"):
        assert p["ОсновнойМенеджер_Key"] in users or p["ОсновнойМенеджер_Key"] == EMPTY_GUID
    segments = {r["Ref_Key"]: r["Description"] for r in ds.rows("Catalog_СегментыПартнеров")}
    assert {"Крупный опт", "Монтажные организации", "Розничные магазины", "Частные клиенты"} <= set(segments.values())
    partners = refs(ds, "Catalog_Партнеры")
    members = ds.rows("InformationRegister_ПартнерыСегмента")
    assert all(m["Сегмент_Key"] in segments and m["Партнер_Key"] in partners for m in members)
    assert len({m["Партнер_Key"] for m in members}) > 0.85 * len(partners)
    orgs = ds.rows("Catalog_Организации")
    assert len(orgs) == 2 and all(inn_checksum_ok(o["ИНН"]) and len(o["КПП"]) == 9 for o in orgs)
    assert {o["Description"] for o in orgs} == {"ООО «СантехОпт»", "ООО «СантехОпт-Регион»"}


def test_counterparties_and_contracts_one_per_partner(ds):
    partners = {p["Ref_Key"]: p for p in ds.rows("Catalog_Партнеры")}
    counterparties = ds.rows("Catalog_Контрагенты")
    contracts = ds.rows("Catalog_ДоговорыКонтрагентов")
    assert sorted(c["Партнер_Key"] for c in counterparties) == sorted(partners)
    assert sorted(c["Партнер_Key"] for c in contracts) == sorted(partners)
    k_by_ref = {k["Ref_Key"]: k for k in counterparties}
    for k in counterparties:
        assert inn_checksum_ok(k["ИНН"])
        if k["ЮрФизЛицо"] == "ЮрЛицо":
            assert len(k["ИНН"]) == 10 and re.fullmatch(r"\d{9}", k["КПП"])
        else:
            assert len(k["ИНН"]) == 12 and k["КПП"] == ""
    orgs = refs(ds, "Catalog_Организации")
    for c in contracts:
        assert k_by_ref[c["Контрагент_Key"]]["Партнер_Key"] == c["Партнер_Key"]
        assert c["Организация_Key"] in orgs
        assert c["Дата"] < (END - dt.timedelta(days=364)).isoformat()
        if c["УстановленСрокОплаты"]:
            assert c["СрокОплаты"] in (5, 10, 14, 30)
        else:
            assert c["СрокОплаты"] == 0
    assert any(c["УстановленСрокОплаты"] for c in contracts)


def test_every_reference_resolves(ds):
    def keys(name: str) -> set[str]:
        return refs(ds, name)

    checks = {
        ORDERS: {"Партнер_Key": "Catalog_Партнеры", "Контрагент_Key": "Catalog_Контрагенты",
                 "Организация_Key": "Catalog_Организации", "Договор_Key": "Catalog_ДоговорыКонтрагентов",
                 "Менеджер_Key": "Catalog_Пользователи", "ОбъектРасчетов_Key": "Catalog_ОбъектыРасчетов"},
        STAGES: {"Ref_Key": ORDERS},
        "Catalog_ОбъектыРасчетов": {"Партнер_Key": "Catalog_Партнеры", "Организация_Key": "Catalog_Организации"},
        BANK: {"Организация_Key": "Catalog_Организации"},
        CASH: {"Организация_Key": "Catalog_Организации"},
        f"{BANK}_РасшифровкаПлатежа": {"Ref_Key": BANK, "Партнер_Key": "Catalog_Партнеры"},
        f"{CASH}_РасшифровкаПлатежа": {"Ref_Key": CASH, "Партнер_Key": "Catalog_Партнеры"},
        "Catalog_Партнеры_КонтактнаяИнформация": {"Ref_Key": "Catalog_Партнеры",
                                                  "Вид_Key": "Catalog_ВидыКонтактнойИнформации"},
        "Catalog_Пользователи_КонтактнаяИнформация": {"Ref_Key": "Catalog_Пользователи"},
        "Catalog_Контрагенты": {"Партнер_Key": "Catalog_Партнеры"},
        "Catalog_ДоговорыКонтрагентов": {"Партнер_Key": "Catalog_Партнеры", "Контрагент_Key": "Catalog_Контрагенты",
                                         "Организация_Key": "Catalog_Организации"},
        "InformationRegister_ПартнерыСегмента": {"Партнер_Key": "Catalog_Партнеры",
                                                 "Сегмент_Key": "Catalog_СегментыПартнеров"},
    }
    for name, fields in checks.items():
        for field, target in fields.items():
            known = keys(target)
            missing = [r[field] for r in ds.rows(name) if r[field] not in known]
            assert not missing, (name, field, missing[:3])
    objects = {r["Объект"] for r in ds.rows("Catalog_ОбъектыРасчетов")}
    assert objects <= keys(ORDERS) | keys("Catalog_ДоговорыКонтрагентов")


def test_dataset_helpers_keep_order_and_fill_defaults():
    d = generate_company(seed=1, scale=0.01, end_date=END)
    name = "Catalog_Партнеры_КонтактнаяИнформация"
    ref = d.rows("Catalog_Партнеры")[0]["Ref_Key"]
    (added,) = d.add_rows(name, [{"Ref_Key": ref.upper(), "LineNumber": 12, "Тип": EMAIL_CONTACT,
                                  "АдресЭП": "new@client.example"}])
    assert added["Ref_Key"] == ref and added["LineNumber"] == "12" and added["Вид_Key"] == EMPTY_GUID
    ent = d.sets[name]
    assert [ent.sort_key(r) for r in ent.rows] == sorted(ent.sort_key(r) for r in ent.rows)
    assert d.get(name, (ref, 12)) is added
    assert d.update_rows(name, lambda r: r is added, {"АдресЭП": "other@client.example"}) == 1
    assert d.lookup(name, "АдресЭП", "other@client.example") == [added]
    assert d.delete_rows(name, {"АдресЭП": "other@client.example"}) == 1
    assert d.get(name, (ref, 12)) is None
    order = d.rows(ORDERS)[0]
    assert d.get(ORDERS, order["Ref_Key"].upper()) is order
    assert d.update_rows(ORDERS, order["Ref_Key"], {"Статус": "Закрыт"}) == 1 and order["Статус"] == "Закрыт"


def test_scale_one_generates_quickly():
    started = time.monotonic()
    big = generate_company(seed=1, scale=1.0, end_date=END)
    elapsed = time.monotonic() - started
    assert 60_000 < len(big.rows(ORDERS)) < 90_000
    assert len(big.rows("Catalog_Партнеры")) == 1500
    assert elapsed < 15, f"scale 1 took {elapsed:.1f}s"
