"""A generated wholesale company in 1C:УТ 11 shape: the emulator's data.

Deterministic from a seed; scale 1.0 is the seed-000 company (about 300 customer
orders a Russian working day for a year, ~65% paid within days, some partly paid, some
paid by cash; partners with zero, one or two emails; segments, managers, contracts
with both settlement procedures, payment schedules with one or two stages). Amounts
are generated in integer kopecks and emitted as JSON numbers with two decimals.
Rows are kept exactly as 1C's OData returns them (Int64 as text, empty refs as zero
GUIDs, empty dates as 0001-01-01, fixed-length strings padded).
"""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import holidays
import numpy as np

from receivables.onec.schema import (
    CUSTOMER_PAYMENT,
    EMPTY_GUID,
    ORDER_TYPE,
    READ_SETS,
    WRITE_SETS,
)

CONTRACT_TYPE = "StandardODATA.Catalog_ДоговорыКонтрагентов"
KEYS: dict[str, tuple[str, ...]] = {
    name: (("Ref_Key", "LineNumber") if "LineNumber" in fields else ("Ref_Key",))
    for name, fields in {**READ_SETS, **WRITE_SETS}.items()
}
KEYS["InformationRegister_ПартнерыСегмента"] = ("Сегмент_Key", "Партнер_Key")

ORGANIZATIONS = [
    ("ООО «СантехОпт»", "Общество с ограниченной ответственностью «СантехОпт»", "5406123456", "540601001"),
    ("ООО «СантехОпт-Регион»", "Общество с ограниченной ответственностью «СантехОпт-Регион»", "5410987654",
     "541001001"),
]
MANAGERS = ["Иванова Анна Сергеевна", "Петров Пётр Николаевич", "Смирнова Ольга Викторовна",
            "Кузнецов Дмитрий Андреевич", "Попова Елена Игоревна", "Васильев Алексей Петрович",
            "Соколова Мария Александровна", "Михайлов Сергей Олегович", "Новикова Татьяна Юрьевна",
            "Фёдоров Игорь Владимирович", "Морозова Наталья Павловна", "Волков Андрей Евгеньевич",
            "Алексеева Ирина Михайловна", "Лебедев Максим Сергеевич", "Семёнова Юлия Викторовна",
            "Егоров Роман Ильич"]
LATIN = {"а": "a", "б": "b", "в": "v", "г": "g", "д": "d", "е": "e", "ё": "e", "ж": "zh", "з": "z", "и": "i",
         "й": "y", "к": "k", "л": "l", "м": "m", "н": "n", "о": "o", "п": "p", "р": "r", "с": "s", "т": "t",
         "у": "u", "ф": "f", "х": "h", "ц": "ts", "ч": "ch", "ш": "sh", "щ": "sch", "ы": "y", "э": "e",
         "ю": "yu", "я": "ya", "ь": "", "ъ": ""}
SEGMENTS = ["Крупный опт", "Монтажные организации", "Розничные магазины", "Частные клиенты"]
WORDS_A = ["Аква", "Сантех", "Термо", "Гидро", "Водо", "Тепло", "Строй", "Евро", "Сибирь", "Урал", "Волга",
           "Норд", "Профи", "Мастер", "Дом"]
WORDS_B = ["Сервис", "Монтаж", "Снаб", "Торг", "Комплект", "Систем", "Пласт", "Проект", "Ресурс", "Маркет"]
CONTACT_KINDS = ["Email", "Email для счетов", "Телефон"]


def translit(text: str) -> str:
    return "".join(LATIN.get(ch, ch) for ch in text.lower() if ch.isalnum() or ch in LATIN)


@dataclass
class Dataset:
    """Entity sets as lists of 1C JSON rows, safe to read and change from server threads."""

    sets: dict[str, list[dict[str, Any]]]
    end_date: dt.date
    lock: threading.RLock = field(default_factory=threading.RLock)
    version: int = 0

    def rows(self, name: str) -> list[dict[str, Any]]:
        """The live list of rows of a set (mutate through the helpers to bump the version)."""
        return self.sets.setdefault(name, [])

    def key_of(self, name: str, row: dict[str, Any]) -> tuple:
        return tuple(str(row.get(k, "")).lower() for k in KEYS.get(name, ("Ref_Key",)))

    def add_rows(self, name: str, rows: Iterable[dict[str, Any]]) -> None:
        with self.lock:
            self.rows(name).extend(dict(r) for r in rows)
            self.version += 1

    def update_rows(self, name: str, where: Callable[[dict[str, Any]], bool], changes: dict[str, Any]) -> int:
        with self.lock:
            n = 0
            for r in self.rows(name):
                if where(r):
                    r.update(changes)
                    n += 1
            self.version += 1
            return n

    def delete_rows(self, name: str, where: Callable[[dict[str, Any]], bool]) -> int:
        with self.lock:
            before = len(self.rows(name))
            self.sets[name] = [r for r in self.rows(name) if not where(r)]
            self.version += 1
            return before - len(self.sets[name])


def _refs(rng: np.random.Generator, n: int) -> list[str]:
    raw = rng.integers(0, 2**63, size=(n, 2), dtype=np.int64).astype(np.uint64)
    return [str(uuid.UUID(int=(int(a) << 64 | int(b)), version=4)) for a, b in raw]


def _ts(day: np.datetime64, seconds: int = 0) -> str:
    return str((day.astype("datetime64[s]") + np.timedelta64(int(seconds), "s")).astype(str))


def _rub(kopecks: int) -> float:
    return round(int(kopecks) / 100, 2)


def working_days(start: dt.date, end: dt.date) -> np.ndarray:
    ru = holidays.RU(years=range(start.year, end.year + 1), language="ru")
    days = np.arange(np.datetime64(start), np.datetime64(end) + 1, dtype="datetime64[D]")
    return np.array([d for d in days if ru.is_working_day(d.astype(dt.date))], dtype="datetime64[D]")


def generate_company(*, seed: int = 1, scale: float = 1.0, end_date: dt.date = dt.date(2026, 11, 20)) -> Dataset:
    """The company's entity sets, deterministic from `seed`, sized by `scale`."""
    rng = np.random.default_rng(seed)
    s: dict[str, list[dict[str, Any]]] = {name: [] for name in {**READ_SETS, **WRITE_SETS}}

    # organizations, users (managers), contact kinds, segments
    org_refs = _refs(rng, len(ORGANIZATIONS))
    for ref, (name, full, inn, kpp) in zip(org_refs, ORGANIZATIONS, strict=True):
        s["Catalog_Организации"].append({"Ref_Key": ref, "Description": name, "НаименованиеПолное": full,
                                         "ИНН": inn, "КПП": kpp})
    mgr_refs = _refs(rng, len(MANAGERS))
    for i, (ref, name) in enumerate(zip(mgr_refs, MANAGERS, strict=True)):
        last, first = name.split()[:2]
        login = f"{translit(first)[0]}.{translit(last)}"
        s["Catalog_Пользователи"].append({"Ref_Key": ref, "Description": name, "Недействителен": False})
        s["Catalog_Пользователи_КонтактнаяИнформация"] += [
            {"Ref_Key": ref, "LineNumber": "1", "Тип": "АдресЭлектроннойПочты", "АдресЭП": f"{login}@santeh-opt.example",
             "НомерТелефона": "", "Представление": f"{login}@santeh-opt.example"},
            {"Ref_Key": ref, "LineNumber": "2", "Тип": "Телефон", "АдресЭП": "",
             "НомерТелефона": f"+7 (383) 284-26-{i:02d}", "Представление": f"+7 (383) 284-26-{i:02d}"}]
    kind_refs = _refs(rng, len(CONTACT_KINDS))
    for ref, name in zip(kind_refs, CONTACT_KINDS, strict=True):
        s["Catalog_ВидыКонтактнойИнформации"].append({"Ref_Key": ref, "Description": name,
                                                      "PredefinedDataName": ""})
    seg_refs = _refs(rng, len(SEGMENTS))
    for ref, name in zip(seg_refs, SEGMENTS, strict=True):
        s["Catalog_СегментыПартнеров"].append({"Ref_Key": ref, "Description": name})

    # partners, their counterparties, contracts, contacts and segments
    n_p = max(10, int(round(1500 * scale)))
    p_refs, k_refs, c_refs = _refs(rng, n_p), _refs(rng, n_p), _refs(rng, n_p)
    forms = rng.choice(["КомпанияЮрЛицо", "ИндивидуальныйПредприниматель", "ЧастноеЛицо"], size=n_p,
                       p=[0.85, 0.10, 0.05])
    p_mgr = rng.integers(0, len(MANAGERS), size=n_p)
    p_org = rng.choice(len(ORGANIZATIONS), size=n_p, p=[0.75, 0.25])
    settle = rng.choice(["ПоЗаказам", "ПоДоговорамКонтрагентов", "ПоЗаказамНакладным"], size=n_p,
                        p=[0.7, 0.2, 0.1])
    has_term = rng.random(n_p) < 0.4
    term = rng.choice([5, 10, 14, 30], size=n_p)
    n_emails = rng.choice([0, 1, 2], size=n_p, p=[0.15, 0.65, 0.20])
    far_line = rng.random(n_p) < 0.3
    seg = rng.choice(len(SEGMENTS), size=n_p, p=[0.2, 0.3, 0.35, 0.15])
    inn10 = rng.integers(10**9, 10**10, size=n_p)
    inn12 = rng.integers(10**11, 10**12, size=n_p)
    for i in range(n_p):
        ref = p_refs[i]
        if forms[i] == "ЧастноеЛицо":
            name = f"{MANAGERS[(i * 7) % len(MANAGERS)].split()[0]} {'АБВГДЕЖЗИКЛМНОПРСТ'[i % 18]}. {'АВЕИНОС'[i % 7]}."
            full, inn, kpp = name, str(inn12[i]), ""
        elif forms[i] == "ИндивидуальныйПредприниматель":
            name = f"ИП {MANAGERS[(i * 5) % len(MANAGERS)].split()[0]}"
            full, inn, kpp = f"Индивидуальный предприниматель {name[3:]}", str(inn12[i]), ""
        else:
            name = f"ООО «{WORDS_A[i % len(WORDS_A)]}{WORDS_B[(i // len(WORDS_A)) % len(WORDS_B)]}-{i + 1}»"
            full, inn, kpp = name.replace("ООО", "Общество с ограниченной ответственностью"), str(inn10[i]), \
                f"{inn10[i] // 10**6:04d}01001"
        code = f"00-{i + 1:06d}".ljust(11)  # 1C pads fixed-length codes
        s["Catalog_Партнеры"].append({"Ref_Key": ref, "Code": code, "Description": name,
                                      "НаименованиеПолное": full, "ОсновнойМенеджер_Key": mgr_refs[p_mgr[i]],
                                      "ЮрФизЛицо": str(forms[i]), "Клиент": True, "DeletionMark": False})
        s["Catalog_Контрагенты"].append({"Ref_Key": k_refs[i], "Description": name, "НаименованиеПолное": full,
                                         "ИНН": inn, "КПП": kpp, "Партнер_Key": ref, "ЮрФизЛицо": str(forms[i])})
        s["Catalog_ДоговорыКонтрагентов"].append({
            "Ref_Key": c_refs[i], "Номер": f"Д-{i + 1:05d}", "Дата": "2025-01-15T00:00:00",
            "Description": f"Договор поставки № Д-{i + 1:05d} от 15.01.2025", "Партнер_Key": ref,
            "Контрагент_Key": k_refs[i], "Организация_Key": org_refs[p_org[i]],
            "ПорядокРасчетов": str(settle[i]), "УстановленСрокОплаты": bool(has_term[i]),
            "СрокОплаты": int(term[i]) if has_term[i] else 0, "Статус": "Действует"})
        lines = [{"Ref_Key": ref, "LineNumber": "1", "Тип": "Телефон", "Вид_Key": kind_refs[2], "АдресЭП": "",
                  "НомерТелефона": f"+7 (913) {100 + i % 900:03d}-{i % 100:02d}-{(i * 3) % 100:02d}",
                  "Представление": f"+7 (913) {100 + i % 900:03d}-{i % 100:02d}-{(i * 3) % 100:02d}"}]
        base = translit(name.split("«")[-1].split("-")[0]) or f"client{i}"
        for j in range(int(n_emails[i])):
            line = (2, 10)[j] if far_line[i] else j + 2
            addr = f"{('buh', 'zakaz')[j]}{i + 1}@{base}.example"
            lines.append({"Ref_Key": ref, "LineNumber": str(line), "Тип": "АдресЭлектроннойПочты",
                          "Вид_Key": kind_refs[1 if j == 1 else 0], "АдресЭП": addr, "НомерТелефона": "",
                          "Представление": addr})
        s["Catalog_Партнеры_КонтактнаяИнформация"] += lines
        segs = {int(seg[i])} | ({3} if forms[i] == "ЧастноеЛицо" else set())
        for g in sorted(segs):
            s["InformationRegister_ПартнерыСегмента"].append({"Сегмент_Key": seg_refs[g], "Партнер_Key": ref})

    # orders: Poisson per working day over the year ending at end_date
    days = working_days(end_date - dt.timedelta(days=364), end_date)
    per_day = rng.poisson(300 * scale, size=len(days))
    o_day = np.repeat(days, per_day)
    n_o = len(o_day)
    o_refs = _refs(rng, n_o)
    weights = 1.0 / np.arange(1, n_p + 1) ** 0.8  # a few big customers, a long tail
    o_partner = rng.choice(n_p, size=n_o, p=weights / weights.sum())
    o_secs = rng.integers(9 * 3600, 19 * 3600, size=n_o)
    o_amount = np.clip(np.rint(rng.lognormal(np.log(45_000), 1.0, size=n_o)) * 100 + rng.integers(0, 100, n_o),
                       300_000, 60_000_000).astype(np.int64)
    o_deleted = rng.random(n_o) < 0.01
    o_posted = (rng.random(n_o) < 0.97) & ~o_deleted
    o_status = rng.choice(["НеСогласован", "КОбеспечению", "КОтгрузке", "Закрыт"], size=n_o,
                          p=[0.05, 0.25, 0.45, 0.25])
    o_mgr = np.where(rng.random(n_o) < 0.9, p_mgr[o_partner], rng.integers(0, len(MANAGERS), n_o))
    rub = _refs(rng, 1)[0]
    # settlement objects: the order's own, or one per contract
    contract_obj: dict[int, str] = {}
    so_refs = _refs(rng, n_o)
    o_so: list[str] = []
    for k in range(n_o):
        p = int(o_partner[k])
        if settle[p] == "ПоДоговорамКонтрагентов":
            if p not in contract_obj:
                contract_obj[p] = so_refs[k]
                s["Catalog_ОбъектыРасчетов"].append({
                    "Ref_Key": so_refs[k], "Объект": c_refs[p], "Объект_Type": CONTRACT_TYPE,
                    "ТипОбъектаРасчетов": "Договор", "Партнер_Key": p_refs[p],
                    "Организация_Key": org_refs[p_org[p]]})
            o_so.append(contract_obj[p])
        else:
            o_so.append(so_refs[k])
            s["Catalog_ОбъектыРасчетов"].append({
                "Ref_Key": so_refs[k], "Объект": o_refs[k], "Объект_Type": ORDER_TYPE,
                "ТипОбъектаРасчетов": "ЗаказКлиента", "Партнер_Key": p_refs[p],
                "Организация_Key": org_refs[p_org[p]]})
    for k in range(n_o):
        p = int(o_partner[k])
        s["Document_ЗаказКлиента"].append({
            "Ref_Key": o_refs[k], "Number": f"ТД00-{k + 1:06d}", "Date": _ts(o_day[k], o_secs[k]),
            "Posted": bool(o_posted[k]), "DeletionMark": bool(o_deleted[k]), "Партнер_Key": p_refs[p],
            "Контрагент_Key": k_refs[p], "Организация_Key": org_refs[p_org[p]], "Договор_Key": c_refs[p],
            "Менеджер_Key": mgr_refs[o_mgr[k]], "СуммаДокумента": _rub(o_amount[k]), "Валюта_Key": rub,
            "Статус": str(o_status[k]), "ПорядокРасчетов": str(settle[p]), "ОбъектРасчетов_Key": o_so[k]})

    # payment schedules: none (30%), one stage (35%) or two stages (35%)
    kind = rng.choice([0, 1, 2], size=n_o, p=[0.3, 0.35, 0.35])
    second = rng.choice([10, 14], size=n_o)
    for k in np.flatnonzero(kind > 0):
        amount = int(o_amount[k])
        if kind[k] == 1:
            parts = [(5, amount, 100.0, "КредитПослеОтгрузки")]
        else:
            half = amount // 2
            parts = [(3, half, 50.0, "ПредоплатаДоОтгрузки"), (int(second[k]), amount - half, 50.0,
                                                              "КредитПослеОтгрузки")]
        for line, (offset, part, pct, option) in enumerate(parts, start=1):
            s["Document_ЗаказКлиента_ЭтапыГрафикаОплаты"].append({
                "Ref_Key": o_refs[k], "LineNumber": str(line),
                "ДатаПлатежа": _ts(o_day[k] + np.timedelta64(offset, "D")), "СуммаПлатежа": _rub(part),
                "ПроцентПлатежа": pct, "ВариантОплаты": option})

    # payments: 65% in full within 0–10 days, 10% partly, the rest unpaid; never after end_date
    u = rng.random(n_o)
    lag = rng.integers(0, 11, size=n_o)
    pay_day = o_day + lag.astype("timedelta64[D]")
    share = np.where(u < 0.65, 1.0, np.where(u < 0.75, rng.uniform(0.3, 0.8, n_o), 0.0))
    pay_amount = np.rint(o_amount * share).astype(np.int64)
    payers = np.flatnonzero((pay_amount > 0) & o_posted & (pay_day <= np.datetime64(end_date)))
    payers = payers[np.lexsort((pay_day[payers], o_partner[payers]))]
    cash = rng.random(n_o) < 0.15
    r_refs = _refs(rng, len(payers))
    receipt_of: list[int] = []
    for j, k in enumerate(payers):
        prev = payers[j - 1] if j else None
        merge = (prev is not None and o_partner[prev] == o_partner[k] and pay_day[prev] == pay_day[k]
                 and cash[prev] == cash[k] and rng.random() < 0.5)
        receipt_of.append(receipt_of[-1] if merge else j)
    headers: dict[int, dict[str, Any]] = {}
    line_no: dict[int, int] = {}
    for j, k in enumerate(payers):
        r = receipt_of[j]
        src = "Document_ПриходныйКассовыйОрдер" if cash[k] else "Document_ПоступлениеБезналичныхДенежныхСредств"
        if r not in headers:
            headers[r] = {"set": src, "Ref_Key": r_refs[r], "Number": f"{'КО' if cash[k] else 'БН'}00-{r + 1:06d}",
                          "Date": _ts(pay_day[k], 10 * 3600 + r % 3600), "Posted": True, "DeletionMark": False,
                          "Организация_Key": org_refs[p_org[o_partner[k]]],
                          "ХозяйственнаяОперация": CUSTOMER_PAYMENT, "kop": 0}
        headers[r]["kop"] += int(pay_amount[k])
        line_no[r] = line_no.get(r, 0) + 1
        s[f"{src}_РасшифровкаПлатежа"].append({
            "Ref_Key": r_refs[r], "LineNumber": str(line_no[r]), "Партнер_Key": p_refs[o_partner[k]],
            "Сумма": _rub(pay_amount[k]), "ОбъектРасчетов_Key": o_so[k]})
    for h in headers.values():
        src = h.pop("set")
        h["СуммаДокумента"] = _rub(h.pop("kop"))
        s[src].append(h)
    # noise: receipts that must not count (unposted, deletion-marked, another operation)
    noise = _refs(rng, 6)
    for i, ref in enumerate(noise):
        k = int(rng.integers(0, n_o))
        src = "Document_ПоступлениеБезналичныхДенежныхСредств"
        s[src].append({"Ref_Key": ref, "Number": f"БН99-{i + 1:06d}", "Date": _ts(o_day[k]),
                       "Posted": i % 3 != 0, "DeletionMark": i % 3 == 1, "Организация_Key": org_refs[0],
                       "ХозяйственнаяОперация": CUSTOMER_PAYMENT if i % 3 != 2 else "ВозвратОтПоставщика",
                       "СуммаДокумента": _rub(o_amount[k])})
        s[f"{src}_РасшифровкаПлатежа"].append({"Ref_Key": ref, "LineNumber": "1",
                                                "Партнер_Key": p_refs[o_partner[k]], "Сумма": _rub(o_amount[k]),
                                                "ОбъектРасчетов_Key": o_so[k]})
    for name, fields in READ_SETS.items():  # every published field present on every row
        for row in s[name]:
            for f, t in fields.items():
                if f not in row:
                    row[f] = EMPTY_GUID if t == "Edm.Guid" else ""
    return Dataset(sets=s, end_date=end_date)
