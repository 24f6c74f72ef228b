"""TaskFlow tasks shared by the DAGs: thin wrappers over `receivables.pipeline`.

Only `airflow.sdk` is imported at module level so DAG files parse fast; pandas, Great
Expectations and SQLAlchemy are imported inside the tasks that need them.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import get_current_context, task

TASK_IDS = {"email": "send_emails", "task": "create_tasks", "case": "open_cases"}
NO_ACTIONS = "no_actions"


def _run(run: dict[str, str]):
    from receivables.pipeline import Run

    return Run.from_dict(run)


@task
def start(order_number: str | None = None) -> dict[str, str]:
    """Resolve the as-of date and mode, load the policy (fail early), make the run folder."""
    from airflow.sdk.exceptions import AirflowSkipException

    from receivables import pipeline, settings
    from receivables.domain.calendar import get_calendar
    from receivables.extract import run_dir

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
    run_id = dag_run.run_id + (f"__{order_number}" if order_number else "")
    folder = run_dir(settings.data_dir(), as_of, run_id)
    folder.mkdir(parents=True, exist_ok=True)
    run = pipeline.Run(as_of, run_id, mode, folder)
    print(f"as of {as_of}, mode {mode}, acting={run.acting(pol)}, folder {folder}")
    return run.to_dict()


@task
def extract(run: dict[str, str]) -> dict[str, Any]:
    """Read the 1C publication (onec_default) into the run's Parquet extract."""
    import datetime as dt

    from receivables import extract as ex
    from receivables.connections import onec_client

    r = _run(run)
    with onec_client() as client:
        stats = ex.extract(client, r.as_of, r.folder, extracted_on=dt.date.today())
    stats.pop("paths", None)
    return stats


@task
def validate(run: dict[str, str], extracted: dict[str, Any]) -> dict[str, Any]:
    """Great Expectations gate on the extract; bad data fails the run (no retry)."""
    from airflow.sdk.exceptions import AirflowFailException

    from receivables import pipeline

    try:
        return pipeline.validate(_run(run))
    except pipeline.GateFailed as exc:
        raise AirflowFailException(str(exc)) from None


@task
def aging(run: dict[str, str], validated: dict[str, Any], write_snapshot: bool = True) -> dict[str, Any]:
    """Compute the aging snapshot and replace that date's rows in the warehouse."""
    from airflow.sdk.exceptions import AirflowFailException

    from receivables import pipeline
    from receivables.connections import warehouse

    try:
        return pipeline.aging(_run(run), pipeline.policy(), warehouse(), write_snapshot=write_snapshot)
    except pipeline.GateFailed as exc:
        raise AirflowFailException(str(exc)) from None


@task
def plan(run: dict[str, str], aged: dict[str, Any], order_number: str | None = None) -> dict[str, Any]:
    """Who is due for what, and why not for the rest; takes the date's run lock when acting."""
    from airflow.sdk.exceptions import AirflowFailException

    from receivables import pipeline
    from receivables.connections import warehouse

    r = _run(run)
    pol = pipeline.policy()
    wh = warehouse()
    if r.acting(pol) and not wh.acquire_run_lock(r.as_of, r.run_id, infobase=r.infobase,
                                                 stale_after=pipeline.STALE_AFTER):
        raise AirflowFailException(pipeline.lock_message(wh, r.as_of, infobase=r.infobase))
    stats = pipeline.plan(r, pol, wh, order_number=order_number)
    for line in stats.pop("explanation", []):
        print(line)
    return stats


def no_actions():
    """The branch target when nothing is to be done (or the run does not act)."""
    from airflow.providers.standard.operators.empty import EmptyOperator

    return EmptyOperator(task_id=NO_ACTIONS)


@task.branch
def choose_actions(planned: dict[str, Any]) -> list[str]:
    """Follow only the action tasks that have something to do (none when not acting)."""
    from receivables.pipeline import branch_targets

    return branch_targets(planned, TASK_IDS, NO_ACTIONS)


@task(task_id=TASK_IDS["email"])
def send_emails(run: dict[str, str]) -> dict[str, int]:
    """Email reminders through smtp_default, one letter per partner."""
    from receivables import settings
    from receivables.actions.perform import send_emails as send
    from receivables.connections import smtp_settings, warehouse

    return send(_run(run), warehouse(), smtp_settings(), settings.templates_dir())


@task(task_id=TASK_IDS["task"])
def create_tasks(run: dict[str, str]) -> dict[str, int]:
    """Tasks for managers in 1C (Task_ЗадачаИсполнителя)."""
    from receivables import pipeline, settings
    from receivables.actions.perform import create_tasks as create
    from receivables.connections import onec_client, warehouse

    with onec_client() as client:
        return create(_run(run), pipeline.policy(), warehouse(), client, settings.templates_dir())


@task(task_id=TASK_IDS["case"])
def open_cases(run: dict[str, str]) -> dict[str, int]:
    """Debt cases in 1C (the policy's case_target)."""
    from receivables import pipeline, settings
    from receivables.actions.perform import open_cases as open_
    from receivables.connections import onec_client, warehouse

    with onec_client() as client:
        return open_(_run(run), pipeline.policy(), warehouse(), client, settings.templates_dir())


@task(trigger_rule="none_failed_min_one_success")
def record_outcomes(run: dict[str, str], extracted: dict[str, Any], aged: dict[str, Any],
                    planned: dict[str, Any]) -> dict[str, Any]:
    """Counts by action and status into the log and run_summary; releases the run lock."""
    from receivables import pipeline
    from receivables.connections import warehouse

    r = _run(run)
    wh = warehouse()
    stats = {"documents_read": extracted.get("documents_read", 0), **aged, **planned}
    try:
        return pipeline.record(r, wh, stats)
    finally:
        wh.release_run_lock(r.as_of, r.run_id, infobase=r.infobase)


@task
def report(run: dict[str, str], summary: dict[str, Any]) -> str:
    """The analysts' report of the run (HTML and workbook) in the run folder."""
    from receivables import pipeline
    from receivables.connections import onec_client, warehouse
    from receivables.onec.client import ODataError

    with onec_client() as client:
        try:
            return pipeline.write_report(_run(run), warehouse(), summary, client=client)
        except ODataError as exc:  # the report must not fail the run because 1C is busy now
            print(f"case stages not read back from 1C: {exc}")
            return pipeline.write_report(_run(run), warehouse(), summary)
