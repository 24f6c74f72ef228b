"""The claim letter as a person reads it: PDF rendered to PNG, text extracted, Cyrillic intact."""

from __future__ import annotations

import datetime as dt
import subprocess
from decimal import Decimal

import pytest

from factories import frame, frames, gid, order, payment, stage
from receivables import settings
from receivables.domain.aging import compute_aging
from receivables.domain.penalties import KeyRates
from receivables.reports.claim import ClaimSettings, build_claim, write_claim

AS_OF = dt.date(2025, 3, 3)


@pytest.fixture(scope="module")
def letter(tmp_path_factory):
    f = frames(orders=[order("ТД00-000501", "2024-12-20", 250000), order("ТД00-000502", "2025-01-20", 100000)],
               stages=[stage("ТД00-000501", 1, "2024-12-28", 250000)],
               payments=[payment("БН00-000077", "2025-02-10", 40000, settles="ТД00-000502")])
    f["counterparties"] = frame("counterparties", [{
        "counterparty_ref": gid("kp1"), "name": "ООО «Рога и копыта»",
        "full_name": "Общество с ограниченной ответственностью «Рога и копыта»", "inn": "5401999999",
        "kpp": "540101001", "partner_ref": gid("p1"), "legal_form": "КомпанияЮрЛицо"}])
    aging = compute_aging(f, AS_OF)
    cs = ClaimSettings(signatory_name="А. А. Иванов", bank_details={"ООО «СантехОпт»": "р/с 40702810000000000001"},
                       addresses={"ООО «СантехОпт»": "630000, г. Новосибирск, ул. Ленина, д. 1"})
    claim = build_claim(f, aging, partner_ref=gid("p1"), as_of=AS_OF, rates=KeyRates.load(settings.key_rates_path()),
                        settings=cs)
    out = tmp_path_factory.mktemp("claim")
    html, pdf = write_claim(claim, out, settings.templates_dir() / "claim", cs)
    raw = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    text = " ".join(raw.split())  # line breaks of the layout do not matter here
    return claim, html, pdf, text, out


def test_the_worked_example_is_the_interest_of_the_first_order(letter):
    claim = letter[0]
    first = claim.documents[0]
    assert first.number == "ТД00-000501" and first.penalty.total == Decimal("9348.14")


def test_pdf_text_has_parties_contract_documents_periods_and_totals_in_cyrillic(letter):
    claim, _, _, text, _ = letter
    for needle in ("Претензия (досудебное требование)", "ООО «СантехОпт»", "г. Новосибирск",
                   "Общество с ограниченной ответственностью «Рога и копыта»", "ИНН 5401999999",
                   "ТД00-000501", "ТД00-000502", "БН00-000077", "29.12.2024", "31.12.2024", "430,33",
                   "8 917,81", "и далее по день фактической оплаты", "р/с 40702810000000000001",
                   "Исх. № " + claim.number, "02.04.2025"):
        assert needle in text, needle
    principal = 250000_00 + 60000_00
    assert claim.principal == principal and "310 000,00 ₽" in text
    assert f"{claim.total // 100:,}".replace(",", " ") in text


def test_pdf_renders_to_a_non_empty_page_image(letter):
    _, _, pdf, _, out = letter
    subprocess.run(["pdftoppm", "-png", "-r", "60", "-f", "1", "-l", "1", str(pdf), str(out / "page")], check=True)
    (png,) = out.glob("page*.png")
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_html_escapes_party_names(letter):
    _, html, _, _, _ = letter
    assert "«Рога и копыта»" in html.read_text(encoding="utf-8")


def test_a_payment_after_the_due_date_lowers_the_interest_base_from_the_next_day(letter):
    second = letter[0].documents[1]
    assert [(p.start, p.end, p.base) for p in second.penalty.periods] == [
        (dt.date(2025, 1, 21), dt.date(2025, 2, 10), Decimal("100000")),
        (dt.date(2025, 2, 11), dt.date(2025, 3, 3), Decimal("60000"))]
