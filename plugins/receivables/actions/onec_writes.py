"""Tasks for managers and debt cases, created in 1C over OData, idempotently.

Every object gets a deterministic ``Ref_Key`` (uuid5 of the document(s) and step), and
is looked up before any POST: a retry, a rerun, or a POST that 1C executed but answered
with an error never creates a second object (spec §6).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jinja2 import FileSystemLoader, StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

from receivables import formatting
from receivables.actions.items import DocumentItem, derived_id
from receivables.onec.client import ODataClient, ODataError
from receivables.onec.schema import ORDER_TYPE, UNDEFINED_TYPE, USER_TYPE

CASE_SETS = ("Catalog_СделкиСКлиентами", "Document_CRM_Интерес")


def object_ref(pairs: Iterable[tuple[str, str]], kind: str) -> str:
    """The Ref_Key of the 1C object for these (document_ref, step_id) pairs."""
    return str(derived_id(kind, pairs))


@dataclass
class WriteRequest:
    """What to create: a task (one document) or a case (a partner's documents)."""

    kind: str  # task | case
    ref: str
    template: str
    partner_ref: str
    partner_name: str
    assignee_ref: str
    assignee_name: str
    organization_name: str
    items: list[DocumentItem] = field(default_factory=list)
    deadline: dt.date | None = None
    penalty: int | None = None  # kopecks, when the claim computed one
    claim_file: str | None = None  # the printed claim letter (PDF)

    @property
    def total_outstanding(self) -> int:
        return sum(i.outstanding for i in self.items)


class TextTemplates:
    """Sandboxed Jinja2 text templates for 1C task descriptions and case comments."""

    def __init__(self, folder: Path):
        self.env = SandboxedEnvironment(loader=FileSystemLoader(str(folder)),
                                        undefined=StrictUndefined, autoescape=False,
                                        keep_trailing_newline=False)
        formatting.install_filters(self.env)

    def render(self, name: str, **context: Any) -> str:
        return self.env.get_template(f"{name}.txt").render(**context).strip()


def task_body(req: WriteRequest, text: str, *, now: dt.datetime) -> dict[str, Any]:
    item = req.items[0]
    subject = f"Заказ клиента {item.document_number} от {formatting.date_ru(item.document_date)}"
    return {
        "Date": now.replace(tzinfo=None).isoformat(timespec="seconds"),
        "Description": f"Оплата по заказу {item.document_number}: {req.partner_name}"[:150],
        "Описание": text,
        "Предмет": item.document_ref,
        "Предмет_Type": ORDER_TYPE,
        "ПредметСтрокой": subject,
        "Исполнитель": req.assignee_ref,
        "Исполнитель_Type": USER_TYPE,
        "Автор": "",
        "Автор_Type": UNDEFINED_TYPE,
        "Важность": "Обычная",
        "ДатаНачала": now.replace(tzinfo=None).isoformat(timespec="seconds"),
        "СрокИсполнения": f"{(req.deadline or now.date()).isoformat()}T00:00:00",
        "ПринятаКИсполнению": False,
        "СостояниеБизнесПроцесса": "Активен",
        "BusinessProcess": "",
        "BusinessProcess_Type": UNDEFINED_TYPE,
    }


def case_body(entity_set: str, req: WriteRequest, text: str, *, now: dt.datetime) -> dict[str, Any]:
    title = f"Задолженность: {req.partner_name}"
    if entity_set == "Document_CRM_Интерес":
        return {
            "Date": now.replace(tzinfo=None).isoformat(timespec="seconds"),
            "Тема": title[:150],
            "ДокументОснование": req.items[0].document_ref,
            "ДокументОснование_Type": ORDER_TYPE,
            "Партнер_Key": req.partner_ref,
            "Ответственный_Key": req.assignee_ref,
            "Комментарий": text,
        }
    return {
        "Description": title[:100],
        "Партнер_Key": req.partner_ref,
        "Ответственный_Key": req.assignee_ref,
        "Статус": "ВРаботе",
        "ДатаНачала": now.replace(tzinfo=None).isoformat(timespec="seconds"),
        # 1C silently drops a numeric field of the wrong type: send a JSON number
        "ПотенциальнаяСуммаПродажи": float(formatting.rub(req.total_outstanding)),
        "Комментарий": text,
    }


def ensure_object(client: ODataClient, entity_set: str, ref: str, body: dict[str, Any]
                  ) -> tuple[dict[str, Any], bool]:
    """(object, created): GET by Ref_Key first, POST only if 1C does not have it."""
    existing = client.get_entity(entity_set, ref)
    if existing is not None:
        return existing, False
    created = client.post(entity_set, {"Ref_Key": ref, **body})
    got = str(created.get("Ref_Key", "")).lower()
    if got != ref:
        raise ODataError(f"1C OData POST {entity_set}: created {got or 'an object'} instead of "
                         f"the requested Ref_Key {ref}; 1C may ignore client keys here")
    # wrong types are dropped silently by 1C: check the values that matter came back
    for key in ("Партнер_Key", "Исполнитель", "Предмет", "ПотенциальнаяСуммаПродажи"):
        if key in body and key in created and str(created[key]).lower() != str(body[key]).lower():
            raise ODataError(f"1C OData POST {entity_set} {ref}: field {key} was not stored "
                             f"as sent ({created[key]!r} != {body[key]!r})")
    return created, True
