"""Small hand-made canonical frames for domain tests (rubles and ISO dates in, contract out)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from receivables.domain.frames import FRAMES
from receivables.domain.normalise import typed


def gid(name: str) -> str:
    """A readable deterministic GUID for a test object name."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, name))


ORG = gid("org")
MANAGER = gid("manager")
PARTNER_MANAGER = gid("partner-manager")


def frame(name: str, rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    rows = list(rows)
    cols = list(FRAMES[name])
    df = pd.DataFrame(rows, columns=cols) if rows else pd.DataFrame({c: pd.Series([], dtype=object) for c in cols})
    return typed(df, name)


def order(number: str, date: str, amount: float, *, partner: str = "p1", settlement: str = "ПоЗаказам",
          contract: str | None = "c1", manager: str | None = MANAGER, posted: bool = True,
          deleted: bool = False, settlement_ref: str | None = None) -> dict[str, Any]:
    ref = gid(number)
    return {
        "document_ref": ref, "document_number": number, "document_date": date, "posted": posted,
        "deleted": deleted, "partner_ref": gid(partner), "counterparty_ref": gid("k" + partner),
        "organization_ref": ORG, "contract_ref": gid(contract) if contract else None,
        "manager_ref": manager, "amount": amount, "currency_ref": gid("RUB"), "status": "КОтгрузке",
        "settlement": settlement,
        "settlement_ref": settlement_ref or (gid("so-" + number) if settlement.startswith("ПоЗаказам")
                                             else gid("so-" + (contract or "none"))),
    }


def stage(number: str, line: int, pay_date: str, amount: float) -> dict[str, Any]:
    return {"document_ref": gid(number), "line": line, "pay_date": pay_date, "amount": amount,
            "percent": 0.0, "option": "КредитПослеОтгрузки"}


def payment(number: str, date: str, amount: float, *, settles: str, partner: str = "p1",
            line: int = 1) -> dict[str, Any]:
    """A receipt line settling the order (or contract) named by `settles`."""
    return {"payment_ref": gid("pay-" + number), "payment_number": number, "payment_date": date,
            "source": "bank", "line": line, "partner_ref": gid(partner), "organization_ref": ORG,
            "settlement_ref": gid("so-" + settles), "amount": amount}


def partner(name: str, *, legal_form: str = "КомпанияЮрЛицо", manager: str | None = PARTNER_MANAGER) -> dict:
    return {"partner_ref": gid(name), "code": name, "partner_name": f"ООО «{name}»", "full_name": name,
            "main_manager_ref": manager, "legal_form": legal_form, "is_client": True, "deleted": False}


def email(partner_name: str, line: int, address: str, *, kind: str = "Email") -> dict[str, Any]:
    return {"partner_ref": gid(partner_name), "line": line, "type": "АдресЭлектроннойПочты",
            "kind_ref": gid(kind), "kind_name": kind, "email": address, "phone": None,
            "presentation": address}


def _keyed_payments(df: pd.DataFrame) -> pd.DataFrame:
    """The payments as normalise makes them: with ``payment_key``, the receipts' references numbered."""
    from receivables.domain.frames import RunningKeys

    return df.assign(payment_key=RunningKeys(len(df)).add(df["payment_ref"]))


def frames(*, orders: list[dict], stages: list[dict] = (), payments: list[dict] = (),
           partners: list[dict] | None = None, contacts: list[dict] = (),
           contracts: list[dict] | None = None, segments: list[dict] = ()) -> dict[str, pd.DataFrame]:
    partner_names = sorted({o["partner_ref"] for o in orders})
    if partners is None:
        partners = [partner("p1")]
    if contracts is None:
        contracts = [{"contract_ref": gid("c1"), "number": "Д-1", "contract_date": "2025-01-01",
                      "name": "Договор", "partner_ref": gid("p1"), "counterparty_ref": gid("kp1"),
                      "organization_ref": ORG, "settlement": "ПоЗаказам", "has_term": False,
                      "term_days": 0, "status": "Действует"}]
    objects = []
    for o in orders:
        own = o["settlement"].startswith("ПоЗаказам")
        objects.append({"settlement_ref": o["settlement_ref"],
                        "object_ref": o["document_ref"] if own else o["contract_ref"],
                        "object_type": "StandardODATA.Document_ЗаказКлиента" if own
                        else "StandardODATA.Catalog_ДоговорыКонтрагентов",
                        "kind": "", "partner_ref": o["partner_ref"], "organization_ref": ORG})
    del partner_names
    return {
        "orders": frame("orders", orders),
        "stages": frame("stages", stages),
        "settlement_objects": frame("settlement_objects", objects).drop_duplicates("settlement_ref"),
        "payments": _keyed_payments(frame("payments", payments)),
        "partners": frame("partners", partners),
        "contacts": frame("contacts", contacts),
        "counterparties": frame("counterparties", []),
        "contracts": frame("contracts", contracts),
        "managers": frame("managers", [
            {"manager_ref": MANAGER, "manager_name": "Иванова Анна", "invalid": False,
             "email": "ivanova@santeh-opt.example", "phone": "+7 (383) 284-26-00"},
            {"manager_ref": PARTNER_MANAGER, "manager_name": "Петров Пётр", "invalid": False,
             "email": "petrov@santeh-opt.example", "phone": "+7 (383) 284-26-01"}]),
        "organizations": frame("organizations", [
            {"organization_ref": ORG, "organization_name": "ООО «СантехОпт»", "full_name": "ООО «СантехОпт»",
             "inn": "5401000000", "kpp": "540101001"}]),
        "segments": frame("segments", segments),
    }


EMPTY_REGISTER_COLUMNS = ["document_ref", "document_number", "partner_ref", "step_id", "action", "target",
                          "status", "sent_at", "external_ref", "detail", "run_id", "as_of_date", "updated_at"]


def register(rows: Iterable[Mapping[str, Any]] = ()) -> pd.DataFrame:
    df = pd.DataFrame(list(rows), columns=EMPTY_REGISTER_COLUMNS)
    df["sent_at"] = pd.to_datetime(df["sent_at"], utc=True)
    return df
