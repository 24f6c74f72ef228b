"""
### receivables_daily — collect receivables from 1C every working day

Reads customer orders, payment schedules, payments, partners and contacts from the 1C
publication (`onec_default`), validates them, computes aging as of the run's date, plans
who is due for what under the policy (`RECEIVABLES_POLICY`), then emails customers
(`smtp_default`), creates tasks for managers and opens debt cases in 1C, recording every
outcome in the warehouse (`receivables_db`).

**Params**: `as_of` (date; default: the logical date in the policy's time zone) and
`mode`: `auto` acts only when `as_of` is today (backfills and catch-up runs only compute
and record), `live` always acts, `dry_run` never acts and records what it would do.

Several 1C infobases (or organisations published separately): list their connection
ids in the Variable `receivables_infobases` (JSON list) or the policy's `infobases`; the
`infobase` task group is mapped over them, so each infobase runs in parallel on the
workers and its results are tagged with its name. An action with nothing to do for an
infobase skips itself.

Scheduled at 09:00 Moscow Monday to Saturday; a scheduled run on a day that is not a
Russian working day skips itself (working Saturdays run).
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag, task_group
from airflow.timetables.trigger import CronTriggerTimetable

from receivables import airflow_tasks as t

MOSCOW = pendulum.timezone("Europe/Moscow")


@dag(
    dag_id="receivables_daily",
    schedule=CronTriggerTimetable("0 9 * * 1-6", timezone=MOSCOW),
    start_date=pendulum.datetime(2026, 11, 1, tz=MOSCOW),
    catchup=False,
    max_active_runs=1,
    default_args={"owner": "finance-it", "retries": 2, "retry_delay": pendulum.duration(minutes=5)},
    params={
        "as_of": Param(None, type=["null", "string"], format="date", description="As-of date (YYYY-MM-DD)"),
        "mode": Param("auto", enum=["auto", "live", "dry_run"], description="auto | live | dry_run"),
    },
    tags=["receivables", "1c"],
    doc_md=__doc__,
)
def receivables_daily():
    @task_group(group_id="infobase")
    def per_infobase(run):
        extracted = t.extract(run)
        aged = t.aging(t.validate(extracted))
        planned = t.plan(aged)
        summary = t.record_outcomes(planned)
        [t.send_emails(planned), t.create_tasks(planned), t.open_cases(planned)] >> summary
        t.report(summary)

    per_infobase.expand(run=t.start())


receivables_daily()
