"""TaskFlow tasks shared by the DAGs: thin wrappers over `receivables.pipeline`.

`start` makes one run per 1C infobase; the DAGs map a task group over them, so each
infobase extracts, validates, plans and acts in parallel on the workers. Every task of
the group passes on a small dict: the run and the stats gathered so far.

Only `airflow.sdk` is imported at module level so DAG files parse fast; pandas, Great
Expectations and SQLAlchemy are imported inside the tasks that need them.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import get_current_context, task

INFOBASES_VARIABLE = "receivables_infobases"

#: what every task of one infobase passes on: its run and the stats gathered so far (a small dict)
State = dict[str, Any]


def _run(state: State):
    from receivables.pipeline import Run

    return Run.from_dict(state["run"])


@task
def start(order_number: str | None = None) -> list[dict[str, str]]:
    """Resolve the as-of date and mode, load the policy (fail early), and make one run per
    1C infobase (the Variable receivables_infobases, else the policy's `infobases`)."""
    from airflow.sdk import Variable
    from airflow.sdk.exceptions import AirflowSkipException

    from receivables import pipeline, settings
    from receivables.domain.calendar import get_calendar

    ctx = get_current_context()
    params = ctx["params"]
    pol = pipeline.policy()
    dag_run = ctx["dag_run"]
    as_of = pipeline.resolve_as_of(params.get("as_of"), ctx.get("logical_date"),
                                   getattr(dag_run, "run_after", None), pol.tz)
    mode = params.get("mode") or "auto"
    scheduled = str(getattr(dag_run, "run_type", "")).endswith("scheduled")
    if scheduled and not get_calendar().is_working_date(as_of):
        raise AirflowSkipException(f"{as_of} is not a Russian working day: nothing to do")
    conn_ids = pipeline.parse_infobases(Variable.get(INFOBASES_VARIABLE, default=None)) or pol.infobases
    run_id = dag_run.run_id + (f"__{order_number}" if order_number else "")
    runs = pipeline.infobase_runs(as_of, run_id, mode, settings.data_dir(), conn_ids)
    for r in runs:
        r.folder.mkdir(parents=True, exist_ok=True)
        print(f"as of {as_of}, mode {mode}, acting={r.acting(pol)}, infobase {r.infobase} "
              f"({r.conn_id}), folder {r.folder}")
    return [r.to_dict() for r in runs]


@task
def extract(run: dict[str, str]) -> State:
    """Read one 1C publication into the run's Parquet extract."""
    import datetime as dt

    from receivables import extract as ex
    from receivables.connections import onec_client

    r = _run({"run": run})
    with onec_client(r.conn_id) as client:
        stats = ex.extract(client, r.as_of, r.folder, extracted_on=dt.date.today())
    stats.pop("paths", None)
    return {"run": run, **stats}


@task
def validate(extracted: State) -> State:
    """Great Expectations gate on the extract; bad data fails the run (no retry)."""
    from airflow.sdk.exceptions import AirflowFailException

    from receivables import pipeline

    try:
        return {**extracted, **pipeline.validate(_run(extracted))}
    except pipeline.GateFailed as exc:
        raise AirflowFailException(str(exc)) from None


@task
def aging(validated: State, write_snapshot: bool = True) -> State:
    """Compute the aging snapshot and replace that date's rows in the warehouse."""
    from airflow.sdk.exceptions import AirflowFailException

    from receivables import pipeline
    from receivables.connections import warehouse

    try:
        return {**validated, **pipeline.aging(_run(validated), pipeline.policy(), warehouse(),
                                              write_snapshot=write_snapshot)}
    except pipeline.GateFailed as exc:
        raise AirflowFailException(str(exc)) from None


@task
def plan(aged: State, order_number: str | None = None) -> State:
    """Who is due for what, and why not for the rest; takes the date's run lock when acting."""
    from airflow.sdk.exceptions import AirflowFailException

    from receivables import pipeline
    from receivables.connections import warehouse

    r = _run(aged)
    pol = pipeline.policy()
    wh = warehouse()
    if r.acting(pol) and not wh.acquire_run_lock(r.as_of, r.run_id, infobase=r.infobase,
                                                 stale_after=pipeline.STALE_AFTER):
        raise AirflowFailException(pipeline.lock_message(wh, r.as_of, infobase=r.infobase))
    stats = pipeline.plan(r, pol, wh, order_number=order_number)
    for line in stats.pop("explanation", []):
        print(line)
    return {**aged, **stats}


def _skip_unless_due(planned: State, action: str) -> None:
    """Skip the action task (visibly, in the grid) when its infobase has nothing for it."""
    from airflow.sdk.exceptions import AirflowSkipException

    from receivables.pipeline import nothing_to_do

    reason = nothing_to_do(planned, action)
    if reason:
        raise AirflowSkipException(reason)


@task
def send_emails(planned: State) -> dict[str, int]:
    """Email reminders through smtp_default, one letter per partner."""
    _skip_unless_due(planned, "email")
    from receivables import settings
    from receivables.actions.perform import send_emails as send
    from receivables.connections import smtp_settings, warehouse

    return send(_run(planned), warehouse(), smtp_settings(), settings.templates_dir())


def _write_to_1c(planned: State, action: str) -> dict[str, int]:
    """Tasks and cases are written to the infobase the plan came from."""
    _skip_unless_due(planned, action)
    from receivables import pipeline, settings
    from receivables.actions import perform
    from receivables.connections import onec_client, warehouse

    write = {"task": perform.create_tasks, "case": perform.open_cases}[action]
    r = _run(planned)
    with onec_client(r.conn_id) as client:
        return write(r, pipeline.policy(), warehouse(), client, settings.templates_dir())


@task
def create_tasks(planned: State) -> dict[str, int]:
    """Tasks for managers in 1C (Task_ЗадачаИсполнителя)."""
    return _write_to_1c(planned, "task")


@task
def open_cases(planned: State) -> dict[str, int]:
    """Debt cases in 1C (the policy's case_target)."""
    return _write_to_1c(planned, "case")


@task(trigger_rule="none_failed")
def record_outcomes(planned: State) -> dict[str, Any]:
    """Counts by action and status into the log and run_summary; releases the run lock.
    Runs when the actions succeeded or had nothing to do (skipped), not after a failure."""
    from receivables import pipeline
    from receivables.connections import warehouse

    r = _run(planned)
    wh = warehouse()
    try:
        return {"run": planned["run"], **pipeline.record(r, wh, planned)}
    finally:
        wh.release_run_lock(r.as_of, r.run_id, infobase=r.infobase)


@task
def report(summary: dict[str, Any]) -> str:
    """The analysts' report of the run (HTML and workbook) in the run folder."""
    from receivables import pipeline
    from receivables.connections import onec_client, warehouse
    from receivables.onec.client import ODataError

    r = _run(summary)
    with onec_client(r.conn_id) as client:
        try:
            return pipeline.write_report(r, warehouse(), summary, client=client)
        except ODataError as exc:  # the report must not fail the run because 1C is busy now
            print(f"case stages not read back from 1C: {exc}")
            return pipeline.write_report(r, warehouse(), summary)
