"""Performing the plan's actions exactly once per (document, step).

The protocol, the same for every action:
1. claim: the register rows become ``pending`` (an outbox) with the side effect's
   deterministic id (Message-ID, 1C Ref_Key) *before* anything happens;
2. the side effect, carrying that id;
3. complete: ``sent`` with ``sent_at`` (or ``failed`` with the reason).
A crash between 2 and 3 leaves ``pending`` rows: the next run redoes them with the
same id — 1C objects are looked up by Ref_Key first, so nothing is created twice; an
email goes out again with the same Message-ID, which mail systems collapse. Rows that
are ``sent`` are never claimed again; deleting the row or nulling ``sent_at`` re-arms.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from receivables import failpoints
from receivables.actions import email as mail
from receivables.actions.items import items_from_rows
from receivables.actions.onec_writes import (
    TextTemplates,
    WriteRequest,
    case_body,
    ensure_object,
    object_ref,
    task_body,
)
from receivables.domain.calendar import get_calendar
from receivables.domain.policy import Policy
from receivables.onec.client import ODataAuthError, ODataClient, ODataError
from receivables.pipeline import STALE_AFTER, Run, _log_frame, acting_rows

log = logging.getLogger(__name__)


def _claim(warehouse: Any, rows: pd.DataFrame, run: Run) -> pd.DataFrame:
    cols = ["document_ref", "document_number", "partner_ref", "step_id", "action", "target", "external_ref"]
    claimed = warehouse.claim(rows[cols], run_id=run.run_id, as_of=run.as_of, infobase=run.infobase,
                              stale_after=STALE_AFTER)
    if len(claimed) < len(rows):
        log.info("%d rows were already done by another run and are left alone", len(rows) - len(claimed))
    stored = claimed[["document_ref", "step_id", "external_ref", "was_pending"]]
    return rows.drop(columns="external_ref").merge(stored, on=["document_ref", "step_id"], how="inner")


def _finish(warehouse: Any, run: Run, rows: pd.DataFrame, status: str, detail: str,
            outcome: str) -> None:
    now = pd.Timestamp.now(tz="UTC")
    done = pd.DataFrame({
        "document_ref": rows["document_ref"].to_numpy(),
        "step_id": rows["step_id"].to_numpy(),
        "status": status,
        "sent_at": now if status == "sent" else pd.NaT,
        "external_ref": rows["external_ref"].to_numpy(),
        "detail": detail,
    })
    warehouse.complete(done, log=_log_frame(rows.assign(outcome=outcome, detail=detail), run, detail_col="reason"))


# -- email ----------------------------------------------------------------------------

def send_emails(run: Run, warehouse: Any, smtp: mail.SmtpSettings, templates_dir: Path, *,
                today: dt.date | None = None) -> dict[str, int]:
    rows = acting_rows(run, "email")
    if rows.empty:
        return {}
    renderer = mail.TemplateRenderer(templates_dir / "email")
    renderer.check(sorted(rows["template"].unique()))  # a broken template fails before any send
    letters = mail.letters_from_plan(rows)
    ids = {}
    for letter in letters:
        domain = letter.from_addr.rsplit("@", 1)[-1]
        mid = mail.message_id([(i.document_ref, i.step_id) for i in letter.items], domain)
        for i in letter.items:
            ids[(i.document_ref, i.step_id)] = mid
    rows["external_ref"] = [ids[(d, s)] for d, s in zip(rows["document_ref"], rows["step_id"], strict=True)]
    counts: dict[str, int] = {}
    # connect and log in first: a refused login or a dead server fails before any claim
    with mail.SmtpSender(smtp) as sender:
        rows = _claim(warehouse, rows, run)
        with _release_on_error(warehouse, run, rows) as done:
            # a crashed earlier attempt keeps its Message-ID: regroup by the stored id
            letters = ((group, letter, mid) for mid, group in rows.groupby("external_ref", sort=True)
                       for letter in mail.letters_from_plan(group))
            for group, letter, msg in mail.built_messages(letters, renderer, today=today or run.as_of):
                part = group.loc[group["partner_ref"].eq(letter.partner_ref)]
                if isinstance(msg, mail.BadAddress):
                    # an address 1C holds but mail cannot use: refused for good until it is fixed
                    _finish(warehouse, run, part, "failed", f"permanent: {msg}", "failed")
                    done.update(zip(part["document_ref"], part["step_id"], strict=True))
                    counts["permanent"] = counts.get("permanent", 0) + len(part)
                    continue
                result = sender.send(msg)
                failpoints.hit("after_email_sent")
                if result.status == "sent":
                    _finish(warehouse, run, part, "sent", f"{result.code or 250} {result.reason}".strip(), "sent")
                else:
                    _finish(warehouse, run, part, "failed", f"{result.status}: {result.code} {result.reason}",
                            "failed")
                done.update(zip(part["document_ref"], part["step_id"], strict=True))
                counts[result.status] = counts.get(result.status, 0) + len(part)
    return counts


@contextlib.contextmanager
def _release_on_error(warehouse: Any, run: Run, rows: pd.DataFrame):
    """If the batch stops on an error, its untouched claims become `failed` (temporary) at
    once, so the next run need not wait for them to go stale. (A SIGKILL skips this: the
    rows stay pending and the same run's retry, or any run 30 minutes later, takes over.)"""
    done: set[tuple[str, str]] = set()
    try:
        yield done
    except Exception as exc:
        keys = list(zip(rows["document_ref"], rows["step_id"], strict=True))
        left = rows.loc[[k not in done for k in keys]]
        if len(left):
            reason = " ".join(str(exc).split())[:300]
            _finish(warehouse, run, left, "failed", f"temporary: run stopped: {type(exc).__name__}: {reason}",
                    "failed")
        raise


# -- 1C tasks and cases ---------------------------------------------------------------

def _write(run: Run, warehouse: Any, client: ODataClient, rows: pd.DataFrame, kind: str,
           entity_set: str, make_body: Callable[[WriteRequest, str], dict[str, Any]],
           texts: TextTemplates, group_keys: list[str],
           enrich: Callable[[WriteRequest], None] | None = None) -> dict[str, int]:
    counts: dict[str, int] = {}
    if rows.empty:
        return counts
    refs = {}
    for _, group in rows.groupby(group_keys, sort=False):
        ref = object_ref(zip(group["document_ref"], group["step_id"], strict=True), kind)
        for idx in group.index:
            refs[idx] = ref
    rows = rows.assign(external_ref=pd.Series(refs))
    rows = _claim(warehouse, rows, run)
    with _release_on_error(warehouse, run, rows) as done:
        _write_groups(run, warehouse, client, rows, kind, entity_set, make_body, texts, enrich, counts, done)
    return counts


def _write_groups(run: Run, warehouse: Any, client: ODataClient, rows: pd.DataFrame, kind: str, entity_set: str,
                  make_body: Callable[[WriteRequest, str], dict[str, Any]], texts: TextTemplates,
                  enrich: Callable[[WriteRequest], None] | None, counts: dict[str, int],
                  done: set[tuple[str, str]]) -> None:
    for ref, group in rows.groupby("external_ref", sort=True):
        first = group.iloc[0]
        req = WriteRequest(
            kind=kind, ref=str(ref), template=first["template"], partner_ref=first["partner_ref"],
            partner_name=first["partner_name"], assignee_ref=first["assignee_ref"],
            assignee_name=first["target"], organization_name=first["organization_name"] or "",
            items=items_from_rows(group),
            deadline=get_calendar().add_working_days_date(run.as_of, int(first["deadline_business_days"] or 0)),
        )
        if enrich is not None:
            enrich(req)
        try:
            text = texts.render(req.template, req=req, items=req.items, today=run.as_of)
            obj, created = ensure_object(client, entity_set, req.ref, make_body(req, text))
        except ODataAuthError:
            raise  # every later write would fail the same way: stop, the claims are released
        except ODataError as exc:
            _finish(warehouse, run, group, "failed", f"temporary: {exc}", "failed")
            done.update(zip(group["document_ref"], group["step_id"], strict=True))
            counts["failed"] = counts.get("failed", 0) + len(group)
            continue
        failpoints.hit(f"after_{kind}_created")
        number = str(obj.get("Number") or obj.get("Code") or "").strip()
        note = ("created" if created else "already existed") + (f" №{number}" if number else "")
        _finish(warehouse, run, group, "sent", note, "sent")
        done.update(zip(group["document_ref"], group["step_id"], strict=True))
        counts["sent"] = counts.get("sent", 0) + len(group)


def create_tasks(run: Run, pol: Policy, warehouse: Any, client: ODataClient, templates_dir: Path,
                 *, now: dt.datetime | None = None) -> dict[str, int]:
    now = (now or dt.datetime.now(dt.UTC)).astimezone(pol.tz)
    rows = acting_rows(run, "task")
    return _write(run, warehouse, client, rows, "task", "Task_ЗадачаИсполнителя",
                  lambda req, text: task_body(req, text, now=now),
                  TextTemplates(templates_dir / "task"), ["document_ref", "step_id"])


def open_cases(run: Run, pol: Policy, warehouse: Any, client: ODataClient, templates_dir: Path,
               *, now: dt.datetime | None = None) -> dict[str, int]:
    now = (now or dt.datetime.now(dt.UTC)).astimezone(pol.tz)
    client.check_published({pol.case_target: ["Ref_Key", "Партнер_Key", "Ответственный_Key"]})
    rows = acting_rows(run, "case")
    return _write(run, warehouse, client, rows, "case", pol.case_target,
                  lambda req, text: case_body(pol.case_target, req, text, now=now),
                  TextTemplates(templates_dir / "case"), ["partner_ref", "step_id"],
                  enrich=_claims_for(run, pol, templates_dir))


def _claims_for(run: Run, pol: Policy, templates_dir: Path) -> Callable[[WriteRequest], None]:
    """Print the claim letter (HTML and PDF) for each case and carry its interest into the case."""
    from receivables import settings
    from receivables.domain.penalties import KeyRates
    from receivables.extract import read_frames, read_snapshot
    from receivables.reports.claim import ClaimSettings, build_claim, write_claim

    frames = read_frames(run.folder / "extract")
    aging = read_snapshot(run.folder)
    rates = KeyRates.load(settings.key_rates_path())
    claim_settings = ClaimSettings(**pol.claim.model_dump())

    def enrich(req: WriteRequest) -> None:
        refs = {i.document_ref for i in req.items}
        subset = aging.loc[aging["document_ref"].isin(refs)]
        try:
            claim = build_claim(frames, subset, partner_ref=req.partner_ref, as_of=run.as_of, rates=rates,
                                settings=claim_settings)
        except ValueError as exc:
            log.warning("no claim letter for case %s: %s", req.ref, exc)
            return
        _, pdf = write_claim(claim, run.folder / "claims", templates_dir / "claim", claim_settings)
        req.penalty = claim.interest
        req.claim_file = str(pdf)

    return enrich
