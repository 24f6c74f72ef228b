"""Every DAG imports fast, without cycles, with owners, tags, retries policy and docs."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import ROOT

DAG_FILES = sorted((ROOT / "dags").glob("*.py"))


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(ROOT / "dags"))


def test_every_dag_file_imports_without_errors(dagbag):
    """DagBag refuses a DAG with a cycle, so no import error also means no cycle."""
    assert dagbag.import_errors == {}
    assert {"receivables_daily", "receivables_single_order"} <= set(dagbag.dag_ids)


@pytest.mark.parametrize("dag_id", ["receivables_daily", "receivables_single_order"])
def test_dag_has_owner_tags_docs_and_serial_runs(dagbag, dag_id):
    dag = dagbag.dags[dag_id]
    assert dag.tags and "receivables" in dag.tags
    assert dag.doc_md and dag_id in dag.doc_md
    assert dag.max_active_runs == 1
    for task in dag.tasks:
        assert task.owner == "finance-it", task.task_id
    assert {"mode", "as_of"} <= set(dag.params)


def test_daily_dag_reads_like_the_data_flow(dagbag):
    dag = dagbag.dags["receivables_daily"]
    order = ["start", "extract", "validate", "aging", "plan", "choose_actions"]
    for upstream, downstream in zip(order, order[1:], strict=False):
        assert upstream in dag.get_task(downstream).upstream_task_ids, (upstream, downstream)
    branch = dag.get_task("choose_actions")
    assert branch.downstream_task_ids == {"send_emails", "create_tasks", "open_cases", "no_actions"}
    record = dag.get_task("record_outcomes")
    assert record.trigger_rule == "none_failed_min_one_success"
    assert {"send_emails", "create_tasks", "open_cases", "no_actions"} <= record.upstream_task_ids
    assert "record_outcomes" in dag.get_task("report").upstream_task_ids


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_dag_file_imports_no_heavy_modules(path):
    """DAG parsing must not load pandas, GX or the domain code (parse time matters)."""
    code = (
        "import sys, time, importlib.util\n"
        "import airflow.sdk\n"
        f"spec = importlib.util.spec_from_file_location('d', {str(path)!r})\n"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
        "heavy = [n for n in ('pandas', 'great_expectations', 'numpy', 'pyarrow', 'receivables.pipeline')"
        " if n in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"{path.name} imports {out.stdout.strip()} at parse time"
