"""receivables_daily end to end with real parts: emulator over HTTP, SMTP on loopback,
SQLite warehouse, and a real Airflow run through `dag.test()`."""

from __future__ import annotations

import datetime as dt
import itertools
from contextlib import contextmanager

import pytest

from conftest import ROOT
from harness import CaughtMail, SmtpServer, connection_env
from receivables.onec.emulator.generator import generate_company
from receivables.onec.emulator.server import EmulatorServer

pytestmark = pytest.mark.airflow
AS_OF = dt.date(2026, 11, 20)
USER, PASSWORD = "Администратор", "1c-demo"
_tick = itertools.count()


@pytest.fixture(scope="module")
def dag(airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert not bag.import_errors
    return bag.dags


@pytest.fixture
def world(tmp_path, monkeypatch):
    """A fresh emulated 1C company, a mail server and an empty warehouse for one test."""
    company = generate_company(seed=5, scale=0.03, end_date=AS_OF)
    mail = CaughtMail()
    with EmulatorServer(company, user=USER, password=PASSWORD) as onec, SmtpServer(mail) as smtp:
        wh_path = tmp_path / "warehouse.db"
        for k, v in connection_env(onec.port, smtp.port, wh_path, user=USER, password=PASSWORD).items():
            monkeypatch.setenv(k, v)
        monkeypatch.setenv("RECEIVABLES_DATA_DIR", str(tmp_path / "runs"))
        yield type("World", (), {"onec": onec, "mail": mail, "warehouse_path": wh_path, "tmp": tmp_path})


def run(dags, dag_id="receivables_daily", **conf):
    dag = dags[dag_id]
    # distinct logical dates keep dag.test() runs apart; the as_of param sets the date
    logical = dt.datetime(2026, 11, 1, tzinfo=dt.UTC) + dt.timedelta(minutes=next(_tick))
    return dag.test(logical_date=logical, run_conf=conf)


def warehouse(world):
    from receivables.store.warehouse import Warehouse

    return Warehouse(f"sqlite:///{world.warehouse_path}")


def test_seed000_live_run_emails_every_unpaid_order_once_and_rerun_sends_nothing(dag, world):
    dr = run(dag, as_of=AS_OF.isoformat(), mode="live")
    assert dr.state == "success"
    wh = warehouse(world)
    reg = wh.read_register()
    sent = reg.loc[reg["status"].eq("sent")]
    assert len(sent) > 0 and sent["sent_at"].notna().all()
    # one message per partner and run; each carries its register rows' Message-ID
    assert len(world.mail.messages) == sent["external_ref"].nunique()
    assert set(world.mail.by_message_id()) == set(sent["external_ref"])
    for m in world.mail.messages:
        assert m["Subject"] and "ТД00-" in m.get_body(("plain",)).get_content()
    # the aging snapshot for the date is in the warehouse
    snap = wh.read_snapshot(AS_OF)
    assert len(snap) > 0 and (snap["outstanding"] > 0).all()
    # the extract's Parquet carries the references' keys: the aging task does not number them again
    import pandas as pd

    orders = pd.read_parquet(next((world.tmp / "runs").rglob("extract/orders.parquet")))
    assert {"document_key", "settlement_key"} <= set(orders.columns) and (orders["document_key"] >= 0).all()

    before = len(world.mail.messages)
    assert run(dag, as_of=AS_OF.isoformat(), mode="live").state == "success"
    assert len(world.mail.messages) == before, "a rerun must not send again"


def test_deleting_a_register_row_resends_exactly_that_reminder(dag, world):
    assert run(dag, as_of=AS_OF.isoformat(), mode="live").state == "success"
    wh = warehouse(world)
    reg = wh.read_register()
    victim = reg.loc[reg["status"].eq("sent")].iloc[0]
    with wh.engine.begin() as conn:
        from sqlalchemy import text

        conn.execute(text("DELETE FROM collection_register WHERE document_ref = :d AND step_id = :s"),
                     {"d": victim["document_ref"], "s": victim["step_id"]})
    before = len(world.mail.messages)
    assert run(dag, as_of=AS_OF.isoformat(), mode="live").state == "success"
    new = world.mail.messages[before:]
    assert len(new) == 1
    assert victim["document_number"] in new[0].get_body(("plain",)).get_content()


def test_backfill_in_auto_mode_computes_and_contacts_nobody(dag, world):
    past = AS_OF - dt.timedelta(days=3)
    assert run(dag, as_of=past.isoformat(), mode="auto").state == "success"
    assert world.mail.messages == []
    wh = warehouse(world)
    assert len(wh.read_snapshot(past)) > 0
    assert wh.read_register().empty
    assert not any(r.method == "POST" for r in world.onec.requests)


def test_dry_run_records_planned_rows_and_sends_nothing(dag, world):
    assert run(dag, as_of=AS_OF.isoformat(), mode="dry_run").state == "success"
    assert world.mail.messages == []
    reg = warehouse(world).read_register()
    assert len(reg) and set(reg["status"]) <= {"planned", "skipped", "superseded"}
    assert reg["sent_at"].isna().all()
    # the log holds exactly the plan's acted and decided rows, as text (the plan keeps categories)
    import pandas as pd

    cols = ["document_ref", "step_id", "partner_ref", "target", "reason"]

    def rows(df, outcome):
        return sorted(tuple(None if pd.isna(v) else str(v) for v in r) + (o,)
                      for r, o in zip(df[cols].astype(object).itertuples(index=False), outcome, strict=True))

    plan = pd.read_parquet(next((world.tmp / "runs").rglob("plan.parquet")))
    decided = plan.loc[plan["decision"].isin(["act", "skip", "superseded", "hold"])]
    outcome = decided["decision"].astype(str).replace({"act": "planned"})
    log = warehouse(world).read_log()
    log = log.loc[log["outcome"].isin(["planned", "skip", "superseded", "hold"])]
    assert len(decided) and rows(log, log["outcome"]) == rows(decided, outcome)
    # ... written in the order of the log's (document_ref, step_id) index (read_log: by id)
    keys = list(zip(log["document_ref"].astype(str), log["step_id"].astype(str), strict=True))
    assert keys == sorted(keys)
    # a live run afterwards still sends the planned ones
    assert run(dag, as_of=AS_OF.isoformat(), mode="live").state == "success"
    assert len(world.mail.messages) > 0


def test_bad_data_stops_the_run_at_the_gate_with_no_contact(dag, world):
    orders = world.onec.dataset.rows("Document_ЗаказКлиента")
    orders[0]["СуммаДокумента"] = -100.0
    dr = run(dag, as_of=AS_OF.isoformat(), mode="live")
    assert dr.state == "failed"
    states = {ti.task_id: ti.state for ti in dr.get_task_instances()}
    assert states["infobase.validate"] == "failed"
    assert states.get("infobase.send_emails") in (None, "upstream_failed")
    assert world.mail.messages == []
    assert not any(r.method == "POST" for r in world.onec.requests)


def _explanation(world, number):
    paths = sorted((world.tmp / "runs").rglob(f"*{number}*/explanation.txt"), key=lambda p: p.stat().st_mtime)
    return paths[-1].read_text(encoding="utf-8")


def test_single_order_applies_the_daily_rules_to_one_order_and_explains(dag, world):
    # find an order the daily rules would email today, and one that is fully paid
    assert run(dag, as_of=AS_OF.isoformat(), mode="dry_run").state == "success"
    reg = warehouse(world).read_register()
    due = reg.loc[reg["status"].eq("planned"), "document_number"].iloc[0]
    dr = run(dag, "receivables_single_order", order_number=due, as_of=AS_OF.isoformat(), mode="live")
    assert dr.state == "success"
    assert len(world.mail.messages) == 1
    assert due in world.mail.messages[0].get_body(("plain",)).get_content()
    assert "act (due" in _explanation(world, due)
    # the same order again: nothing is due any more, and the run says why
    dr = run(dag, "receivables_single_order", order_number=due, as_of=AS_OF.isoformat(), mode="live")
    assert dr.state == "success" and len(world.mail.messages) == 1
    assert "already_done" in _explanation(world, due)


def test_single_order_that_does_not_exist_is_explained(dag, world):
    dr = run(dag, "receivables_single_order", order_number="ТД00-999999", as_of=AS_OF.isoformat(), mode="live")
    assert dr.state == "success" and world.mail.messages == []
    assert "no customer order with this number" in _explanation(world, "ТД00-999999")


@contextmanager
def branch_infobase(world, monkeypatch, company, variable: str):
    """A second 1C publication served by its own emulator as connection `onec_branch`,
    with the Variable receivables_infobases set to `variable` (JSON or comma list)."""
    with EmulatorServer(company, user=USER, password=PASSWORD) as branch:
        conn = connection_env(branch.port, 1, world.warehouse_path, user=USER,
                              password=PASSWORD)["AIRFLOW_CONN_ONEC_DEFAULT"]
        monkeypatch.setenv("AIRFLOW_CONN_ONEC_BRANCH", conn)
        monkeypatch.setenv("AIRFLOW_VAR_RECEIVABLES_INFOBASES", variable)
        yield branch


def test_two_infobases_extract_and_act_in_parallel_each_tagged_with_its_name(dag, world, monkeypatch):
    """The Variable names a second 1C publication; each gets a mapped instance of the
    `infobase` group, its own snapshot rows, register rows, run summary and letters."""
    branch_company = generate_company(seed=6, scale=0.02, end_date=AS_OF)
    with branch_infobase(world, monkeypatch, branch_company, '["onec_default", "onec_branch"]') as branch:
        dr = run(dag, as_of=AS_OF.isoformat(), mode="live")
        assert dr.state == "success"
        extracts = [ti for ti in dr.get_task_instances() if ti.task_id == "infobase.extract"]
        assert sorted(ti.map_index for ti in extracts) == [0, 1]
        assert {ti.state for ti in extracts} == {"success"}
        # each publication was read by its own instance
        assert any(r.entity_set == "Document_ЗаказКлиента" for r in branch.requests)
        assert any(r.entity_set == "Document_ЗаказКлиента" for r in world.onec.requests)

    wh = warehouse(world)
    snap = wh.read_snapshot(AS_OF)
    assert set(snap["infobase"]) == {"default", "branch"}
    branch_refs = {r["Ref_Key"] for r in branch_company.rows("Document_ЗаказКлиента")}
    assert set(snap.loc[snap["infobase"].eq("branch"), "document_ref"]) <= branch_refs
    assert not set(snap.loc[snap["infobase"].eq("default"), "document_ref"]) & branch_refs
    reg = wh.read_register()
    sent = reg.loc[reg["status"].eq("sent")]
    assert set(sent["infobase"]) == {"default", "branch"}
    assert sent.loc[sent["infobase"].eq("branch"), "run_id"].str.endswith("__branch").all()
    assert len(world.mail.messages) == sent["external_ref"].nunique()
    summaries = wh.read_run_summaries()
    assert sum(summaries["run_id"].str.endswith("__branch")) == 1


def test_tasks_and_cases_are_written_to_the_infobase_each_document_came_from(dag, world, monkeypatch, tmp_path):
    import yaml
    from test_exactly_once import LADDER_POLICY

    policy = tmp_path / "ladder.yaml"
    policy.write_text(yaml.safe_dump(LADDER_POLICY, allow_unicode=True), encoding="utf-8")
    monkeypatch.setenv("RECEIVABLES_POLICY", str(policy))
    company = generate_company(seed=6, scale=0.02, end_date=AS_OF)
    with branch_infobase(world, monkeypatch, company, "onec_default,onec_branch") as branch:
        dr = run(dag, as_of=AS_OF.isoformat(), mode="live")
        assert dr.state == "success"
        states = {(ti.task_id, ti.map_index): ti.state for ti in dr.get_task_instances()}
        assert states[("infobase.send_emails", 0)] == "skipped", "the ladder has no email step"
        posts = {name: [r for r in srv.requests if r.method == "POST"]
                 for name, srv in (("default", world.onec), ("branch", branch))}

    reg = warehouse(world).read_register()
    done = reg.loc[reg["sent_at"].notna()]
    for infobase, requests in posts.items():
        mine = done.loc[done["infobase"].eq(infobase)]
        assert {"task", "case"} <= set(mine["action"]), (infobase, mine["action"].value_counts())
        # every object this infobase's register rows name was POSTed to this infobase's 1C, once
        # (a debt case may cover several documents of one partner: one object, several rows)
        posted = [r for r in requests if r.entity_set in ("Task_ЗадачаИсполнителя", "Catalog_СделкиСКлиентами")]
        assert len(posted) == mine["external_ref"].nunique()
        assert all(ref in " ".join(r.body or "" for r in posted) for ref in mine["external_ref"])
