"""The `receivables` command (spec §7): preview, penalty, claim, report, rates, warehouse,
emulator, mailcatcher, demo.

Connections are Airflow's (``AIRFLOW_CONN_ONEC_DEFAULT``, ``…_RECEIVABLES_DB`` or the
metadata DB), so the CLI reads the same 1C and warehouse as the DAGs.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import sys
from collections.abc import Sequence


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


@contextlib.contextmanager
def logs_to_stderr():
    """Point file descriptor 1 at stderr while Airflow and the pipeline log, so that
    stdout carries only the command's answer (e.g. JSON for a script)."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def cmd_preview(args: argparse.Namespace) -> int:
    """What a run for the date would do and why, without doing it."""
    with logs_to_stderr():
        frames_plan, open_documents = _preview(args)
    _print_preview(args, frames_plan, open_documents)
    return 0


def _preview(args: argparse.Namespace):
    from receivables import pipeline, settings
    from receivables.connections import onec_client, warehouse
    from receivables.extract import extract, run_dir

    pol = pipeline.policy()
    folder = run_dir(settings.data_dir(), args.as_of, f"preview_{dt.datetime.now():%Y%m%dT%H%M%S}")
    run = pipeline.Run(args.as_of, folder.name, "dry_run", folder)
    wh = warehouse()
    with onec_client() as client:
        extract(client, args.as_of, folder)
    pipeline.validate(run)
    snap_stats = pipeline.aging(run, pol, wh, write_snapshot=False)
    return _plan_only(run, pol, wh), snap_stats["open_documents"]


def _print_preview(args: argparse.Namespace, frames_plan, open_documents: int) -> None:
    import pandas as pd

    rows = frames_plan.loc[frames_plan["decision"].isin(["act", "skip", "hold", "superseded"])]
    cols = ["document_number", "document_date", "partner_name", "step_id", "action", "decision",
            "reason", "target", "due_day", "outstanding"]
    out = rows[cols].copy()
    from receivables.formatting import rub

    out["outstanding"] = out["outstanding"].map(lambda k: str(rub(k)))
    for c in ("document_date", "due_day"):
        out[c] = pd.to_datetime(out[c]).dt.strftime("%Y-%m-%d")
    if args.format == "json":
        json.dump({"as_of": args.as_of.isoformat(), "open_documents": open_documents,
                   "actions": out.to_dict("records"),
                   "counts": frames_plan["decision"].value_counts().to_dict()},
                  sys.stdout, ensure_ascii=False, indent=1, default=str)
        print()
    else:
        print(f"As of {args.as_of}: {open_documents} open documents; "
              f"decisions: {frames_plan['decision'].value_counts().to_dict()}")
        print(out.to_string(index=False) if len(out) else "Nothing would be done.")


def _plan_only(run, pol, wh):
    from receivables.domain.plan import PLAN_FRAMES, build_plan, plain_text
    from receivables.extract import read_frames, read_snapshot

    return plain_text(build_plan(read_snapshot(run.folder), read_frames(run.folder / "extract", PLAN_FRAMES), pol,
                                 wh.read_register(sent_or_failed=True), run.as_of))


def cmd_penalty(args: argparse.Namespace) -> int:
    """The penalty with its period-by-period breakdown (spec §7)."""
    from decimal import Decimal, InvalidOperation

    from receivables import settings
    from receivables.domain.penalties import KeyRates, PenaltyError, compute

    try:
        principal = Decimal(args.principal.replace(",", ".").replace(" ", ""))
        rate = Decimal(args.rate_per_day.replace(",", ".")) if args.rate_per_day else None
        cap = Decimal(args.cap_percent.replace(",", ".")) if args.cap_percent else None
    except InvalidOperation:
        raise PenaltyError("--principal, --rate-per-day and --cap-percent must be numbers") from None
    rates = KeyRates.load(settings.key_rates_path())
    p = compute(args.method, principal=principal, due=args.due, end=args.paid, rates=rates,
                rate_per_day=rate, cap_percent=cap)
    if args.format == "json":
        print(json.dumps(p.to_json(), ensure_ascii=False, indent=1))
        return 0
    from receivables.formatting import date_ru, money

    kop = lambda d: int(d * 100)  # noqa: E731 - Decimal rubles with two places -> kopecks
    print(f"Метод: {args.method}; долг {money(kop(p.principal))}; срок оплаты {date_ru(p.due)}"
          + (f" (перенесён на {date_ru(p.due_shifted)}, ст. 193 ГК РФ)" if p.due_shifted != p.due else ""))
    print(f"{'с':>10} {'по':>10} {'дней':>5} {'ставка':>8} {'база':>16} {'сумма':>14}")
    for x in p.periods:
        print(f"{date_ru(x.start):>10} {date_ru(x.end):>10} {x.days:>5} {str(x.rate) + '%':>8} "
              f"{money(kop(x.base)):>16} {money(kop(x.amount)):>14}" + (f"  {x.note}" if x.note else ""))
    print(f"Итого: {money(kop(p.total))}" + (" (ограничено лимитом договора)" if p.capped else ""))
    return 0


def cmd_claim(args: argparse.Namespace) -> int:
    """The claim letter (HTML and PDF) for one partner, or one of its contracts, on demand."""
    from pathlib import Path

    from receivables import pipeline, settings
    from receivables.domain.penalties import KeyRates
    from receivables.extract import read_frames, read_snapshot
    from receivables.reports.claim import ClaimSettings, build_claim, write_claim

    with logs_to_stderr():
        _preview(args)  # extract and aging as of the date, exactly as a run would
        pol = pipeline.policy()
        folder = sorted((settings.data_dir() / "runs" / args.as_of.isoformat()).glob("preview_*"))[-1]
        frames = read_frames(folder / "extract")
        aging = read_snapshot(folder)
        partners = frames["partners"]
        hit = partners.loc[partners["code"].eq(args.partner) | partners["partner_name"].eq(args.partner)]
        if hit.empty:
            raise ValueError(f"no partner with code or name {args.partner!r} in 1C")
        contract_ref = None
        if args.contract:
            c = frames["contracts"]
            c = c.loc[c["number"].eq(args.contract) & c["partner_ref"].eq(hit["partner_ref"].iloc[0])]
            if c.empty:
                raise ValueError(f"partner {args.partner!r} has no contract number {args.contract!r}")
            contract_ref = c["contract_ref"].iloc[0]
        cs = ClaimSettings(**pol.claim.model_dump())
        claim = build_claim(frames, aging, partner_ref=hit["partner_ref"].iloc[0], as_of=args.as_of,
                            rates=KeyRates.load(settings.key_rates_path()), settings=cs, contract_ref=contract_ref)
        html, pdf = write_claim(claim, Path(args.out), settings.templates_dir() / "claim", cs)
    print(f"{pdf}\n{html}")
    return 0


def cmd_rates(args: argparse.Namespace) -> int:
    """Merge the Bank of Russia's key rates into the project's table (needs network)."""
    from receivables import settings
    from receivables.keyrates import refresh

    path = settings.key_rates_path()
    added, last = refresh(path, start=args.start, end=args.end or dt.date.today())
    print(f"{path}: {added} new rate decision(s); the table now covers through {last}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """The analysts' aging report (workbook and HTML) from the warehouse."""
    from pathlib import Path

    from receivables import pipeline
    from receivables.connections import warehouse
    from receivables.reports.report import write_report

    with logs_to_stderr():
        pol = pipeline.policy()
        xlsx, html = write_report(warehouse(), args.as_of, Path(args.out), bounds=pol.aging_buckets, tz=pol.timezone)
    print(f"{xlsx}\n{html}")
    return 0


def cmd_warehouse(args: argparse.Namespace) -> int:
    """Create or migrate the warehouse schema (tables, new columns, the log's guard, views,
    key rates): the one documented step before the first run and after every upgrade."""
    from sqlalchemy.engine import make_url

    from receivables import settings
    from receivables.store.warehouse import Warehouse

    with logs_to_stderr():
        if args.url:
            url = args.url
        else:
            from receivables.connections import warehouse_url

            url = warehouse_url(args.conn_id)
        shown = make_url(url).render_as_string(hide_password=True)
        with Warehouse(url) as wh:
            todo = wh.pending_migrations()
            if args.warehouse_command == "check":
                verdict = f"needs migration ({', '.join(sorted(todo))})" if todo else "up to date"
                print(f"warehouse {shown}: {verdict}", file=sys.stderr)
                return 1 if todo else 0
            wh.create_schema()
            rates = wh.load_key_rates(settings.key_rates_path())
            left = wh.pending_migrations()
            tables = wh.tables()
    if left:
        raise RuntimeError(f"warehouse {shown}: still not migrated after create_schema: {sorted(left)}")
    did = f"migrated ({', '.join(sorted(todo))})" if todo else "already up to date"
    print(f"warehouse {shown}: {did}; {len(tables)} tables; key rates: {rates} periods")
    return 0


def cmd_emulator(args: argparse.Namespace) -> int:
    from receivables.onec.emulator.server import serve

    serve(host=args.host, port=args.port, scale=args.scale, seed=args.seed, end_date=args.end_date,
          user=args.user, password=args.password)
    return 0


def cmd_mailcatcher(args: argparse.Namespace) -> int:
    from receivables.mailcatcher import serve

    serve(host=args.host, port=args.port, out=args.out)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from receivables.demo import main as demo

    return demo(as_of=args.as_of, scale=args.scale)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="receivables", description="Receivables collection for 1C")
    sub = p.add_subparsers(dest="command", required=True)

    pr = sub.add_parser("preview", help="what the next run would do and why, without doing it")
    pr.add_argument("--as-of", type=_date, required=True)
    pr.add_argument("--format", choices=["table", "json"], default="table")
    pr.set_defaults(func=cmd_preview)

    pe = sub.add_parser("penalty", help="penalty on a late payment with its period table")
    pe.add_argument("--principal", required=True, help="debt in rubles, e.g. 250000.00")
    pe.add_argument("--due", type=_date, required=True, help="due date (moved past days off, ст. 193)")
    pe.add_argument("--paid", type=_date, required=True, help="payment date, or the calculation date")
    pe.add_argument("--method", choices=["cbr_395", "contract", "cbr_1_300"], required=True)
    pe.add_argument("--rate-per-day", help="contract method: percent of the debt a day, e.g. 0.1")
    pe.add_argument("--cap-percent", help="contract method: cap in percent of the debt")
    pe.add_argument("--format", choices=["table", "json"], default="table")
    pe.set_defaults(func=cmd_penalty)

    cl = sub.add_parser("claim", help="the claim letter (претензия) for a partner as HTML and PDF")
    cl.add_argument("--as-of", type=_date, required=True)
    cl.add_argument("--partner", required=True, help="partner code (Code) or name as in 1C")
    cl.add_argument("--contract", help="contract number, to claim under one contract only")
    cl.add_argument("--out", default=".")
    cl.set_defaults(func=cmd_claim)

    ra = sub.add_parser("rates", help="key rates of the Bank of Russia")
    ra_sub = ra.add_subparsers(dest="rates_command", required=True)
    rf = ra_sub.add_parser("refresh", help="fetch the key rates from cbr.ru and merge them (network needed)")
    rf.add_argument("--start", type=_date, default=dt.date(2013, 9, 13))
    rf.add_argument("--end", type=_date, default=None)
    rf.set_defaults(func=cmd_rates)

    rp = sub.add_parser("report", help="the aging report (.xlsx and .html) from the warehouse")
    rp.add_argument("--as-of", type=_date, required=True)
    rp.add_argument("--out", default="reports")
    rp.set_defaults(func=cmd_report)

    wa = sub.add_parser("warehouse", help="create or migrate the warehouse schema (receivables_db)")
    wa_sub = wa.add_subparsers(dest="warehouse_command", required=True)
    for name, text in (("migrate", "create missing tables, columns, the log guard and views; load key rates"),
                       ("check", "exit 1 when the schema needs `receivables warehouse migrate`")):
        w = wa_sub.add_parser(name, help=text)
        w.add_argument("--conn-id", default="receivables_db", help="Airflow connection of the warehouse")
        w.add_argument("--url", help="a SQLAlchemy URL instead of the Airflow connection")
        w.set_defaults(func=cmd_warehouse)

    em = sub.add_parser("emulator", help="serve the embedded 1C OData emulator")
    em.add_argument("--host", default="127.0.0.1")
    em.add_argument("--port", type=int, default=8081)
    em.add_argument("--scale", type=float, default=1.0, help="1.0 = ~300 orders a working day for a year")
    em.add_argument("--seed", type=int, default=1)
    em.add_argument("--end-date", type=_date, default=dt.date(2026, 11, 20))
    em.add_argument("--user", default="Администратор")
    em.add_argument("--password", default="1c-demo")
    em.set_defaults(func=cmd_emulator)

    mc = sub.add_parser("mailcatcher", help="a local SMTP server that saves every message")
    mc.add_argument("--host", default="127.0.0.1")
    mc.add_argument("--port", type=int, default=8025)
    mc.add_argument("--out", default=".demo/mail")
    mc.set_defaults(func=cmd_mailcatcher)

    de = sub.add_parser("demo", help="run receivables_daily once on the embedded default")
    de.add_argument("--as-of", type=_date, default=dt.date(2026, 11, 20))
    de.add_argument("--scale", type=float, default=1.0)
    de.set_defaults(func=cmd_demo)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # one readable line for operators, not a traceback
        from receivables.domain.penalties import PenaltyError
        from receivables.domain.policy import PolicyError
        from receivables.onec.client import ODataError
        from receivables.pipeline import GateFailed

        if isinstance(exc, PolicyError | ODataError | GateFailed | PenaltyError | ValueError):
            print(f"receivables {args.command}: {exc}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    raise SystemExit(main())
