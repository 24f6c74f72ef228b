"""Letters rendered from the shipped templates and sent to a real SMTP server on loopback.

The server is aiosmtpd's Controller on 127.0.0.1 (harness.SmtpServer) with a handler that
keeps every envelope, counts connections, refuses chosen recipients (451/550) and can
drop the connection in the middle of a chosen DATA.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import time
from dataclasses import dataclass, field
from email import message_from_bytes
from email import policy as email_policy
from email.generator import BytesGenerator
from email.header import decode_header
from email.message import EmailMessage
from pathlib import Path

import pandas as pd
import pytest

from harness import CaughtMail, SmtpServer
from receivables import settings
from receivables.actions.email import (
    BadAddress,
    Letter,
    LetterItem,
    RenderedEmail,
    SmtpAuthError,
    SmtpSender,
    SmtpSettings,
    SmtpUnavailable,
    TemplateProblem,
    TemplateRenderer,
    build_message,
    letters_from_plan,
    message_id,
    sample_letters,
    text_header,
    wire_bytes,
)

TEMPLATES = settings.templates_dir() / "email"
SHIPPED = ["unpaid_order", "before_due", "due_today", "overdue"]
TODAY = dt.date(2026, 11, 20)


@dataclass
class Catcher(CaughtMail):
    """harness.CaughtMail plus the raw envelopes and a connection drop at the n-th DATA."""

    envelopes: list = field(default_factory=list)
    drop_at_data: set[int] = field(default_factory=set)
    datas: int = 0

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
        self.datas += 1
        if self.datas in self.drop_at_data:
            server.transport.close()  # the client sees the connection vanish mid-message
            return "451 never seen"
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
        return await super().handle_DATA(server, session, envelope)


def item(ref="d1", number="ТД00-000123", day=dt.date(2026, 11, 3), amount=12500050, outstanding=None,
         due=dt.date(2026, 11, 9), late=11, step="s") -> LetterItem:
    return LetterItem(ref, number, day, amount, amount if outstanding is None else outstanding, due, late, step)


def letter(name="ООО «Рога и копыта»", to="buh@roga.example", items=None, template="unpaid_order",
           **kw) -> Letter:
    items = items or [item(), item("d2", "ТД00-000124", dt.date(2026, 11, 5), 500000, 250000, None, None)]
    return Letter("p1", name, to, "debt@santeh-opt.example", "ООО «СантехОпт»", template, "Иванова Анна",
                  "ivanova@santeh-opt.example", "+7 (383) 284-26-00", items, **kw)


@pytest.fixture
def smtp():
    mail = Catcher()
    with SmtpServer(mail) as server:
        yield server, mail


def sender_for(server, **kw) -> SmtpSender:
    return SmtpSender(SmtpSettings(host="127.0.0.1", port=server.port, timeout=5, **kw))


def send_all(server, letters, renderer=None):
    renderer = renderer or TemplateRenderer(TEMPLATES)
    with sender_for(server) as sender:
        return [sender.send(build_message(lt, renderer.render(lt, today=TODAY))) for lt in letters]


# -- templates ------------------------------------------------------------------------

@pytest.mark.parametrize("template", SHIPPED)
def test_every_shipped_template_renders_for_one_and_several_documents(template):
    r = TemplateRenderer(TEMPLATES)
    r.check([template])  # every sample shape: one/several items, with/without due date and manager
    for sample in sample_letters(template):
        out = r.render(sample, today=TODAY)
        assert out.subject and "\n" not in out.subject
        for part in (out.text, out.html):
            assert "Если вы уже оплатили, пожалуйста, не обращайте внимания на это письмо" in part
            assert "назначении платежа" in part
            assert "http://" not in part and "https://" not in part  # 38-ФЗ: nothing to advertise
        assert "&lt;b&gt;&amp;" in out.html and "<b>&" not in out.html  # the sample partner's name
    two = r.render(letter(template=template), today=TODAY)
    assert "ТД00-000123" in two.text and "ТД00-000124" in two.text and "127 500,50 ₽" in two.text
    assert "Итого к оплате" in two.text and "Итого к оплате" in two.html
    assert "Иванова Анна" in two.text and "+7 (383) 284-26-00" in two.html
    one = r.render(letter(template=template, items=[item()]), today=TODAY)
    assert "125 000,50 ₽" in one.text and "ТД00-000124" not in one.text and "Итого" not in one.text
    assert "09.11.2026" in one.text
    no_due = r.render(letter(template=template, items=[item(due=None, late=None)]), today=TODAY)
    assert "Срок оплаты:" not in no_due.text and "—" in no_due.html


def test_the_seed_000_reminder_warns_about_the_reserve_and_names_order_and_amount():
    out = TemplateRenderer(TEMPLATES).render(letter(items=[item()]), today=TODAY)
    assert out.subject == "Напоминание об оплате заказа № ТД00-000123 от 03.11.2026"
    assert ("Напоминаем, что по заказу № ТД00-000123 от 03.11.2026 на сумму 125 000,50 ₽ "
            "оплата пока не поступила.") in out.text
    assert "резерв придётся снять" in out.text and "резерв придётся снять" in out.html
    assert "просрочка" not in out.text  # the first, gentle letter does not talk about overdue days
    assert "Иванова Анна, ivanova@santeh-opt.example, +7 (383) 284-26-00" in out.text


def test_overdue_wording_firms_up_with_the_days_overdue():
    r = TemplateRenderer(TEMPLATES)

    def render(late):
        return r.render(letter(template="overdue", items=[item(late=late)]), today=TODAY)

    one, three, ten = render(1), render(3), render(10)
    assert one.subject == "Напоминание: истёк срок оплаты заказа № ТД00-000123"
    assert "истёк 9 ноября 2026 г., а оплата к нам пока не поступила" in one.text
    assert three.subject == "Просрочена оплата заказа № ТД00-000123"
    assert "просрочена на 3 дня (срок оплаты — 09.11.2026)" in three.text
    assert ten.subject == "Задолженность по заказу № ТД00-000123 — 125 000,50 ₽"
    assert "просрочена уже на 10 дней" in ten.text and "график погашения" in ten.text
    many = r.render(letter(template="overdue", items=[item(late=21), item("d2", "ТД00-000124", late=2)]),
                    today=TODAY)
    assert "просрочка 21 день" in many.text and "просрочка 2 дня" in many.text
    assert "просрочка оплаты достигла уже 21 день" in many.text


def test_before_due_and_due_today_speak_of_the_right_day():
    r = TemplateRenderer(TEMPLATES)
    ahead = letter(template="before_due", items=[item(due=dt.date(2026, 11, 27), late=-7)], business_days_to_due=5)
    out = r.render(ahead, today=TODAY)
    assert out.subject == "Срок оплаты заказа № ТД00-000123 — 27.11.2026"
    assert "27 ноября 2026 г. (через 5 рабочих дней) наступает срок оплаты" in out.text
    calendar = r.render(dataclasses.replace(ahead, business_days_to_due=None), today=TODAY)
    assert "(через 7 дней)" in calendar.text
    today = r.render(letter(template="due_today", items=[item(due=TODAY, late=0)]), today=TODAY)
    assert today.subject == "Сегодня срок оплаты заказа № ТД00-000123"
    assert "сегодня, 20 ноября 2026 г., наступает срок оплаты" in today.text


def test_bank_details_come_from_the_letter_or_the_renderer_map():
    r = TemplateRenderer(TEMPLATES, bank_details={"ООО «СантехОпт»": "р/с 40702810000000000001, БИК 045004001"})
    out = r.render(letter(), today=TODAY)
    assert "Реквизиты для оплаты (ООО «СантехОпт»): р/с 40702810000000000001, БИК 045004001" in out.text
    own = r.render(letter(bank_details="р/с 1"), today=TODAY)
    assert "Реквизиты для оплаты (ООО «СантехОпт»): р/с 1\n" in own.text
    assert "Реквизиты" not in TemplateRenderer(TEMPLATES).render(letter(), today=TODAY).text


def test_the_seed_placeholders_and_their_english_twins(tmp_path: Path):
    names = ["ИмяПартнера", "НомерЗаказа", "ОсновнойМенеджер", "ПочтаТелефон", "СуммаДокумента", "СуммаДолга",
             "СрокОплаты", "ДатаЗаказа", "ДнейПросрочки", "Организация", "partner_name", "order_number",
             "manager_name", "manager_contacts", "document_amount", "organization_name", "today"]
    body = "\n".join(f"{n}={{{{ {n} }}}}" for n in names) + "\ntotal={{ total_outstanding | money }}" \
        + "\nitems={{ items | length }} letter={{ letter.to_addr }}"
    for suffix in ("subject", "txt", "html"):
        (tmp_path / f"seed.{suffix}").write_text(body, encoding="utf-8")
    out = TemplateRenderer(tmp_path).render(letter(template="seed"), today=TODAY).text
    for expected in ("ИмяПартнера=ООО «Рога и копыта»", "НомерЗаказа=ТД00-000123, ТД00-000124",
                     "ОсновнойМенеджер=Иванова Анна", "ПочтаТелефон=ivanova@santeh-opt.example, +7 (383) 284-26-00",
                     "СуммаДокумента=125 000,50 ₽", "СуммаДолга=127 500,50 ₽", "СрокОплаты=09.11.2026",
                     "ДатаЗаказа=03.11.2026", "ДнейПросрочки=11", "Организация=ООО «СантехОпт»",
                     "order_number=ТД00-000123, ТД00-000124", "today=2026-11-20", "total=127 500,50 ₽",
                     "items=2 letter=buh@roga.example"):
        assert expected in out


def test_a_broken_or_missing_template_fails_before_sending(tmp_path: Path, smtp):
    server, mail = smtp
    for suffix, body in (("subject", "Тема"), ("txt", "Здравствуйте!\n\n{{ no_such_variable }}\n"), ("html", "x")):
        (tmp_path / f"broken.{suffix}").write_text(body, encoding="utf-8")
    r = TemplateRenderer(tmp_path)
    with pytest.raises(TemplateProblem, match=r"broken\.txt, line 3: UndefinedError: 'no_such_variable'") as err:
        r.check(["broken"])
    assert err.value.line == 3 and err.value.path == tmp_path / "broken.txt"
    with pytest.raises(TemplateProblem, match=r"absent\.subject, absent\.txt, absent\.html do not exist"):
        r.check(["absent"])
    with pytest.raises(TemplateProblem, match=r"absent\.subject does not exist"):
        r.render(letter(template="absent"), today=TODAY)
    (tmp_path / "syntax.subject").write_text("x", encoding="utf-8")
    (tmp_path / "syntax.txt").write_text("x", encoding="utf-8")
    (tmp_path / "syntax.html").write_text('{% extends "_gone.html" %}', encoding="utf-8")
    with pytest.raises(TemplateProblem, match=r"_gone\.html does not exist \(needed by syntax\.html\)"):
        r.check(["syntax"])
    (tmp_path / "syntax.html").write_text("<p>\n{% if %}</p>", encoding="utf-8")
    with pytest.raises(TemplateProblem, match=r"syntax\.html, line 2: TemplateSyntaxError"):
        r.check(["syntax"])
    assert mail.messages == [] and mail.connections == 0


def test_a_filter_failing_on_a_sample_without_due_date_is_caught_by_check(tmp_path: Path):
    for suffix, body in (("subject", "Срок {{ items[0].due_date | date_ru }}"), ("txt", "x"), ("html", "x")):
        (tmp_path / f"nodue.{suffix}").write_text(body, encoding="utf-8")
    with pytest.raises(TemplateProblem, match=r"nodue\.subject, line 1: ValueError: no date"):
        TemplateRenderer(tmp_path).check(["nodue"])


def test_the_sandbox_shortcut_for_document_fields_answers_as_the_full_check():
    from dataclasses import fields

    from jinja2.sandbox import ImmutableSandboxedEnvironment

    full, fast = ImmutableSandboxedEnvironment(), TemplateRenderer(TEMPLATES).env
    it = item()
    for f in fields(LetterItem):
        assert full.is_safe_attribute(it, f.name, getattr(it, f.name))
        assert fast.is_safe_attribute(it, f.name, getattr(it, f.name))
    for attr in ("__class__", "__init__", "_private"):
        assert not fast.is_safe_attribute(it, attr, None)


def test_templates_are_sandboxed(tmp_path: Path):
    for attack in ("{{ letter.__class__.__init__.__globals__ }}", "{{ items.append(1) }}",
                   "{{ items[0].__class__.__init__.__globals__ }}", "{{ items[0].__dataclass_fields__ }}",
                   "{{ ''.__class__.__mro__[1].__subclasses__() }}"):
        for suffix in ("subject", "txt", "html"):
            (tmp_path / f"evil.{suffix}").write_text(attack, encoding="utf-8")
        with pytest.raises(TemplateProblem, match="SecurityError"):
            TemplateRenderer(tmp_path).check(["evil"])


# -- plan -> letters ------------------------------------------------------------------

def plan_frame() -> pd.DataFrame:
    rows = [  # doc, number, date, partner, target, step, rank, template, due, late
        ("d3", "ТД-3", "2026-11-05", "p1", "a@x.example", "overdue_3", 3, "overdue", "2026-11-09", 3),
        ("d1", "ТД-1", "2026-11-03", "p1", "a@x.example", "overdue_1", 2, "overdue", None, None),
        ("d2", "ТД-2", "2026-11-03", "p1", "a@x.example", "before_due", 0, "before_due", "2026-11-25", -5),
        ("d4", "ТД-4", "2026-11-04", "p2", "b@y.example", "due_today", 1, "due_today", "2026-11-20", 0),
        ("d5", "ТД-5", "2026-11-04", "p2", "b2@y.example", "due_today", 1, "due_today", "2026-11-20", 0),
        ("d6", "ТД-6", "2026-11-04", "p2", "b@y.example", "call", 9, "call_manager", "2026-11-20", 0),
    ]
    df = pd.DataFrame(rows, columns=["document_ref", "document_number", "document_date", "partner_ref",
                                     "target", "step_id", "step_rank", "template", "due_date", "days_overdue"])
    return df.assign(
        document_date=pd.to_datetime(df["document_date"]).astype("datetime64[s]"),
        due_date=pd.to_datetime(df["due_date"]).astype("datetime64[s]"),
        days_overdue=df["days_overdue"].astype("Int64"),
        business_days_overdue=pd.array([2, None, -4, 0, 0, 0], dtype="Int64"),
        partner_name=df["partner_ref"].map({"p1": "ООО «Альфа»", "p2": "ИП Бета"}),
        organization_name=["ООО «СантехОпт»"] * 5 + [None],
        amount=pd.array([100, 200, 300, 400, 500, 600], dtype="int64"),
        outstanding=pd.array([100, 150, 300, 400, 500, 600], dtype="int64"),
        sender="debt@santeh-opt.example", manager_name=["Иванова Анна"] * 3 + [None] * 3,
        manager_email="ivanova@santeh-opt.example", manager_phone=None,
        action=["email"] * 5 + ["task"])


def test_letters_from_plan_one_per_partner_recipient_and_sender():
    letters = letters_from_plan(plan_frame())
    assert [(lt.partner_ref, lt.to_addr, lt.template) for lt in letters] == [
        ("p1", "a@x.example", "overdue"), ("p2", "b2@y.example", "due_today"), ("p2", "b@y.example", "due_today")]
    alpha = letters[0]
    assert [i.document_number for i in alpha.items] == ["ТД-1", "ТД-2", "ТД-3"]  # by date, then number
    assert alpha.items[0].due_date is None and alpha.items[0].days_overdue is None
    assert alpha.items[2] == LetterItem("d3", "ТД-3", dt.date(2026, 11, 5), 100, 100, dt.date(2026, 11, 9), 3,
                                        "overdue_3")
    assert alpha.total_outstanding == 550 and alpha.business_days_to_due == 4
    assert alpha.manager_name == "Иванова Анна" and alpha.manager_phone is None
    assert letters[2].items[0].document_ref == "d4" and len(letters[2].items) == 1  # the task row is not mail
    assert letters_from_plan(plan_frame().iloc[0:0]) == []


def test_a_plan_row_without_recipient_becomes_a_letter_that_cannot_be_built():
    plan = plan_frame()
    plan.loc[0, "target"] = None
    plan["step_rank"] = plan["step_rank"].astype("Int64")
    plan.loc[3, "step_rank"] = pd.NA
    letters = letters_from_plan(plan)
    orphan = next(lt for lt in letters if lt.to_addr == "")
    assert [i.document_ref for i in orphan.items] == ["d3"]
    with pytest.raises(BadAddress, match="recipient"):
        build_message(orphan, TemplateRenderer(TEMPLATES).render(orphan, today=TODAY))
    assert sorted(i.document_ref for lt in letters for i in lt.items) == ["d1", "d2", "d3", "d4", "d5"]


def test_letters_from_plan_render_and_build():
    r = TemplateRenderer(TEMPLATES)
    for lt in letters_from_plan(plan_frame()):
        msg = build_message(lt, r.render(lt, today=TODAY))
        assert msg["Message-ID"] == message_id(lt.pairs, "santeh-opt.example")


# -- messages and headers -------------------------------------------------------------

def test_a_letter_with_two_documents_arrives_once_in_russian(smtp):
    server, mail = smtp
    assert [r.status for r in send_all(server, [letter()])] == ["sent"]
    (m,) = mail.messages
    assert m.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in m.iter_parts()] == ["text/plain", "text/html"]
    assert all(p.get_content_charset() == "utf-8" for p in m.iter_parts())
    body = m.get_body(("plain",)).get_content()
    assert "Здравствуйте, ООО «Рога и копыта»!" in body
    assert "1. Заказ № ТД00-000123 от 03.11.2026: к оплате 125 000,50 ₽, срок оплаты 09.11.2026" in body
    assert "2. Заказ № ТД00-000124 от 05.11.2026: к оплате 2 500,00 ₽ (сумма заказа 5 000,00 ₽)" in body
    assert "Итого к оплате: 127 500,50 ₽" in body
    html = m.get_body(("html",)).get_content()
    assert "125 000,50 ₽" in html and "127 500,50 ₽" in html and "mailto:ivanova@santeh-opt.example" in html
    assert m["To"].addresses[0].display_name == "ООО «Рога и копыта»"
    assert m["To"].addresses[0].addr_spec == "buh@roga.example"
    assert m["From"].addresses[0].display_name == "ООО «СантехОпт»"
    assert m["Subject"] == "Напоминание об оплате заказов № ТД00-000123, ТД00-000124"
    assert m["Message-ID"] == message_id([("d1", "s"), ("d2", "s")], "santeh-opt.example")
    assert m["X-Receivables-Documents"] == "ТД00-000123, ТД00-000124"
    assert m["Date"] and m["Auto-Submitted"] == "auto-generated"
    (mail_from, rcpt, raw), = mail.envelopes
    assert mail_from == "debt@santeh-opt.example" and rcpt == ["buh@roga.example"]
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert head.isascii() and b"=?utf-8?" in head  # Cyrillic names and subject are RFC 2047-encoded


@pytest.mark.parametrize("evil", [
    'ООО "Рога"\r\nBcc: evil@x.example\r\n<script>alert(1)</script><b>',
    "ООО Рога\nBcc: evil@x.example", "ООО Рога\rBcc: evil@x.example", "ООО Рога\x85Bcc: evil@x.example",
    "ООО Рога\u2028Bcc: evil@x.example", "ООО Рога\x00\x1b[31m\u202eBcc: evil@x.example",
])
def test_hostile_partner_names_are_escaped_and_cannot_inject_headers(smtp, evil):
    server, mail = smtp
    hostile = dataclasses.replace(letter(name=evil), organization_name=evil, manager_name=evil)
    assert [r.status for r in send_all(server, [hostile])] == ["sent"]
    (m,) = mail.messages
    assert m["Bcc"] is None and mail.envelopes[0][1] == ["buh@roga.example"]
    assert m["To"].addresses[0].addr_spec == "buh@roga.example" and len(m["To"].addresses) == 1
    assert "Bcc: evil@x.example" in m["To"].addresses[0].display_name  # kept as harmless text
    html = m.get_body(("html",)).get_content()
    assert "<script>" not in html and "<b>" not in html.split("Здравствуйте", 1)[1].split("!", 1)[0]
    if "<script>" in evil:
        assert "&lt;script&gt;alert(1)&lt;/script&gt;&lt;b&gt;" in html
    head = mail.envelopes[0][2].split(b"\r\n\r\n", 1)[0]
    assert not any(line.lower().startswith(b"bcc") for line in head.split(b"\r\n"))


def test_a_subject_template_cannot_inject_headers_either(tmp_path: Path, smtp):
    server, mail = smtp
    (tmp_path / "t.subject").write_text("Заказ {{ НомерЗаказа }}\nBcc: evil@x.example", encoding="utf-8")
    (tmp_path / "t.txt").write_text("текст", encoding="utf-8")
    (tmp_path / "t.html").write_text("<p>текст</p>", encoding="utf-8")
    send_all(server, [letter(template="t")], TemplateRenderer(tmp_path))
    (m,) = mail.messages
    assert m["Bcc"] is None and m["Subject"] == "Заказ ТД00-000123, ТД00-000124 Bcc: evil@x.example"


@pytest.mark.parametrize("bad", [
    "buh@roga.example\r\nBcc: evil@x.example", "buh@roga.example, evil@x.example", "buh@roga.example;x@y.example",
    "ООО Рога <buh@roga.example>", "", None, "buh", "buh@localhost", "почта@пример.рф", "a b@roga.example",
])
def test_a_recipient_that_is_not_one_plain_address_is_rejected(bad):
    r = TemplateRenderer(TEMPLATES)
    lt = letter(to=bad)
    with pytest.raises(BadAddress, match="recipient"):
        build_message(lt, r.render(lt, today=TODAY))
    lt = dataclasses.replace(letter(), from_addr=bad)
    with pytest.raises(BadAddress, match="sender"):
        build_message(lt, r.render(lt, today=TODAY))


def test_a_cyrillic_domain_is_idna_encoded(smtp):
    server, mail = smtp
    assert [r.status for r in send_all(server, [letter(to="buh@пример.рф")])] == ["sent"]
    assert mail.envelopes[0][1] == ["buh@xn--e1afmkfd.xn--p1ai"]


def test_reply_to_is_set_when_valid_and_dropped_when_not():
    r = TemplateRenderer(TEMPLATES)
    good = build_message(letter(reply_to="ivanova@santeh-opt.example"), r.render(letter(), today=TODAY))
    assert good["Reply-To"] == "ivanova@santeh-opt.example"
    bad = build_message(letter(reply_to="x\r\nBcc: e@x.example"), r.render(letter(), today=TODAY))
    assert bad["Reply-To"] is None and bad["Bcc"] is None


def test_message_id_is_stable_and_depends_on_the_documents_and_steps():
    a = message_id([("d1", "s"), ("d2", "s")], "x.example")
    assert a == message_id([("d2", "s"), ("d1", "s")], "x.example")
    assert a.startswith("<") and a.endswith("@x.example>")
    assert a != message_id([("d1", "s")], "x.example")
    assert a != message_id([("d1", "t"), ("d2", "s")], "x.example")
    r = TemplateRenderer(TEMPLATES)
    first = build_message(letter(), r.render(letter(), today=TODAY))
    again = build_message(letter(), r.render(letter(), today=TODAY + dt.timedelta(days=3)))
    assert first["Message-ID"] == again["Message-ID"]


# -- wire format ----------------------------------------------------------------------

def generated(msg: EmailMessage) -> bytes:
    """What smtplib.send_message would put on the wire: email.generator with CRLF."""
    out = io.BytesIO()
    BytesGenerator(out).flatten(msg, linesep="\r\n")
    return out.getvalue()


def test_the_wire_bytes_are_the_generators_and_reach_the_server_as_they_are(smtp):
    server, mail = smtp
    r = TemplateRenderer(TEMPLATES)
    names = ["ООО «Рога и копыта»", "ООО «Очень длинное название клиента с уточнением филиала и адресом»",
             'Plain "ASCII", Co.', "=?utf-8?q?x?=", "😀 " * 30, ""]
    letters = [dataclasses.replace(s, partner_name=n, organization_name=n, reply_to="ivanova@santeh-opt.example")
               for s in sample_letters("overdue") for n in names]
    msgs = [build_message(lt, r.render(lt, today=TODAY)) for lt in letters]
    # every body encoding text_part picks: 8bit and 7bit short lines, quoted-printable, base64
    msgs.append(build_message(letter(), RenderedEmail("Short subject " * 8, "Коротко.\n", "<p>ascii</p>\n")))
    msgs.append(build_message(letter(), RenderedEmail("Тема", "x" * 120 + "\n", "строка " * 40 + "\n")))
    msgs[-1].preamble, msgs[-1].epilogue = "This is a MIME message.\r\nSecond line", "\nThe end.\n"
    for msg in msgs:
        assert wire_bytes(msg) == generated(msg)
    with sender_for(server) as sender:
        assert [sender.send(m).status for m in msgs] == ["sent"] * len(msgs)
    assert len(mail.envelopes) == len(msgs)
    for msg, (mail_from, rcpt, raw), got in zip(msgs, mail.envelopes, mail.messages, strict=True):
        assert mail_from == msg.envelope_from and rcpt == [msg.envelope_to]
        assert raw == wire_bytes(msg)
        assert got["Subject"] == msg["Subject"] and got["Message-ID"] == msg["Message-ID"]
        # (a quoted-printable part parsed from the wire keeps its CRLFs)
        assert [p.get_content().replace("\r\n", "\n") for p in got.iter_parts()] == [
            p.get_content() for p in msg.iter_parts()]
    assert {p.get("Content-Transfer-Encoding") for m in mail.messages for p in m.iter_parts()} == {
        "7bit", "8bit", "quoted-printable", "base64"}


@pytest.mark.parametrize("text", [
    "Напоминание об оплате заказа № ТД00-000123 от 03.11.2026, и ещё длинный хвост для переноса",
    "😀" * 40, "a" * 100 + "é", "Заказ =?utf-8?q?x?=", "ё",
])
def test_non_ascii_headers_are_encoded_words_of_whole_characters_within_the_line_limit(text):
    value = text_header("Subject", text)
    assert all(len(line) <= 76 for line in f"Subject: {value}".split("\n"))
    for word in value.split("\n "):
        ((data, charset),) = decode_header(word)
        data.decode(charset)  # each word alone is valid UTF-8: no character is cut in two
    parsed = message_from_bytes(f"Subject: {value}\n\nx".encode("ascii"), policy=email_policy.default)
    assert parsed["Subject"] == text


def test_a_stored_message_id_replaces_the_computed_one_and_cannot_inject_headers():
    r = TemplateRenderer(TEMPLATES)
    msg = build_message(letter(), r.render(letter(), today=TODAY), mid="<stored@santeh-opt.example>")
    assert msg.get_all("Message-ID") == ["<stored@santeh-opt.example>"]
    evil = build_message(letter(), r.render(letter(), today=TODAY), mid="<x@y.example>\r\nBcc: evil@x.example")
    assert evil["Bcc"] is None and b"\r\nBcc:" not in wire_bytes(evil)


def test_a_message_not_made_by_build_message_is_sent_too(smtp):
    server, mail = smtp
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "debt@santeh-opt.example", "ООО Рога <buh@roga.example>", "Тест"
    msg.set_content("Текст письма")
    with sender_for(server) as sender:
        assert sender.send(msg).status == "sent"
    assert mail.envelopes[0][:2] == ("debt@santeh-opt.example", ["buh@roga.example"])
    assert mail.messages[0].get_content().strip() == "Текст письма"


# -- SMTP -----------------------------------------------------------------------------

def test_one_connection_for_a_batch(smtp):
    server, mail = smtp
    results = send_all(server, [letter(to=f"c{i}@roga.example") for i in range(5)])
    assert [r.status for r in results] == ["sent"] * 5
    assert len(mail.messages) == 5 and mail.connections == 1


def test_550_is_permanent_451_is_temporary_and_the_batch_goes_on(smtp):
    server, mail = smtp
    mail.fail_rcpt["gone@roga.example"] = "550 5.1.1 no such user"
    mail.fail_rcpt["busy@roga.example"] = "451 4.3.0 try later"
    mail.fail_data_at[2] = "554 5.7.1 rejected as spam"  # counts DATA commands: refused RCPTs have none
    mail.fail_data_at[3] = "452 4.3.1 insufficient storage"
    results = send_all(server, [letter(to="gone@roga.example"), letter(to="busy@roga.example"), letter(),
                                letter(to="x@roga.example"), letter(to="y@roga.example"), letter(to="z@roga.example")])
    assert [(r.status, r.code) for r in results] == [
        ("permanent", 550), ("temporary", 451), ("sent", 250), ("permanent", 554), ("temporary", 452),
        ("sent", 250)]
    assert "no such user" in results[0].reason
    assert len(mail.messages) == 2 and mail.connections == 1


def test_a_dropped_connection_is_temporary_and_the_next_message_goes_after_a_reconnect(smtp):
    server, mail = smtp
    mail.drop_at_data = {2}
    results = send_all(server, [letter(to=f"c{i}@roga.example") for i in range(4)])
    assert [r.status for r in results] == ["sent", "temporary", "sent", "sent"]
    assert "connection lost" in results[1].reason
    assert [m["To"].addresses[0].addr_spec for m in mail.messages] == [
        "c0@roga.example", "c2@roga.example", "c3@roga.example"]
    assert mail.connections == 2


def test_a_421_closes_the_session_and_the_next_message_reconnects(smtp):
    server, mail = smtp
    mail.fail_data_at[1] = "421 4.3.2 service shutting down"
    results = send_all(server, [letter(to="a@roga.example"), letter(to="b@roga.example")])
    assert [(r.status, r.code) for r in results] == [("temporary", 421), ("sent", 250)]
    assert mail.connections == 2


def test_a_server_gone_mid_batch_makes_the_rest_temporary_without_waiting():
    renderer = TemplateRenderer(TEMPLATES)
    msgs = [build_message(lt, renderer.render(lt, today=TODAY))
            for lt in (letter(to=f"c{i}@roga.example") for i in range(4))]
    server = SmtpServer(Catcher()).__enter__()
    running = True
    try:
        with sender_for(server) as sender:
            first = sender.send(msgs[0])
            server.__exit__(None, None, None)
            running = False
            started = time.monotonic()
            rest = [sender.send(m) for m in msgs[1:]]
            elapsed = time.monotonic() - started
    finally:
        if running:
            server.__exit__(None, None, None)
    assert first.status == "sent"
    assert [r.status for r in rest] == ["temporary"] * 3
    assert "cannot connect" in rest[-1].reason and elapsed < 5


def test_an_unreachable_server_is_one_clear_error_at_the_start():
    with SmtpServer(Catcher()) as server:
        port = server.port
    with pytest.raises(SmtpUnavailable, match=rf"cannot connect to SMTP server 127\.0\.0\.1:{port}"):
        SmtpSender(SmtpSettings(host="127.0.0.1", port=port, timeout=2)).__enter__()


def test_login_is_used_once_for_the_batch():
    from aiosmtpd.smtp import AuthResult

    logins = []

    def auth(server, session, envelope, mechanism, data):
        logins.append(data.login)
        return AuthResult(success=data.login == b"robot" and data.password == b"s3cret")

    mail = Catcher()
    with SmtpServer(mail, authenticator=auth, auth_require_tls=False) as server:
        settings_ = SmtpSettings(host="127.0.0.1", port=server.port, login="robot", password="s3cret", timeout=5)
        renderer = TemplateRenderer(TEMPLATES)
        with SmtpSender(settings_) as sender:
            results = [sender.send(build_message(lt, renderer.render(lt, today=TODAY)))
                       for lt in (letter(to=f"c{i}@roga.example") for i in range(3))]
    assert [r.status for r in results] == ["sent"] * 3 and logins == [b"robot"] and mail.connections == 1


def test_refused_login_is_one_clear_error_without_the_password():
    from aiosmtpd.smtp import AuthResult

    def refuse(server, session, envelope, mechanism, auth_data):
        return AuthResult(success=False, handled=False)

    with SmtpServer(Catcher(), authenticator=refuse, auth_require_tls=False) as server:
        settings_ = SmtpSettings(host="127.0.0.1", port=server.port, login="robot", password="s3cret")
        with pytest.raises(SmtpAuthError) as err:
            SmtpSender(settings_).__enter__()
    assert "refused the login of 'robot'" in str(err.value) and "535" in str(err.value)
    assert "s3cret" not in str(err.value) and err.value.__suppress_context__
    assert "s3cret" not in repr(settings_)


def test_a_login_against_a_server_without_auth_is_an_auth_error(smtp):
    server, _ = smtp
    with pytest.raises(SmtpAuthError, match="does not offer AUTH") as err:
        sender_for(server, login="robot", password="s3cret").__enter__()
    assert "s3cret" not in str(err.value)


def test_starttls_on_a_server_without_it_is_a_clear_error(smtp):
    server, _ = smtp
    with pytest.raises(SmtpUnavailable, match="STARTTLS"):
        sender_for(server, use_starttls=True).__enter__()


def test_send_has_no_side_effect_but_smtp(smtp):
    server, mail = smtp
    msg = build_message(letter(), TemplateRenderer(TEMPLATES).render(letter(), today=TODAY))
    before = msg.as_bytes()
    with sender_for(server) as sender:
        assert sender.send(msg).status == "sent"
    assert msg.as_bytes() == before and isinstance(msg, EmailMessage)


def test_a_runs_letters_use_the_templates_its_check_read(tmp_path: Path):
    for suffix in ("subject", "txt", "html"):
        (tmp_path / f"v.{suffix}").write_text("Версия 1 для {{ ИмяПартнера }}", encoding="utf-8")
    r = TemplateRenderer(tmp_path)
    r.check(["v"])
    (tmp_path / "v.txt").write_text("Версия 2 для {{ ИмяПартнера }}", encoding="utf-8")
    # edited mid-run: the letters after the check stay as checked
    assert r.render(letter(template="v"), today=TODAY).text.startswith("Версия 1")
    r.check(["v"])  # the next run's check reads the files anew
    assert r.render(letter(template="v"), today=TODAY).text.startswith("Версия 2")
