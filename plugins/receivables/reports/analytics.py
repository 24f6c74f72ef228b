"""Analysts' metrics from the warehouse, in pandas (money in kopecks). Each metric's
definition is in `DEFINITIONS`, printed as the report's footnotes."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

PAID_WITHIN_DAYS = 7
DEFINITIONS = {
    "effectiveness": (
        f"Доля оплаченных: из документов, по которым шаг был выполнен (письмо отправлено), доля тех, что "
        f"исчезли из открытой задолженности в ближайшем сохранённом снимке не раньше чем через "
        f"{PAID_WITHIN_DAYS} дней после отправки. Контрольная группа — документы того же шага, по которым "
        "письмо не ушло (нет адреса и т. п.); для них отсчёт идёт от даты решения. Документы, для которых "
        "ещё нет снимка через нужное число дней, не учитываются."),
    "dso": "DSO = открытая задолженность на дату ÷ отгрузки (сумма заказов) за 90 дней × 90.",
    "cei": ("CEI = (долг на начало + заказы за период − долг на конец) ÷ (долг на начало + заказы за период − "
            "непросроченный долг на конец) × 100%, период — 30 дней до даты отчёта; долг на начало берётся из "
            "ближайшего снимка не позже начала периода."),
    "actions": "Действия — строки журнала collection_log по дням, видам действий и исходам.",
    "cases": ("Дела — дела о задолженности, открытые конвейером, по этапу (Статус), перечитанному из 1С при "
              "формировании отчёта; если объект дел не публикует Статус или 1С недоступна — по статусу регистра."),
}


@dataclass
class ReportData:
    as_of: dt.date
    snapshot: pd.DataFrame
    history: pd.DataFrame
    effectiveness: pd.DataFrame
    actions: pd.DataFrame
    run_actions: pd.DataFrame
    cases: pd.DataFrame
    kpis: dict[str, Any] = field(default_factory=dict)


def _day(ts: pd.Series, tz: str) -> pd.Series:
    return pd.to_datetime(ts, utc=True).dt.tz_convert(tz).dt.tz_localize(None).dt.normalize().astype("datetime64[s]")


def _events(register: pd.DataFrame, snapshot_dates: np.ndarray, *, tz: str, days: int) -> pd.DataFrame | None:
    """The email steps' events — reminded (the day it was sent) and control (skipped: the day
    of that decision) — with the snapshot date each is measured on (``measure``: the first at
    least `days` later, NaT while there is none); None when there is nothing to measure."""
    emails = register.loc[register["action"].eq("email")]
    reminded = emails.loc[emails["sent_at"].notna(), ["document_ref", "step_id"]].assign(
        group="напоминание", event=_day(emails.loc[emails["sent_at"].notna(), "sent_at"], tz))
    control_rows = emails.loc[emails["sent_at"].isna() & emails["status"].eq("skipped")]
    control = control_rows[["document_ref", "step_id"]].assign(
        group="без напоминания", event=pd.to_datetime(control_rows["as_of_date"]).astype("datetime64[s]"))
    ev = pd.concat([reminded, control], ignore_index=True)
    if ev.empty or len(snapshot_dates) == 0:
        return None
    dates = np.sort(np.asarray(snapshot_dates, dtype="datetime64[s]"))
    target = (ev["event"] + pd.Timedelta(days=days)).to_numpy(dtype="datetime64[s]")
    pos = np.searchsorted(dates, target, side="left")
    ev["measure"] = pd.Series(np.where(pos < len(dates), dates[np.minimum(pos, len(dates) - 1)],
                                       np.datetime64("NaT")), index=ev.index).astype("datetime64[s]")
    return ev


def measured_pairs(register: pd.DataFrame, snapshot_dates: np.ndarray, *, tz: str = "Europe/Moscow",
                   days: int = PAID_WITHIN_DAYS) -> pd.DataFrame:
    """(as_of_date, document_ref) of every snapshot `effectiveness` looks a document up in: the
    only members of the stored snapshots it needs (every snapshot's every document would be
    the open documents times the days of history)."""
    ev = _events(register, snapshot_dates, tz=tz, days=days)
    if ev is None:
        return pd.DataFrame({"as_of_date": pd.Series([], dtype="datetime64[s]"),
                             "document_ref": pd.Series([], dtype="str")})
    pairs = ev.loc[ev["measure"].notna(), ["measure", "document_ref"]].rename(columns={"measure": "as_of_date"})
    return pairs.drop_duplicates(ignore_index=True)


def effectiveness(register: pd.DataFrame, members: pd.DataFrame, snapshot_dates: np.ndarray, *,
                  tz: str = "Europe/Moscow", days: int = PAID_WITHIN_DAYS) -> pd.DataFrame:
    """Paid share within `days` of reminded documents vs those the step could not reach.

    `members`: (as_of_date, document_ref, segment) of open documents on the snapshot dates —
    at least on the pairs `measured_pairs` gives — with each document's segment."""
    cols = ["step_id", "group", "segment", "documents", "measured", "paid", "paid_share"]
    ev = _events(register, snapshot_dates, tz=tz, days=days)
    if ev is None:
        return pd.DataFrame(columns=cols)
    open_then = members.rename(columns={"as_of_date": "measure"}).assign(still_open=True)
    ev = ev.merge(open_then[["measure", "document_ref", "still_open"]], on=["measure", "document_ref"], how="left")
    seg = members.dropna(subset=["segment"]).drop_duplicates("document_ref")[["document_ref", "segment"]]
    ev = ev.merge(seg, on="document_ref", how="left")
    ev["segment"] = ev["segment"].fillna("—")
    ev["measured"] = ev["measure"].notna()
    ev["paid"] = ev["measured"] & ev["still_open"].isna()
    out = (ev.groupby(["step_id", "group", "segment"], dropna=False)
           .agg(documents=("document_ref", "size"), measured=("measured", "sum"), paid=("paid", "sum"))
           .reset_index())
    total = (ev.groupby(["step_id", "group"]).agg(documents=("document_ref", "size"), measured=("measured", "sum"),
                                                  paid=("paid", "sum")).reset_index().assign(segment="все"))
    out = pd.concat([total, out], ignore_index=True)
    out["paid_share"] = np.where(out["measured"] > 0, out["paid"] / out["measured"].where(out["measured"] > 0, 1), np.nan)
    return out[cols]


def kpis(as_of: dt.date, snapshot: pd.DataFrame, history: pd.DataFrame, summary: dict[str, Any] | None) -> dict:
    """Totals, DSO and CEI (see DEFINITIONS)."""
    total = int(snapshot["outstanding"].sum())
    overdue = int(snapshot.loc[snapshot["days_overdue"] > 0, "outstanding"].sum())
    current = total - overdue
    out: dict[str, Any] = {"documents": len(snapshot), "outstanding": total, "overdue": overdue,
                           "partners": int(snapshot["partner_ref"].nunique()), "dso": None, "cei": None}
    summary = summary or {}
    if summary.get("sales_90d"):
        out["dso"] = round(total / int(summary["sales_90d"]) * 90, 1)
    start = pd.Timestamp(as_of) - pd.Timedelta(days=30)
    before = history.loc[history["as_of_date"] <= start]
    if len(before) and summary.get("sales_30d") is not None:
        begin_date = before["as_of_date"].max()
        begin = int(before.loc[before["as_of_date"].eq(begin_date), "outstanding"].sum())
        sales = int(summary["sales_30d"])
        denominator = begin + sales - current
        if denominator > 0:
            out["cei"] = round((begin + sales - total) / denominator * 100, 1)
            out["cei_from"] = pd.Timestamp(begin_date).date()
    return out


def pivot_by(snapshot: pd.DataFrame, column: str, labels: list[str]) -> pd.DataFrame:
    """Outstanding (kopecks) by `column` × bucket, buckets in policy order, with totals."""
    p = snapshot.pivot_table(index=snapshot[column].fillna("—"), columns="bucket", values="outstanding",
                             aggfunc="sum", fill_value=0)
    p = p.reindex(columns=[b for b in labels if b in p.columns] + [c for c in p.columns if c not in labels],
                  fill_value=0)
    p["итого"] = p.sum(axis=1)
    return p.sort_values("итого", ascending=False).astype("int64")
