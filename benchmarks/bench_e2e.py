"""Benchmark 3: ``airflow dags test receivables_daily`` end to end at seed scale (issue 8).

What ``make demo`` does, timed, with the demo's own functions (``receivables.demo``):
the 1C emulator at scale 1.0 (a year of ~300 orders a working day) and the mail catcher
in child processes, an embedded Airflow with SQLite, one live run for the demo date.
Each repeat starts from scratch (a fresh warehouse, a fresh emulator, a copy of an
Airflow database migrated once), so every run reads, decides and sends the same.

Measured: the wall time of the ``airflow dags test`` command (process start to exit:
interpreter, DAG parse, every task) and each task instance's duration as Airflow
recorded it in its metadata database. Task ids are read from the database, not
assumed: mapped tasks and task groups appear as ``group.task[map_index]``. The
baseline is the sum of task durations: the rest of the wall time is Airflow's own
(start-up, parsing, scheduling between tasks).
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from receivables.demo import airflow_env, free_port, stop_processes, wait_for_emulator
from receivables.settings import PROJECT_ROOT

AS_OF = dt.date(2026, 11, 20)
DAG_ID = "receivables_daily"


def log(msg: str) -> None:
    print(f"[e2e] {msg}", file=sys.stderr, flush=True)


def _env(root: Path, onec_port: int, smtp_port: int) -> dict[str, str]:
    """The demo's environment, with the Airflow home and data under `root`."""
    env = airflow_env(PROJECT_ROOT, root / "data", onec_port, smtp_port)
    env["AIRFLOW_HOME"] = str(root / "airflow")
    env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{root / 'airflow' / 'airflow.db'}"
    return env


def _task_times(db: Path) -> dict[str, dict[str, Any]]:
    """{task label: {seconds, state}} of the DAG's (only) run, in start order."""
    with sqlite3.connect(db) as conn:
        cols = {row[1] for row in conn.execute("PRAGMA table_info(task_instance)")}
        duration = "duration" if "duration" in cols else "NULL"
        rows = conn.execute(
            f"SELECT task_id, map_index, state, start_date, end_date, {duration} "
            "FROM task_instance WHERE dag_id = ? ORDER BY start_date, task_id, map_index", (DAG_ID,)
        ).fetchall()
    out: dict[str, dict[str, Any]] = {}
    for task_id, map_index, state, start, end, seconds in rows:
        label = task_id + (f"[{map_index}]" if map_index is not None and map_index >= 0 else "")
        if seconds is None and start and end:
            seconds = (dt.datetime.fromisoformat(str(end)) - dt.datetime.fromisoformat(str(start))).total_seconds()
        out[label] = {"seconds": round(float(seconds), 3) if seconds is not None else None, "state": state}
    return out


def _one_run(root: Path, template_db: Path, scale: float, i: int) -> dict[str, Any]:
    run_root = root / f"run{i}"
    (run_root / "airflow").mkdir(parents=True)
    (run_root / "data" / "mail").mkdir(parents=True)
    shutil.copy(template_db, run_root / "airflow" / "airflow.db")
    onec_port, smtp_port = free_port(), free_port()
    env = _env(run_root, onec_port, smtp_port)
    bin_dir = Path(sys.executable).parent
    procs: list[subprocess.Popen] = []
    try:
        procs.append(subprocess.Popen(
            [str(bin_dir / "receivables"), "emulator", "--port", str(onec_port), "--scale", str(scale),
             "--end-date", AS_OF.isoformat()],
            stdout=open(run_root / "emulator.log", "w"), stderr=subprocess.STDOUT, env=env))
        procs.append(subprocess.Popen(
            [str(bin_dir / "receivables"), "mailcatcher", "--port", str(smtp_port),
             "--out", str(run_root / "data" / "mail")],
            stdout=open(run_root / "mailcatcher.log", "w"), stderr=subprocess.STDOUT, env=env))
        wait_for_emulator(onec_port, procs[0])
        conf = json.dumps({"as_of": AS_OF.isoformat(), "mode": "live"})
        log_path = run_root / "airflow-dags-test.log"
        started = time.perf_counter()
        with open(log_path, "w") as out:
            result = subprocess.run([str(bin_dir / "airflow"), "dags", "test", DAG_ID, AS_OF.isoformat(), "-c", conf],
                                    env=env, stdout=out, stderr=subprocess.STDOUT, timeout=1800)
        wall = time.perf_counter() - started
    finally:
        stop_processes(procs)
    tasks = _task_times(run_root / "airflow" / "airflow.db")
    failed = sorted(k for k, v in tasks.items() if v["state"] not in ("success", "skipped"))
    if result.returncode != 0 or failed or not tasks:
        tail = "".join(log_path.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)[-30:])
        raise RuntimeError(f"airflow dags test failed (exit {result.returncode}, tasks not ok: {failed}):\n{tail}")
    summaries = sorted((run_root / "data" / "runs").rglob("summary.json"))
    summary = json.loads(summaries[-1].read_text()) if summaries else {}
    return {
        "wall_s": round(wall, 2),
        "tasks_s_sum": round(sum(v["seconds"] or 0 for v in tasks.values()), 2),
        "tasks": tasks,
        "emails_caught": sum(1 for _ in (run_root / "data" / "mail").glob("*.eml")),
        "documents_read": summary.get("documents_read"),
        "open_documents": summary.get("open_documents"),
        "outcomes": summary.get("outcomes"),
    }


def run(scale: float = 1.0, repeats: int = 3) -> dict[str, Any]:
    """Median wall time of `repeats` live runs and the median duration of every task."""
    bin_dir = Path(sys.executable).parent
    with tempfile.TemporaryDirectory(prefix="receivables-bench-e2e-") as tmp:
        root = Path(tmp)
        template = root / "template"
        (template / "airflow").mkdir(parents=True)
        log("airflow db migrate (once; every run starts from a copy) ...")
        started = time.perf_counter()
        subprocess.run([str(bin_dir / "airflow"), "db", "migrate"], env=_env(template, 1, 1), check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=900)
        migrate_s = time.perf_counter() - started
        runs = []
        for i in range(repeats):
            runs.append(_one_run(root, template / "airflow" / "airflow.db", scale, i))
            log(f"run {i + 1}/{repeats}: {runs[-1]['wall_s']:.1f} s wall, tasks {runs[-1]['tasks_s_sum']:.1f} s, "
                f"{runs[-1]['emails_caught']} emails")
    labels = list(dict.fromkeys(k for r in runs for k in r["tasks"]))
    per_task = {k: round(statistics.median(r["tasks"][k]["seconds"] or 0 for r in runs if k in r["tasks"]), 3)
                for k in labels}
    return {
        "scale": scale,
        "repeats": repeats,
        "as_of": AS_OF.isoformat(),
        "wall_s": round(statistics.median(r["wall_s"] for r in runs), 2),
        "tasks_s_sum": round(statistics.median(r["tasks_s_sum"] for r in runs), 2),
        "task_s": per_task,
        "runs_wall_s": [r["wall_s"] for r in runs],
        "emails_caught": runs[0]["emails_caught"],
        "documents_read": runs[0]["documents_read"],
        "open_documents": runs[0]["open_documents"],
        "outcomes": runs[0]["outcomes"],
        "airflow_db_migrate_s": round(migrate_s, 1),
    }


if __name__ == "__main__":
    print(json.dumps(run(scale=float(sys.argv[1]) if len(sys.argv) > 1 else 1.0, repeats=1), indent=1))
