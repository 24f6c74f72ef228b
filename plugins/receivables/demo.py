"""`make demo`: one live run of receivables_daily on the embedded default, then a summary.

Starts the 1C emulator and a mail catcher on loopback, initialises an Airflow home with
SQLite under ``.airflow/`` (git-ignored), runs ``airflow dags test receivables_daily``
for the demo date in live mode, prints what happened and stops what it started. Demo
state (warehouse, caught mail, run files) lives in ``.demo/`` and is reset every time.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from receivables.settings import PROJECT_ROOT

USER, PASSWORD = "Администратор", "1c-demo"
BASE_PATH = "/trade/odata/standard.odata"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def airflow_env(root: Path, demo: Path, onec_port: int, smtp_port: int) -> dict[str, str]:
    """Environment for an embedded Airflow (SQLite) wired to the emulator and catcher."""
    home = root / ".airflow"
    env = dict(os.environ)
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(root / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(root / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__DEFAULT_TIMEZONE": "Europe/Moscow",
        "GX_ANALYTICS_ENABLED": "False",
        "RECEIVABLES_DATA_DIR": str(demo),
        "AIRFLOW_CONN_ONEC_DEFAULT": json.dumps({
            "conn_type": "http", "host": "127.0.0.1", "port": onec_port, "schema": "http",
            "login": USER, "password": PASSWORD,
            "extra": {"base_path": BASE_PATH, "timeout": 120}}),
        "AIRFLOW_CONN_SMTP_DEFAULT": json.dumps({
            "conn_type": "smtp", "host": "127.0.0.1", "port": smtp_port,
            "extra": {"from_email": "debt@santeh-opt.example", "disable_tls": True,
                      "disable_ssl": True, "timeout": 30}}),
        "AIRFLOW_CONN_RECEIVABLES_DB": json.dumps({
            "conn_type": "sqlite", "host": str(demo / "warehouse.db")}),
    })
    return env


def wait_for_emulator(port: int, proc: subprocess.Popen, timeout: float = 300) -> None:
    url = f"http://127.0.0.1:{port}{BASE_PATH}/$metadata"
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the 1C emulator exited with code {proc.returncode}")
        try:
            req = urllib.request.Request(url, headers={"Authorization": f"Basic {token}"})
            with urllib.request.urlopen(req, timeout=5) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"the 1C emulator did not answer on port {port} within {timeout:.0f}s")


def stop_processes(procs: list[subprocess.Popen], timeout: float = 10) -> None:
    """Terminate the helper processes (emulator, mail catcher), then kill what lingers."""
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def main(*, as_of: dt.date, scale: float = 1.0) -> int:
    root = PROJECT_ROOT
    demo = root / ".demo"
    shutil.rmtree(demo, ignore_errors=True)
    (demo / "mail").mkdir(parents=True)
    onec_port, smtp_port = free_port(), free_port()
    env = airflow_env(root, demo, onec_port, smtp_port)
    bin_dir = Path(sys.executable).parent
    started = time.monotonic()
    procs: list[subprocess.Popen] = []
    try:
        print(f"Starting the 1C emulator (scale {scale}, a year up to {as_of}) and a mail catcher ...",
              flush=True)
        procs.append(subprocess.Popen(
            [str(bin_dir / "receivables"), "emulator", "--port", str(onec_port), "--scale", str(scale),
             "--end-date", as_of.isoformat()],
            stdout=open(demo / "emulator.log", "w"), stderr=subprocess.STDOUT, env=env))
        procs.append(subprocess.Popen(
            [str(bin_dir / "receivables"), "mailcatcher", "--port", str(smtp_port), "--out", str(demo / "mail")],
            stdout=open(demo / "mailcatcher.log", "w"), stderr=subprocess.STDOUT, env=env))
        print("Initialising Airflow (SQLite) in .airflow/ ...", flush=True)
        subprocess.run([str(bin_dir / "airflow"), "db", "migrate"], env=env, check=True,
                       stdout=open(demo / "airflow-db-migrate.log", "w"), stderr=subprocess.STDOUT)
        wait_for_emulator(onec_port, procs[0])
        print(f"Running receivables_daily for {as_of} in live mode ...", flush=True)
        log_path = demo / "airflow-dags-test.log"
        conf = json.dumps({"as_of": as_of.isoformat(), "mode": "live"})
        result = subprocess.run(
            [str(bin_dir / "airflow"), "dags", "test", "receivables_daily", as_of.isoformat(), "-c", conf],
            env=env, stdout=open(log_path, "w"), stderr=subprocess.STDOUT)
        if result.returncode != 0:
            print(f"The run failed; the last lines of {log_path}:")
            print("".join(log_path.read_text(encoding="utf-8").splitlines(keepends=True)[-40:]))
            return 1
        summary_files = sorted((demo / "runs").rglob("summary.json"))
        if not summary_files:
            print(f"The run finished but wrote no summary; see {log_path}")
            return 1
        print_summary(json.loads(summary_files[-1].read_text()), summary_files[-1].parent, demo,
                      time.monotonic() - started)
        return 0
    finally:
        stop_processes(procs)


def print_summary(s: dict, folder: Path, demo: Path, seconds: float) -> None:
    from receivables.formatting import money

    mail = sorted((demo / "mail").glob("*.eml"))
    outcomes = s.get("outcomes", {})
    print()
    print(f"Receivables as of {s.get('as_of') or folder.parent.name} (mode {s.get('mode')}, acting: {s.get('acting')})")
    print(f"  documents read from 1C:     {s.get('documents_read', 0)}")
    print(f"  open receivables:           {s.get('open_documents', 0)} documents, {money(int(s.get('outstanding', 0)))}")
    buckets = s.get("by_bucket") or {}
    order = sorted(buckets, key=lambda b: (b != "not_due", int(b.split("-")[0].rstrip("+")) if b[0].isdigit() else 0))
    for bucket, amount in ((b, buckets[b]) for b in order):
        print(f"      {bucket:>8}: {money(int(amount))}")
    print("  actions by kind and status: " + (", ".join(f"{k} {v}" for k, v in outcomes.items()) or "none"))
    print("  decisions: " + ", ".join(f"{k} {v}" for k, v in (s.get("decisions") or {}).items()))
    print(f"  emails caught:              {len(mail)} in {demo / 'mail'}")
    for path in sorted((folder / "report").glob("aging_*.*")):
        if path.suffix in (".html", ".xlsx"):
            print(f"  report ({path.suffix[1:]}):{' ' * (19 - len(path.suffix))}{path}")
    print(f"  warehouse (SQLite):         {demo / 'warehouse.db'}")
    print(f"  run files:                  {folder}")
    print(f"Done in {seconds:.0f}s; the emulator and the mail catcher are stopped.")
