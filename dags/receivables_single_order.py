"""
### receivables_single_order — apply the daily rules to one customer order

For operations (seed 000, item 5): give an order number as 1C shows it (e.g.
`ТД00-000123`); the run applies every rule exactly as `receivables_daily` does, as of
today, performs what is due for that order only, and says in the `plan` task's log why
nothing is due when nothing is.

**Params**: `order_number` (required), `mode` (`auto` acts for today, `live`, `dry_run`).
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag, task_group

from receivables import airflow_tasks as t


@dag(
    dag_id="receivables_single_order",
    schedule=None,
    start_date=pendulum.datetime(2026, 11, 1, tz="Europe/Moscow"),
    catchup=False,
    max_active_runs=1,
    default_args={"owner": "finance-it", "retries": 0},
    params={
        "order_number": Param(type="string", minLength=1, description="1C order Number, e.g. ТД00-000123"),
        "as_of": Param(None, type=["null", "string"], format="date", description="As-of date (default today)"),
        "mode": Param("auto", enum=["auto", "live", "dry_run"]),
    },
    tags=["receivables", "1c", "operations"],
    doc_md=__doc__,
)
def receivables_single_order():
    number = "{{ params.order_number }}"

    @task_group(group_id="infobase")
    def per_infobase(run):
        extracted = t.extract(run)
        aged = t.aging(t.validate(extracted), write_snapshot=False)
        planned = t.plan(aged, order_number=number)
        summary = t.record_outcomes(planned)
        [t.send_emails(planned), t.create_tasks(planned), t.open_cases(planned)] >> summary

    per_infobase.expand(run=t.start(order_number=number))


receivables_single_order()
