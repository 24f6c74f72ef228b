"""Benchmark 4: how long each DAG file takes to import in a fresh interpreter (issue 8).

Each measurement is a new ``python`` process with the environment ``make demo`` gives
Airflow (``demo.airflow_env``, an empty Airflow home of its own). The process first
imports ``airflow.sdk``, as Airflow's DAG processor has before it parses a file, then
times ``exec_module`` of the DAG file: what Airflow's parse timeout and the
``dag_processing.last_duration`` metric see. The baseline is the same measurement of
a minimal DAG (one ``@task``) written beside the run, so the number says what our
files add. ``cold_s`` is the whole import including ``airflow.sdk``, for reference.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from receivables.demo import airflow_env
from receivables.settings import PROJECT_ROOT

MINIMAL_DAG = '''\
import pendulum
from airflow.sdk import dag, task


@dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1), tags=["bench"])
def minimal():
    @task
    def hello() -> int:
        return 1

    hello()


minimal()
'''

PROBE = '''\
import importlib.util, json, sys, time
t0 = time.perf_counter()
import airflow.sdk  # what the DAG processor has imported before it parses a file
from airflow.sdk.definitions._internal.contextmanager import DagContext  # where @dag registers
t1 = time.perf_counter()
spec = importlib.util.spec_from_file_location("bench_dag_file", sys.argv[1])
module = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = module
DagContext.current_autoregister_module_name = spec.name  # as DagBag does
spec.loader.exec_module(module)
t2 = time.perf_counter()
dags = sorted(d.dag_id for d, _ in DagContext.autoregistered_dags)
print(json.dumps({"parse_s": t2 - t1, "cold_s": t2 - t0, "dags": dags}))
'''


def log(msg: str) -> None:
    print(f"[parse] {msg}", file=sys.stderr, flush=True)


def measure_file(path: Path, env: dict[str, str]) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-c", PROBE, str(path)], env=env, capture_output=True,
                         text=True, timeout=300, cwd=str(PROJECT_ROOT))
    if out.returncode != 0:
        raise RuntimeError(f"importing {path.name} failed: {out.stderr.strip()[-1500:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(repeats: int = 5, dag_files: list[Path] | None = None) -> dict[str, Any]:
    """Median parse seconds of each DAG file and of the minimal baseline DAG."""
    files = dag_files or sorted((PROJECT_ROOT / "dags").glob("*.py"))
    with tempfile.TemporaryDirectory(prefix="receivables-bench-parse-") as tmp:
        root = Path(tmp)
        baseline_file = root / "minimal_dag.py"
        baseline_file.write_text(MINIMAL_DAG)
        env = airflow_env(PROJECT_ROOT, root / "data", 1, 1)
        env["AIRFLOW_HOME"] = str(root / "airflow")
        env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{root / 'airflow' / 'airflow.db'}"
        measure_file(baseline_file, env)  # warm the page cache and the .pyc files
        samples: dict[str, list[dict[str, Any]]] = {p.name: [] for p in [baseline_file, *files]}
        for _ in range(repeats):
            for path in [baseline_file, *files]:  # interleaved, so load spikes hit all alike
                samples[path.name].append(measure_file(path, env))
    results = {}
    for name, runs in samples.items():
        results[name] = {
            "parse_s": round(statistics.median(r["parse_s"] for r in runs), 4),
            "cold_s": round(statistics.median(r["cold_s"] for r in runs), 4),
            "runs_s": [round(r["parse_s"], 4) for r in runs],
            "dags": runs[0]["dags"],
        }
        log(f"{name}: {results[name]['parse_s']:.3f} s (cold {results[name]['cold_s']:.2f} s)")
    baseline = results.pop(baseline_file.name)
    return {"repeats": repeats, "files": results, "baseline_minimal_dag": baseline,
            "worst_s": max(r["parse_s"] for r in results.values())}


if __name__ == "__main__":
    started = time.monotonic()
    print(json.dumps(run(), indent=1))
    log(f"done in {time.monotonic() - started:.0f}s")
