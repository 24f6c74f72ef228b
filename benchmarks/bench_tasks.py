"""The pipeline's tasks at scale, each in its own process as on a worker: time and peak RSS.

Not part of ``make bench`` (about 5 minutes at 1M open documents, and it needs PostgreSQL):
the numbers behind docs/production.md's sizing table.

    python -m benchmarks.bench_tasks --url postgresql+psycopg2://postgres@127.0.0.1:5432/scale [--size 1000000]

The input is `bench_compute`'s (the generator's companies, cached under benchmarks/.cache/):
its raw frames stand for what `extract.fetch_raw` reads from 1C, so ``extract`` here is
normalising and writing the run's Parquet, without the HTTP reads. Then ``validate``,
``aging``, ``plan`` (live, the policy of `bench_compute`, the warehouse empty before) and
``report`` run as the DAG's tasks call them (`receivables.pipeline`), each in a fresh
interpreter. The warehouse database at `--url` should be empty: its tables are created.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
STEPS = ("extract", "validate", "aging", "plan", "report")


def _step(step: str, url: str, folder: Path, size: int) -> dict[str, Any]:
    """One step in this process (the child's side)."""
    from benchmarks.bench_compute import AS_OF, END, POLICY, load_frames
    from receivables import pipeline
    from receivables.domain.policy import parse_policy
    from receivables.store.warehouse import Warehouse

    run = pipeline.Run(AS_OF, f"bench-tasks-{size}", "live", folder)
    policy = parse_policy(POLICY, templates_dir=ROOT / "include" / "templates")
    wh = Warehouse(url)
    out: dict[str, Any] = {}
    if step == "extract":
        from receivables.domain.normalise import as_of_view, normalise
        from receivables.extract import write_frames

        raw, _ = load_frames(size)
        out["input_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
        started = time.perf_counter()
        frames = as_of_view(normalise(raw, consume=True), AS_OF, extracted_on=END)  # as the extract does
        del raw
        write_frames(frames, folder / "extract")
        out["rows"] = {name: len(df) for name, df in frames.items()}
    else:
        started = time.perf_counter()
        if step == "validate":
            out = pipeline.validate(run)
        elif step == "aging":
            wh.create_schema()
            out = {k: v for k, v in pipeline.aging(run, policy, wh).items() if k in ("open_documents", "outstanding")}
        elif step == "plan":
            now = dt.datetime.combine(AS_OF, dt.time(11), tzinfo=policy.tz)
            out = {k: v for k, v in pipeline.plan(run, policy, wh, now=now, today=AS_OF).items()
                   if k in ("to_act", "decisions")}
        elif step == "report":
            from receivables.reports.report import write_report

            xlsx, _ = write_report(wh, AS_OF, folder / "report")
            out = {"xlsx_mb": round(xlsx.stat().st_size / 2**20, 1)}
    return {"step": step, "seconds": round(time.perf_counter() - started, 1),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024, **out}


def run(url: str, size: int = 1_000_000) -> list[dict[str, Any]]:
    results = []
    with tempfile.TemporaryDirectory(prefix="receivables-bench-tasks-") as tmp:
        for step in STEPS:
            proc = subprocess.run([sys.executable, "-m", "benchmarks.bench_tasks", "--one", step, "--url", url,
                                   "--size", str(size), "--folder", tmp], cwd=ROOT, capture_output=True, text=True)
            if proc.returncode != 0:
                results.append({"step": step, "error": (proc.stderr.strip().splitlines() or ["?"])[-1]})
                break
            results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            print(json.dumps(results[-1], ensure_ascii=False), file=sys.stderr, flush=True)
    return results


if __name__ == "__main__":
    ap = argparse.ArgumentParser(prog="python -m benchmarks.bench_tasks", description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", required=True, help="SQLAlchemy URL of an empty warehouse database")
    ap.add_argument("--size", type=int, default=1_000_000, help="open documents (default 1M)")
    ap.add_argument("--one", choices=STEPS, help=argparse.SUPPRESS)
    ap.add_argument("--folder", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(_step(args.one, args.url, Path(args.folder), args.size), ensure_ascii=False, default=str))
    else:
        print(json.dumps(run(args.url, args.size), ensure_ascii=False, indent=1, default=str))
