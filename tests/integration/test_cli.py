"""The `receivables` command as an operator runs it (a subprocess, real emulator, SQLite)."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from db_fixtures import BACKENDS, database

from harness import connection_env
from receivables.onec.emulator.generator import generate_company
from receivables.onec.emulator.server import EmulatorServer

BIN = Path(sys.executable).parent / "receivables"
AS_OF = dt.date(2026, 11, 20)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    with EmulatorServer(generate_company(seed=9, scale=0.03, end_date=AS_OF)) as onec:
        e = {**os.environ, **connection_env(onec.port, 1, tmp / "w.db", user="Администратор", password="1c-demo"),
             "RECEIVABLES_DATA_DIR": str(tmp / "runs")}
        yield e, onec


def cli(env, *args):
    return subprocess.run([str(BIN), *args], env=env, capture_output=True, text=True, timeout=300)


def test_preview_json_lists_what_would_be_done_and_why_without_doing_it(env):
    e, onec = env
    out = cli(e, "preview", "--as-of", AS_OF.isoformat(), "--format", "json")
    assert out.returncode == 0, out.stderr[-2000:]
    doc = json.loads(out.stdout)
    assert doc["as_of"] == "2026-11-20" and doc["open_documents"] > 0
    decisions = {a["decision"] for a in doc["actions"]}
    assert "act" in decisions and all(a["reason"] for a in doc["actions"])
    assert not any(r.method == "POST" for r in onec.requests)


def test_preview_table_is_readable(env):
    e, _ = env
    out = cli(e, "preview", "--as-of", AS_OF.isoformat())
    assert out.returncode == 0, out.stderr[-2000:]
    assert "open documents" in out.stdout and "unpaid_order" in out.stdout


def test_a_wrong_policy_is_one_line_naming_the_file_and_key(env, tmp_path):
    e, _ = env
    bad = tmp_path / "policy.yaml"
    bad.write_text("campaign_start: 2026-11-01\nquiet_dayz: 3\npools: []\n", encoding="utf-8")
    out = cli({**e, "RECEIVABLES_POLICY": str(bad)}, "preview", "--as-of", AS_OF.isoformat())
    assert out.returncode == 2
    assert str(bad) in out.stderr and "quiet_dayz: unknown key" in out.stderr
    assert "Traceback" not in out.stderr


def test_wrong_1c_password_is_one_clear_line(env):
    e, _ = env
    conn = json.loads(e["AIRFLOW_CONN_ONEC_DEFAULT"])
    conn["password"] = "wrong"
    out = cli({**e, "AIRFLOW_CONN_ONEC_DEFAULT": json.dumps(conn)}, "preview", "--as-of", AS_OF.isoformat())
    assert out.returncode == 2 and "refused the credentials" in out.stderr and "wrong" not in out.stderr


def test_claim_on_demand_for_one_partner(env, tmp_path):
    e, onec = env
    partners = {p["Ref_Key"]: p for p in onec.dataset.rows("Catalog_Партнеры")}
    overdue_partner = onec.dataset.rows("Document_ЗаказКлиента")[0]["Партнер_Key"]
    code = partners[overdue_partner]["Code"].strip()
    out = cli(e, "claim", "--as-of", "2026-07-27", "--partner", code, "--out", str(tmp_path))
    if out.returncode == 2 and "no overdue documents" in out.stderr:
        pytest.skip("the generated partner has nothing overdue on that date")
    assert out.returncode == 0, out.stderr[-2000:]
    pdf = Path(out.stdout.splitlines()[0])
    assert pdf.exists() and pdf.read_bytes()[:4] == b"%PDF"


def test_claim_for_an_unknown_partner_is_a_clear_error(env, tmp_path):
    e, _ = env
    out = cli(e, "claim", "--as-of", "2026-07-27", "--partner", "нет-такого", "--out", str(tmp_path))
    assert out.returncode == 2 and "no partner with code or name 'нет-такого'" in out.stderr


@pytest.mark.parametrize("backend", BACKENDS)
def test_warehouse_migrate_creates_then_upgrades_an_older_schema_and_check_says_so(backend, tmp_path):
    from sqlalchemy import create_engine, inspect, text

    with database(backend, tmp_path) as url:
        e = {**os.environ, "AIRFLOW_CONN_RECEIVABLES_DB": _conn_json(url)}
        assert cli(e, "warehouse", "check").returncode == 1
        first = cli(e, "warehouse", "migrate")
        assert first.returncode == 0, first.stderr[-2000:]
        assert "migrated (log_guard, tables, views)" in first.stdout
        assert cli(e, "warehouse", "check").returncode == 0
        assert "already up to date" in cli(e, "warehouse", "migrate").stdout

        # an install from before a column and a view existed: migrate brings it up to date
        engine = create_engine(url)
        with engine.begin() as conn:
            conn.execute(text("DROP VIEW v_aging_by_bucket"))
            conn.execute(text("DROP VIEW v_effectiveness_by_step"))
            conn.execute(text("ALTER TABLE aging_snapshot DROP COLUMN segment"))
        check = cli(e, "warehouse", "check")
        assert check.returncode == 1 and "needs migration (tables, views)" in check.stderr
        again = cli(e, "warehouse", "migrate")
        assert again.returncode == 0 and "migrated (tables, views)" in again.stdout
        insp = inspect(engine)
        assert "segment" in {c["name"] for c in insp.get_columns("aging_snapshot")}
        assert "v_aging_by_bucket" in insp.get_view_names()
        with engine.connect() as conn:
            assert conn.execute(text("SELECT COUNT(*) FROM key_rate")).scalar() > 50
        engine.dispose()


def _conn_json(url: str) -> str:
    from sqlalchemy.engine import make_url

    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        return json.dumps({"conn_type": "sqlite", "host": u.database})
    return json.dumps({"conn_type": "postgres", "host": u.host, "port": u.port, "login": u.username,
                       "schema": u.database})
