"""receivables_daily on the real distributed shape, without Docker.

Airflow with the CeleryExecutor: Redis on 127.0.0.1:6379 as broker, PostgreSQL as the
metadata database, Celery result backend and warehouse, and an api-server, a scheduler,
a dag-processor and one Celery worker started as separate processes, as in production.
The run is triggered through the REST API against the 1C emulator and a loopback SMTP
server (both served from this test process), waited for, checked, and every process is
stopped; the test fails if any process it started is still alive afterwards.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import secrets
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from db_fixtures import postgres_database
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from conftest import ROOT
from distributed import Cluster, free_port, tail, wait_for
from harness import CaughtMail, SmtpServer, connection_env
from receivables.onec.emulator.generator import generate_company
from receivables.onec.emulator.server import EmulatorServer

pytestmark = [pytest.mark.celery, pytest.mark.airflow, pytest.mark.postgres]

DAG_ID = "receivables_daily"
AS_OF = dt.date(2026, 11, 20)
USER, PASSWORD = "Администратор", "1c-demo"
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
BIN = Path(sys.executable).parent
AIRFLOW = str(BIN / "airflow")
#: how long the triggered run may take on the 2-core CI machine before the test gives up
RUN_DEADLINE = 300
#: a failed try is retried after the DAG's retry_delay (minutes): stop waiting at the first one
FAILING = {"failed", "up_for_retry", "upstream_failed", "removed"}


@pytest.fixture
def redis_db() -> Iterator[int]:
    """An empty Redis database number, flushed afterwards (the broker's queues live there)."""
    import redis

    admin = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, socket_timeout=5)
    try:
        admin.ping()
    except redis.RedisError as exc:
        pytest.fail(f"this test needs Redis at {REDIS_HOST}:{REDIS_PORT} (CI provides it): {exc}", pytrace=False)
    try:
        count = int(admin.config_get("databases").get("databases", 16))
    except redis.ResponseError:  # CONFIG may be disabled; 16 is Redis' default
        count = 16
    candidates = list(range(1, count))
    random.shuffle(candidates)
    for db in candidates:
        client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=db, socket_timeout=5)
        if client.dbsize() == 0:
            break
    else:
        pytest.fail(f"no empty Redis database among 1..{count - 1} for the broker", pytrace=False)
    try:
        yield db
    finally:
        client.flushdb()
        client.close()
        admin.close()


@pytest.fixture
def world(tmp_path):
    """Two emulated 1C infobases (the default one and a branch) and the mail catcher, on
    loopback in this process: the run fans out over both on the worker."""
    company = generate_company(seed=5, scale=0.03, end_date=AS_OF)
    branch_company = generate_company(seed=6, scale=0.02, end_date=AS_OF)
    mail = CaughtMail()
    with EmulatorServer(company, user=USER, password=PASSWORD) as onec, \
            EmulatorServer(branch_company, user=USER, password=PASSWORD) as branch, SmtpServer(mail) as smtp:
        yield type("World", (), {"onec": onec, "branch": branch, "smtp": smtp, "mail": mail})


def _environment(home: Path, *, meta_url: str, warehouse_url: str, broker: str, queue: str, api_port: int,
                 world, data_dir: Path, password_file: Path) -> dict[str, str]:
    """What every component sees: the parent's environment without its Airflow settings, plus ours.

    conftest.py points the rest of the suite at an SQLite home through AIRFLOW__* variables;
    none of that may leak into the processes of this cluster.
    """
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("AIRFLOW", "RECEIVABLES_")) and k not in ("PYTEST_CURRENT_TEST",)}
    wh = make_url(warehouse_url)
    conns = connection_env(world.onec.port, world.smtp.port, home / "unused.db", user=USER, password=PASSWORD)
    conns["AIRFLOW_CONN_ONEC_BRANCH"] = connection_env(world.branch.port, world.smtp.port, home / "unused.db",
                                                       user=USER, password=PASSWORD)["AIRFLOW_CONN_ONEC_DEFAULT"]
    conns["AIRFLOW_VAR_RECEIVABLES_INFOBASES"] = '["onec_default", "onec_branch"]'
    conns["AIRFLOW_CONN_RECEIVABLES_DB"] = json.dumps({
        "conn_type": "postgres", "host": wh.host, "port": wh.port or 5432, "login": wh.username,
        "schema": wh.database})
    from cryptography.fernet import Fernet

    return {
        **base,
        **conns,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "ci:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(password_file),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": meta_url,
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{api_port}",
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),  # HS512 wants >= 64 bytes
        "AIRFLOW__CELERY__BROKER_URL": broker,
        "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{meta_url}",
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
        # the queue name is unique to this test: no other worker on the broker can take our tasks
        "AIRFLOW__OPERATORS__DEFAULT_QUEUE": queue,
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
        # no cron runs: unpausing would otherwise start today's scheduled run (mode auto acts on
        # today) ahead of ours, and it would send the letters this test expects from its own run
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
        "GX_ANALYTICS_ENABLED": "False",
        "RECEIVABLES_DATA_DIR": str(data_dir),
    }


def _task_instances(meta_url: str, run_id: str) -> list[dict]:
    engine = create_engine(meta_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text(
                "SELECT task_id, map_index, state, queue, hostname, operator, try_number "
                "FROM task_instance WHERE dag_id = :d AND run_id = :r ORDER BY task_id, map_index"),
                {"d": DAG_ID, "r": run_id}).mappings().all()
        return [dict(r) for r in rows]
    finally:
        engine.dispose()


def _celery_results(meta_url: str) -> dict[str, int]:
    """Task states the Celery workers stored in the result backend (table celery_taskmeta)."""
    engine = create_engine(meta_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT status, count(*) FROM celery_taskmeta GROUP BY status")).all()
        return {status: n for status, n in rows}
    finally:
        engine.dispose()


def _task_logs(home: Path, run_id: str, tis: list[dict], lines: int = 80) -> str:
    """The log of every task instance that started and did not succeed, for the failure message."""
    parts = []
    for ti in tis:
        if ti["state"] in (None, "success", "skipped"):
            continue
        folder = home / "logs" / f"dag_id={DAG_ID}" / f"run_id={run_id}" / f"task_id={ti['task_id']}"
        logs = sorted(folder.rglob("*.log")) if folder.exists() else []
        parts.append(f"===== task {ti['task_id']}[{ti['map_index']}] {ti['state']}: "
                     + ("\n".join(f"--- {p}\n{tail(p, lines)}" for p in logs) or "(no log file)"))
    return "\n".join(parts)


def test_daily_run_on_celery_executor_with_separate_processes(tmp_path, redis_db, world):
    from receivables.store.warehouse import Warehouse

    home = tmp_path / "airflow"
    home.mkdir()
    api_port = free_port()
    queue = f"receivables-ci-{uuid.uuid4().hex[:10]}"
    password_file = home / "passwords.json"
    api_password = secrets.token_urlsafe(16)
    password_file.write_text(json.dumps({"ci": api_password}), encoding="utf-8")
    api = f"http://127.0.0.1:{api_port}"

    with postgres_database() as meta_url, postgres_database() as warehouse_url:
        env = _environment(home, meta_url=meta_url, warehouse_url=warehouse_url,
                           broker=f"redis://{REDIS_HOST}:{REDIS_PORT}/{redis_db}", queue=queue,
                           api_port=api_port, world=world, data_dir=tmp_path / "runs",
                           password_file=password_file)
        cluster = Cluster(env, tmp_path / "logs")
        t0 = time.monotonic()

        def phase(name: str) -> None:
            print(f"{time.monotonic() - t0:6.1f}s {name}")

        try:
            cluster.run("airflow db migrate", [AIRFLOW, "db", "migrate"])
            phase("metadata database migrated")
            cluster.start("api-server", [AIRFLOW, "api-server", "--host", "127.0.0.1", "--port", str(api_port),
                                         "--workers", "1"])
            cluster.start("scheduler", [AIRFLOW, "scheduler"])
            cluster.start("dag-processor", [AIRFLOW, "dag-processor"])
            cluster.start("celery-worker", [AIRFLOW, "celery", "worker", "--concurrency", "2", "--queues", queue,
                                            "--celery-hostname", f"{queue}@%h", "--without-gossip",
                                            "--without-mingle"])

            def explain() -> str:
                exited = cluster.exited()
                return (f"exited components: {exited}\n" if exited else "") + cluster.explain()

            def alive_then(check):
                def wrapped():
                    if cluster.exited():
                        raise AssertionError(f"a component exited early: {cluster.exited()}\n{cluster.explain()}")
                    return check()
                return wrapped

            session = requests.Session()
            wait_for(alive_then(lambda: session.get(f"{api}/api/v2/monitor/health", timeout=5).ok),
                     timeout=120, what="the api-server's health endpoint", explain=explain)
            token = session.post(f"{api}/auth/token", json={"username": "ci", "password": api_password}, timeout=10)
            assert token.status_code == 201, token.text
            session.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
            phase("api-server up, token issued")

            # the dag-processor has parsed and serialised the DAG when the API knows it
            wait_for(alive_then(lambda: session.get(f"{api}/api/v2/dags/{DAG_ID}", timeout=10).ok),
                     timeout=180, what=f"the dag-processor to serialise {DAG_ID}", explain=explain)
            phase("DAG serialised")
            worker_log = cluster.log_dir / "celery-worker.log"

            def worker_ready() -> bool:
                banner = worker_log.read_text(encoding="utf-8", errors="replace")
                return f"{queue}@" in banner and " ready." in banner

            wait_for(alive_then(worker_ready), timeout=120, what="the Celery worker to be ready", explain=explain)
            phase("worker ready")

            # triggered while paused the run waits in the queue; unpausing lets the scheduler start it
            resp = session.post(f"{api}/api/v2/dags/{DAG_ID}/dagRuns", timeout=30, json={
                "logical_date": None, "conf": {"as_of": AS_OF.isoformat(), "mode": "live"}})
            assert resp.status_code == 200, resp.text
            run_id = resp.json()["dag_run_id"]
            resp = session.patch(f"{api}/api/v2/dags/{DAG_ID}", json={"is_paused": False}, timeout=30)
            assert resp.status_code == 200 and resp.json()["is_paused"] is False, resp.text

            def finished():
                state = session.get(f"{api}/api/v2/dags/{DAG_ID}/dagRuns/{run_id}", timeout=10).json()["state"]
                tis = _task_instances(meta_url, run_id)
                bad = [f"{t['task_id']}[{t['map_index']}]={t['state']}" for t in tis if t["state"] in FAILING]
                if bad or state == "failed":
                    raise AssertionError(f"run {run_id} is {state}; tasks {bad}\n"
                                         f"{_task_logs(home, run_id, tis)}\n{cluster.explain()}")
                return state if state == "success" else None

            state = wait_for(alive_then(finished), timeout=RUN_DEADLINE, interval=2, what=f"run {run_id}",
                             explain=lambda: _task_logs(home, run_id, _task_instances(meta_url, run_id))
                             + "\n" + explain())
            assert state == "success"
            phase(f"run {run_id} succeeded")
            runs = session.get(f"{api}/api/v2/dags/{DAG_ID}/dagRuns", timeout=10).json()
            assert [r["dag_run_id"] for r in runs["dag_runs"]] == [run_id], runs

            # every task that ran went through our Celery queue and was executed by the worker; an
            # EmptyOperator or a branch-skipped task never reaches an executor and has no hostname
            tis = _task_instances(meta_url, run_id)
            assert {t["state"] for t in tis} <= {"success", "skipped"}, tis
            executed = [t for t in tis if t["hostname"]]
            assert any(t["state"] == "success" for t in executed), tis
            assert {t["queue"] for t in executed} == {queue}, tis
            # one mapped instance of the infobase group per 1C publication
            extracts = [t for t in tis if t["task_id"] == "infobase.extract"]
            assert sorted(t["map_index"] for t in extracts) == [0, 1], tis
            assert all(t["hostname"] and t["state"] == "success" for t in extracts), tis

            def worker_idle() -> tuple[int, int] | None:
                # the run is success once the last task reports it; its supervisor may still be
                # finishing in the worker, and stopping the worker then would cut it short
                text_ = worker_log.read_text(encoding="utf-8", errors="replace")
                received, succeeded = text_.count("] received"), text_.count("] succeeded in")
                return (received, succeeded) if received == succeeded else None

            received, succeeded = wait_for(worker_idle, timeout=60, what="the worker to finish its last task",
                                           explain=lambda: tail(worker_log))
            assert received == len(executed), (received, tis, tail(worker_log))
            results = _celery_results(meta_url)
            assert results == {"SUCCESS": len(executed)}, (results, tis)

            # the letters went out once each, and the register in PostgreSQL says so
            wh = Warehouse(warehouse_url)
            try:
                reg = wh.read_register()
            finally:
                wh.dispose()
            sent = reg.loc[reg["status"].eq("sent")]
            assert len(sent) > 0 and sent["sent_at"].notna().all(), reg["status"].value_counts()
            assert set(sent["as_of_date"]) == {AS_OF}
            assert sent["run_id"].str.startswith(run_id).all(), sent["run_id"].unique()
            assert set(sent["infobase"]) == {"default", "branch"}, sent["infobase"].value_counts()
            caught = world.mail.by_message_id()
            assert set(caught) == set(sent["external_ref"])
            assert all(len(msgs) == 1 for msgs in caught.values())
            for m in world.mail.messages:
                assert m["Subject"] and "ТД00-" in m.get_body(("plain",)).get_content()
        finally:
            survivors = cluster.stop()
            phase("all components stopped" + (f"; LEFT BEHIND: {survivors}" if survivors else ""))
        assert not survivors, f"processes left behind: {survivors}\n{cluster.explain(20)}"


def test_stopping_the_cluster_reaches_a_descendant_that_left_its_process_group(tmp_path):
    """The leak check above must see what killpg cannot: a grandchild in its own session
    that ignores SIGTERM (Airflow's task supervisor moves task processes to new groups)."""
    stubborn = ("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)")
    parent = ("import subprocess, sys, time; "
              f"subprocess.Popen([sys.executable, '-c', {stubborn!r}], start_new_session=True); time.sleep(600)")
    cluster = Cluster({}, tmp_path / "logs")
    try:
        comp = cluster.start("parent", [sys.executable, "-c", parent])
        procs = wait_for(lambda: len(cluster.marked_processes()) == 2 and cluster.marked_processes(),
                         timeout=30, interval=0.2, what="the parent and its escaped child")
        escaped = [p for p in procs if p.pid != comp.process.pid]
        assert len(escaped) == 1
        assert os.getpgid(escaped[0].pid) != comp.pgid
    finally:
        survivors = cluster.stop(grace=2)
    assert survivors == []
    assert not escaped[0].is_running() or escaped[0].status() == "zombie"
