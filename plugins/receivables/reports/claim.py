"""The claim letter (претензия): data from the run's extract and aging, a Jinja2 template,
HTML and PDF (WeasyPrint, DejaVu fonts for Cyrillic).

Interest is computed with `domain.penalties` per unpaid document as of the run's date,
or as of the last date the key-rate table covers when that is earlier — the letter then
says so and demands interest "и далее по день фактической оплаты".
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
from jinja2 import FileSystemLoader, StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

from receivables import formatting
from receivables.domain.penalties import KeyRates, Penalty, PenaltyError, compute

FILING_WAIT_DAYS = 30  # АПК РФ ст. 4 ч. 5: a suit may follow 30 days after the claim


@dataclass
class ClaimSettings:
    method: str = "cbr_395"
    rate_per_day: Decimal | None = None
    cap_percent: Decimal | None = None
    deadline_days: int = 10
    signatory: str = "Генеральный директор"
    signatory_name: str = ""
    addresses: dict[str, str] = field(default_factory=dict)  # party name -> address
    bank_details: dict[str, str] = field(default_factory=dict)  # organization name -> details


@dataclass
class ClaimDocument:
    number: str
    date: dt.date
    amount: int
    paid: int
    outstanding: int
    due_date: dt.date
    penalty: Penalty | None


@dataclass
class Claim:
    number: str
    date: dt.date
    creditor: dict[str, str]
    debtor: dict[str, str]
    contract: dict[str, Any] | None
    documents: list[ClaimDocument]
    payments: list[dict[str, Any]]
    interest_as_of: dt.date
    interest_note: str
    deadline: dt.date
    earliest_filing: dt.date
    method: str
    bank_details: str

    @property
    def principal(self) -> int:
        return sum(d.outstanding for d in self.documents)

    @property
    def interest(self) -> int:
        return sum(int(d.penalty.total * 100) for d in self.documents if d.penalty)

    @property
    def total(self) -> int:
        return self.principal + self.interest


def _day(v: Any) -> dt.date:
    return pd.Timestamp(v).date()


def build_claim(frames: Mapping[str, pd.DataFrame], aging: pd.DataFrame, *, partner_ref: str, as_of: dt.date,
                rates: KeyRates, settings: ClaimSettings, contract_ref: str | None = None,
                roll_forward=None) -> Claim:
    """Everything the letter says, for one partner (and contract), as of a date."""
    docs = aging.loc[aging["partner_ref"].eq(partner_ref)]
    if contract_ref:
        docs = docs.loc[docs["contract_ref"].eq(contract_ref)]
    docs = docs.loc[docs["days_overdue"] > 0].sort_values(["due_date", "document_number"])
    if docs.empty:
        raise ValueError(f"partner {partner_ref}: no overdue documents as of {as_of}")
    orders = frames["orders"].set_index("document_ref")
    org_ref = orders.loc[docs["document_ref"].iloc[0], "organization_ref"]
    org = frames["organizations"].set_index("organization_ref").loc[org_ref]
    cp_ref = orders.loc[docs["document_ref"].iloc[0], "counterparty_ref"]
    cps = frames["counterparties"].set_index("counterparty_ref")
    partner = frames["partners"].set_index("partner_ref").loc[partner_ref]
    if cp_ref in cps.index:
        cp = cps.loc[cp_ref]
        debtor = {"name": cp["full_name"] or cp["name"], "inn": cp["inn"] or "", "kpp": cp["kpp"] or ""}
    else:
        debtor = {"name": partner["full_name"] or partner["partner_name"], "inn": "", "kpp": ""}
    debtor["address"] = settings.addresses.get(debtor["name"], "")
    creditor = {"name": org["full_name"] or org["organization_name"], "short": org["organization_name"],
                "inn": org["inn"] or "", "kpp": org["kpp"] or "",
                "address": settings.addresses.get(org["organization_name"], "")}
    contract = None
    cref = contract_ref or (docs["contract_ref"].dropna().iloc[0] if docs["contract_ref"].notna().any() else None)
    if cref is not None:
        c = frames["contracts"].set_index("contract_ref")
        if cref in c.index:
            contract = {"number": c.loc[cref, "number"], "date": _day(c.loc[cref, "contract_date"])
                        if pd.notna(c.loc[cref, "contract_date"]) else None}
    interest_as_of = min(as_of, rates.covered_through)
    note = "" if interest_as_of == as_of else (
        f"Проценты рассчитаны по {formatting.date_ru(interest_as_of)} — последнюю дату, за которую известна "
        "ключевая ставка Банка России; за последующие дни они начисляются по день фактической оплаты.")
    settlement = orders.loc[docs["document_ref"], "settlement_ref"]
    pays = frames["payments"]
    received = pays.loc[pays["settlement_ref"].isin(set(settlement.dropna()))].sort_values("payment_date")
    own = frames["settlement_objects"].set_index("settlement_ref")["object_ref"]
    items = []
    for r in docs.itertuples(index=False):
        due = _day(r.due_date)
        penalty = None
        principal, partial = Decimal(int(r.outstanding)) / 100, []
        so = settlement.get(r.document_ref)
        if so is not None and own.get(so) == r.document_ref:
            # settled by itself: the debt at the due date, then each later payment lowers it
            mine = received.loc[received["settlement_ref"].eq(so)]
            before = mine.loc[mine["payment_date"] <= pd.Timestamp(due), "amount"].sum()
            principal = (Decimal(int(r.amount)) - Decimal(int(before))) / 100
            partial = [(_day(p.payment_date), Decimal(int(p.amount)) / 100)
                       for p in mine.loc[mine["payment_date"] > pd.Timestamp(due)].itertuples(index=False)]
        try:
            penalty = compute(settings.method, principal=principal, due=due, payments=partial,
                              end=interest_as_of, rates=rates, rate_per_day=settings.rate_per_day,
                              cap_percent=settings.cap_percent, roll_forward=roll_forward)
        except PenaltyError as exc:
            note = note or f"Проценты не рассчитаны: {exc}"
        items.append(ClaimDocument(r.document_number, _day(r.document_date), int(r.amount), int(r.paid),
                                   int(r.outstanding), due, penalty))
    code = str(partner["code"] or "").strip() or partner_ref[:8]
    return Claim(
        number=f"П-{as_of:%Y%m%d}-{code}", date=as_of, creditor=creditor, debtor=debtor, contract=contract,
        documents=items,
        payments=[{"number": p.payment_number, "date": _day(p.payment_date), "amount": int(p.amount)}
                  for p in received.itertuples(index=False)],
        interest_as_of=interest_as_of, interest_note=note,
        deadline=as_of + dt.timedelta(days=settings.deadline_days),
        earliest_filing=as_of + dt.timedelta(days=FILING_WAIT_DAYS), method=settings.method,
        bank_details=settings.bank_details.get(org["organization_name"], ""))


def render_claim_html(claim: Claim, templates_dir: Path, settings: ClaimSettings) -> str:
    env = SandboxedEnvironment(loader=FileSystemLoader(str(templates_dir)), undefined=StrictUndefined,
                               autoescape=True, trim_blocks=True, lstrip_blocks=True)
    formatting.install_filters(env)
    env.filters["rub_kop"] = lambda d: formatting.money(int(Decimal(d) * 100))
    return env.get_template("claim.html").render(claim=claim, settings=settings)


def write_claim(claim: Claim, folder: Path, templates_dir: Path, settings: ClaimSettings) -> tuple[Path, Path]:
    """The letter as HTML and PDF in `folder`; returns both paths."""
    from weasyprint import HTML

    folder.mkdir(parents=True, exist_ok=True)
    stem = claim.number.replace("/", "-")
    html = render_claim_html(claim, templates_dir, settings)
    html_path = folder / f"{stem}.html"
    html_path.write_text(html, encoding="utf-8")
    pdf_path = folder / f"{stem}.pdf"
    HTML(string=html, base_url=str(templates_dir)).write_pdf(pdf_path)
    return html_path, pdf_path
