"""Reminder emails: letters grouped per partner, sandboxed templates, one SMTP session.

No Airflow here: `connections.smtp_settings()` turns connection ``smtp_default`` into
:class:`SmtpSettings`. Exactly-once bookkeeping lives in `actions.perform`; this module
renders, builds and sends, and classifies what the server answered.
"""

from __future__ import annotations

import binascii
import datetime as dt
import re
import smtplib
import ssl
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from email.headerregistry import Address
from email.message import EmailMessage, MIMEPart
from email.utils import format_datetime, formataddr
from pathlib import Path
from typing import Any, Literal, TypeVar

import pandas as pd
from jinja2 import FileSystemLoader, StrictUndefined, TemplateNotFound, TemplateSyntaxError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from receivables import formatting
from receivables.actions.items import DocumentItem, derived_id, items_from_rows
from receivables.prefetch import read_ahead

LetterItem = DocumentItem  # one document of a letter; the name the templates' authors know

#: the parts of an email template, in render order: ``T.subject``, ``T.txt``, ``T.html``
TEMPLATE_SUFFIXES = ("subject", "txt", "html")

# Anything a header must never carry: C0/C1 controls (CR, LF, NEL included), Unicode line and
# paragraph separators (Python's str.splitlines breaks on them too) and bidi overrides that
# make a display name read differently from what it is.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]+")
_SPECIALS = r"@\s<>(),;:\"\[\]\\"
_ADDRESS = re.compile(rf"^[^{_SPECIALS}]+@[^{_SPECIALS}]+\.[^{_SPECIALS}.][^{_SPECIALS}]*$")


class TemplateProblem(ValueError):
    """A template that is missing or fails to render; raised before anything is sent."""

    def __init__(self, message: str, *, template: str | None = None, path: Path | None = None,
                 line: int | None = None):
        super().__init__(message)
        self.template, self.path, self.line = template, path, line


class BadAddress(ValueError):
    """A recipient or sender that is not one plain email address: the letter is not built."""


class SmtpError(RuntimeError):
    """The SMTP session as a whole cannot go on (as opposed to one refused message)."""


class SmtpAuthError(SmtpError):
    """The SMTP server refused the login: no message of the batch can go out."""


class SmtpUnavailable(SmtpError, ConnectionError):
    """The SMTP server cannot be reached or the secure channel cannot be set up."""


@dataclass
class Letter:
    """One message to one partner's address, covering one or more of its documents."""

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
    #: the organization's payment details ("р/с … в …, БИК …"), printed when given
    bank_details: str | None = None
    #: working days until the earliest not-yet-due item's due date, when the plan knows it
    business_days_to_due: int | None = None

    @property
    def total_outstanding(self) -> int:
        return sum(i.outstanding for i in self.items)

    @property
    def total_amount(self) -> int:
        return sum(i.amount for i in self.items)

    @property
    def pairs(self) -> list[tuple[str, str]]:
        return [(i.document_ref, i.step_id) for i in self.items]

    @property
    def document_numbers(self) -> list[str]:
        return [i.document_number for i in self.items]


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


@dataclass(frozen=True)
class SmtpSettings:
    """What connection ``smtp_default`` says; the password never appears in repr()."""

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
    """``sent``; ``temporary`` (try again on a later run); ``permanent`` (the server will never take it)."""

    status: Literal["sent", "temporary", "permanent"]
    code: int | None
    reason: str


# -- headers and addresses ------------------------------------------------------------

def _missing(value: Any) -> bool:
    return value is None or (not isinstance(value, str) and pd.api.types.is_scalar(value) and bool(pd.isna(value)))


def clean_header(value: Any) -> str:
    """Header text with every control character (CR/LF included) folded to a space."""
    if _missing(value):
        return ""
    return " ".join(_CONTROL.sub(" ", str(value)).split())


def split_address(addr: Any, *, role: str = "recipient") -> tuple[str, str]:
    """``'buh@пример.рф'`` -> ``('buh', 'xn--e1afmkfd.xn--p1ai')``, or :class:`BadAddress`.

    One plain address only: no display name, no list, no control character anywhere
    (those are how header injection starts). A Cyrillic domain is IDNA-encoded; a
    non-ASCII local part would need SMTPUTF8, which relays rarely offer, so it is refused.
    """
    text = "" if _missing(addr) else str(addr)
    shown = clean_header(text)[:80]
    if _CONTROL.search(text) or not _ADDRESS.match(text.strip()):
        raise BadAddress(f"{role} is not one email address: {shown!r}")
    local, domain = text.strip().rsplit("@", 1)
    if not local.isascii():
        raise BadAddress(f"{role} {shown!r}: a non-ASCII mailbox name is not supported (needs SMTPUTF8)")
    if not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            raise BadAddress(f"{role} {shown!r}: the domain is not a valid internationalised name") from None
    return local, domain


def valid_address(addr: Any) -> bool:
    try:
        split_address(addr)
    except BadAddress:
        return False
    return True


def message_id(pairs: Iterable[tuple[str, str]], domain: str) -> str:
    """A stable Message-ID for the set of (document_ref, step_id) pairs a letter covers.

    The same documents at the same steps give the same id on every render and every
    rerun, so a message re-sent after a crash is recognisably the same message.
    """
    domain = clean_header(domain).replace(" ", "").strip("<>@") or "localhost"
    if not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            domain = "localhost"
    return f"<{derived_id('email', pairs)}@{domain}>"


# -- plan -> letters ------------------------------------------------------------------

_KEYS = ["partner_ref", "target", "sender"]
#: the plan columns a letter's items are made of (``items_from_rows``)
_ITEM_COLUMNS = ["document_ref", "document_number", "document_date", "amount", "outstanding", "due_date",
                 "days_overdue", "step_id"]


def _sort_key(v: Any) -> tuple:
    return (1, 0) if _missing(v) else (0, v)


def _floats(values: pd.Series) -> list[float]:
    """Numbers as floats, anything missing or not a number as NaN (nullable Int64 too)."""
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64", na_value=float("nan")).tolist()


def _text(v: Any) -> str | None:
    return None if _missing(v) or str(v).strip() == "" else str(v)


def letters_from_plan(plan: pd.DataFrame) -> list[Letter]:
    """One letter per (partner, recipient, sender) listing its documents by date and number.

    The template and the heading fields (manager, organization) are those of the item
    furthest along the ladder (highest ``step_rank``; among equals the first by date and
    number): a partner with one order at "1 day overdue" and another at "10 days
    overdue" gets one letter in the firmer wording. Optional plan columns ``reply_to``,
    ``bank_details`` and ``business_days_overdue`` are used when present.

    One sort and one pass over plain lists: ``send_emails`` calls this once per
    Message-ID group, and a pandas sort and groupby per call made it half of that
    task's time (issue 8 benchmark).
    """
    if "action" in plan.columns:
        plan = plan.loc[plan["action"].eq("email")]
    if plan.empty:
        return []
    # stable, missing values last: the order of sort_values(kind="stable")
    sort_cols = [plan[k].tolist() for k in _KEYS + ["document_date", "document_number"]]
    order = sorted(range(len(plan)), key=lambda i: tuple(_sort_key(c[i]) for c in sort_cols))
    items = items_from_rows(plan[_ITEM_COLUMNS])  # the frame's order; picked by `order` below
    rank = _floats(plan["step_rank"])  # NaN for missing: never equal to itself
    ahead = [-x for x in _floats(plan["business_days_overdue"])] if "business_days_overdue" in plan.columns else None
    keys = list(zip(*([None if _missing(v) else v for v in plan[k].tolist()] for k in _KEYS), strict=True))
    groups: dict[tuple, list[int]] = {}
    for i in order:
        groups.setdefault(keys[i], []).append(i)
    cols = {c: plan[c].tolist() for c in ("partner_name", "organization_name", "template", "manager_name",
                                         "manager_email", "manager_phone", "reply_to", "bank_details")
            if c in plan.columns}
    letters = []
    for key, rows in groups.items():
        lead = rows[0]
        for i in rows[1:]:  # the highest rank wins; a missing rank never beats a present one
            if rank[i] == rank[i] and (rank[lead] != rank[lead] or rank[i] > rank[lead]):
                lead = i
        days = None
        if ahead is not None:
            ahead_days = [ahead[i] for i in rows if ahead[i] == ahead[i] and ahead[i] >= 0]
            days = int(min(ahead_days)) if ahead_days else None
        letters.append(Letter(
            partner_ref=key[0], partner_name=_text(cols["partner_name"][lead]) or "",
            to_addr=_text(key[1]) or "", from_addr=_text(key[2]) or "",
            organization_name=_text(cols["organization_name"][lead]) or "",
            template=str(cols["template"][lead]),
            manager_name=_text(cols["manager_name"][lead]), manager_email=_text(cols["manager_email"][lead]),
            manager_phone=_text(cols["manager_phone"][lead]),
            items=[items[i] for i in rows],
            reply_to=_text(cols["reply_to"][lead]) if "reply_to" in cols else None,
            bank_details=_text(cols["bank_details"][lead]) if "bank_details" in cols else None,
            business_days_to_due=days))
    return letters


# -- templates ------------------------------------------------------------------------

def sample_letters(template: str) -> list[Letter]:
    """Letters covering the shapes a template must handle: one or several documents, with
    and without a due date, overdue and not yet due, with and without a manager."""
    day = dt.date(2026, 11, 3)
    overdue = LetterItem("00000000-0000-0000-0000-000000000001", "ТД00-000123", day, 12500050, 12500050,
                         dt.date(2026, 11, 9), 11, "sample")
    no_due = LetterItem("00000000-0000-0000-0000-000000000002", "ТД00-000124", dt.date(2026, 11, 5),
                        500000, 250000, None, None, "sample")
    ahead = LetterItem("00000000-0000-0000-0000-000000000003", "ТД00-000125", dt.date(2026, 11, 12),
                       1999, 1999, dt.date(2026, 11, 27), -7, "sample")
    full = Letter("00000000-0000-0000-0000-0000000000aa", "ООО «Пример» <b>&", "buh@example.ru",
                  "debt@example.ru", "ООО «СантехОпт»", template, "Иванова Анна Сергеевна",
                  "ivanova@example.ru", "+7 (383) 284-26-00", [overdue, no_due, ahead],
                  bank_details="р/с 40702810000000000001 в АО «Банк», БИК 045004001, к/с 30101810000000000001",
                  business_days_to_due=5)
    return [
        replace(full, items=[overdue]),
        replace(full, items=[no_due], bank_details=None, business_days_to_due=None),
        replace(full, items=[ahead]),
        full,
        replace(full, items=[overdue, no_due], manager_name=None, manager_email=None, manager_phone=None,
                organization_name="", bank_details=None, business_days_to_due=None),
    ]


class _Sandbox(ImmutableSandboxedEnvironment):
    """The sandbox, answering at once for the fields of a letter's documents: templates
    read them on every line, and the full check (~3 µs each, ABC isinstance tests) was a
    tenth of a letter's CPU (issue 8 benchmark). Its answer for them is the same: public
    fields of a frozen dataclass holding plain values."""

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if type(obj) is DocumentItem and attr in _ITEM_FIELDS:
            return True
        return super().is_safe_attribute(obj, attr, value)


_ITEM_FIELDS = frozenset(f.name for f in fields(DocumentItem))


class TemplateRenderer:
    """Email templates ``T.subject``, ``T.txt``, ``T.html`` under `templates_dir`.

    A sandbox (user-editable templates cannot reach Python internals nor change the
    letter), strict about missing variables (a typo is an error, not an empty string),
    autoescaping the HTML part only. `bank_details` maps an organization's name to its
    payment details for letters that do not carry their own.
    """

    def __init__(self, templates_dir: Path, *, bank_details: Mapping[str, str] | None = None):
        self.dir = Path(templates_dir)
        self.bank_details = dict(bank_details or {})
        self.env = _Sandbox(
            loader=FileSystemLoader(str(self.dir)), undefined=StrictUndefined,
            autoescape=lambda name: bool(name and name.endswith(".html")),
            trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=False,
            # a run's letters use the templates `check` read (it reads them anew), not whatever
            # the files hold mid-run; and no file is stat'ed per letter (a fifth of rendering)
            auto_reload=False)
        formatting.install_filters(self.env)

    def context(self, letter: Letter, today: dt.date) -> dict[str, Any]:
        """The template variables: the seed's Russian names and their English twins."""
        if not letter.items:
            raise ValueError(f"letter to partner {letter.partner_ref} lists no documents")
        items = letter.items
        first = items[0]
        numbers = ", ".join(i.document_number for i in items)
        due_dates = [i.due_date for i in items if i.due_date is not None]
        due_date = min(due_dates) if due_dates else None
        late = max((i.days_overdue for i in items if i.days_overdue is not None), default=None)
        partner = clean_header(letter.partner_name)
        organization = clean_header(letter.organization_name)
        manager = clean_header(letter.manager_name) or None
        contacts = ", ".join(clean_header(x) for x in (letter.manager_email, letter.manager_phone)
                             if clean_header(x))
        bank = clean_header(letter.bank_details or self.bank_details.get(letter.organization_name))
        return {
            "letter": letter, "items": items, "today": today,
            "total_outstanding": letter.total_outstanding, "total_amount": letter.total_amount,
            "partner_name": partner, "organization_name": organization,
            "manager_name": manager, "manager_email": clean_header(letter.manager_email) or None,
            "manager_phone": clean_header(letter.manager_phone) or None, "manager_contacts": contacts,
            "order_number": numbers, "document_amount": formatting.money(first.amount),
            "outstanding": first.outstanding if len(items) == 1 else letter.total_outstanding,
            "due_date": due_date, "days_overdue": late, "bank_details": bank or None,
            "business_days_to_due": letter.business_days_to_due,
            "partly_paid": any(0 < i.outstanding < i.amount for i in items),
            # the seed's placeholders ($ИмяПартнера$ …), ready to print
            "ИмяПартнера": partner,
            "НомерЗаказа": numbers,
            "ОсновнойМенеджер": manager or "",
            "ПочтаТелефон": contacts,
            "СуммаДокумента": formatting.money(first.amount),
            "СуммаДолга": formatting.money(letter.total_outstanding),
            "ДатаЗаказа": formatting.date_ru(first.document_date),
            "СрокОплаты": formatting.date_ru(due_date) if due_date else "",
            "ДнейПросрочки": max(late or 0, 0),
            "Организация": organization,
            "БанковскиеРеквизиты": bank,
        }

    def _problem(self, name: str, exc: BaseException) -> TemplateProblem:
        """Name the template file and line where rendering failed (the innermost template
        frame: an error inside ``_base.html`` names ``_base.html``)."""
        path, line = self.dir / name, None
        if isinstance(exc, TemplateSyntaxError):
            path = Path(exc.filename) if exc.filename else self.dir / (exc.name or name)
            line = exc.lineno
        else:
            root = str(self.dir.resolve())
            tb = exc.__traceback__
            while tb is not None:
                fn = tb.tb_frame.f_code.co_filename
                if fn.startswith(root) or fn.startswith(str(self.dir)):
                    path, line = Path(fn), tb.tb_lineno
                tb = tb.tb_next
        where = f"{path}" + (f", line {line}" if line else "")
        detail = getattr(exc, "message", None) or str(exc)
        return TemplateProblem(f"email template {where}: {type(exc).__name__}: {detail}",
                               template=name, path=path, line=line)

    def _render_part(self, name: str, ctx: dict[str, Any]) -> str:
        try:
            return self.env.get_template(name).render(ctx)
        except TemplateNotFound as exc:
            missing = exc.name if exc.name and exc.name != name else name
            raise TemplateProblem(f"email template file {self.dir / missing} does not exist"
                                  + (f" (needed by {name})" if missing != name else ""),
                                  template=name, path=self.dir / missing) from None
        except Exception as exc:  # noqa: BLE001 - any failure of a user template is a template problem
            raise self._problem(name, exc) from None

    def render(self, letter: Letter, *, today: dt.date) -> RenderedEmail:
        """Subject (one clean line), plain text and HTML of one letter."""
        ctx = self.context(letter, today)
        subject, text, html = (self._render_part(f"{letter.template}.{s}", ctx) for s in TEMPLATE_SUFFIXES)
        subject = clean_header(subject)
        if not subject:
            raise TemplateProblem(f"email template {self.dir / (letter.template + '.subject')}: the subject is empty",
                                  template=f"{letter.template}.subject", path=self.dir / f"{letter.template}.subject")
        return RenderedEmail(subject=subject, text=_tidy_text(text), html=html)

    def check(self, template_names: Sequence[str] | Iterable[str]) -> None:
        """Render every named template with the sample letters, so that a missing file, a
        typo or a failing filter stops the run before the first message goes out. The files are
        read anew: the letters rendered after it use what it checked."""
        if self.env.cache is not None:
            self.env.cache.clear()
        for name in dict.fromkeys(template_names):
            missing = [f"{name}.{s}" for s in TEMPLATE_SUFFIXES if not (self.dir / f"{name}.{s}").is_file()]
            if missing:
                raise TemplateProblem(f"email template {name!r}: file(s) {', '.join(missing)} do not exist "
                                      f"in {self.dir} (each template needs .subject, .txt and .html)",
                                      template=name, path=self.dir / missing[0])
            for sample in sample_letters(name):
                self.render(sample, today=dt.date(2026, 11, 20))


def _tidy_text(text: str) -> str:
    """Trailing spaces off every line, at most one empty line in a row, one final newline."""
    lines = [ln.rstrip() for ln in text.replace("\r\n", "\n").split("\n")]
    out: list[str] = []
    for ln in lines:
        if ln or (out and out[-1]):
            out.append(ln)
    return "\n".join(out).strip("\n") + "\n"


# -- message --------------------------------------------------------------------------

#: the line limit of encoded-word headers and base64 bodies, under the policy's 78 so nothing is refolded
_LINE = 76
#: the default policy's line limit, which set_content's choice of encoding uses
_POLICY_LINE = 78
_WORD_FRAME = "=?utf-8?b?{}?="


def _encoded_words(text: str, header: str) -> list[str]:
    """`text` as RFC 2047 base64 words of its UTF-8, cut between characters: the first
    word fits on the header's own line after ``Header: ``, each next one on a folded line.

    What ``Header(text, "utf-8").encode()`` does, without its per-character feeding
    (~0.05 ms a header, four headers a letter: issue 8 benchmark).
    """
    data = text.encode("utf-8")
    words: list[str] = []
    room = _LINE - len(header) - 2
    start = 0
    while start < len(data):
        end = start + max((room - len(_WORD_FRAME)) // 4 * 3, 6)  # 6 bytes: room for any character
        if end < len(data):
            while data[end] & 0xC0 == 0x80:  # a UTF-8 continuation byte: cut before its character
                end -= 1
        words.append(_WORD_FRAME.format(binascii.b2a_base64(data[start:end], newline=False).decode("ascii")))
        start, room = end, _LINE - 1  # a folded line starts with one space
    return words


def address_header(header: str, name: str, user: str, domain: str) -> str | None:
    """``name <user@domain>`` as header text ready to be written as it is, or None when
    the name needs more than one encoded word (then ``Address`` must fold it).

    A non-ASCII name (or one that looks like an encoded word) becomes one RFC 2047
    encoded word; an ASCII one is quoted when it has specials. `name` must already be
    clean (:func:`clean_header`), `user` and `domain` come from :func:`split_address`.
    Why not always ``Address``: flattening one walks the policy's parse tree, ~2 ms a
    header, which held the sender under 100 messages a second (issue 8 benchmark). Why
    not several encoded words here: parsers keep the space between them inside a
    display name, so a long name would come back with doubled spaces.
    """
    addr = f"{user}@{domain}"
    if not name:
        return addr
    if name.isascii() and "=?" not in name:
        return formataddr((name, addr))
    words = _encoded_words(name, header)
    if len(words) > 1:
        return None
    word = words[0]
    # the address on a line of its own when it would push the line past the limit
    gap = " " if len(header) + 2 + len(word) + len(addr) + 3 <= _LINE else "\n "
    return f"{word}{gap}<{addr}>"


def _set_address(msg: EmailMessage, header: str, name: str, user: str, domain: str) -> None:
    text = address_header(header, name, user, domain)
    if text is None:
        msg[header] = Address(name, user, domain)
    else:
        msg.set_raw(header, text)


def text_header(header: str, text: str) -> str:
    """Unstructured header text, ready to be written as it is (see :func:`address_header`):
    ASCII as it is (the policy folds it if long), anything else as RFC 2047 encoded words."""
    if text.isascii() and "=?" not in text:
        return text
    return "\n ".join(_encoded_words(text, header))


class OutgoingMessage(EmailMessage):
    """A message :func:`build_message` made: an ``EmailMessage`` that also keeps the
    envelope it was built for, so :class:`SmtpSender` neither parses the address headers
    back (``smtplib.send_message`` does, ~0.25 ms a letter) nor runs ``email.generator``
    (:func:`wire_bytes`). Changing From or To afterwards does not change the envelope."""

    def __init__(self, envelope_from: str, envelope_to: str):
        super().__init__()
        self.envelope_from, self.envelope_to = envelope_from, envelope_to


def build_message(letter: Letter, rendered: RenderedEmail, *, now: dt.datetime | None = None,
                  mid: str | None = None) -> OutgoingMessage:
    """A multipart/alternative message (plain text first, then HTML), UTF-8.

    Names lose every control character, then go through RFC 2047 encoding or quoting
    (:func:`address_header`), never spliced into header text raw; a recipient or sender
    that is not one plain address raises :class:`BadAddress`. `mid` is the Message-ID
    to use instead of :func:`message_id` (the one a crashed attempt already stored).
    """
    to_user, to_domain = split_address(letter.to_addr, role="recipient")
    from_user, from_domain = split_address(letter.from_addr, role="sender")
    msg = OutgoingMessage(f"{from_user}@{from_domain}", f"{to_user}@{to_domain}")
    _set_address(msg, "From", clean_header(letter.organization_name), from_user, from_domain)
    _set_address(msg, "To", clean_header(letter.partner_name), to_user, to_domain)
    if letter.reply_to:
        try:  # a bad reply-to costs the convenience, not the letter
            _set_address(msg, "Reply-To", "", *split_address(letter.reply_to, role="reply-to"))
        except BadAddress:
            pass
    msg.set_raw("Subject", text_header("Subject", clean_header(rendered.subject)))
    now = now or dt.datetime.now(dt.UTC)
    # ASCII values made here: stored as they are, as the headers above (see address_header)
    msg.set_raw("Date", format_datetime(now if now.tzinfo else now.replace(tzinfo=dt.UTC)))
    msg.set_raw("Message-ID", clean_header(mid) if mid else message_id(letter.pairs, from_domain))
    msg.set_raw("X-Receivables-Documents", text_header("X-Receivables-Documents",
                                                       clean_header(", ".join(letter.document_numbers))))
    msg.set_raw("Content-Language", "ru")
    msg.set_raw("Auto-Submitted", "auto-generated")  # RFC 3834: no autoreply loops with out-of-office robots
    msg.set_raw("X-Auto-Response-Suppress", "OOF, AutoReply")
    msg.set_raw("MIME-Version", "1.0")
    parts = [text_part(rendered.text, "plain"), text_part(rendered.html, "html")]
    # folded as the policy folds it: the boundary does not fit on the first line
    msg.set_raw("Content-Type", f'multipart/alternative;\n boundary="{_boundary(parts)}"')
    msg.set_payload(parts)
    return msg


K = TypeVar("K")


def built_messages(letters: Iterable[tuple[K, Letter, str]], renderer: TemplateRenderer, *, today: dt.date
                   ) -> Iterator[tuple[K, Letter, OutgoingMessage | BadAddress]]:
    """For each (key, letter, Message-ID), in order: the key, the letter and its message, or
    the `BadAddress` building it raised. The next letter is rendered and built in a worker
    thread while the caller sends this one: a send mostly waits on the SMTP server's replies,
    rendering is this process's CPU, so the two overlap (Jinja2 renders compiled templates
    thread-safely). A template error is raised when the caller reaches that letter."""
    def build(item: tuple[K, Letter, str]) -> tuple[K, Letter, OutgoingMessage | BadAddress]:
        key, letter, mid = item
        rendered = renderer.render(letter, today=today)
        try:
            return key, letter, build_message(letter, rendered, mid=mid)
        except BadAddress as exc:
            return key, letter, exc

    return read_ahead(map(build, letters), name="render-ahead")


def _boundary(parts: Sequence[MIMEPart]) -> str:
    """A random MIME boundary that no part contains. Chosen here because the generator's
    own choice compiles a fresh regular expression for every message (~0.5 ms)."""
    while True:
        boundary = f"=_{uuid.uuid4().hex}"  # '=_' cannot occur in base64 or quoted-printable
        if not any(boundary in p._payload for p in parts):  # as written (get_payload() decodes 8bit)
            return boundary


def text_part(text: str, subtype: str) -> MIMEPart:
    """A ``text/<subtype>; charset="utf-8"`` part, encoded as ``set_content`` would choose:
    7bit or 8bit when every line is short, else the shorter of base64 and
    quoted-printable judged on the first ten lines.

    Built from raw headers and C-encoded payloads because ``set_content`` and
    ``add_alternative`` parse every Content-Type they touch three times over: with
    the address headers, that was most of the time of building a letter (issue 8
    benchmark). They also dropped ``Content-Language`` (``clear_content`` removes every
    ``Content-*`` header), which this keeps.
    """
    lines = text.encode("utf-8").splitlines()
    body = b"\n".join(lines) + b"\n"
    if max((len(line) for line in lines), default=0) <= _POLICY_LINE:
        cte = "7bit" if body.isascii() else "8bit"
        payload = body.decode("ascii", "surrogateescape")  # 8bit: BytesGenerator writes the bytes back
    else:
        sniff = b"\n".join(lines[:10]) + b"\n"
        if len(binascii.b2a_qp(sniff, istext=True)) > len(binascii.b2a_base64(sniff)):
            cte = "base64"
            encoded = binascii.b2a_base64(body, newline=False).decode("ascii")
            payload = "".join(f"{encoded[i:i + _LINE]}\n" for i in range(0, len(encoded), _LINE))
        else:
            cte = "quoted-printable"
            payload = binascii.b2a_qp(body, istext=True).decode("ascii")
    part = MIMEPart()
    part.set_raw("Content-Type", f'text/{subtype}; charset="utf-8"')
    part.set_raw("Content-Transfer-Encoding", cte)
    part.set_payload(payload)
    return part


#: what email.generator turns into the line separator in a payload
_NEWLINES = re.compile(r"\r\n|\r|\n")
_BOUNDARY = re.compile(r'\bboundary="([^"]+)"', re.IGNORECASE)


def wire_bytes(msg: OutgoingMessage) -> bytes:
    """The message as ``smtplib.send_message`` puts it on the wire: byte for byte what
    ``BytesGenerator(policy=msg.policy).flatten(msg, linesep="\\r\\n")`` writes for the
    tree :func:`build_message` makes (text parts in a multipart with a quoted
    boundary), in a fraction of the time: headers go through the same
    ``policy.fold_binary``, payloads are written as they are stored, without the
    generator's per-part clones and buffers, and no header is parsed.
    """
    policy = msg.policy.clone(linesep="\r\n")
    out: list[bytes] = []
    _write_part(msg, policy, out)
    return b"".join(out)


def _write_part(part: EmailMessage | MIMEPart, policy: Any, out: list[bytes]) -> None:
    content_type = ""
    for name, value in part.raw_items():
        out.append(policy.fold_binary(name, value))
        if name.lower() == "content-type":
            content_type = str(value)
    out.append(b"\r\n")
    payload = part._payload  # as the generator writes it: 8bit text stays surrogate-escaped bytes
    if isinstance(payload, list):
        boundary = _BOUNDARY.search(content_type)  # get_boundary() would parse the header (~0.08 ms)
        if boundary is None:
            raise ValueError(f"multipart without a quoted boundary: {content_type!r}")
        delimiter = f"--{boundary[1]}".encode("ascii")
        if part.preamble is not None:
            out.append(_lines(part.preamble) + b"\r\n")
        out.append(delimiter + b"\r\n")
        for i, sub in enumerate(payload):
            if i:
                out.append(b"\r\n" + delimiter + b"\r\n")
            _write_part(sub, policy, out)
        out.append(b"\r\n" + delimiter + b"--\r\n")
        if part.epilogue is not None:
            out.append(_lines(part.epilogue))
    elif payload:
        out.append(_lines(payload))


def _lines(text: str) -> bytes:
    """Text with CRLF line ends, surrogate-escaped bytes back as they were."""
    crlf = text.replace("\n", "\r\n") if "\r" not in text else _NEWLINES.sub("\r\n", text)
    return crlf.encode("ascii", "surrogateescape")


# -- SMTP -----------------------------------------------------------------------------

class SmtpSender:
    """One SMTP session for a whole batch, one :class:`SendResult` per message.

    After the connection drops (or the server closes it with a 421), the next message
    reconnects; if that reconnection fails, every remaining message of the batch is
    ``temporary`` at once instead of each waiting for its own timeout. A refused login
    raises :class:`SmtpAuthError`. Nothing here logs, and the password never appears in
    a message or an exception.
    """

    def __init__(self, settings: SmtpSettings):
        self.settings = settings
        self.smtp: smtplib.SMTP | None = None
        self.connections = 0
        self._gave_up: str | None = None

    def __enter__(self) -> SmtpSender:
        self._connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.smtp is not None:
            try:
                self.smtp.quit()
            except (smtplib.SMTPException, OSError):
                self.smtp.close()
            self.smtp = None

    @property
    def _alive(self) -> bool:
        return self.smtp is not None and getattr(self.smtp, "sock", None) is not None

    def _where(self) -> str:
        return f"SMTP server {self.settings.host}:{self.settings.port}"

    def _redact(self, text: Any) -> str:
        text = clean_header(text.decode("utf-8", "replace") if isinstance(text, bytes) else text)
        password = self.settings.password
        return text.replace(password, "***") if password else text

    def _connect(self) -> None:
        s = self.settings
        self.close()
        smtp: smtplib.SMTP | None = None
        try:
            if s.use_ssl:
                smtp = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout, context=ssl.create_default_context())
            else:
                smtp = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
                if s.use_starttls:
                    smtp.starttls(context=ssl.create_default_context())
            if s.login:
                smtp.login(s.login, s.password or "")
        except smtplib.SMTPAuthenticationError as exc:
            _quietly_close(smtp)
            raise SmtpAuthError(f"{self._where()} refused the login of {s.login!r}: "
                                f"{exc.smtp_code} {self._redact(exc.smtp_error)}") from None
        except smtplib.SMTPNotSupportedError as exc:
            _quietly_close(smtp)
            if "AUTH" in str(exc):
                raise SmtpAuthError(f"{self._where()} does not offer AUTH, so the login of {s.login!r} "
                                    f"cannot be used (is STARTTLS or SSL needed first?)") from None
            raise SmtpUnavailable(f"{self._where()}: {self._redact(exc)} (set the connection's "
                                  f"disable_tls only for a trusted local relay)") from None
        except smtplib.SMTPException as exc:
            _quietly_close(smtp)
            if s.login and "authentication" in str(exc).lower():
                raise SmtpAuthError(f"{self._where()}: cannot log in as {s.login!r}: {self._redact(exc)}") from None
            raise SmtpUnavailable(f"cannot talk to {self._where()}: {type(exc).__name__}: "
                                  f"{self._redact(exc)}") from None
        except OSError as exc:
            _quietly_close(smtp)
            raise SmtpUnavailable(f"cannot connect to {self._where()}: {type(exc).__name__}: "
                                  f"{self._redact(exc)}") from None
        self.smtp = smtp
        self.connections += 1
        self._gave_up = None

    def send(self, msg: EmailMessage) -> SendResult:
        """Send one message over the batch's connection and say how it went."""
        if not self._alive:
            if self._gave_up is not None:
                return SendResult("temporary", None, self._gave_up)
            try:
                self._connect()
            except SmtpUnavailable as exc:
                self._gave_up = str(exc)
                return SendResult("temporary", None, str(exc))
        assert self.smtp is not None
        try:
            if isinstance(msg, OutgoingMessage):
                refused = self.smtp.sendmail(msg.envelope_from, [msg.envelope_to], wire_bytes(msg))
            else:
                refused = self.smtp.send_message(msg)
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = next(iter(exc.recipients.values()))
            result = self._classify(code, text)
        except smtplib.SMTPServerDisconnected as exc:
            result = SendResult("temporary", None, f"connection lost: {self._redact(exc) or 'closed'}")
            self._drop()
        except smtplib.SMTPResponseException as exc:  # SMTPSenderRefused, SMTPDataError and kin
            result = self._classify(exc.smtp_code, exc.smtp_error)
        except smtplib.SMTPNotSupportedError as exc:  # e.g. the message would need SMTPUTF8
            result = SendResult("permanent", None, self._redact(exc))
        except (smtplib.SMTPException, OSError) as exc:  # timeouts, resets: the session state is unknown
            result = SendResult("temporary", None, f"{type(exc).__name__}: {self._redact(exc)}")
            self._drop()
        else:
            if refused:
                code, text = next(iter(refused.values()))
                result = self._classify(code, text)
            else:
                result = SendResult("sent", 250, "accepted")
        if self.smtp is not None and not self._alive:  # smtplib closes the socket itself on a 421
            self._drop()
        return result

    def _drop(self) -> None:
        _quietly_close(self.smtp)
        self.smtp = None

    def _classify(self, code: int | None, text: Any) -> SendResult:
        reason = self._redact(text)
        if code is not None and 500 <= code < 600:
            return SendResult("permanent", code, reason)
        return SendResult("temporary", code if code and code > 0 else None, reason)


def _quietly_close(smtp: smtplib.SMTP | None) -> None:
    if smtp is not None:
        try:
            smtp.close()
        except OSError:
            pass
