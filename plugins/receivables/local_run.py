"""The daily run's steps in one process, in the DAG's order, without Airflow.

For the CLI and for tests that need many runs quickly; the DAG calls the same
`pipeline` and `actions.perform` functions task by task.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from receivables import pipeline
from receivables.actions import perform
from receivables.extract import extract, run_dir


def run_once(*, as_of: dt.date, mode: str, run_id: str, data_dir: Path, client: Any, warehouse: Any,
             smtp: Any, templates_dir: Path, policy: Any | None = None, order_number: str | None = None,
             now: dt.datetime | None = None, today: dt.date | None = None) -> dict[str, Any]:
    """extract → validate → aging → plan → act → record; returns the run summary."""
    pol = policy or pipeline.policy()
    folder = run_dir(data_dir, as_of, run_id)
    run = pipeline.Run(as_of, run_id, mode, folder)
    extracted = extract(client, as_of, folder)
    pipeline.validate(run)
    aged = pipeline.aging(run, pol, warehouse, write_snapshot=order_number is None)
    acting = run.acting(pol, today=today)
    if acting and not warehouse.acquire_run_lock(as_of, run_id, stale_after=pipeline.STALE_AFTER):
        raise pipeline.RunRefused(pipeline.lock_message(warehouse, as_of))
    try:
        planned = pipeline.plan(run, pol, warehouse, now=now, today=today, order_number=order_number)
        results: dict[str, Any] = {}
        if planned["acting"]:
            if planned["to_act"]["email"]:
                results["email"] = perform.send_emails(run, warehouse, smtp, templates_dir)
            if planned["to_act"]["task"]:
                results["task"] = perform.create_tasks(run, pol, warehouse, client, templates_dir, now=now)
            if planned["to_act"]["case"]:
                results["case"] = perform.open_cases(run, pol, warehouse, client, templates_dir, now=now)
        stats = {"documents_read": extracted["documents_read"], **aged, **planned, "results": results}
        return pipeline.record(run, warehouse, stats)
    finally:
        if acting:
            warehouse.release_run_lock(as_of, run_id)
