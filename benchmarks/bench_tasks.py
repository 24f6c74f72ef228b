"""The pipeline's tasks at scale, each in its own process as on a worker: time and peak RSS.

Not part of ``make bench`` (about 5 minutes at 1M open documents, and it needs PostgreSQL):
the numbers behind docs/production.md's sizing table.

    python -m benchmarks.bench_tasks --url postgresql+psycopg2://postgres@127.0.0.1:5432/scale [--size 1000000]

The input is `bench_compute`'s (the generator's companies, cached under benchmarks/.cache/):
its raw frames, per set, stand for what `extract.fetch_set` reads from 1C, so ``extract`` here is
the extract task's set-by-set normalising and writing of the run's Parquet (`normalise_as_of`), with
each set read from a local pickle of the companies' raw frames instead of over HTTP. Then ``validate``,
``aging``, ``plan`` (live, the policy of `bench_compute`, the warehouse empty before) and
``report`` run as the DAG's tasks call them (`receivables.pipeline`), each in a fresh
interpreter. The warehouse database at `--url` should be empty: its tables are created.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import pickle
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
STEPS = ("extract", "validate", "aging", "plan", "report")


def _step(step: str, url: str, folder: Path, size: int) -> dict[str, Any]:
    """One step in this process (the child's side)."""
    from benchmarks.bench_compute import AS_OF, END, POLICY, _reset_peak, _status
    from receivables import pipeline
    from receivables.domain.policy import parse_policy
    from receivables.store.warehouse import Warehouse

    run = pipeline.Run(AS_OF, f"bench-tasks-{size}", "live", folder)
    policy = parse_policy(POLICY, templates_dir=ROOT / "include" / "templates")
    wh = Warehouse(url)
    out: dict[str, Any] = {}
    if step == "extract":
        from receivables.domain.frames import release_memory
        from receivables.domain.normalise import normalise_as_of
        from receivables.extract import FrameWriter

        sets = _raw_sets(size, folder / "raw")
        reading = [0.0]

        def fetch(name: str) -> Any:  # (the stand-in for 1C's answers, timed apart)
            t0 = time.perf_counter()
            df = sets(name)
            reading[0] += time.perf_counter() - t0
            return df

        gc.collect()
        release_memory()
        peak_reset = _reset_peak()  # the peak from here: the split's own is not the task's
        started = time.perf_counter()
        writer = FrameWriter(folder / "extract")  # as the extract task writes each frame and lets it go
        try:
            normalise_as_of(fetch, AS_OF, writer, extracted_on=END)
        finally:
            writer.close()
        out["rows"] = writer.rows
        out["read_seconds"] = round(reading[0], 1)  # of `seconds`: reading the raw sets' pickles
        if peak_reset:
            out["peak_rss_mb"] = _status("VmHWM") // 1024
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
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024, **out}  # (extract: its own)


def _raw_sets(size: int, folder: Path) -> Callable[[str], Any]:
    """The extract's reads of 1C: each company's raw frames (`bench_compute.raw_frames`) pickled
    per set, one company at a time (untimed); the function given reads one set of every company,
    their frames concatenated (as one infobase's), as `extract.fetch_set` reads a set from 1C."""
    from benchmarks.bench_compute import _cached, _pages, companies, raw_frames
    from receivables.domain.frames import concat_frames

    seeds = [seed for seed, _ in companies(size)]
    for seed, scale in companies(size):
        (folder / str(seed)).mkdir(parents=True, exist_ok=True)
        for name, df in raw_frames(_pages(_cached(seed, scale))).items():
            with (folder / str(seed) / f"{name}.pkl").open("wb") as fh:
                pickle.dump(df, fh, protocol=pickle.HIGHEST_PROTOCOL)
        gc.collect()

    def read(name: str) -> Any:
        dfs = []
        for seed in seeds:
            with (folder / str(seed) / f"{name}.pkl").open("rb") as fh:
                dfs.append(pickle.load(fh))
        return dfs[0] if len(dfs) == 1 else concat_frames(dfs)

    return read


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
