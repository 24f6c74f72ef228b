"""Reminder emails: letters grouped per partner, sandboxed templates, one SMTP session.

No Airflow here: `connections.smtp_settings()` turns connection ``smtp_default`` into
:class:`SmtpSettings`. Exactly-once bookkeeping lives in `actions.perform`; this module
renders, builds and sends, and classifies what the server answered.
"""

from __future__ import annotations

import datetime as dt
import re
import smtplib
import ssl
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pandas as pd
from jinja2 import FileSystemLoader, StrictUndefined, TemplateError, TemplateNotFound
from jinja2.sandbox import SandboxedEnvironment

from receivables import formatting
from receivables.actions.items import DocumentItem, derived_id, items_from_rows

LetterItem = DocumentItem  # the name the templates' authors know

_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_ADDRESS = re.compile(r"^[^@\s<>(),;:\"\[\]\\]+@[^@\s<>(),;:\"\[\]\\]+\.[^@\s<>(),;:\"\[\]\\]+$")


class TemplateProblem(ValueError):
    """A template that is missing or fails to render; raised before anything is sent."""


class SmtpAuthError(RuntimeError):
    """The SMTP server refused the login: no message of the batch can go out."""


@dataclass
class Letter:
    partner_ref: str
    partner_name: str
    to_addr: str
    from_addr: str
    organization_name: str
    template: str
    manager_name: str | None
    manager_email: str | None
    manager_phone: str | None
    items: list[LetterItem] = field(default_factory=list)
    reply_to: str | None = None

    @property
    def total_outstanding(self) -> int:
        return sum(i.outstanding for i in self.items)

    @property
    def pairs(self) -> list[tuple[str, str]]:
        return [(i.document_ref, i.step_id) for i in self.items]


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int = 25
    login: str | None = None
    password: str | None = field(default=None, repr=False)
    from_email: str | None = None
    use_ssl: bool = False
    use_starttls: bool = False
    timeout: float = 30.0


@dataclass(frozen=True)
class SendResult:
    status: str  # sent | temporary | permanent
    code: int | None
    reason: str


def clean_header(value: Any) -> str:
    """Header text with every control character (CR/LF included) folded to a space."""
    return _CONTROL.sub(" ", str(value or "")).strip()


def valid_address(addr: str | None) -> bool:
    return bool(addr) and _ADDRESS.match(addr) is not None and not _CONTROL.search(addr)


def message_id(pairs: Iterable[tuple[str, str]], domain: str) -> str:
    """A stable Message-ID for the set of (document_ref, step_id) pairs a letter covers."""
    domain = clean_header(domain).replace(" ", "") or "localhost"
    return f"<{derived_id('email', pairs)}@{domain}>"


def letters_from_plan(plan: pd.DataFrame) -> list[Letter]:
    """One letter per (partner, recipient, sender) listing its documents; the template is
    that of the item furthest along the ladder (highest step_rank)."""
    if plan.empty:
        return []
    df = plan.sort_values(["partner_ref", "target", "sender", "document_date", "document_number"], kind="stable")
    letters = []
    for (partner, target, sender), g in df.groupby(["partner_ref", "target", "sender"], sort=False):
        lead = g.loc[g["step_rank"].astype("int64").idxmax()]
        items = items_from_rows(g)
        letters.append(Letter(
            partner_ref=partner, partner_name=lead["partner_name"], to_addr=target, from_addr=sender,
            organization_name=lead["organization_name"] if pd.notna(lead["organization_name"]) else "",
            template=lead["template"],
            manager_name=lead["manager_name"] if pd.notna(lead["manager_name"]) else None,
            manager_email=lead["manager_email"] if pd.notna(lead["manager_email"]) else None,
            manager_phone=lead["manager_phone"] if pd.notna(lead["manager_phone"]) else None,
            items=items))
    return letters


def _sample_letter(template: str) -> Letter:
    day = dt.date(2026, 11, 3)
    items = [LetterItem("00000000-0000-0000-0000-000000000001", "ТД00-000123", day, 12500050, 12500050,
                        dt.date(2026, 11, 9), 3, "sample"),
             LetterItem("00000000-0000-0000-0000-000000000002", "ТД00-000124", day, 500000, 250000, None,
                        None, "sample")]
    return Letter("00000000-0000-0000-0000-0000000000aa", "ООО «Пример»", "buh@example.ru",
                  "debt@example.ru", "ООО «СантехОпт»", template, "Иванова Анна",
                  "ivanova@example.ru", "+7 (383) 284-26-00", items)


class TemplateRenderer:
    """Sandboxed Jinja2 (user-editable templates cannot reach Python internals), strict
    about missing variables, autoescaping the HTML part only."""

    def __init__(self, templates_dir: Path):
        self.dir = Path(templates_dir)
        self.env = SandboxedEnvironment(
            loader=FileSystemLoader(str(self.dir)), undefined=StrictUndefined,
            autoescape=lambda name: bool(name and name.endswith(".html")),
            trim_blocks=True, lstrip_blocks=True)
        formatting.install_filters(self.env)

    def context(self, letter: Letter, today: dt.date) -> dict[str, Any]:
        first = letter.items[0]
        contacts = ", ".join(x for x in (letter.manager_email, letter.manager_phone) if x)
        return {
            "letter": letter, "items": letter.items, "today": today,
            "total_outstanding": letter.total_outstanding,
            "organization_name": clean_header(letter.organization_name),
            "partner_name": clean_header(letter.partner_name), "manager_name": letter.manager_name,
            "ИмяПартнера": clean_header(letter.partner_name),
            "НомерЗаказа": ", ".join(i.document_number for i in letter.items),
            "ОсновнойМенеджер": letter.manager_name or "",
            "ПочтаТелефон": contacts,
            "СуммаДокумента": formatting.money(first.amount),
        }

    def render(self, letter: Letter, *, today: dt.date) -> RenderedEmail:
        ctx = self.context(letter, today)
        parts = []
        for suffix in ("subject", "txt", "html"):
            name = f"{letter.template}.{suffix}"
            try:
                parts.append(self.env.get_template(name).render(ctx))
            except TemplateNotFound:
                raise TemplateProblem(f"email template file {self.dir / name} does not exist") from None
            except TemplateError as exc:
                line = getattr(exc, "lineno", None)
                where = f"{self.dir / name}" + (f", line {line}" if line else "")
                raise TemplateProblem(f"email template {where}: {exc}") from None
        subject = clean_header(parts[0])
        return RenderedEmail(subject=subject, text=parts[1].strip() + "\n", html=parts[2])

    def check(self, template_names: Sequence[str]) -> None:
        """Render every template with sample letters (one and two documents) first."""
        for name in template_names:
            full = _sample_letter(name)
            single = Letter(**{**full.__dict__, "items": full.items[:1]})
            for sample in (single, full):
                self.render(sample, today=dt.date(2026, 11, 9))


def build_message(letter: Letter, rendered: RenderedEmail, *, now: dt.datetime | None = None) -> EmailMessage:
    """A multipart/alternative message; names are encoded, never spliced into headers."""
    if not valid_address(letter.to_addr):
        raise ValueError(f"not an email address: {clean_header(letter.to_addr)!r}")
    if not valid_address(letter.from_addr):
        raise ValueError(f"sender is not an email address: {clean_header(letter.from_addr)!r}")
    msg = EmailMessage()
    to_user, to_domain = letter.to_addr.rsplit("@", 1)
    from_user, from_domain = letter.from_addr.rsplit("@", 1)
    msg["From"] = Address(clean_header(letter.organization_name), from_user, from_domain)
    msg["To"] = Address(clean_header(letter.partner_name), to_user, to_domain)
    if letter.reply_to and valid_address(letter.reply_to):
        msg["Reply-To"] = letter.reply_to
    msg["Subject"] = clean_header(rendered.subject)
    msg["Date"] = format_datetime(now or dt.datetime.now(dt.UTC))
    msg["Message-ID"] = message_id(letter.pairs, from_domain)
    msg["X-Receivables-Documents"] = clean_header(", ".join(i.document_number for i in letter.items))
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(rendered.text, charset="utf-8")
    msg.add_alternative(rendered.html, subtype="html", charset="utf-8")
    return msg


class SmtpSender:
    """One SMTP session for a batch; per-message results, reconnecting once after a drop."""

    def __init__(self, settings: SmtpSettings):
        self.settings = settings
        self.smtp: smtplib.SMTP | None = None

    def __enter__(self) -> SmtpSender:
        self._connect()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.smtp is not None:
            try:
                self.smtp.quit()
            except (smtplib.SMTPException, OSError):
                pass
            self.smtp = None

    def _connect(self) -> None:
        s = self.settings
        try:
            if s.use_ssl:
                self.smtp = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout,
                                             context=ssl.create_default_context())
            else:
                self.smtp = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
                if s.use_starttls:
                    self.smtp.starttls(context=ssl.create_default_context())
            if s.login:
                self.smtp.login(s.login, s.password or "")
        except smtplib.SMTPAuthenticationError as exc:
            self.smtp = None
            raise SmtpAuthError(f"SMTP server {s.host}:{s.port} refused the login of {s.login!r} "
                                f"({exc.smtp_code})") from None
        except (smtplib.SMTPException, OSError) as exc:
            self.smtp = None
            raise ConnectionError(f"cannot connect to SMTP server {s.host}:{s.port}: "
                                  f"{type(exc).__name__}: {exc}") from None

    def send(self, msg: EmailMessage) -> SendResult:
        for attempt in (1, 2):
            if self.smtp is None:
                try:
                    self._connect()
                except ConnectionError as exc:
                    return SendResult("temporary", None, str(exc))
            try:
                refused = self.smtp.send_message(msg)
            except smtplib.SMTPRecipientsRefused as exc:
                code, text = next(iter(exc.recipients.values()))
                return _classify(code, text)
            except (smtplib.SMTPDataError, smtplib.SMTPSenderRefused) as exc:
                return _classify(exc.smtp_code, exc.smtp_error)
            except (smtplib.SMTPServerDisconnected, OSError) as exc:
                self.smtp = None
                if attempt == 2:
                    return SendResult("temporary", None, f"connection lost: {type(exc).__name__}")
                # the server may or may not have taken it; the Message-ID stays the same
                continue
            if refused:
                code, text = next(iter(refused.values()))
                return _classify(code, text)
            return SendResult("sent", 250, "accepted")
        return SendResult("temporary", None, "connection lost")


def _classify(code: int | None, text: Any) -> SendResult:
    reason = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    reason = clean_header(reason)
    if code is not None and 500 <= code < 600:
        return SendResult("permanent", code, reason)
    return SendResult("temporary", code, reason)
