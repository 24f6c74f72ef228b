"""Faults, hostile input, secrets and concurrency (issue 9), with real parts: the emulator's
fault switches over HTTP, aiosmtpd on loopback, SQLite. The fault matrix is in tests/README.md."""

from __future__ import annotations

import logging
import threading
from collections import Counter

import pytest
from sqlalchemy import text
from test_exactly_once import AS_OF, PASSWORD, World, default_policy

from harness import CaughtMail, SmtpServer
from receivables import settings
from receivables.actions.email import SmtpAuthError
from receivables.onec.client import (
    ODataAuthError,
    ODataNotFound,
    ODataProtocolError,
    ODataServerError,
)
from receivables.onec.emulator.generator import generate_company
from receivables.onec.emulator.server import EmulatorServer
from receivables.pipeline import RunRefused

ORDERS = "Document_ЗаказКлиента"


@pytest.fixture
def world(tmp_path):
    mail = CaughtMail()
    with EmulatorServer(generate_company(seed=3, scale=0.03, end_date=AS_OF)) as onec, SmtpServer(mail) as smtp:
        yield World(tmp_path, onec, smtp, mail)


def outstanding(world) -> int:
    return int(world.warehouse().read_snapshot(AS_OF)["outstanding"].sum())


def sent(world) -> int:
    reg = world.warehouse().read_register()
    return int(reg["sent_at"].notna().sum()) if len(reg) else 0


@pytest.mark.parametrize(("kind", "params"), [
    ("status", {"status": 500, "times": 3}), ("status", {"status": 502, "times": 2}),
    ("status", {"status": 503, "times": 2}), ("delay", {"seconds": 2.5, "times": 1}),
    ("reset", {"times": 2}), ("duplicate_rows", {"rows": 3, "after": 1}),
])
def test_transient_1c_faults_end_in_a_complete_correct_run(world, kind, params):
    world.onec.faults.add(kind, entity_set=ORDERS, **params)
    summary = world.run(policy=default_policy(), client_timeout=1.5)
    faulty_total, faulty_sent = outstanding(world), sent(world)
    assert summary["documents_read"] == len(world.onec.dataset.rows(ORDERS))
    world.run(policy=default_policy(), mode="dry_run")  # the same date again, with no fault
    assert outstanding(world) == faulty_total and faulty_sent > 0
    ids = Counter(m["Message-ID"] for m in world.mail.messages)
    assert set(ids.values()) == {1}


@pytest.mark.parametrize(("kind", "params", "error", "words"), [
    ("malformed_json", {}, ODataProtocolError, "not valid JSON"),
    ("truncated_json", {}, ODataProtocolError, "not valid JSON"),
    ("odata_error_200", {}, ODataServerError, "error code"),
    ("gone", {"entity_set": "Catalog_Организации"}, ODataNotFound, "Настройка стандартного интерфейса OData"),
    ("unauthorized", {"entity_set": "Catalog_Пользователи"}, ODataAuthError, "refused the credentials"),
    ("status", {"status": 503, "times": 50}, ODataServerError, "gave up after"),
])
def test_hard_1c_faults_fail_with_one_line_and_contact_nobody(world, kind, params, error, words):
    # "gone" and "unauthorized" hit sets read after the orders: the middle of the extraction
    world.onec.faults.add(kind, **{"entity_set": ORDERS, **params})
    with pytest.raises(error) as err:
        world.run(policy=default_policy())
    assert words in str(err.value) and "\n" not in str(err.value)
    assert world.mail.messages == []
    assert not any(r.method == "POST" for r in world.onec.requests)
    with world.warehouse().engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM collection_register")).scalar() == 0


def test_smtp_421_and_a_dropped_connection_mid_batch_then_rerun_deliver_each_letter_once(world):
    world.mail.fail_data_at[2] = "421 4.3.2 service shutting down"
    world.mail.fail_data_at[4] = "451 4.4.2 connection dropped"
    world.run(policy=default_policy())
    reg = world.warehouse().read_register()
    assert reg["detail"].fillna("").str.startswith("temporary").sum() >= 2
    world.run(policy=default_policy())
    ids = Counter(m["Message-ID"] for m in world.mail.messages)
    assert set(ids.values()) == {1}
    assert not world.warehouse().read_register()["status"].isin(["pending"]).any()


def test_connection_dropped_mid_data_is_retried_and_each_letter_arrives_once(world):
    world.mail.drop_data_at = {2, 5}
    world.run(policy=default_policy())
    world.run(policy=default_policy())
    ids = Counter(m["Message-ID"] for m in world.mail.messages)
    assert ids and set(ids.values()) == {1}
    reg = world.warehouse().read_register()
    assert set(ids) == set(reg.loc[reg["status"].eq("sent"), "external_ref"])


def test_smtp_login_refused_fails_clearly_sends_nothing_and_a_fixed_password_sends_all_once(tmp_path):
    from aiosmtpd.smtp import AuthResult

    def auth(server, session, envelope, mechanism, data):
        ok = data.login == b"robot" and data.password == b"right"
        return AuthResult(success=ok, handled=False)

    mail = CaughtMail()
    with EmulatorServer(generate_company(seed=3, scale=0.03, end_date=AS_OF)) as onec, \
            SmtpServer(mail, authenticator=auth, auth_require_tls=False) as smtp:
        world = World(tmp_path, onec, smtp, mail)
        world.smtp_login = ("robot", "wrong-secret")
        with pytest.raises(SmtpAuthError) as err:
            world.run(policy=default_policy())
        assert "wrong-secret" not in str(err.value) and mail.messages == []
        world.smtp_login = ("robot", "right")
        world.run(policy=default_policy())
        ids = Counter(m["Message-ID"] for m in mail.messages)
        assert ids and set(ids.values()) == {1}


def test_two_runs_of_the_same_date_started_together_act_once(world):
    outcomes: list[object] = []

    def go(run_id):
        try:
            outcomes.append(world.run(policy=default_policy(), run_id=run_id))
        except RunRefused as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=go, args=(f"together_{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(outcomes) == 2
    ids = Counter(m["Message-ID"] for m in world.mail.messages)
    assert ids and set(ids.values()) == {1}


def test_no_secret_or_contact_detail_reaches_logs_or_the_warehouse(world, caplog):
    caplog.set_level(logging.DEBUG)
    world.run(policy=default_policy())
    # the pipeline's own records (the test SMTP server logs its envelopes: not ours)
    logs = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("mail.log"))
    assert PASSWORD not in logs
    emails = {c["АдресЭП"] for c in world.onec.dataset.rows("Catalog_Партнеры_КонтактнаяИнформация") if c["АдресЭП"]}
    phones = {c["НомерТелефона"] for c in world.onec.dataset.rows("Catalog_Партнеры_КонтактнаяИнформация")
              if c["НомерТелефона"]}
    assert not [e for e in emails if e in logs] and not [p for p in phones if p in logs]
    wh = world.warehouse()
    with wh.engine.connect() as conn:
        for table in ("collection_register", "collection_log", "run_summary", "aging_snapshot"):
            rows = conn.execute(text(f"SELECT * FROM {table}")).all()
            assert not any(PASSWORD in str(v) for row in rows for v in row), table


def test_a_template_error_fails_before_anything_is_sent(world, tmp_path, monkeypatch):
    import shutil

    tdir = tmp_path / "templates"
    shutil.copytree(settings.templates_dir(), tdir)
    (tdir / "email" / "unpaid_order.txt").write_text("{{ no_such_thing.attribute }}", encoding="utf-8")
    monkeypatch.setenv("RECEIVABLES_TEMPLATES", str(tdir))
    from receivables.actions.email import TemplateProblem

    with pytest.raises(TemplateProblem, match="unpaid_order.txt"):
        world.run(policy=default_policy(), templates_dir=tdir)
    assert world.mail.messages == []
    assert not world.warehouse().read_register()["status"].eq("pending").any()


def test_a_hostile_partner_name_reaches_the_customer_escaped_and_without_extra_headers(world):
    rows = world.onec.dataset.rows("Catalog_Партнеры")
    for p in rows:
        p["Description"] = 'ООО "Рога"\r\nBcc: spy@evil.example\r\n<script>alert(1)</script>'
    world.run(policy=default_policy())
    assert world.mail.messages
    for m in world.mail.messages:
        assert m["Bcc"] is None and "spy@evil.example" not in [a.addr_spec for a in m["To"].addresses]
        html = m.get_body(("html",)).get_content()
        assert "<script>" not in html and "&lt;script&gt;" in html


def test_bad_data_of_many_kinds_stops_at_the_gate_with_a_readable_report(world):
    orders = world.onec.dataset.rows(ORDERS)
    orders[0]["СуммаДокумента"] = float("nan")
    orders[1]["Ref_Key"] = orders[2]["Ref_Key"]  # same key, different content: not a paging repeat
    orders[3]["Date"] = "3000-01-01T00:00:00"
    contacts = [c for c in world.onec.dataset.rows("Catalog_Партнеры_КонтактнаяИнформация") if c["АдресЭП"]]
    contacts[0]["АдресЭП"] = "не адрес"
    orders[4]["Статус"] = "КОтгрузке" + "я" * 1_000_000  # a million-character value must not break anything
    from receivables.pipeline import GateFailed

    with pytest.raises(GateFailed) as err:
        world.run(policy=default_policy())
    report = str(err.value)
    for words in ("amount missing", "Ref_Key repeated", "date outside", "not a well-formed email"):
        assert words in report
    assert world.mail.messages == []
    assert len(report) < 10_000
