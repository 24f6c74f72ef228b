"""The run's steps as plain functions: the DAG's tasks call these, so do the CLI and tests.

extract → validate → aging → plan → act (email / task / case) → record → report.
Frames travel as Parquet files in the run's folder; functions return small dicts.
No Airflow imports: connections arrive as ready clients and settings.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from receivables import settings
from receivables.domain.aging import compute_aging
from receivables.domain.frames import (
    categorical_text,
    concat_frames,
    lexsort,
    sort_key,
    used_categories,
)
from receivables.domain.plan import PART_DOCUMENTS, PLAN_FRAMES, explain, plain_text, plan_parts
from receivables.domain.policy import Policy, load_policy
from receivables.extract import SNAPSHOT, read_for_aging, read_frames, read_snapshot

log = logging.getLogger(__name__)

MODES = ("auto", "live", "dry_run")
ACTIONS = ("email", "task", "case")


class GateFailed(Exception):
    """The validation gate stopped the run; nothing was contacted or created."""


class RunRefused(Exception):
    """Another run is acting for the same as-of date."""


@dataclass(frozen=True)
class Run:
    """Identity and mode of one run."""

    as_of: dt.date
    run_id: str
    mode: str
    folder: Path
    infobase: str = "default"
    conn_id: str = "onec_default"

    def acting(self, policy: Policy, *, today: dt.date | None = None) -> bool:
        """live acts; auto acts only for today's date in the policy zone; dry_run never."""
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        today = today or dt.datetime.now(policy.tz).date()
        return self.mode == "live" or (self.mode == "auto" and self.as_of == today)

    def to_dict(self) -> dict[str, str]:
        return {"as_of": self.as_of.isoformat(), "run_id": self.run_id, "mode": self.mode,
                "folder": str(self.folder), "infobase": self.infobase, "conn_id": self.conn_id}

    @classmethod
    def from_dict(cls, d: dict[str, str]) -> Run:
        return cls(dt.date.fromisoformat(d["as_of"]), d["run_id"], d["mode"], Path(d["folder"]),
                   d.get("infobase", "default"), d.get("conn_id", "onec_default"))


def infobase_runs(as_of: dt.date, run_id: str, mode: str, data_dir: Path, conn_ids: list[str]) -> list[Run]:
    """One run per 1C infobase: its own run id (so the register, the log, the lock and the
    summary tell infobases apart) and folder; the default infobase keeps the plain run id."""
    from receivables.domain.policy import check_infobases, infobase_label
    from receivables.extract import run_dir

    runs = []
    for conn_id in check_infobases(list(conn_ids)):
        label = infobase_label(conn_id)
        rid = run_id if label == "default" else f"{run_id}__{label}"
        runs.append(Run(as_of, rid, mode, run_dir(data_dir, as_of, rid), label, conn_id))
    return runs


def parse_infobases(value: str | None) -> list[str] | None:
    """The Airflow Variable ``receivables_infobases``: a JSON list or comma-separated ids."""
    if value is None or not str(value).strip():
        return None
    text = str(value).strip()
    if text.startswith("["):
        try:
            ids = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"Variable receivables_infobases is not a JSON list: {exc}") from None
        if not isinstance(ids, list):
            raise ValueError("Variable receivables_infobases must be a JSON list of connection ids")
    else:
        ids = [part.strip() for part in text.split(",") if part.strip()]
    from receivables.domain.policy import check_infobases

    try:
        return check_infobases(ids)
    except ValueError as exc:
        raise ValueError(f"Variable receivables_infobases: {exc}") from None


#: a pending claim or a run lock untouched this long belongs to a crashed run and is taken over
STALE_AFTER = dt.timedelta(minutes=30)


def lock_message(warehouse: Any, as_of: dt.date, *, infobase: str = "default") -> str:
    holder = warehouse.lock_holder(as_of, infobase=infobase)
    who = f"run {holder[0]} (since {holder[1]:%Y-%m-%d %H:%M} UTC)" if holder else "another run"
    return (f"{who} is acting for {as_of}; this run contacts nobody. Retry after it ends; a lock "
            "left by a crashed run is taken over by that run's retry or after 30 minutes")


def policy() -> Policy:
    return load_policy(settings.policy_path(), templates_dir=settings.templates_dir())


def resolve_as_of(param: str | None, logical: dt.datetime | None, run_after: dt.datetime | None,
                  tz: dt.tzinfo) -> dt.date:
    """The as-of date: the `as_of` param, else the logical date, else run_after, in `tz`."""
    if param:
        try:
            return dt.date.fromisoformat(str(param).strip())
        except ValueError:
            raise ValueError(f"param as_of must be a date like 2026-11-09, got {param!r}") from None
    moment = logical or run_after or dt.datetime.now(dt.UTC)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(tz).date()


# -- validate -------------------------------------------------------------------------

def validate(run: Run) -> dict[str, Any]:
    from receivables.validation import EXTRACT_READS, validate_extract

    frames = read_frames(run.folder / "extract", EXTRACT_READS, columns=EXTRACT_READS)
    report = validate_extract(frames, as_of=run.as_of)
    report.save(run.folder / "validation_extract.json")
    log.info("validation of the extract:\n%s", report.summary_text())
    if not report.success:
        raise GateFailed("validation gate failed, nothing was contacted:\n" + report.summary_text())
    return {"success": True, "checks": len(report.to_dict().get("results", []) or [])}


# -- aging ----------------------------------------------------------------------------

def aging(run: Run, pol: Policy, warehouse: Any, *, write_snapshot: bool = True) -> dict[str, Any]:
    from receivables.validation import validate_aging

    # the frames and columns aging reads (the sales below read the orders' among them)
    frames = read_for_aging(run.folder / "extract")
    snap = compute_aging(frames, run.as_of, bucket_bounds=pol.aging_buckets)
    report = validate_aging(snap, as_of=run.as_of, buckets=pol.bucket_labels())
    report.save(run.folder / "validation_aging.json")
    if not report.success:
        raise GateFailed("validation gate failed on aging, nothing was contacted:\n"
                         + report.summary_text())
    snap.to_parquet(run.folder / SNAPSHOT, index=False)
    rows = warehouse.replace_snapshot(run.as_of, snap, infobase=run.infobase) if write_snapshot else len(snap)
    by_bucket = snap.groupby("bucket")["outstanding"].sum()
    orders = frames["orders"]
    live = orders["posted"] & ~orders["deleted"]
    as_of_ts = pd.Timestamp(run.as_of)

    def sales(days: int) -> int:
        recent = live & (orders["document_date"] > as_of_ts - pd.Timedelta(days=days))
        return int(orders.loc[recent, "amount"].fillna(0).astype("int64").sum())

    return {
        "sales_30d": sales(30),
        "sales_90d": sales(90),
        "open_documents": int(rows),
        "outstanding": int(snap["outstanding"].sum()),
        "by_bucket": {str(k): int(v) for k, v in by_bucket.items()},
    }


# -- plan -----------------------------------------------------------------------------

def plan(run: Run, pol: Policy, warehouse: Any, *, now: dt.datetime | None = None,
         today: dt.date | None = None, order_number: str | None = None,
         part_documents: int = PART_DOCUMENTS) -> dict[str, Any]:
    """Build and store the plan; log decisions; register skips (and plans in dry_run).

    The plan is built in parts of about `part_documents` documents (`plan_parts`), each written
    to plan.parquet as it comes, so the task holds a part's candidates at a time (a million open
    documents plan 4.6M rows); the warehouse's plan table then takes them back from the file.
    With `order_number`, only that order is planned and acted on, and the result explains its rows.
    """
    frames = read_frames(run.folder / "extract", PLAN_FRAMES)
    snap = read_snapshot(run.folder)
    if order_number:  # every check is of one document: the order's plan is its rows of the whole one
        snap = snap.loc[snap["document_number"].eq(order_number).to_numpy()].reset_index(drop=True)
    register = warehouse.read_register(sent_or_failed=True)  # (rows neither sent nor failed tell it nothing)
    acting = run.acting(pol, today=today)
    when = (now or dt.datetime.now(dt.UTC)) if acting else None
    path = run.folder / "plan.parquet"
    leaving = _Leaving(whole_rows=order_number is not None)
    with _PartsFile(path) as file:
        for part in plan_parts(snap, frames, pol, register, run.as_of, now=when, part_documents=part_documents):
            file.write(part)
            leaving.add(part)
            del part
    del snap
    explanation: list[str] = []
    if order_number:
        orders = read_frames(run.folder / "extract", ["orders"], filters=[("document_number", "==", order_number)])
        explanation = explain(concat_frames(leaving.rows), order_number, orders["orders"], run.as_of)
        (run.folder / "explanation.txt").write_text("\n".join(explanation) + "\n", encoding="utf-8")
    else:
        # the file is finished before anything is logged, so a failed write never leaves logged
        # rows that the task's retry would log again. (Building the parts for the table as they came,
        # beside its COPY, was slower on 2 cores: 26-28 s for the two against 22-23, and 1.8 GB.)
        warehouse.replace_plan(run.as_of, run.run_id, path)
    act, decided = concat_frames(leaving.act), concat_frames(leaving.decided)
    decisions, reasons = leaving.counts("decision"), leaving.counts("reason")
    leaving.clear()
    log_rows = pd.concat([act.assign(outcome="planned" if not acting else "due"),
                          decided.assign(outcome=categorical_text(decided["decision"]))], ignore_index=True)
    # in the order of the log's (document_ref, step_id) index: a btree fed in key order stays in
    # cache (at a million open documents PostgreSQL takes the ~1.4M rows in 13-15 s instead of 20)
    log_rows = log_rows.take(lexsort((sort_key(log_rows["step_id"]), sort_key(log_rows["document_ref"]))))
    warehouse.append_log(_log_frame(log_rows, run, detail_col="reason"))
    del log_rows
    if acting or run.mode == "dry_run":
        status = {"skip": "skipped", "superseded": "superseded"}
        to_register = plain_text(decided.loc[decided["decision"].isin(list(status)).to_numpy()]).assign(
            status=lambda d: d["decision"].map(status))
        if run.mode == "dry_run":
            to_register = pd.concat([to_register, plain_text(act).assign(status="planned")], ignore_index=True)
        if len(to_register):
            warehouse.record_decisions(_register_frame(to_register), run_id=run.run_id, as_of=run.as_of,
                                       infobase=run.infobase)
    counts = {a: int(act["action"].eq(a).sum()) for a in ACTIONS}
    return {
        "acting": acting,
        "mode": run.mode,
        "to_act": counts,
        "decisions": decisions,
        "reasons": reasons,
        "explanation": explanation,
    }


class _Leaving:
    """What leaves the plan besides its file and table, gathered part by part: the rows the log and
    the register take (the plan keeps few-valued columns as categories, plan.CATEGORY_COLUMNS, shared
    by its parts; the rows leaving take only the columns those keep: a million open documents log
    ~1.4M rows, every column of them as text held ~2 GB), the counts, and with `whole_rows` every
    row (an explained order's)."""

    def __init__(self, *, whole_rows: bool) -> None:
        self.whole_rows = whole_rows
        self.clear()

    def clear(self) -> None:
        self.act: list[pd.DataFrame] = []
        self.decided: list[pd.DataFrame] = []
        self.rows: list[pd.DataFrame] = []
        self._counts: dict[str, list[pd.Series]] = {"decision": [], "reason": []}

    def add(self, part: pd.DataFrame) -> None:
        self.act.append(part.loc[part["decision"].eq("act").to_numpy(), _LEAVING])
        self.decided.append(part.loc[part["decision"].isin(["skip", "superseded", "hold"]).to_numpy(), _LEAVING])
        for col, counts in self._counts.items():
            counts.append(part[col].value_counts())
        if self.whole_rows:
            self.rows.append(part)

    def counts(self, col: str) -> dict[str, int]:
        """The parts' rows by their `col` (decision, reason), the values some row has, the most
        frequent first (as `value_counts` of the whole plan)."""
        total = pd.concat(self._counts[col]).groupby(level=0, observed=True).sum().sort_values(ascending=False)
        return {str(k): int(v) for k, v in total.items() if v}


class _PartsFile:
    """plan.parquet written part by part (a row group or more each), in place of the run's earlier
    one only once complete: the action tasks read it. (Written in a worker thread beside the next
    part's build, the plan task at a million documents took ~1 s less and 80 MB more.)"""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.partial = path.with_name(path.name + ".partial")
        self.writer: Any = None

    def __enter__(self) -> _PartsFile:
        return self

    def write(self, part: pd.DataFrame) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        # a part's categories are the whole plan's (`plan_parts`), the references' as many as the
        # documents: a row group stores a column's whole dictionary, so each keeps those it uses
        cats = [col for col in part.columns if isinstance(part[col].dtype, pd.CategoricalDtype)]
        table = pa.Table.from_pandas(part.assign(**{col: used_categories(part[col]) for col in cats}),
                                     preserve_index=False)
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.partial, table.schema)
        elif not table.schema.equals(self.writer.schema, check_metadata=False):
            table = table.cast(self.writer.schema)  # (the dictionaries' index types may differ)
        self.writer.write_table(table)

    def __exit__(self, kind: type[BaseException] | None, *_: Any) -> None:
        if self.writer is not None:
            self.writer.close()
        if kind is None and self.writer is not None:
            self.partial.replace(self.path)
        else:
            self.partial.unlink(missing_ok=True)


#: the plan's columns its rows take to the log (`_log_frame`) and the register (`_register_frame`)
_LEAVING = ["document_ref", "document_number", "partner_ref", "step_id", "action", "target", "decision", "reason"]


def nothing_to_do(plan_stats: dict[str, Any], action: str) -> str | None:
    """Why an action task has nothing to do for this plan (it then skips itself), or None."""
    if not plan_stats["acting"]:
        return (f"mode {plan_stats['mode']} as of {plan_stats.get('as_of', 'this date')}: this run does not act "
                "(auto acts only for today's date; dry_run never)")
    if not plan_stats["to_act"].get(action):
        return f"no {action} is due in this run"
    return None


def _register_frame(rows: pd.DataFrame) -> pd.DataFrame:
    cols = ["document_ref", "document_number", "partner_ref", "step_id", "action", "target", "status"]
    out = rows[[c for c in cols if c in rows.columns]].copy()
    out["detail"] = rows["reason"].to_numpy() if "reason" in rows else None
    return out


def _log_frame(rows: pd.DataFrame, run: Run, *, detail_col: str | None = None) -> pd.DataFrame:
    # the columns' arrays as they are (no index to align, text stays Arrow text: a plan at a
    # million open documents logs ~1.4M rows, as Python objects ~4 s)
    out = pd.DataFrame({
        "run_id": run.run_id,
        "as_of_date": run.as_of,
        "document_ref": rows["document_ref"].array,
        "document_number": rows["document_number"].array,
        "partner_ref": rows["partner_ref"].array,
        "step_id": rows["step_id"].array,
        "action": rows["action"].array,
        "target": rows["target"].array if "target" in rows else None,
        "outcome": rows["outcome"].array,
        "reason": rows[detail_col].array if detail_col and detail_col in rows else None,
        "detail": rows["detail"].array if "detail" in rows else None,
        "external_ref": rows["external_ref"].array if "external_ref" in rows else None,
        "mode": run.mode,
    })
    return out


def acting_rows(run: Run, action: str) -> pd.DataFrame:
    """The plan's rows that `action` acts on, read as such: at a million open documents the plan
    is 4.6M rows, an action's ~0.4M (the email task's peak 2.5 -> 0.9 GB reading them)."""
    p = pd.read_parquet(run.folder / "plan.parquet", filters=[("decision", "==", "act"), ("action", "==", action)])
    for col in ("document_date", "due_day", "due_date", "anchor_date"):
        p[col] = p[col].astype("datetime64[s]")
    return plain_text(p.reset_index(drop=True))


# -- record and report ----------------------------------------------------------------

def record(run: Run, warehouse: Any, stats: dict[str, Any]) -> dict[str, Any]:
    """Summarise the run's outcomes (counts by action and status) in the log and warehouse."""
    counts = warehouse.register_counts(run.run_id)
    stats = {k: v for k, v in stats.items() if k != "run"}
    summary = {"as_of": run.as_of.isoformat(), "run_id": run.run_id, "infobase": run.infobase, **stats,
               "outcomes": dict(sorted(counts.items()))}
    (run.folder / "summary.json").write_text(json.dumps(summary, ensure_ascii=False, indent=1,
                                                        default=str))
    warehouse.save_run_summary(
        run_id=run.run_id, as_of_date=run.as_of, mode=run.mode, acting=bool(stats.get("acting")),
        counts=summary["outcomes"], documents_read=int(stats.get("documents_read", 0)),
        open_documents=int(stats.get("open_documents", 0)),
        outstanding=int(stats.get("outstanding", 0)), sales_30d=stats.get("sales_30d"),
        sales_90d=stats.get("sales_90d"))
    log.info("run %s as of %s: %s", run.run_id, run.as_of, summary["outcomes"] or "no actions")
    return summary


def write_report(run: Run, warehouse: Any, summary: dict[str, Any], client: Any = None) -> str:
    """The analysts' report (workbook and HTML) for the run's date, in the run's folder;
    with a 1C client, the debt cases' stages are read back from 1C."""
    from receivables.reports.report import write_report as build

    pol = policy()
    templates = {s.id: s.template for _, _, s in pol.steps()}
    _, html = build(warehouse, run.as_of, run.folder / "report", bounds=pol.aging_buckets, run_id=run.run_id,
                    tz=pol.timezone, templates=templates, client=client, case_set=pol.case_target,
                    run={"run_id": run.run_id, "mode": run.mode, "acting": bool(summary.get("acting"))})
    return str(html)
