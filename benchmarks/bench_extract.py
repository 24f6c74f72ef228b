"""Benchmark 2: rows per second read through the 1C hook vs a raw HTTP loop (issue 8).

The emulator runs in its own process (the ``receivables emulator`` command, i.e. the
generator at the given scale), so that server and client do not share one GIL and the
numbers look like a client talking to a real 1C over loopback. Both sides read the same
pages of the big sets (every READ_SET with at least ``BIG_SET_ROWS`` rows at the
scale), with the same ``$select``, ``$orderby``, ``$top`` and ``$skip``:

- **hook**: :class:`~receivables.onec.hook.OneCODataHook` built from an
  ``AIRFLOW_CONN_ONEC_DEFAULT`` connection whose extra carries the page size, then
  ``extract.fetch_set`` per set, exactly as the extract task reads 1C (``fetch_frame``:
  retries, error checks, each page decoded by msgspec into the selected fields and turned
  into Arrow columns as it arrives, the repeating fields dictionary-encoded, de-duplication
  of rows repeated across pages, progress logging);
- **raw**: one keep-alive :mod:`http.client` connection, ``GET`` the same URLs,
  ``json.loads`` each body and keep a set's rows in one list: the least work that still
  yields every row of a set with the standard library (it does not build columns, so the
  page conversion of the hook counts as overhead; its decoder stays ``json.loads``, what
  a plain loop uses, so the hook's faster decoding counts in the hook's favour).

Overhead = raw rows/s / hook rows/s - 1. The raw loop also records how long the server
took to answer each page (time to the response headers: the emulator builds the whole
body before it sends them), so the report says how much of the time is the server's.
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from receivables.demo import BASE_PATH, PASSWORD, USER, free_port, stop_processes, wait_for_emulator

#: a set is "big" (worth timing) from this many rows at scale 1.0; smaller sets are one page
BIG_SET_ROWS = 40_000
#: the page sizes compared when choosing the default (ODataConfig.page_size)
PAGE_SIZES = (1000, 2000, 5000, 10000, 20000)


def log(msg: str) -> None:
    print(f"[extract] {msg}", file=sys.stderr, flush=True)


@contextmanager
def emulator_process(scale: float, *, seed: int = 1, end_date: str = "2026-11-20") -> Iterator[int]:
    """Run ``receivables emulator`` in a child process; yield its port; stop it."""
    port = free_port()
    exe = Path(sys.executable).parent / "receivables"
    proc = subprocess.Popen([str(exe), "emulator", "--port", str(port), "--scale", str(scale),
                             "--seed", str(seed), "--end-date", end_date],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_emulator(port, proc)
        yield port
    finally:
        stop_processes([proc])


def _set_sizes(port: int) -> dict[str, int]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("GET", "/_emulator/health")
        return json.loads(conn.getresponse().read())["sets"]
    finally:
        conn.close()


def _connection_uri(port: int, page_size: int) -> str:
    return json.dumps({
        "conn_type": "http", "host": "127.0.0.1", "port": port, "schema": "http",
        "login": USER, "password": PASSWORD,
        "extra": {"base_path": BASE_PATH, "timeout": 120, "page_size": page_size}})


def read_with_hook(port: int, sets: Sequence[str], page_size: int) -> dict[str, Any]:
    """Read `sets` through OneCODataHook (connection from the environment, as in a task)."""
    from receivables.extract import fetch_set
    from receivables.onec.hook import OneCODataHook

    os.environ["AIRFLOW_CONN_ONEC_BENCH"] = _connection_uri(port, page_size)
    started = time.perf_counter()
    rows = 0
    with OneCODataHook("onec_bench") as client:
        assert client.config.page_size == page_size
        for name in sets:
            rows += len(fetch_set(client, name))
    seconds = time.perf_counter() - started
    return {"rows": rows, "seconds": seconds, "rows_per_s": rows / seconds}


def read_raw(port: int, sets: Sequence[str], page_size: int) -> dict[str, Any]:
    """Read the same pages with http.client + json.loads, timing the server's share."""
    from receivables.extract import ORDER_BY
    from receivables.onec.schema import READ_SETS

    auth = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    headers = {"Authorization": auth, "Accept": "application/json"}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    started = time.perf_counter()
    rows = pages = 0
    server = 0.0
    try:
        for name in sets:
            kept: list[dict[str, Any]] = []  # a set's rows are kept, as the pipeline needs them
            skip = 0
            select = quote(",".join(READ_SETS[name]), safe=",")
            orderby = quote(ORDER_BY[name], safe=",")
            while True:
                query = f"$format=json&$select={select}&$orderby={orderby}&$top={page_size}&$skip={skip}"
                if skip == 0:
                    query += "&$inlinecount=allpages"
                sent = time.perf_counter()
                conn.request("GET", f"{BASE_PATH}/{quote(name)}?{query}", headers=headers)
                resp = conn.getresponse()
                server += time.perf_counter() - sent
                body = resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"raw GET {name}: HTTP {resp.status}: {body[:200]!r}")
                page = json.loads(body)["value"]
                kept.extend(page)
                pages += 1
                skip += len(page)
                if len(page) < page_size:
                    break
            rows += len(kept)
            del kept
    finally:
        conn.close()
    seconds = time.perf_counter() - started
    return {"rows": rows, "pages": pages, "seconds": seconds, "rows_per_s": rows / seconds,
            "server_seconds": server, "server_share": server / seconds}


def measure(port: int, sets: Sequence[str], page_size: int, repeats: int) -> dict[str, Any]:
    """Median rows/s of hook and raw at one page size; the two alternate run by run."""
    hook_runs, raw_runs = [], []
    for i in range(repeats):
        # alternate which side goes first, so a slow spell of the shared machine hits both
        order = ("hook", "raw") if i % 2 == 0 else ("raw", "hook")
        for side in order:
            if side == "hook":
                hook_runs.append(read_with_hook(port, sets, page_size))
            else:
                raw_runs.append(read_raw(port, sets, page_size))
    if any(h["rows"] != r["rows"] for h, r in zip(hook_runs, raw_runs, strict=True)):
        raise RuntimeError(f"hook and raw read different row counts: {hook_runs} vs {raw_runs}")
    hook = statistics.median(r["rows_per_s"] for r in hook_runs)
    raw = statistics.median(r["rows_per_s"] for r in raw_runs)
    return {
        "page_size": page_size,
        "rows": hook_runs[0]["rows"],
        "pages": raw_runs[0]["pages"],
        "hook_rows_per_s": round(hook),
        "raw_rows_per_s": round(raw),
        "overhead": round(raw / hook - 1, 4),
        "server_share_of_raw": round(statistics.median(r["server_share"] for r in raw_runs), 3),
        "hook_runs_rows_per_s": [round(r["rows_per_s"]) for r in hook_runs],
        "raw_runs_rows_per_s": [round(r["rows_per_s"]) for r in raw_runs],
    }


def run(scale: float = 1.0, repeats: int = 3, page_sizes: Sequence[int] = PAGE_SIZES,
        big_set_rows: int | None = None) -> dict[str, Any]:
    """The extraction benchmark: every page size, then the verdict at the configured default."""
    from receivables.onec.client import ODataConfig
    from receivables.onec.schema import READ_SETS

    default = ODataConfig(base_url="").page_size
    sizes = sorted(set(page_sizes) | {default})
    threshold = big_set_rows if big_set_rows is not None else max(1, int(BIG_SET_ROWS * scale))
    # the per-page progress lines of the client would swamp stderr
    logging.getLogger("receivables.onec.client").setLevel(logging.WARNING)
    log(f"starting the emulator at scale {scale} (generating the company) ...")
    with emulator_process(scale) as port:
        counts = _set_sizes(port)
        sets = [n for n in READ_SETS if counts.get(n, 0) >= threshold]
        log(f"big sets ({sum(counts[n] for n in sets):,} rows): {', '.join(sets)}")
        # warm up: the emulator's sort caches, the imports and the connection lookup of the hook
        read_raw(port, sets, default)
        read_with_hook(port, sets, default)
        by_size = {}
        for size in sizes:
            by_size[size] = measure(port, sets, size, repeats)
            m = by_size[size]
            log(f"page {size:>6}: hook {m['hook_rows_per_s']:>7,} rows/s, raw {m['raw_rows_per_s']:>7,} rows/s, "
                f"overhead {m['overhead']:+.1%}, server share {m['server_share_of_raw']:.0%}")
    best = max(by_size.values(), key=lambda m: m["hook_rows_per_s"])
    chosen = by_size[default]
    return {
        "scale": scale,
        "repeats": repeats,
        "sets": {n: counts[n] for n in sets},
        "rows": chosen["rows"],
        "default_page_size": default,
        "fastest_page_size": best["page_size"],
        "hook_rows_per_s": chosen["hook_rows_per_s"],
        "raw_rows_per_s": chosen["raw_rows_per_s"],
        "overhead": chosen["overhead"],
        "server_share_of_raw": chosen["server_share_of_raw"],
        "by_page_size": list(by_size.values()),
    }


if __name__ == "__main__":
    print(json.dumps(run(scale=float(sys.argv[1]) if len(sys.argv) > 1 else 1.0), indent=1))
