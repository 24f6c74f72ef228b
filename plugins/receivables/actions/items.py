"""What every action carries: the documents it covers, and the deterministic ids derived
from (document, step) pairs (Message-IDs, 1C Ref_Keys)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pandas as pd

#: the project's namespace for every derived id
NAMESPACE = uuid.UUID("6f1d3c2a-8b4e-5d7f-9a10-1c0ddeb7c0de")


@dataclass(frozen=True)
class DocumentItem:
    """One open document covered by an email, a task or a case (money in kopecks)."""

    document_ref: str
    document_number: str
    document_date: dt.date
    amount: int
    outstanding: int
    due_date: dt.date | None
    days_overdue: int | None
    step_id: str


def derived_id(kind: str, pairs: Iterable[tuple[str, str]]) -> uuid.UUID:
    """A uuid5 stable for the set of (document_ref, step_id) pairs, whatever their order."""
    key = kind + "|" + ";".join(f"{d}/{s}" for d, s in sorted(set(pairs)))
    return uuid.uuid5(NAMESPACE, key)


def _day(v: Any) -> dt.date | None:
    return None if v is None or pd.isna(v) else pd.Timestamp(v).date()


def items_from_rows(rows: pd.DataFrame) -> list[DocumentItem]:
    """Plan rows -> items, in the frame's order."""
    return [DocumentItem(r.document_ref, r.document_number, _day(r.document_date), int(r.amount),
                         int(r.outstanding), _day(r.due_date),
                         None if pd.isna(r.days_overdue) else int(r.days_overdue), r.step_id)
            for r in rows.itertuples(index=False)]
