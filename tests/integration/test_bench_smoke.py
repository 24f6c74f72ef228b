"""The issue 8 benchmarks run and return well-formed numbers (tiny sizes, no timing asserts).

What is checked is the shape of each result: both sides measured, rates positive, the
hook and the raw loop read the same rows, every message delivered, the DAG files
define their DAGs, the Airflow run's task times come from its database. How fast
anything is, is never asserted here: that is ``make bench``'s job.
"""

from __future__ import annotations

import math

import pytest

from receivables.settings import PROJECT_ROOT

bench_extract = pytest.importorskip("benchmarks.bench_extract")
bench_email = pytest.importorskip("benchmarks.bench_email")
bench_parse = pytest.importorskip("benchmarks.bench_parse")
bench_e2e = pytest.importorskip("benchmarks.bench_e2e")


def positive(x) -> bool:
    return isinstance(x, int | float) and math.isfinite(x) and x > 0


def test_extraction_measures_hook_and_raw_loop_over_the_same_rows():
    r = bench_extract.run(scale=0.02, repeats=1, page_sizes=(300,), big_set_rows=500)
    assert r["sets"] and all(n >= 500 for n in r["sets"].values())
    assert {row["page_size"] for row in r["by_page_size"]} == {300, r["default_page_size"]}
    for row in r["by_page_size"]:
        assert row["rows"] == sum(r["sets"].values())  # both sides read every row (checked inside)
        assert positive(row["hook_rows_per_s"]) and positive(row["raw_rows_per_s"])
        assert 0 < row["server_share_of_raw"] <= 1
        assert row["overhead"] == pytest.approx(row["raw_rows_per_s"] / row["hook_rows_per_s"] - 1, abs=1e-3)
    assert r["fastest_page_size"] in {300, r["default_page_size"]}


def test_email_measures_pipeline_sender_and_raw_smtplib():
    r = bench_email.run(n=8, repeats=1)  # raises unless the catcher saved all 8 messages of each loop
    assert r["messages"] == 8
    for side in ("pipeline", "sender", "raw"):
        assert positive(r[f"{side}_per_s"]), side
        assert positive(r["client_cpu_ms_per_message"][side]), side
    assert r["bytes_per_message"] > 1000


def test_letters_of_the_email_benchmark_are_distinct():
    letters = bench_email.make_letters(30)
    assert len({(lt.partner_ref, lt.to_addr) for lt in letters}) == 30
    assert len({lt.template for lt in letters}) == len(bench_email.TEMPLATES)


def test_parse_times_each_dag_file_and_the_minimal_baseline():
    daily = PROJECT_ROOT / "dags" / "receivables_daily.py"
    r = bench_parse.run(repeats=1, dag_files=[daily])
    assert list(r["files"]) == ["receivables_daily.py"]
    got = r["files"]["receivables_daily.py"]
    assert got["dags"] == ["receivables_daily"]
    assert positive(got["parse_s"]) and got["cold_s"] >= got["parse_s"]
    assert r["baseline_minimal_dag"]["dags"] == ["minimal"] and positive(r["baseline_minimal_dag"]["parse_s"])
    assert r["worst_s"] == got["parse_s"]


@pytest.mark.airflow
def test_end_to_end_reads_task_times_from_the_airflow_database():
    r = bench_e2e.run(scale=0.01, repeats=1)
    assert positive(r["wall_s"]) and positive(r["tasks_s_sum"])
    assert r["wall_s"] > r["tasks_s_sum"]  # the command's wall time contains every task
    assert any(k == "start" for k in r["task_s"])
    assert any(k.split("[")[0].endswith("extract") for k in r["task_s"])
    assert r["documents_read"] and r["documents_read"] > 0


@pytest.mark.postgres
def test_tasks_at_scale_run_every_task_in_its_own_process(tmp_path):
    """benchmarks.bench_tasks (docs/production.md's sizing): every task runs, each reports its
    time and peak memory, the plan acts on the documents aging found open."""
    from db_fixtures import postgres_database

    bench_tasks = pytest.importorskip("benchmarks.bench_tasks")
    with postgres_database() as url:
        steps = bench_tasks.run(url, size=2000)
    assert [s["step"] for s in steps] == list(bench_tasks.STEPS), steps
    assert all(s["seconds"] >= 0 and positive(s["peak_rss_mb"]) for s in steps)  # rounded to 0.1 s
    by = {s["step"]: s for s in steps}
    assert by["validate"]["success"] and by["aging"]["open_documents"] > 0 and by["report"]["xlsx_mb"] > 0
    assert sum(by["plan"]["to_act"].values()) > 0 and sum(by["plan"]["decisions"].values()) > 0


def test_compute_judges_the_median_of_its_runs_and_matches_the_reference():
    """benchmarks.bench_compute (issue 8, item 1): a size runs in its own process; its value is
    the median of its runs (the issue's definition), reported beside the best, and the same
    medians feed the targets and the reference's speed-up; the reference gives the same plan."""
    import statistics

    bench_compute = pytest.importorskip("benchmarks.bench_compute")
    out = bench_compute.run(sizes=(2000,), repeats=3)
    (size,) = out["sizes"]
    totals = size["seconds_all_totals"]
    assert len(totals) == 3 and size["open_documents"] > 0 and size["plan_rows"] >= size["open_documents"]
    assert size["seconds_median"]["total"] == pytest.approx(statistics.median(totals), abs=1e-3)
    assert size["seconds"]["total"] == pytest.approx(min(totals), abs=1e-3)
    by_kind = size["memory_by_kind_mb"]  # where the bytes are: the input's and the frames' references
    assert by_kind["input"]["reference_values"] >= by_kind["frames"]["reference_values"] > size["open_documents"]
    ref = size["reference"]
    assert ref["identical_aging"] and ref["identical_plan"], ref["differences"]
    assert ref["seconds"] == pytest.approx(statistics.median(ref["seconds_all_runs"]), abs=1e-3)
    assert ref["speedup"] == pytest.approx(ref["seconds"] / ref["vectorised_seconds"], rel=0.01, abs=0.06)  # (rounded)
    targets = out["targets"]
    assert targets["largest_completed_size"] == 2000 and targets["failed_sizes"] == []
    assert targets["seconds_le_5"] == (size["seconds_median"]["total"] <= 5)
    assert all(isinstance(v, bool) for k, v in targets.items() if k not in ("largest_completed_size", "failed_sizes"))


def test_memory_by_kind_tells_reference_text_from_other_text_and_prices_it_as_numbers():
    """bench_compute.memory_by_kind: a column whose every value is a 36-byte GUID is reference
    text (its values counted, priced at 16 bytes each), one with another length among them is
    other text, categoricals and numbers apart; MB as Arrow and numpy hold them."""
    import uuid

    import numpy as np
    import pandas as pd
    import pyarrow as pa

    bench_compute = pytest.importorskip("benchmarks.bench_compute")

    def text(values):  # as the client's raw frames hold text: Arrow's large_string
        return pd.Series(pa.array(values, pa.large_string()), dtype="str")

    n, missing = 100_000, 1000  # (sizes well clear of a rounding boundary)
    guids = [str(uuid.UUID(int=i + 1)) for i in range(n - missing)] + [None] * missing
    odd = [str(uuid.UUID(int=i + 1)) for i in range(n)]
    odd[7] = odd[7][:35]  # one value not a GUID's length: the column is not references
    frames = {
        "a": pd.DataFrame({"ref": text(guids),
                           "segment": pd.Categorical(np.array(["опт", "розница"])[np.arange(n) % 2])}),
        "b": pd.DataFrame({"odd": text(odd), "amount": np.arange(n, dtype="int64")}),
    }
    out = bench_compute.memory_by_kind(frames)
    assert out["reference_values"] == n - missing
    # 36 bytes of text a value and an 8-byte offset a row
    assert out["reference_text"] == round(((n - missing) * 36 + (n + 1) * 8) / 2**20)
    assert out["reference_as_numbers_mb"] == round((n - missing) * 16 / 2**20)
    assert out["other_text"] == round((n * 36 - 1 + (n + 1) * 8) / 2**20)
    assert out["numbers"] == round(n * 8 / 2**20) and out["categorical"] == 0  # a byte a code: 0.125 MB
    assert out["total"] == round(sum(out[k] for k in ("reference_text", "other_text", "categorical", "numbers")))


def test_compute_normalises_set_by_set_and_keeps_what_the_tasks_read(tmp_path):
    """bench_compute's compute is the pipeline's: every raw set read back once, when normalise asks
    for it; of each frame, what the aging and plan tasks read, equal to the whole as-of view's
    columns; aging on those gives the whole view's snapshot."""
    import pandas as pd

    bench_compute = pytest.importorskip("benchmarks.bench_compute")
    from receivables.domain.aging import AGING_READS, compute_aging
    from receivables.domain.normalise import as_of_view, normalise
    from receivables.domain.plan import PLAN_FRAMES
    from receivables.extract import frame_of_pages
    from receivables.onec.emulator.generator import generate_company
    from receivables.onec.schema import READ_SETS

    ds = generate_company(seed=3, scale=0.02, end_date=bench_compute.END)
    raw = {name: frame_of_pages(name, [[dict(r) for r in ds.rows(name)]]) for name in READ_SETS}
    read_set = bench_compute.spill_sets(raw, tmp_path)
    asked: list[str] = []

    def counted(name: str):
        asked.append(name)
        return read_set(name)

    kept, read_seconds = bench_compute.normalise_for_tasks(counted)
    assert sorted(asked) == sorted(READ_SETS) and read_seconds > 0
    whole = as_of_view(normalise(raw), bench_compute.AS_OF, extracted_on=bench_compute.END)
    assert set(kept) == set(AGING_READS) | set(PLAN_FRAMES)
    for name, df in kept.items():
        assert set(df.columns) <= set(AGING_READS.get(name, ())) | (set(whole[name]) if name in PLAN_FRAMES else set())
        pd.testing.assert_frame_equal(df, whole[name][list(df.columns)], obj=name)
    assert "document_ref" not in kept["stages"]  # every order keyed once: the stages join on their keys
    pd.testing.assert_frame_equal(compute_aging(kept, bench_compute.AS_OF), compute_aging(whole, bench_compute.AS_OF))
