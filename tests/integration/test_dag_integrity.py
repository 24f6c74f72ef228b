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


@pytest.mark.parametrize("dag_id", ["receivables_daily", "receivables_single_order"])
def test_dag_reads_like_the_data_flow_mapped_over_infobases(dagbag, dag_id):
    dag = dagbag.dags[dag_id]
    group = dag.task_group_dict["infobase"]
    assert type(group).__name__ == "MappedTaskGroup", "each infobase runs as one mapped instance of the group"
    order = ["start", "infobase.extract", "infobase.validate", "infobase.aging", "infobase.plan"]
    for upstream, downstream in zip(order, order[1:], strict=False):
        assert upstream in dag.get_task(downstream).upstream_task_ids, (upstream, downstream)
    actions = {"infobase.send_emails", "infobase.create_tasks", "infobase.open_cases"}
    assert actions <= dag.get_task("infobase.plan").downstream_task_ids
    record = dag.get_task("infobase.record_outcomes")
    # actions with nothing to do skip themselves; the record runs unless one failed
    assert record.trigger_rule == "none_failed"
    assert actions <= record.upstream_task_ids
    if dag_id == "receivables_daily":
        assert "infobase.record_outcomes" in dag.get_task("infobase.report").upstream_task_ids


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
