"""Canonical frames: the typed shape of the extract every later step reads.

Column conventions (the contract between extraction, validation, aging and plan):
- references are lower-case GUID strings; an empty 1C reference becomes ``<NA>``;
- dates are ``datetime64[s]`` at midnight: calendar dates in the policy time zone;
- money is ``int64`` kopecks (exact; summed and compared without float error);
- text is pandas ``str`` with 1C's trailing spaces stripped.
"""

from __future__ import annotations

REF = "ref"
DATE = "date"
MONEY = "money"
TEXT = "text"
BOOL = "bool"
INT = "int"
FLOAT = "float"

#: frame name -> {column: kind}
FRAMES: dict[str, dict[str, str]] = {
    "orders": {
        "document_ref": REF,
        "document_number": TEXT,
        "document_date": DATE,
        "posted": BOOL,
        "deleted": BOOL,
        "partner_ref": REF,
        "counterparty_ref": REF,
        "organization_ref": REF,
        "contract_ref": REF,
        "manager_ref": REF,
        "amount": MONEY,
        "currency_ref": REF,
        "status": TEXT,
        "settlement": TEXT,
        "settlement_ref": REF,
    },
    "stages": {
        "document_ref": REF,
        "line": INT,
        "pay_date": DATE,
        "amount": MONEY,
        "percent": FLOAT,
        "option": TEXT,
    },
    "settlement_objects": {
        "settlement_ref": REF,
        "object_ref": REF,
        "object_type": TEXT,
        "kind": TEXT,
        "partner_ref": REF,
        "organization_ref": REF,
    },
    # one row per payment allocation line (РасшифровкаПлатежа) of a posted, not
    # deleted customer receipt dated on or before the as-of date
    "payments": {
        "payment_ref": REF,
        "payment_number": TEXT,
        "payment_date": DATE,
        "source": TEXT,  # bank | cash
        "line": INT,
        "partner_ref": REF,
        "organization_ref": REF,
        "settlement_ref": REF,
        "amount": MONEY,
    },
    "partners": {
        "partner_ref": REF,
        "code": TEXT,
        "partner_name": TEXT,
        "full_name": TEXT,
        "main_manager_ref": REF,
        "legal_form": TEXT,
        "is_client": BOOL,
        "deleted": BOOL,
    },
    "contacts": {
        "partner_ref": REF,
        "line": INT,
        "type": TEXT,
        "kind_ref": REF,
        "kind_name": TEXT,
        "email": TEXT,
        "phone": TEXT,
        "presentation": TEXT,
    },
    "counterparties": {
        "counterparty_ref": REF,
        "name": TEXT,
        "full_name": TEXT,
        "inn": TEXT,
        "kpp": TEXT,
        "partner_ref": REF,
        "legal_form": TEXT,
    },
    "contracts": {
        "contract_ref": REF,
        "number": TEXT,
        "contract_date": DATE,
        "name": TEXT,
        "partner_ref": REF,
        "counterparty_ref": REF,
        "organization_ref": REF,
        "settlement": TEXT,
        "has_term": BOOL,
        "term_days": INT,
        "status": TEXT,
    },
    # users; email and phone are the first lines of their contact information
    "managers": {
        "manager_ref": REF,
        "manager_name": TEXT,
        "invalid": BOOL,
        "email": TEXT,
        "phone": TEXT,
    },
    "organizations": {
        "organization_ref": REF,
        "organization_name": TEXT,
        "full_name": TEXT,
        "inn": TEXT,
        "kpp": TEXT,
    },
    "segments": {
        "partner_ref": REF,
        "segment_ref": REF,
        "segment_name": TEXT,
    },
}


def member(values, universe):
    """`values.isin(universe)` by hashing: pandas' Arrow-string isin builds one Python
    scalar per element of `universe`, which costs seconds at a million rows."""
    import numpy as np
    import pandas as pd

    index = pd.Index(pd.unique(pd.Series(list(universe) if isinstance(universe, set) else universe,
                                         dtype="str").dropna()))
    found = index.get_indexer(pd.Index(values, dtype="str"))
    return np.asarray(found >= 0) & np.asarray(pd.notna(values))
