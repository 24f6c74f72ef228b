"""Letters rendered from the shipped templates and sent to a real SMTP server on loopback."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from harness import CaughtMail, SmtpServer
from receivables import settings
from receivables.actions.email import (
    Letter,
    LetterItem,
    SmtpAuthError,
    SmtpSender,
    SmtpSettings,
    TemplateProblem,
    TemplateRenderer,
    build_message,
    message_id,
)

TEMPLATES = settings.templates_dir() / "email"
TODAY = dt.date(2026, 11, 20)


def letter(name="ООО «Рога и копыта»", to="buh@roga.example", items=None, template="unpaid_order") -> Letter:
    items = items or [
        LetterItem("d1", "ТД00-000123", dt.date(2026, 11, 3), 12500050, 12500050, dt.date(2026, 11, 9), 11, "s"),
        LetterItem("d2", "ТД00-000124", dt.date(2026, 11, 5), 500000, 250000, None, None, "s")]
    return Letter("p1", name, to, "debt@santeh-opt.example", "ООО «СантехОпт»", template, "Иванова Анна",
                  "ivanova@santeh-opt.example", "+7 (383) 284-26-00", items)


@pytest.fixture
def smtp():
    mail = CaughtMail()
    with SmtpServer(mail) as server:
        yield server, mail


def send_all(server, letters, renderer=None):
    renderer = renderer or TemplateRenderer(TEMPLATES)
    results = []
    with SmtpSender(SmtpSettings(host="127.0.0.1", port=server.port)) as sender:
        for lt in letters:
            results.append(sender.send(build_message(lt, renderer.render(lt, today=TODAY))))
    return results


@pytest.mark.parametrize("template", ["unpaid_order", "before_due", "due_today", "overdue"])
def test_every_shipped_template_renders_for_one_and_several_documents(template):
    r = TemplateRenderer(TEMPLATES)
    r.check([template])
    two = r.render(letter(template=template), today=TODAY)
    assert "ТД00-000123" in two.text and "ТД00-000124" in two.text and "127 500,50 ₽" in two.text
    assert "Если вы уже оплатили" in two.text and "Иванова Анна" in two.text
    one = r.render(letter(template=template, items=letter().items[:1]), today=TODAY)
    assert "125 000,50 ₽" in one.text and "ТД00-000124" not in one.text


def test_a_letter_with_two_documents_arrives_once_in_russian(smtp):
    server, mail = smtp
    assert [r.status for r in send_all(server, [letter()])] == ["sent"]
    (m,) = mail.messages
    body = m.get_body(("plain",)).get_content()
    assert "Здравствуйте, ООО «Рога и копыта»!" in body and "125 000,50 ₽" in body and "03.11.2026" in body
    assert m["To"].addresses[0].display_name == "ООО «Рога и копыта»"
    assert m["Subject"] == "Напоминание об оплате заказов ТД00-000123, ТД00-000124"
    assert m["Message-ID"] == message_id([("d1", "s"), ("d2", "s")], "santeh-opt.example")


def test_hostile_partner_names_are_escaped_and_cannot_inject_headers(smtp):
    server, mail = smtp
    evil = 'ООО "Рога"\r\nBcc: evil@x.example\r\n<script>alert(1)</script><b>'
    send_all(server, [letter(name=evil)])
    (m,) = mail.messages
    assert m["Bcc"] is None and "evil@x.example" not in str(m["To"].addresses[0].addr_spec)
    html = m.get_body(("html",)).get_content()
    assert "<script>" not in html and "&lt;script&gt;" in html and "&lt;b&gt;" in html
    assert "\n" not in str(m["To"])


def test_message_id_is_stable_and_depends_on_the_documents():
    a = message_id([("d1", "s"), ("d2", "s")], "x.example")
    assert a == message_id([("d2", "s"), ("d1", "s")], "x.example")
    assert a != message_id([("d1", "s")], "x.example") and a != message_id([("d1", "t"), ("d2", "s")], "x.example")


def test_one_connection_for_a_batch(smtp):
    server, mail = smtp
    send_all(server, [letter(to=f"c{i}@roga.example") for i in range(5)])
    assert len(mail.messages) == 5 and mail.connections == 1


def test_550_is_permanent_451_is_temporary_and_the_batch_goes_on(smtp):
    server, mail = smtp
    mail.fail_rcpt["gone@roga.example"] = "550 5.1.1 no such user"
    mail.fail_rcpt["busy@roga.example"] = "451 4.3.0 try later"
    results = send_all(server, [letter(to="gone@roga.example"), letter(to="busy@roga.example"), letter()])
    assert [(r.status, r.code) for r in results] == [("permanent", 550), ("temporary", 451), ("sent", 250)]
    assert len(mail.messages) == 1


def test_a_broken_or_missing_template_fails_before_sending(tmp_path: Path, smtp):
    server, mail = smtp
    for suffix, body in (("subject", "Тема {{ no_such_variable }}"), ("txt", "x"), ("html", "x")):
        (tmp_path / f"broken.{suffix}").write_text(body, encoding="utf-8")
    r = TemplateRenderer(tmp_path)
    with pytest.raises(TemplateProblem, match="broken.subject"):
        r.check(["broken"])
    with pytest.raises(TemplateProblem, match="does not exist"):
        r.check(["absent"])
    assert mail.messages == []


def test_templates_are_sandboxed(tmp_path: Path):
    for suffix in ("subject", "txt", "html"):
        (tmp_path / f"evil.{suffix}").write_text("{{ letter.__class__.__init__.__globals__ }}", encoding="utf-8")
    with pytest.raises(TemplateProblem):
        TemplateRenderer(tmp_path).check(["evil"])


def test_refused_login_is_one_clear_error_without_the_password():
    from aiosmtpd.smtp import AuthResult

    def refuse(server, session, envelope, mechanism, auth_data):
        return AuthResult(success=False, handled=False)

    with SmtpServer(CaughtMail(), authenticator=refuse, auth_require_tls=False) as server:
        settings_ = SmtpSettings(host="127.0.0.1", port=server.port, login="robot", password="s3cret")
        with pytest.raises(SmtpAuthError) as err:
            SmtpSender(settings_).__enter__()
    assert "refused the login of 'robot'" in str(err.value) and "s3cret" not in str(err.value)
