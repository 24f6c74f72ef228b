"""Exactly-once outcomes with real parts: emulator over HTTP, aiosmtpd on loopback, SQLite.

The runs here call the same step functions as the DAG, in one process (local_run), so
many runs fit in a test; test_daily_dag covers the same story through Airflow.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from harness import CaughtMail, SmtpServer
from receivables import settings
from receivables.actions.email import SmtpSettings
from receivables.domain.policy import load_policy, parse_policy
from receivables.local_run import run_once
from receivables.onec.client import ODataClient, ODataConfig
from receivables.onec.emulator.generator import generate_company
from receivables.onec.emulator.server import EmulatorServer
from receivables.store.warehouse import Warehouse

AS_OF = dt.date(2026, 11, 20)
USER, PASSWORD = "Администратор", "1c-demo"

LADDER_POLICY = {
    "campaign_start": "2026-01-01",
    "pools": [{"name": "ladder", "rank": 10, "match": {"settlement": ["ПоЗаказам", "ПоЗаказамНакладным"]},
               "steps": [
                   {"id": "call_manager", "action": "task", "anchor": "due_date", "offset": 5,
                    "unit": "business_days", "assignee": "order_manager", "template": "call_manager",
                    "catch_up_days": 20},
                   {"id": "open_case", "action": "case", "anchor": "due_date", "offset": 30,
                    "unit": "calendar_days", "require": {"min_outstanding": 50000}, "template": "debt_case",
                    "catch_up_days": 10},
               ]}],
}


class World:
    def __init__(self, tmp: Path, onec: EmulatorServer, smtp: SmtpServer, mail: CaughtMail):
        self.tmp, self.onec, self.smtp, self.mail = tmp, onec, smtp, mail
        self.db = tmp / "warehouse.db"
        self.runs = 0
        self.smtp_login: tuple[str, str] | None = None

    def client(self, timeout: float = 10) -> ODataClient:
        return ODataClient(ODataConfig(base_url=self.onec.url, login=USER, password=PASSWORD, timeout=timeout,
                                       backoff=0.01, max_retries=3))

    def warehouse(self) -> Warehouse:
        wh = Warehouse(f"sqlite:///{self.db}")
        wh.create_schema()
        return wh

    def smtp_settings(self) -> SmtpSettings:
        login, password = self.smtp_login or (None, None)
        return SmtpSettings(host="127.0.0.1", port=self.smtp.port, use_ssl=False, use_starttls=False,
                            timeout=10, login=login, password=password)

    def run(self, *, policy=None, mode="live", as_of=AS_OF, run_id=None, client_timeout=10, templates_dir=None,
            **kw):
        self.runs += 1
        with self.client(client_timeout) as client:
            return run_once(as_of=as_of, mode=mode, run_id=run_id or f"test_{self.runs}", data_dir=self.tmp / "runs",
                            client=client, warehouse=self.warehouse(), smtp=self.smtp_settings(),
                            templates_dir=templates_dir or settings.templates_dir(), policy=policy, **kw)


@pytest.fixture
def world(tmp_path):
    mail = CaughtMail()
    company = generate_company(seed=3, scale=0.03, end_date=AS_OF)
    with EmulatorServer(company, user=USER, password=PASSWORD) as onec, SmtpServer(mail) as smtp:
        yield World(tmp_path, onec, smtp, mail)


def default_policy():
    return load_policy(settings.PROJECT_ROOT / "include" / "policy.yaml", templates_dir=settings.templates_dir())


def sent_rows(world):
    reg = world.warehouse().read_register()
    return reg.loc[reg["status"].eq("sent")]


def test_smtp_451_on_the_third_message_then_rerun_delivers_each_message_exactly_once(world):
    world.mail.fail_data_at[3] = "451 4.3.0 try again later"
    world.run(policy=default_policy())
    first = Counter(m["Message-ID"] for m in world.mail.messages)
    reg = world.warehouse().read_register()
    assert reg["status"].eq("failed").sum() >= 1
    assert reg.loc[reg["status"].eq("failed"), "detail"].str.startswith("temporary").all()
    world.run(policy=default_policy())
    total = Counter(m["Message-ID"] for m in world.mail.messages)
    assert set(total.values()) == {1}, "every Message-ID delivered exactly once"
    assert len(total) == len(first) + 1
    assert set(total) == set(sent_rows(world)["external_ref"])


def test_permanent_550_is_failed_and_not_retried_forever(world):
    policy = default_policy()
    plan_world = world.run(policy=policy, mode="dry_run")
    assert plan_world["acting"] is False
    reg = world.warehouse().read_register()
    victim = reg.loc[reg["status"].eq("planned"), "target"].iloc[0]
    world.mail.fail_rcpt[victim] = "550 5.1.1 no such user"
    world.run(policy=policy)
    reg = world.warehouse().read_register()
    failed = reg.loc[reg["target"].eq(victim)]
    assert set(failed["status"]) == {"failed"} and failed["detail"].str.startswith("permanent").all()
    n = len(world.mail.messages)
    world.run(policy=policy)
    assert len(world.mail.messages) == n
    reg2 = world.warehouse().read_register()
    assert set(reg2.loc[reg2["target"].eq(victim), "status"]) == {"failed"}


CRASH_SCRIPT = """
import datetime as dt, json, sys
from pathlib import Path
from receivables import settings
from receivables.actions.email import SmtpSettings
from receivables.domain.policy import parse_policy, load_policy
from receivables.local_run import run_once
from receivables.onec.client import ODataClient, ODataConfig
from receivables.store.warehouse import Warehouse
a = json.loads(sys.argv[1])
wh = Warehouse(a["db"]); wh.create_schema()
pol = parse_policy(a["policy"], templates_dir=settings.templates_dir()) if a["policy"] else load_policy(
    settings.PROJECT_ROOT / "include" / "policy.yaml")
with ODataClient(ODataConfig(base_url=a["url"], login=a["user"], password=a["password"], timeout=10)) as c:
    run_once(as_of=dt.date.fromisoformat(a["as_of"]), mode="live", run_id="crashing", data_dir=Path(a["runs"]),
             client=c, warehouse=wh, smtp=SmtpSettings(host="127.0.0.1", port=a["smtp"], use_ssl=False,
             use_starttls=False), templates_dir=settings.templates_dir(), policy=pol)
"""


def run_killed(world, failpoint, policy=None):
    args = {"db": f"sqlite:///{world.db}", "url": world.onec.url, "user": USER, "password": PASSWORD,
            "as_of": AS_OF.isoformat(), "runs": str(world.tmp / "runs"), "smtp": world.smtp.port,
            "policy": policy}
    env = {**os.environ, "RECEIVABLES_FAILPOINT": failpoint}
    proc = subprocess.run([sys.executable, "-c", CRASH_SCRIPT, json.dumps(args)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr[-2000:]


def test_killed_between_send_and_register_write_no_new_message_id_on_rerun(world):
    run_killed(world, "after_email_sent")
    assert len(world.mail.messages) == 1  # the first letter went out, then SIGKILL
    reg = world.warehouse().read_register()
    assert reg["status"].eq("pending").any() and not reg["status"].eq("sent").any()
    world.run(policy=default_policy(), run_id="crashing")  # Airflow's retry keeps the run id
    ids = Counter(m["Message-ID"] for m in world.mail.messages)
    # the letter in flight at the kill is repeated with the SAME Message-ID (receivers
    # collapse it); every other letter is delivered once; the register ends all sent
    assert sum(ids.values()) == len(ids) + 1
    assert set(ids) == set(sent_rows(world)["external_ref"])
    assert not world.warehouse().read_register()["status"].eq("pending").any()


def test_killed_after_creating_a_1c_task_rerun_creates_no_second_task(world):
    run_killed(world, "after_task_created", policy=LADDER_POLICY)
    posts = [r for r in world.onec.requests if r.method == "POST"]
    assert len(posts) == 1
    pol = parse_policy(LADDER_POLICY, templates_dir=settings.templates_dir())
    world.run(policy=pol, run_id="crashing")
    tasks = world.onec.dataset.rows("Task_ЗадачаИсполнителя")
    refs = [t["Ref_Key"] for t in tasks]
    assert len(refs) == len(set(refs))
    reg = world.warehouse().read_register()
    done = reg.loc[reg["action"].eq("task") & reg["status"].eq("sent")]
    assert sorted(done["external_ref"]) == sorted(refs)


def test_1c_500_on_post_after_creating_then_rerun_leaves_exactly_one_task(world):
    world.onec.faults.add("post_500_after_create", entity_set="Task_ЗадачаИсполнителя", method="POST", times=1)
    pol = parse_policy(LADDER_POLICY, templates_dir=settings.templates_dir())
    world.run(policy=pol)
    reg = world.warehouse().read_register()
    assert reg.loc[reg["action"].eq("task"), "status"].eq("failed").sum() == 1
    world.run(policy=pol)
    tasks = world.onec.dataset.rows("Task_ЗадачаИсполнителя")
    reg = world.warehouse().read_register()
    done = reg.loc[reg["action"].eq("task")]
    assert set(done["status"]) == {"sent"}
    assert len(tasks) == len(done) == len({t["Ref_Key"] for t in tasks})


def test_tasks_and_cases_carry_the_order_the_assignee_and_the_debt(world):
    pol = parse_policy(LADDER_POLICY, templates_dir=settings.templates_dir())
    summary = world.run(policy=pol)
    assert summary["results"].get("task", {}).get("sent", 0) > 0
    task = world.onec.dataset.rows("Task_ЗадачаИсполнителя")[0]
    assert task["Предмет_Type"] == "StandardODATA.Document_ЗаказКлиента"
    assert task["Исполнитель_Type"] == "StandardODATA.Catalog_Пользователи"
    assert "ТД00-" in task["ПредметСтрокой"] and "₽" in task["Описание"]
    cases = world.onec.dataset.rows("Catalog_СделкиСКлиентами")
    if summary["results"].get("case"):
        assert cases and all(c["ПотенциальнаяСуммаПродажи"] >= 50000 for c in cases)
    n_tasks, n_cases = len(world.onec.dataset.rows("Task_ЗадачаИсполнителя")), len(cases)
    world.run(policy=pol)
    assert len(world.onec.dataset.rows("Task_ЗадачаИсполнителя")) == n_tasks
    assert len(world.onec.dataset.rows("Catalog_СделкиСКлиентами")) == n_cases


def test_adding_an_email_to_a_partner_sends_its_pending_reminders(world):
    pol = default_policy()
    world.run(policy=pol)
    reg = world.warehouse().read_register()
    waiting = reg.loc[reg["detail"].eq("no_email")]
    assert len(waiting), "the generated company has partners without email"
    partner = waiting["partner_ref"].iloc[0]
    docs = set(waiting.loc[waiting["partner_ref"].eq(partner), "document_number"])
    world.onec.dataset.add_rows("Catalog_Партнеры_КонтактнаяИнформация", [{
        "Ref_Key": partner, "LineNumber": "7", "Тип": "АдресЭлектроннойПочты",
        "Вид_Key": "00000000-0000-0000-0000-000000000000", "АдресЭП": "new@client.example",
        "НомерТелефона": "", "Представление": "new@client.example"}])
    before = len(world.mail.messages)
    world.run(policy=pol)
    new = world.mail.messages[before:]
    assert [m["To"].addresses[0].addr_spec for m in new] == ["new@client.example"]
    body = new[0].get_body(("plain",)).get_content()
    assert all(d in body for d in docs)


def test_the_plan_is_queryable_in_sql_for_people_who_live_in_the_warehouse(world):
    from sqlalchemy import text

    world.run(policy=default_policy(), mode="dry_run")
    wh = world.warehouse()
    with wh.engine.connect() as conn:
        rows = conn.execute(text("SELECT decision, reason, COUNT(*) FROM v_preview "
                                 "WHERE as_of_date = :d GROUP BY decision, reason"), {"d": AS_OF}).all()
        buckets = conn.execute(text("SELECT SUM(outstanding) FROM v_aging_by_bucket WHERE as_of_date = :d"),
                               {"d": AS_OF}).scalar()
    decided = {(d, r): n for d, r, n in rows}
    assert decided.get(("act", "due"), 0) > 0 and decided.get(("skip", "no_email"), 0) > 0
    snap = wh.read_snapshot(AS_OF)
    assert round(float(buckets) * 100) == int(snap["outstanding"].sum())


@pytest.mark.parametrize("mode", ["dry_run", "live"])
def test_a_plan_built_in_parts_stores_logs_and_registers_what_one_part_does(world, mode):
    """pipeline.plan writes plan.parquet part by part and the warehouse takes the parts back from it:
    small parts give the file, the warehouse's plan, the log's rows, the register's rows and the
    counts that the plan built in one part gives."""
    import pandas as pd
    from sqlalchemy import text

    from receivables import pipeline
    from receivables.domain.plan import plain_text
    from receivables.extract import extract, run_dir

    policy = default_policy()
    now = dt.datetime.combine(AS_OF, dt.time(11), tzinfo=policy.tz)
    folder = run_dir(world.tmp / "runs", AS_OF, "extract")
    with world.client() as client:
        extract(client, AS_OF, folder)
    wh = world.warehouse()
    pipeline.aging(pipeline.Run(AS_OF, "extract", mode, folder), policy, wh)

    def plan_with(run_id, part_documents):
        run = pipeline.Run(AS_OF, run_id, mode, folder)
        with wh.engine.begin() as conn:  # each plan registers its decisions afresh
            conn.execute(text("DELETE FROM collection_register"))
        stats = pipeline.plan(run, policy, wh, now=now, today=AS_OF, part_documents=part_documents)
        file = plain_text(pd.read_parquet(folder / "plan.parquet"))
        with wh.engine.connect() as conn:
            stored = conn.execute(text("SELECT document_ref, step_id, decision, reason, target, due_day, outstanding "
                                       "FROM collection_plan WHERE run_id = :r ORDER BY document_ref, step_id"),
                                  {"r": run_id}).all()
            logged = conn.execute(text("SELECT document_ref, step_id, action, target, outcome, reason "
                                       "FROM collection_log WHERE run_id = :r ORDER BY id"), {"r": run_id}).all()
            registered = conn.execute(text("SELECT document_ref, step_id, action, target, status, detail "
                                           "FROM collection_register ORDER BY document_ref, step_id")).all()
        return stats, file, stored, logged, registered

    stats, file, stored, logged, registered = plan_with("whole", 10**9)
    assert len(file) > 200 and len(stored) > 20 and len(logged) > 10 and len(registered) > 10
    assert sum(stats["to_act"].values()) > 0
    for run_id, part_documents in (("parts-of-40", 40), ("parts-of-3", 3)):
        got = plan_with(run_id, part_documents)
        assert got[0] == stats
        pd.testing.assert_frame_equal(got[1], file)
        assert got[2:] == (stored, logged, registered)
    # each action task reads its rows of the file, and only those
    run = pipeline.Run(AS_OF, "parts-of-3", mode, folder)
    for action in ("email", "task", "case"):
        want = file.loc[file["decision"].eq("act") & file["action"].eq(action)].reset_index(drop=True)
        pd.testing.assert_frame_equal(pipeline.acting_rows(run, action), want, check_dtype=False)
        assert len(want) == stats["to_act"][action]
