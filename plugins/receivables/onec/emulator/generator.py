"""A generated plumbing wholesaler in 1C:УТ 11.5 shape: the emulator's data.

Deterministic from a seed (one numpy Generator drawn in a fixed order). Scale 1.0 is
the seed-000 company: about 300 customer orders a Russian working day (holidays.RU,
working Saturdays included) over the 365 days ending at ``end_date``; ~1500 partners
with zero, one or two emails; segments, 15-20 managers, two organizations; one
counterparty and one contract per partner with both settlement procedures; payment
schedules with one or two stages; ~65% of orders paid in full within days, ~10%
partly, by bank (~85%) or cash (~15%) receipts. Amounts are integer kopecks emitted
as JSON numbers with two decimals. The bulk (orders, stages, receipts) is vectorised
so scale 10 (~750k orders) takes seconds, not minutes.

ASSUMPTIONS (no public source): ``ТипОбъектаРасчетов`` values "Заказ"/"Договор";
partner ``ЮрФизЛицо`` values КомпанияЮрЛицо / ИндивидуальныйПредприниматель /
ЧастноеЛицо (as the project spec names them).
"""

from __future__ import annotations

import datetime as dt
import gc
import itertools
import re
from typing import Any

import holidays
import numpy as np

from receivables.onec.emulator.dataset import Dataset, data_version
from receivables.onec.schema import (
    CUSTOMER_PAYMENT,
    EMAIL_CONTACT,
    EMPTY_GUID,
    ORDER_TYPE,
    PHONE_CONTACT,
    PRIVATE_PERSON,
)

__all__ = ["Dataset", "generate_company", "working_days", "translit", "RUB_KEY", "CONTRACT_TYPE"]

CONTRACT_TYPE = "StandardODATA.Catalog_ДоговорыКонтрагентов"
RUB_KEY = "f1b2c3d4-0643-4000-8000-000000000643"  # fixed: 643 is the ISO code of the rouble

BANK = "Document_ПоступлениеБезналичныхДенежныхСредств"
CASH = "Document_ПриходныйКассовыйОрдер"
ORDERS = "Document_ЗаказКлиента"
STAGES = "Document_ЗаказКлиента_ЭтапыГрафикаОплаты"

ORGANIZATIONS = [
    # (short name, full name, 9 INN digits before the check digit, KPP)
    ("ООО «СантехОпт»", "Общество с ограниченной ответственностью «СантехОпт»", "770812345", "770801001"),
    ("ООО «СантехОпт-Регион»", "Общество с ограниченной ответственностью «СантехОпт-Регион»", "500712346",
     "500701001"),
]
SEGMENTS = ["Крупный опт", "Монтажные организации", "Розничные магазины", "Частные клиенты",
            "Строительные компании", "Интернет-магазины"]
SETTLEMENTS = np.array(["ПоЗаказам", "ПоДоговорамКонтрагентов", "ПоЗаказамНакладным"])
ORDER_STATUS = np.array(["НеСогласован", "КОбеспечению", "КОтгрузке", "Закрыт"])
PAYMENT_OPTIONS = np.array(["ПредоплатаДоОтгрузки", "КредитПослеОтгрузки", "АвансДоОбеспечения"])

# contact kinds: (description, PredefinedDataName)
KIND_EMAIL, KIND_INVOICE_EMAIL, KIND_PHONE, KIND_ADDRESS, KIND_WEB, KIND_USER_EMAIL, KIND_USER_PHONE = range(7)
CONTACT_KINDS = [
    ("Email", "EmailПартнера"),
    ("Email для счетов", ""),
    ("Телефон", "ТелефонПартнера"),
    ("Фактический адрес", "АдресПартнера"),
    ("Веб-страница", "ДругаяИнформацияПартнера"),
    ("Email пользователя", "EmailПользователя"),
    ("Телефон пользователя", "ТелефонПользователя"),
]

MALE_FIRST = ["Александр", "Алексей", "Андрей", "Дмитрий", "Евгений", "Игорь", "Иван", "Максим", "Михаил",
              "Николай", "Олег", "Павел", "Роман", "Сергей", "Владимир", "Юрий", "Артём", "Константин"]
FEMALE_FIRST = ["Анна", "Елена", "Ирина", "Мария", "Наталья", "Ольга", "Светлана", "Татьяна", "Юлия",
                "Екатерина", "Марина", "Людмила", "Ксения", "Дарья"]
PATRONYMIC_ROOTS = ["Александров", "Алексеев", "Андреев", "Викторов", "Владимиров", "Дмитриев", "Иванов",
                    "Михайлов", "Николаев", "Олегов", "Павлов", "Петров", "Сергеев", "Юрьев"]
SURNAMES = ["Иванов", "Смирнов", "Кузнецов", "Попов", "Васильев", "Петров", "Соколов", "Михайлов",
            "Новиков", "Фёдоров", "Морозов", "Волков", "Алексеев", "Лебедев", "Семёнов", "Егоров",
            "Павлов", "Козлов", "Степанов", "Николаев", "Орлов", "Андреев", "Макаров", "Никитин",
            "Захаров", "Зайцев", "Соловьёв", "Борисов", "Яковлев", "Григорьев", "Романов", "Воробьёв",
            "Сергеев", "Кузьмин", "Фролов", "Александров", "Дмитриев", "Королёв", "Гусев", "Киселёв",
            "Ильин", "Максимов", "Поляков", "Сорокин", "Виноградов", "Ковалёв", "Белов", "Медведев",
            "Антонов", "Тарасов", "Жуков", "Баранов", "Филиппов", "Комаров", "Давыдов", "Беляев",
            "Герасимов", "Богданов", "Осипов", "Сидоров", "Матвеев", "Титов", "Марков", "Миронов",
            "Крылов", "Куликов", "Карпов", "Власов", "Мельников", "Денисов", "Гаврилов", "Тихонов",
            "Вишневский", "Ковальский", "Островский"]
STEM_A = ["Аква", "Термо", "Сантех", "Гидро", "Тепло", "Водо", "Строй", "Евро", "Мега", "Эко", "Гранд",
          "Норд", "Юг", "Волга", "Урал", "Сибирь", "Альфа", "Вектор", "Профи", "Мастер", "Техно", "Компас",
          "Олимп", "Старт", "Ресурс", "Фаворит", "Регион", "Город", "Дон", "Кама"]
STEM_B = ["Монтаж", "Снаб", "Комплект", "Сервис", "Торг", "Маркет", "Систем", "Строй", "Трейд", "Опт",
          "Групп", "Техника", "Дом", "Плюс", "Лайн", "Пласт", "Проект", "Инжиниринг", "Климат", "Поток"]
CITIES = ["Москва", "Казань", "Тверь", "Тула", "Самара", "Пермь", "Омск", "Уфа", "Сочи", "Курск", "Псков",
          "Томск", "Киров", "Орёл", "Рязань", "Пенза", "Сургут", "Чита", "Ижевск", "Вологда"]
APOSTROPHE_STEMS = ["Д'Аква", "О'Терм", "Л'Этуаль Сантехника"]
STREETS = ["ул. Ленина", "ул. Гагарина", "ул. Садовая", "пр-т Мира", "ул. Заводская", "ул. Строителей",
           "ул. Промышленная", "ш. Энтузиастов", "ул. Лесная", "ул. Центральная"]
# (region code, area codes) weighted towards the capital regions
REGIONS = [("77", ["495", "499"]), ("50", ["496", "498"]), ("78", ["812"]), ("16", ["843"]),
           ("66", ["343"]), ("54", ["383"]), ("52", ["831"]), ("63", ["846"]), ("61", ["863"]),
           ("23", ["861"]), ("02", ["347"]), ("74", ["351"])]
REGION_P = np.array([0.28, 0.14, 0.12, 0.06, 0.06, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.04])

LATIN = {"а": "a", "б": "b", "в": "v", "г": "g", "д": "d", "е": "e", "ё": "e", "ж": "zh", "з": "z",
         "и": "i", "й": "y", "к": "k", "л": "l", "м": "m", "н": "n", "о": "o", "п": "p", "р": "r",
         "с": "s", "т": "t", "у": "u", "ф": "f", "х": "h", "ц": "ts", "ч": "ch", "ш": "sh", "щ": "sch",
         "ы": "y", "э": "e", "ю": "yu", "я": "ya", "ь": "", "ъ": ""}

_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_W10 = np.array([2, 4, 10, 3, 5, 9, 4, 6, 8])
_W11 = np.array([7, 2, 4, 10, 3, 5, 9, 4, 6, 8])
_W12 = np.array([3, 7, 2, 4, 10, 3, 5, 9, 4, 6, 8])


# -- small helpers --------------------------------------------------------------------

def translit(text: str) -> str:
    """Latin letters for an email local part or domain ('АкваМонтаж' -> 'akvamontazh')."""
    out = "".join(LATIN.get(ch, ch) for ch in text.lower())
    return re.sub(r"[^a-z0-9]+", "", out)


def guids(rng: np.random.Generator, n: int) -> list[str]:
    """n random (version 4) lower-case GUID strings, vectorised."""
    if n <= 0:
        return []
    b = rng.integers(0, 256, size=(n, 16), dtype=np.uint8)
    b[:, 6] = (b[:, 6] & 0x0F) | 0x40
    b[:, 8] = (b[:, 8] & 0x3F) | 0x80
    hexd = np.empty((n, 32), dtype=np.uint8)
    hexd[:, 0::2] = _HEX[b >> 4]
    hexd[:, 1::2] = _HEX[b & 0x0F]
    out = np.full((n, 36), ord("-"), dtype=np.uint8)
    out[:, 0:8], out[:, 9:13], out[:, 14:18] = hexd[:, 0:8], hexd[:, 8:12], hexd[:, 12:16]
    out[:, 19:23], out[:, 24:36] = hexd[:, 16:20], hexd[:, 20:32]
    text = out.tobytes().decode("ascii")
    return [text[i:i + 36] for i in range(0, 36 * n, 36)]


def working_days(start: dt.date, end: dt.date) -> np.ndarray:
    """Russian working days in [start, end]: Mon-Fri minus holidays plus working Saturdays."""
    ru = holidays.RU(years=range(start.year, end.year + 1), language="ru")
    days = [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
    return np.array([d for d in days if ru.is_working_day(d)], dtype="datetime64[D]")


def _stamp(days: np.ndarray, seconds: np.ndarray | int = 0) -> list[str]:
    """'YYYY-MM-DDTHH:MM:SS' strings for datetime64[D] days plus seconds of the day."""
    ts = days.astype("datetime64[s]") + np.asarray(seconds, dtype=np.int64).astype("timedelta64[s]")
    return np.datetime_as_string(ts, unit="s").tolist()


def _rub(kopecks: np.ndarray) -> list[float]:
    return (np.asarray(kopecks, dtype=np.int64) / 100).tolist()


def _inn(rng: np.random.Generator, n: int, length: int) -> list[str]:
    """Valid-checksum INNs: 10 digits (organizations) or 12 (entrepreneurs, persons)."""
    region = np.array([r for r, _ in REGIONS])[rng.choice(len(REGIONS), size=n, p=REGION_P)]
    office = rng.integers(1, 40, size=n)
    body = rng.integers(0, 10, size=(n, length - 5 if length == 10 else length - 6))
    digits = np.zeros((n, length), dtype=np.int64)
    digits[:, 0] = [int(r[0]) for r in region]
    digits[:, 1] = [int(r[1]) for r in region]
    digits[:, 2] = office // 10
    digits[:, 3] = office % 10
    if length == 10:
        digits[:, 4:9] = body
        digits[:, 9] = (digits[:, :9] @ _W10) % 11 % 10
    else:
        digits[:, 4:10] = body
        digits[:, 10] = (digits[:, :10] @ _W11) % 11 % 10
        digits[:, 11] = (digits[:, :11] @ _W12) % 11 % 10
    return ["".join(map(str, row)) for row in digits.tolist()]


def inn_checksum_ok(inn: str) -> bool:
    """Whether a 10- or 12-digit INN has valid check digits."""
    if not inn.isdigit() or len(inn) not in (10, 12):
        return False
    d = np.array([int(c) for c in inn])
    if len(inn) == 10:
        return int(d[:9] @ _W10) % 11 % 10 == d[9]
    return (int(d[:10] @ _W11) % 11 % 10 == d[10]) and (int(d[:11] @ _W12) % 11 % 10 == d[11])


def _org_inn(first9: str) -> str:
    d = np.array([int(c) for c in first9])
    return first9 + str(int(d @ _W10) % 11 % 10)


def _person(rng: np.random.Generator) -> tuple[str, str, str, bool]:
    """(surname, first name, patronymic, female) of a Russian person."""
    female = bool(rng.random() < 0.45)
    surname = SURNAMES[int(rng.integers(len(SURNAMES)))]
    root = PATRONYMIC_ROOTS[int(rng.integers(len(PATRONYMIC_ROOTS)))]
    if female:
        surname = surname[:-2] + "ая" if surname.endswith("ий") else surname + "а"
        return surname, FEMALE_FIRST[int(rng.integers(len(FEMALE_FIRST)))], root + "на", True
    return surname, MALE_FIRST[int(rng.integers(len(MALE_FIRST)))], root + "ич", False


def _phone(rng: np.random.Generator, area: str) -> tuple[str, str]:
    """(НомерТелефона, Представление) like BSP stores them."""
    n = int(rng.integers(2_000_000, 9_999_999))
    s = f"{n:07d}"
    return f"+7{area}{s}", f"+7 ({area}) {s[:3]}-{s[3:5]}-{s[5:]}"


# -- the company ----------------------------------------------------------------------

def generate_company(*, seed: int = 1, scale: float = 1.0, end_date: dt.date = dt.date(2026, 11, 20)) -> Dataset:
    """The company's entity sets, deterministic from ``seed``, sized by ``scale``."""
    if scale <= 0:
        raise ValueError("scale must be positive")
    # millions of fresh dicts make the cyclic GC rescan everything again and again
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _generate(seed=seed, scale=scale, end_date=end_date)
    finally:
        if was_enabled:
            gc.enable()


def _generate(*, seed: int, scale: float, end_date: dt.date) -> Dataset:
    rng = np.random.default_rng(seed)
    out: dict[str, list[dict[str, Any]]] = {}
    dv_pool = [data_version(i) for i in range(1, 65)]

    def dv(n: int) -> itertools.islice:
        return itertools.islice(itertools.cycle(dv_pool), n)

    # organizations ------------------------------------------------------------------
    org_refs = guids(rng, len(ORGANIZATIONS))
    out["Catalog_Организации"] = [
        {"Ref_Key": ref, "DataVersion": dv_pool[i], "Description": short, "НаименованиеПолное": full,
         "ИНН": _org_inn(inn9), "КПП": kpp}
        for i, (ref, (short, full, inn9, kpp)) in enumerate(zip(org_refs, ORGANIZATIONS, strict=True))]

    # contact kinds, segments ---------------------------------------------------------
    kind_refs = guids(rng, len(CONTACT_KINDS))
    out["Catalog_ВидыКонтактнойИнформации"] = [
        {"Ref_Key": ref, "DataVersion": dv_pool[i], "Description": d, "PredefinedDataName": p}
        for i, (ref, (d, p)) in enumerate(zip(kind_refs, CONTACT_KINDS, strict=True))]
    seg_refs = guids(rng, len(SEGMENTS))
    out["Catalog_СегментыПартнеров"] = [
        {"Ref_Key": ref, "DataVersion": dv_pool[i], "Description": d}
        for i, (ref, d) in enumerate(zip(seg_refs, SEGMENTS, strict=True))]

    # users: managers (+ the administrator) -----------------------------------------
    n_mgr = int(rng.integers(15, 21))
    user_refs = guids(rng, n_mgr + 1)
    mgr_refs = user_refs[:n_mgr]
    users, user_ci = [], []
    seen_logins: set[str] = set()
    for i, ref in enumerate(mgr_refs):
        last, first, middle, _ = _person(rng)
        login = f"{translit(first)[0]}.{translit(last)}"
        while login in seen_logins:
            login += str(i)
        seen_logins.add(login)
        email = f"{login}@santeh-opt.example"
        number, shown = _phone(rng, "495")
        users.append({"Ref_Key": ref, "DataVersion": dv_pool[i % 64], "Description": f"{last} {first} {middle}",
                      "Недействителен": i == n_mgr - 1})  # one manager has left the company
        user_ci += [
            {"Ref_Key": ref, "LineNumber": "1", "Тип": EMAIL_CONTACT, "Вид_Key": kind_refs[KIND_USER_EMAIL],
             "АдресЭП": email, "НомерТелефона": "", "Представление": email},
            {"Ref_Key": ref, "LineNumber": "2", "Тип": PHONE_CONTACT, "Вид_Key": kind_refs[KIND_USER_PHONE],
             "АдресЭП": "", "НомерТелефона": number, "Представление": shown}]
    users.append({"Ref_Key": user_refs[-1], "DataVersion": dv_pool[0], "Description": "Администратор",
                  "Недействителен": False})
    out["Catalog_Пользователи"] = users
    out["Catalog_Пользователи_КонтактнаяИнформация"] = user_ci
    active_mgr = np.arange(n_mgr - 1)

    # partners -------------------------------------------------------------------------
    n_p = max(10, int(round(1500 * scale)))
    p_refs, k_refs, c_refs = guids(rng, n_p), guids(rng, n_p), guids(rng, n_p)
    # 0 company, 1 entrepreneur, 2 private person
    p_form = rng.choice(3, size=n_p, p=[0.75, 0.20, 0.05])
    p_form[0] = 2  # every company has at least one private client and one entrepreneur
    p_form[1] = 1
    p_weight = rng.pareto(1.3, size=n_p) + 0.3
    p_weight[p_form == 2] *= 0.1
    p_weight /= p_weight.sum()
    big = p_weight >= np.quantile(p_weight, 0.92)
    p_region = rng.choice(len(REGIONS), size=n_p, p=REGION_P)
    p_mgr = rng.choice(active_mgr, size=n_p)
    p_mgr[rng.random(n_p) < 0.04] = n_mgr - 1  # still assigned to the manager who left
    p_mgr[rng.random(n_p) < 0.03] = -1  # no main manager
    n_emails = rng.choice(3, size=n_p, p=[0.15, 0.65, 0.20])
    n_emails[2], n_emails[3] = 0, 2
    long_lines = (n_emails == 2) & (rng.random(n_p) < 0.08)
    long_lines[3] = True  # emails at LineNumber 2 and 10: text order would pick the wrong one
    p_deleted = rng.random(n_p) < 0.01
    p_deleted[:4] = False
    inn10, inn12 = _inn(rng, n_p, 10), _inn(rng, n_p, 12)

    used: set[str] = set()
    partners, counterparties, contacts, seg_rows = [], [], [], []
    long_partners: list[str] = []
    for i in range(n_p):
        ref, form = p_refs[i], int(p_form[i])
        if form == 0:
            if rng.random() < 0.01 or i == 4:
                stem = APOSTROPHE_STEMS[int(rng.integers(len(APOSTROPHE_STEMS)))]
            else:
                stem = STEM_A[int(rng.integers(len(STEM_A)))] + STEM_B[int(rng.integers(len(STEM_B)))].lower()
                if rng.random() < 0.3:
                    stem += " " + CITIES[int(rng.integers(len(CITIES)))]
            base = stem
            k = 1
            while stem in used:
                k += 1
                stem = f"{base}-{k}"
            used.add(stem)
            legal = "АО" if rng.random() < 0.1 else "ООО"
            long_legal = "Акционерное общество" if legal == "АО" else "Общество с ограниченной ответственностью"
            name, full = f"{legal} «{stem}»", f"{long_legal} «{stem}»"
            inn, kpp = inn10[i], inn10[i][:4] + "01001"
            slug = translit(stem) or f"client{i}"
            p_kind, k_kind = "КомпанияЮрЛицо", "ЮрЛицо"
        else:
            last, first, middle, _ = _person(rng)
            base = f"{last} {first} {middle}"
            person, k = base, 1
            while person in used:
                k += 1
                person = f"{base} ({k})"
            used.add(person)
            slug = f"{translit(last)}.{translit(first)[0]}{translit(middle)[0]}"
            inn, kpp = inn12[i], ""
            if form == 1:
                name, full = f"ИП {person}", f"Индивидуальный предприниматель {person}"
                p_kind, k_kind = "ИндивидуальныйПредприниматель", "ИндивидуальныйПредприниматель"
            else:
                name = full = person
                p_kind, k_kind = PRIVATE_PERSON, "ФизЛицо"
        mgr = mgr_refs[p_mgr[i]] if p_mgr[i] >= 0 else EMPTY_GUID
        partners.append({"Ref_Key": ref, "DataVersion": dv_pool[i % 64], "Code": f"ТД-{i + 1:06d}".ljust(11),
                         "Description": name, "НаименованиеПолное": full, "ОсновнойМенеджер_Key": mgr,
                         "ЮрФизЛицо": p_kind, "Клиент": True, "DeletionMark": bool(p_deleted[i])})
        counterparties.append({"Ref_Key": k_refs[i], "DataVersion": dv_pool[i % 64], "Description": name,
                               "НаименованиеПолное": full, "ИНН": inn, "КПП": kpp, "Партнер_Key": ref,
                               "ЮрФизЛицо": k_kind})

        # contact information: emails (0/1/2), phones, an address, sometimes a web page
        area = REGIONS[int(p_region[i])][1][0]
        if form == 0:
            domain = f"{slug}.example"
            emails = [f"{('info', 'zakaz', 'office', 'sales')[int(rng.integers(4))]}@{domain}",
                      f"{('buh', 'finance', 'oplata')[int(rng.integers(3))]}@{domain}"]
        else:
            domain = ("mail", "yandex", "inbox", "list")[int(rng.integers(4))] + ".example"
            emails = [f"{slug}@{domain}", f"{slug}.{i}@{domain}"]
        if rng.random() < 0.02:
            emails[0] = emails[0].capitalize()  # people type addresses with capitals
        kinds = [KIND_EMAIL, KIND_INVOICE_EMAIL] if rng.random() < 0.7 else [KIND_INVOICE_EMAIL, KIND_EMAIL]
        lines: list[tuple[str, int, str, str, str]] = []  # (Тип, kind, АдресЭП, НомерТелефона, Представление)

        def phone_line(area: str = area) -> tuple[str, int, str, str, str]:
            number, shown = _phone(rng, area)
            return (PHONE_CONTACT, KIND_PHONE, "", number, shown)

        def address_line() -> tuple[str, int, str, str, str]:
            city = CITIES[int(rng.integers(len(CITIES)))]
            text = f"г. {city}, {STREETS[int(rng.integers(len(STREETS)))]}, д. {int(rng.integers(1, 120))}"
            return ("Адрес", KIND_ADDRESS, "", "", text)

        email_lines = [(EMAIL_CONTACT, kinds[j], emails[j], "", emails[j]) for j in range(int(n_emails[i]))]
        if long_lines[i]:
            long_partners.append(ref)
            fillers = [phone_line(), address_line(), phone_line(), ("ВебСтраница", KIND_WEB, "", "",
                                                                     f"https://{domain}"),
                       phone_line(), address_line(), phone_line()]
            lines = [phone_line(), email_lines[0], *fillers, email_lines[1], address_line()]
        else:
            lines = [phone_line()] if rng.random() < 0.9 else []
            lines += email_lines
            if rng.random() < 0.25:
                lines.append(phone_line())
            if rng.random() < 0.6:
                lines.append(address_line())
            if len(lines) > 1 and rng.random() < 0.3:
                rng.shuffle(lines)
        for ln, (typ, kind, addr, number, shown) in enumerate(lines, start=1):
            contacts.append({"Ref_Key": ref, "LineNumber": str(ln), "Тип": typ, "Вид_Key": kind_refs[kind],
                             "АдресЭП": addr, "НомерТелефона": number, "Представление": shown})

        # segments: one (sometimes two, sometimes none)
        if form == 2:
            segs = {3}
        elif big[i]:
            segs = {0}
        else:
            segs = {int(rng.choice([1, 2, 4, 5], p=[0.4, 0.3, 0.2, 0.1]))}
        if rng.random() < 0.1:
            segs.add(int(rng.choice([1, 2, 4, 5])))
        if rng.random() < 0.04 and form != 2:
            segs = set()
        seg_rows += [{"Сегмент_Key": seg_refs[g], "Партнер_Key": ref} for g in sorted(segs)]
    out["Catalog_Партнеры"] = partners
    out["Catalog_Контрагенты"] = counterparties
    out["Catalog_Партнеры_КонтактнаяИнформация"] = contacts
    out["InformationRegister_ПартнерыСегмента"] = seg_rows

    # contracts ----------------------------------------------------------------------
    start = end_date - dt.timedelta(days=364)
    c_settle = rng.choice(3, size=n_p, p=[0.7, 0.2, 0.1])
    c_settle[0], c_settle[1], c_settle[5] = 0, 1, 2  # every procedure exists at any scale
    c_org = rng.choice(len(ORGANIZATIONS), size=n_p, p=[0.8, 0.2])
    c_has_term = rng.random(n_p) < 0.25
    c_term = np.where(c_has_term, rng.choice([5, 10, 14, 30], size=n_p), 0)
    c_date = np.datetime64(start) - rng.integers(1, 1100, size=n_p).astype("timedelta64[D]")
    c_status = rng.choice(["Действует", "Закрыт", "НеСогласован"], size=n_p, p=[0.96, 0.03, 0.01])
    c_date_s = _stamp(c_date)
    contracts = []
    for i in range(n_p):
        number = f"{'СО' if c_org[i] == 0 else 'СР'}-{str(c_date_s[i])[2:4]}/{i + 1:05d}"
        d = c_date_s[i]
        contracts.append({
            "Ref_Key": c_refs[i], "DataVersion": dv_pool[i % 64], "Номер": number, "Дата": d,
            "Description": f"Договор поставки № {number} от {d[8:10]}.{d[5:7]}.{d[:4]}",
            "Партнер_Key": p_refs[i], "Контрагент_Key": k_refs[i], "Организация_Key": org_refs[c_org[i]],
            "ПорядокРасчетов": str(SETTLEMENTS[c_settle[i]]), "УстановленСрокОплаты": bool(c_has_term[i]),
            "СрокОплаты": int(c_term[i]), "Статус": str(c_status[i])})
    out["Catalog_ДоговорыКонтрагентов"] = contracts

    # settlement objects of contracts settled by contract
    by_contract = np.flatnonzero(c_settle == 1)
    c_so = np.full(n_p, EMPTY_GUID, dtype=object)
    c_so[by_contract] = guids(rng, len(by_contract))
    settlement = [{"Ref_Key": c_so[i], "DataVersion": dv_pool[i % 64], "Объект": c_refs[i],
                   "Объект_Type": CONTRACT_TYPE, "ТипОбъектаРасчетов": "Договор", "Партнер_Key": p_refs[i],
                   "Организация_Key": org_refs[c_org[i]]} for i in by_contract.tolist()]

    # orders (vectorised) -------------------------------------------------------------
    days = working_days(start, end_date)
    doy = (days - days.astype("datetime64[Y]")).astype(np.int64)
    season = 1 + 0.12 * np.sin(2 * np.pi * (doy - 100) / 365.25)
    per_day = rng.poisson(300 * scale * season)
    if per_day.sum() == 0:
        per_day[-1] = 1
    day_idx = np.repeat(np.arange(len(days)), per_day)
    n_o = len(day_idx)
    secs = np.clip(rng.normal(13 * 3600, 2.4 * 3600, n_o), 8 * 3600 + 900, 19 * 3600 + 1800).astype(np.int64)
    order = np.lexsort((secs, day_idx))
    day_idx, secs = day_idx[order], secs[order]
    o_day = days[day_idx]
    o_refs = guids(rng, n_o)
    o_partner = rng.choice(n_p, size=n_o, p=p_weight)
    private = p_form[o_partner] == 2
    rub = np.exp(rng.normal(np.log(35_000), 0.95, n_o))
    rub = np.where(private, np.exp(rng.normal(np.log(12_000), 0.7, n_o)), rub)
    kop = np.round(rub * 100).astype(np.int64)
    kop = np.where(rng.random(n_o) < 0.35, kop // 100 * 100, kop)
    kop = np.clip(kop, 300_000, 60_000_000)
    u = rng.random(n_o)
    o_deleted = u < 0.01
    o_posted = u >= 0.03
    age = (np.datetime64(end_date) - o_day).astype(np.int64)
    p_closed = np.clip(age / 45, 0, 0.8)
    u = rng.random(n_o)
    rest = (u - p_closed) / np.maximum(1 - p_closed, 1e-9)
    status = np.where(u < p_closed, 3, np.where(rest < 0.45, 2, np.where(rest < 0.85, 1, 0)))
    status = np.where(o_posted, status, np.where(rng.random(n_o) < 0.7, 0, status))
    own_mgr = p_mgr[o_partner]
    o_mgr = np.where((rng.random(n_o) < 0.9) & (own_mgr >= 0), own_mgr, rng.choice(active_mgr, size=n_o))
    o_settle = c_settle[o_partner]
    by_order = o_settle != 1
    o_so = np.empty(n_o, dtype=object)
    o_so[by_order] = guids(rng, int(by_order.sum()))
    o_so[~by_order] = c_so[o_partner[~by_order]]
    o_org = c_org[o_partner]

    pr, mr, orr = np.array(p_refs, dtype=object), np.array(mgr_refs, dtype=object), np.array(org_refs, dtype=object)
    o_p_ref, o_org_ref = pr[o_partner].tolist(), orr[o_org].tolist()
    o_k_ref = np.array(k_refs, dtype=object)[o_partner].tolist()
    o_c_ref = np.array(c_refs, dtype=object)[o_partner].tolist()
    numbers = [f"ТД00-{i:06d}" for i in range(1, n_o + 1)]
    out[ORDERS] = [
        {"Ref_Key": r, "DataVersion": v, "Number": num, "Date": d, "Posted": po, "DeletionMark": de,
         "Партнер_Key": pk, "Контрагент_Key": kk, "Организация_Key": ok, "Договор_Key": ck, "Менеджер_Key": mk,
         "СуммаДокумента": amt, "Валюта_Key": RUB_KEY, "Статус": st, "ПорядокРасчетов": sp,
         "ОбъектРасчетов_Key": so}
        for r, v, num, d, po, de, pk, kk, ok, ck, mk, amt, st, sp, so in zip(
            o_refs, dv(n_o), numbers, _stamp(o_day, secs), o_posted.tolist(), o_deleted.tolist(), o_p_ref,
            o_k_ref, o_org_ref, o_c_ref, mr[o_mgr].tolist(), _rub(kop), ORDER_STATUS[status].tolist(),
            SETTLEMENTS[o_settle].tolist(), o_so.tolist(), strict=True)]
    bo = np.flatnonzero(by_order)
    settlement += [
        {"Ref_Key": so, "DataVersion": v, "Объект": ref, "Объект_Type": ORDER_TYPE, "ТипОбъектаРасчетов": "Заказ",
         "Партнер_Key": pk, "Организация_Key": ok}
        for so, v, ref, pk, ok in zip(o_so[bo].tolist(), dv(len(bo)), np.array(o_refs, dtype=object)[bo].tolist(),
                                      pr[o_partner[bo]].tolist(), orr[o_org[bo]].tolist(), strict=True)]
    out["Catalog_ОбъектыРасчетов"] = settlement

    # payment schedules ---------------------------------------------------------------
    # variants: 0 50% prepay +3 / 50% credit +10|14; 1 one credit stage +5; 2 100% prepay +3;
    #           3 30% advance +2 / 70% credit +14..30; 4 one credit stage at the contract term
    has = rng.random(n_o) < 0.70
    term = c_term[o_partner]
    variant = rng.choice(4, size=n_o, p=[0.40, 0.35, 0.15, 0.10])
    variant = np.where(term > 0, 4, variant)
    off1 = np.choose(variant, [3, 5, 3, 2, 0]) + np.where(variant == 4, term, 0)
    pct1 = np.choose(variant, [50, 100, 100, 30, 100])
    opt1 = np.choose(variant, [0, 1, 0, 2, 1])
    two = has & ((variant == 0) | (variant == 3))
    off2 = np.where(variant == 0, rng.choice([10, 14], size=n_o), rng.choice([14, 21, 30], size=n_o))
    amt1 = np.where(two, (kop * pct1 + 50) // 100, kop)
    amt2 = kop - amt1
    s1 = np.flatnonzero(has)
    s2 = np.flatnonzero(two)
    st_idx = np.concatenate([s1, s2])
    st_line = np.concatenate([np.full(len(s1), "1", dtype=object), np.full(len(s2), "2", dtype=object)])
    st_date = np.concatenate([o_day[s1] + off1[s1].astype("timedelta64[D]"),
                              o_day[s2] + off2[s2].astype("timedelta64[D]")])
    st_amt = np.concatenate([amt1[s1], amt2[s2]])
    st_pct = np.concatenate([pct1[s1], 100 - pct1[s2]]).astype(float)
    st_opt = np.concatenate([opt1[s1], np.ones(len(s2), dtype=np.int64)])
    oref = np.array(o_refs, dtype=object)
    out[STAGES] = [
        {"Ref_Key": r, "LineNumber": ln, "ДатаПлатежа": d, "СуммаПлатежа": a, "ПроцентПлатежа": p,
         "ВариантОплаты": v}
        for r, ln, d, a, p, v in zip(oref[st_idx].tolist(), st_line.tolist(), _stamp(st_date), _rub(st_amt),
                                     st_pct.tolist(), PAYMENT_OPTIONS[st_opt].tolist(), strict=True)]

    # payments ------------------------------------------------------------------------
    u = rng.random(n_o)
    full, part = u < 0.65, (u >= 0.65) & (u < 0.75)
    split = full & two & (rng.random(n_o) < 0.5)
    single = full & ~split
    delay = np.minimum(rng.geometric(0.3, size=n_o) - 1, 10)
    d1 = rng.integers(0, 4, size=n_o)
    d2 = np.minimum(d1 + rng.integers(2, 8, size=n_o), 10)
    frac = rng.uniform(0.2, 0.8, size=n_o)
    part_amt = np.where(two, amt1, np.clip(np.round(kop * frac / 100) * 100, 100, kop - 100).astype(np.int64))
    part_delay = np.where(two, d1, rng.integers(0, 21, size=n_o))
    i_single, i_split, i_part = np.flatnonzero(single), np.flatnonzero(split), np.flatnonzero(part)
    pay_order = np.concatenate([i_single, i_split, i_split, i_part])
    pay_amt = np.concatenate([kop[i_single], amt1[i_split], amt2[i_split], part_amt[i_part]])
    pay_delay = np.concatenate([delay[i_single], d1[i_split], d2[i_split], part_delay[i_part]])
    pay_day = o_day[pay_order] + pay_delay.astype("timedelta64[D]")
    keep = o_posted[pay_order] & (pay_day <= np.datetime64(end_date)) & (pay_amt > 0)
    pay_order, pay_amt, pay_day = pay_order[keep], pay_amt[keep], pay_day[keep]
    n_pay = len(pay_order)
    cashable = pay_amt <= 100_000 * 100  # cash settlements between firms are capped at 100 000 ₽
    p_cash = min(0.9, 0.15 * n_pay / max(1, int(cashable.sum())))
    is_cash = cashable & (rng.random(n_pay) < p_cash)

    # bank: sometimes one receipt pays two orders of the same partner (two rows)
    bank = np.flatnonzero(~is_cash)
    pay_partner = o_partner[pay_order]
    bank = bank[np.lexsort((pay_day[bank], o_org[pay_order[bank]], pay_partner[bank]))]
    b_day = pay_day[bank].copy()
    same = np.zeros(len(bank), dtype=bool)
    if len(bank) > 1:
        a, b = bank[:-1], bank[1:]
        same[:-1] = ((pay_partner[a] == pay_partner[b]) & (o_org[pay_order[a]] == o_org[pay_order[b]])
                     & (pay_order[a] != pay_order[b])
                     & (np.abs((pay_day[a] - pay_day[b]).astype(np.int64)) <= 2))
    coin = rng.random(len(bank)) < 0.3
    merged = np.zeros(len(bank), dtype=bool)  # merged[i]: bank[i+1] joins bank[i]'s receipt
    for i in np.flatnonzero(same & coin).tolist():
        if i > 0 and merged[i - 1]:
            continue  # bank[i] already is the second row of a receipt
        merged[i] = True
    starts = ~np.concatenate([[False], merged[:-1]])  # row begins a new receipt
    b_receipt = np.cumsum(starts) - 1
    b_line = np.where(starts, 1, 2)
    mi = np.flatnonzero(merged)
    both = np.maximum(b_day[mi], b_day[mi + 1])
    b_day[mi], b_day[mi + 1] = both, both

    def receipts(kind: str, rows_pay: np.ndarray, rec_of_row: np.ndarray, line_of_row: np.ndarray,
                 day_of_row: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Build headers and rows of one receipt document type; returns (row receipt, posted)."""
        n_r = int(rec_of_row.max()) + 1 if len(rec_of_row) else 0
        r_day = np.zeros(n_r, dtype="datetime64[D]")
        r_day[rec_of_row] = day_of_row
        r_org = np.zeros(n_r, dtype=np.int64)
        r_org[rec_of_row] = o_org[pay_order[rows_pay]]
        r_kop = np.bincount(rec_of_row, weights=pay_amt[rows_pay], minlength=n_r).astype(np.int64)
        r_op = np.full(n_r, CUSTOMER_PAYMENT, dtype=object)
        row_partner = pay_partner[rows_pay]
        row_so = o_so[pay_order[rows_pay]]
        # a few receipts of another operation, pointing at a real order (must not count)
        n_other = max(2, int(round(n_r * 0.004)))
        other_rows = rng.integers(0, max(1, len(rows_pay)), size=n_other) if len(rows_pay) else np.zeros(0, int)
        n_other = len(other_rows)
        other_day = np.minimum(day_of_row[other_rows] + rng.integers(1, 30, size=n_other).astype("timedelta64[D]"),
                               np.datetime64(end_date))
        other_kop = np.maximum(100, (pay_amt[rows_pay][other_rows] * rng.uniform(0.1, 0.5, n_other)).astype(np.int64))
        other_op = "ВозвратОтПоставщика" if kind == BANK else "ВозвратОтПодотчетника"
        all_day = np.concatenate([r_day, other_day])
        all_org = np.concatenate([r_org, r_org[rec_of_row[other_rows]]])
        all_kop = np.concatenate([r_kop, other_kop])
        all_op = np.concatenate([r_op, np.full(n_other, other_op, dtype=object)])
        total = n_r + n_other
        secs_r = rng.integers(9 * 3600, 18 * 3600, size=total)
        refs = np.array(guids(rng, total), dtype=object)
        u = rng.random(total)
        posted, deleted = u >= 0.015, u < 0.006
        seq = np.empty(total, dtype=np.int64)
        seq[np.lexsort((secs_r, all_day))] = np.arange(1, total + 1)
        out[kind] = [
            {"Ref_Key": r, "DataVersion": v, "Number": f"ТД00-{s:06d}", "Date": d, "Posted": po,
             "DeletionMark": de, "Организация_Key": ok, "ХозяйственнаяОперация": op, "СуммаДокумента": a}
            for r, v, s, d, po, de, ok, op, a in zip(
                refs.tolist(), dv(total), seq.tolist(), _stamp(all_day, secs_r), posted.tolist(),
                deleted.tolist(), orr[all_org].tolist(), all_op.tolist(), _rub(all_kop), strict=True)]
        row_ref = np.concatenate([refs[rec_of_row], refs[n_r:]])
        row_line = np.concatenate([line_of_row.astype(str), np.full(n_other, "1")])
        row_p = np.concatenate([row_partner, row_partner[other_rows]])
        row_s = np.concatenate([row_so, row_so[other_rows]])
        row_k = np.concatenate([pay_amt[rows_pay], other_kop])
        out[f"{kind}_РасшифровкаПлатежа"] = [
            {"Ref_Key": r, "LineNumber": ln, "Партнер_Key": pk, "Сумма": a, "ОбъектРасчетов_Key": so}
            for r, ln, pk, a, so in zip(row_ref.tolist(), row_line.tolist(), pr[row_p].tolist(), _rub(row_k),
                                        row_s.tolist(), strict=True)]
        return rec_of_row, posted

    b_rec, b_posted = receipts(BANK, bank, b_receipt, b_line, b_day)
    cash = np.flatnonzero(is_cash)
    c_rec, c_posted = receipts(CASH, cash, np.arange(len(cash)), np.ones(len(cash), dtype=np.int64),
                               pay_day[cash])
    counted = np.concatenate([bank[b_posted[b_rec]], cash[c_posted[c_rec]]])
    paid = np.bincount(pay_order[counted], weights=pay_amt[counted], minlength=n_o).astype(np.int64)

    # write-back sets start empty
    meta = {"seed": seed, "scale": scale, "end_date": end_date, "start_date": start, "rub_key": RUB_KEY,
            "organizations": org_refs, "managers": mgr_refs, "administrator": user_refs[-1],
            "contact_kinds": dict(zip([d for d, _ in CONTACT_KINDS], kind_refs, strict=True)),
            "segments": dict(zip(SEGMENTS, seg_refs, strict=True)), "working_days": len(days)}
    truth = {
        "paid_kopecks": {o_refs[i]: int(paid[i]) for i in np.flatnonzero(paid).tolist()},
        "long_contact_partners": long_partners,
    }
    return Dataset.from_rows(out, meta=meta, truth=truth)
