"""The analysts' aging report: an .xlsx workbook (XlsxWriter) and a self-contained .html page
with inline SVG charts (matplotlib), both from the warehouse for one as-of date."""

from __future__ import annotations

import datetime as dt
import io
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from jinja2 import Environment, PackageLoader, select_autoescape

from receivables import formatting
from receivables.domain.aging import bucket_labels
from receivables.reports import sheet_rows
from receivables.reports.analytics import (
    DEFINITIONS,
    ReportData,
    effectiveness,
    kpis,
    measured_pairs,
    pivot_by,
)

MONEY_FORMAT = '#,##0.00 "₽"'
BUCKET_NAMES = {"not_due": "не просрочено"}


def case_states(client: Any, entity_set: str, refs: list[str]) -> dict[str, str]:
    """Each case's state as 1C has it now (Статус), read back in small batches of GUIDs."""
    meta = client.metadata().get(entity_set, {})
    if "Статус" not in meta:
        return {}
    states: dict[str, str] = {}
    for start in range(0, len(refs), 30):  # long `or` chains overflow 1C's URL limit
        chunk = refs[start:start + 30]
        flt = " or ".join(f"Ref_Key eq guid'{r}'" for r in chunk)
        for row in client.fetch_all(entity_set, ["Ref_Key", "Статус"], orderby="Ref_Key", filter=flt):
            states[str(row["Ref_Key"]).lower()] = str(row.get("Статус") or "").strip() or "—"
    return states


def collect(warehouse: Any, as_of: dt.date, *, run_id: str | None = None, tz: str = "Europe/Moscow",
            templates: dict[str, str] | None = None, client: Any = None, case_set: str | None = None) -> ReportData:
    snap = warehouse.read_snapshot(as_of)
    if snap.empty:
        raise ValueError(f"no aging snapshot for {as_of} in the warehouse: run receivables_daily for that date first")
    history = warehouse.snapshot_totals()
    register = warehouse.read_register()
    dates = np.sort(history["as_of_date"].unique())
    # the documents open on the snapshots effectiveness measures at, and today's (their segments)
    needed = warehouse.snapshot_members_among(measured_pairs(register, dates, tz=tz))
    members = pd.concat([needed, snap[["as_of_date", "document_ref"]].astype({"as_of_date": "datetime64[s]"})],
                        ignore_index=True).drop_duplicates(ignore_index=True)
    seg = snap[["document_ref", "segment"]]
    members = members.merge(seg, on="document_ref", how="left")
    eff = effectiveness(register, members, dates, tz=tz)
    actions = warehouse.log_counts(["sent", "failed", "skipped", "superseded", "planned", "hold"])
    mine = register.loc[register["as_of_date"].astype("str").eq(as_of.isoformat())]
    if run_id:
        mine = register.loc[register["run_id"].eq(run_id)]
    opened = register.loc[register["action"].eq("case")].copy()
    opened["stage"] = opened["status"]
    if client is not None and case_set and opened["external_ref"].notna().any():
        states = case_states(client, case_set, sorted(set(opened["external_ref"].dropna().str.lower())))
        if states:
            opened["stage"] = opened["external_ref"].str.lower().map(states).fillna("не найдено в 1С")
    cases = opened.groupby("stage").size().reset_index(name="count").rename(columns={"stage": "status"})
    if templates and len(eff):
        eff.insert(1, "template", eff["step_id"].map(templates).fillna("—"))
    summaries = warehouse.read_run_summaries()
    summary = None
    if len(summaries):
        day = summaries.loc[summaries["as_of_date"].astype("str").eq(as_of.isoformat())]
        if len(day):
            last = day.sort_values("finished_at").iloc[-1]
            summary = {k: (None if pd.isna(last[k]) else int(round(float(last[k]) * 100)))
                       for k in ("sales_30d", "sales_90d")}
    data = ReportData(as_of, snap, history, eff, actions, mine, cases)
    data.kpis = kpis(as_of, snap, history, summary)
    return data


# -- charts -----------------------------------------------------------------------------

def _svg(fig) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]


def charts(data: ReportData, labels: list[str]) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.family": "DejaVu Sans", "font.size": 9, "svg.fonttype": "path"})
    out = {}
    by_bucket = data.snapshot.groupby("bucket")["outstanding"].sum().reindex(labels, fill_value=0) / 100
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.bar([BUCKET_NAMES.get(b, b) for b in labels], by_bucket.to_numpy(dtype="float64") / 1e6, color="#4a78b5")
    ax.set_ylabel("млн ₽")
    ax.set_title("Задолженность по срокам просрочки")
    out["buckets"] = _svg(fig)

    hist = data.history.pivot_table(index="as_of_date", columns="bucket", values="outstanding", aggfunc="sum",
                                    fill_value=0).reindex(columns=labels, fill_value=0) / 100 / 1e6
    fig, ax = plt.subplots(figsize=(7, 3))
    if len(hist) > 1:
        import matplotlib.dates as mdates

        x = mdates.date2num(pd.DatetimeIndex(hist.index).to_pydatetime())
        ax.stackplot(x, hist.T.to_numpy(dtype="float64"), labels=[BUCKET_NAMES.get(b, b) for b in labels])
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%d.%m"))
        ax.legend(loc="upper left", fontsize=7, ncols=5)  # the buckets' colours
    else:  # one snapshot: a single total bar, nothing for a legend to name
        ax.bar([str(pd.Timestamp(d).date()) for d in hist.index], hist.sum(axis=1).to_numpy(dtype="float64"))
    ax.set_ylabel("млн ₽")
    ax.set_title("Динамика задолженности по сохранённым снимкам")
    fig.autofmt_xdate()
    out["trend"] = _svg(fig)

    eff = data.effectiveness.loc[data.effectiveness["segment"].eq("все")]
    eff = eff.assign(paid_share=pd.to_numeric(eff["paid_share"], errors="coerce")).dropna(subset=["paid_share"])
    fig, ax = plt.subplots(figsize=(7, 2.8))
    if len(eff):
        pivot = eff.pivot_table(index="step_id", columns="group", values="paid_share", aggfunc="mean") * 100
        pivot.plot.bar(ax=ax, rot=0)
        ax.set_ylabel("% оплачено")
        ax.legend(fontsize=7)
    else:
        ax.text(0.5, 0.5, "нет данных: ещё не было напоминаний с измеримым результатом", ha="center", va="center")
        ax.set_axis_off()
    ax.set_title("Оплата после напоминаний")
    out["effectiveness"] = _svg(fig)
    return out


# -- workbook ---------------------------------------------------------------------------

def _cells(s: pd.Series, money: bool, date: bool) -> list[Any]:
    """One column as the Python values the workbook writes, a column at a time (a per-cell loop
    over a snapshot's rows took seconds): missing -> None, kopecks -> rubles
    (`sheet_rows.rubles`), dates -> dates."""
    missing = s.isna().to_numpy(dtype=bool)
    if money:
        values = sheet_rows.rubles(s).tolist()
    elif date:
        values = pd.to_datetime(s).dt.date.tolist()
    else:
        values = s.astype(object).tolist()  # numpy scalars become int/float/str
    return [None if m else v for v, m in zip(values, missing, strict=True)] if missing.any() else values


#: data rows one worksheet holds: Excel's 1 048 576 rows less the header. XlsxWriter drops cells
#: beyond it without an error, so a longer table continues on further sheets
SHEET_ROWS = 1_048_575
#: rows turned into cell values at a time: the workbook streams rows to disk (constant_memory),
#: so a million open documents never become twelve million Python values at once
_BLOCK_ROWS = 50_000


class _Workbook:
    """An XlsxWriter workbook with one cell format per number format, written row by row."""

    def __init__(self, path: Path):
        import xlsxwriter

        # text stays text: a partner named "=..." or "http://..." is no formula and no link;
        # constant_memory: each row goes to disk once the next is started (a sheet is written
        # top to bottom, and nothing is written to it again)
        self.book = xlsxwriter.Workbook(str(path), {"strings_to_formulas": False, "strings_to_urls": False,
                                                    "constant_memory": True})
        self._formats: dict[str, Any] = {}

    def format(self, number_format: str | None):
        if number_format is None:
            return None
        if number_format not in self._formats:
            self._formats[number_format] = self.book.add_format({"num_format": number_format})
        return self._formats[number_format]


def _sheet(wb: _Workbook, title: str, df: pd.DataFrame, money_cols: set[str], date_cols: set[str] = frozenset(), *,
           formats: Mapping[str, str] | None = None, cell_formats: Mapping[tuple[int, str], str] | None = None,
           rows_per_sheet: int = SHEET_ROWS) -> list[Any]:
    """Sheets of `df` with a header row, frozen, with a filter: one, or for a table longer than a
    sheet holds (`rows_per_sheet`) one per part, named "title (2)", "title (3)"... Number formats:
    money and date columns, `formats` by column (set on the column, which XlsxWriter gives every
    cell written there without one of its own), and `cell_formats` by (row of `df`, column)."""
    sheets = []
    for part, start in enumerate(range(0, max(len(df), 1), rows_per_sheet)):
        name = title if part == 0 else f"{title} ({part + 1})"
        rows = df.iloc[start:start + rows_per_sheet]
        special = {(r - start, col): fmt for (r, col), fmt in (cell_formats or {}).items()
                   if start <= r < start + len(rows)}
        sheets.append(_one_sheet(wb, name, rows, money_cols, date_cols, formats or {}, special))
    return sheets


def _one_sheet(wb: _Workbook, title: str, df: pd.DataFrame, money_cols: set[str], date_cols: set[str],
               formats: Mapping[str, str], cell_formats: Mapping[tuple[int, str], str]):
    ws = wb.book.add_worksheet(title)
    columns = list(df.columns)
    column_formats = []
    for k, col in enumerate(columns):
        fmt = formats.get(col) or (MONEY_FORMAT if col in money_cols else ("DD.MM.YYYY" if col in date_cols else None))
        column_formats.append(wb.format(fmt))
        ws.set_column(k, k, max(12, min(45, len(str(col)) + 4)), column_formats[-1])
    ws.freeze_panes(1, 0)
    if len(df):
        ws.autofilter(0, 0, len(df), len(columns) - 1)
    ws.write_row(0, 0, [str(c) for c in columns])
    kinds = None if cell_formats else sheet_rows.column_kinds(df, money_cols, date_cols)
    if kinds is not None:  # a column at a time (a cell takes its column's format, as XlsxWriter's do)
        styles = [None if f is None else f._get_xf_index() for f in column_formats]
        sheet_rows.write_rows(ws, df, kinds, styles, first_row=1)
        return ws
    special: dict[int, dict[int, Any]] = {}
    for (r, col), fmt in cell_formats.items():
        special.setdefault(r, {})[columns.index(col)] = wb.format(fmt)
    for start in range(0, len(df), _BLOCK_ROWS):
        block = df.iloc[start:start + _BLOCK_ROWS]
        values = [_cells(block[c], c in money_cols, c in date_cols) for c in columns]
        for r, row in enumerate(zip(*values, strict=True), start=start):
            if r in special:  # a row is written once: its few formatted cells with it
                for k, value in enumerate(row):
                    ws.write(r + 1, k, value, special[r].get(k))
            else:
                ws.write_row(r + 1, 0, row)
    return ws


def write_workbook(data: ReportData, path: Path, labels: list[str]) -> Path:
    # XlsxWriter: openpyxl spent ~13 s on cell objects and their XML for a 26k-document
    # snapshot on a slow 2-core worker, its write-only mode still ~10 s
    path.parent.mkdir(parents=True, exist_ok=True)
    wb = _Workbook(path)
    k = data.kpis
    summary = pd.DataFrame([
        ("Дата отчёта", data.as_of.strftime("%d.%m.%Y")), ("Открытых документов", k["documents"]),
        ("Контрагентов с долгом", k["partners"]), ("Задолженность, ₽", float(formatting.rub(k["outstanding"]))),
        ("Просрочено, ₽", float(formatting.rub(k["overdue"]))), ("DSO, дней", k["dso"]), ("CEI, %", k["cei"]),
    ], columns=["показатель", "значение"])
    _sheet(wb, "Сводка", summary, set(), cell_formats={(3, "значение"): MONEY_FORMAT, (4, "значение"): MONEY_FORMAT})
    for title, col in (("По организациям", "organization_name"), ("По менеджерам", "manager_name"),
                       ("По сегментам", "segment")):
        p = pivot_by(data.snapshot, col, labels).reset_index().rename(columns={col: "группа"})
        _sheet(wb, title, p, set(p.columns) - {"группа"})
    top = (data.snapshot.groupby(["partner_name"], dropna=False)
           .agg(documents=("document_ref", "size"), outstanding=("outstanding", "sum"),
                max_days_overdue=("days_overdue", "max")).reset_index()
           .sort_values("outstanding", ascending=False).head(50))
    _sheet(wb, "Крупнейшие должники", top, {"outstanding"})
    docs = data.snapshot[["document_number", "document_date", "partner_name", "organization_name", "manager_name",
                          "due_date", "amount", "paid", "outstanding", "days_overdue", "business_days_overdue",
                          "bucket"]].sort_values(["days_overdue"], ascending=False)
    _sheet(wb, "Открытые документы", docs, {"amount", "paid", "outstanding"}, {"document_date", "due_date"})
    eff = data.effectiveness.rename(columns={"step_id": "шаг", "template": "шаблон", "group": "группа",
                                             "segment": "сегмент"})
    _sheet(wb, "Эффективность", eff, set(), formats={eff.columns[-1]: "0.0%"} if len(eff.columns) else None)
    acts = data.run_actions[["document_number", "step_id", "action", "target", "status", "sent_at", "detail"]].copy()
    acts["sent_at"] = acts["sent_at"].astype("str").replace("NaT", "")
    _sheet(wb, "Действия запуска", acts, set())
    wb.book.close()
    return path


# -- HTML -------------------------------------------------------------------------------

def _timeline(actions: pd.DataFrame) -> dict[str, Any]:
    """Actions by day (rows) and kind:outcome (columns), the last 31 days with any."""
    if actions.empty:
        return {"columns": [], "rows": []}
    t = actions.assign(kind=actions["action"] + ": " + actions["outcome"]).pivot_table(
        index="day", columns="kind", values="count", aggfunc="sum", fill_value=0).sort_index().tail(31)
    return {"columns": list(t.columns), "rows": [(day, [int(v) for v in row]) for day, row in
                                                 zip(t.index, t.to_numpy(), strict=True)]}


def write_html(data: ReportData, path: Path, labels: list[str], *, run: dict[str, Any] | None = None) -> Path:
    env = Environment(loader=PackageLoader("receivables.reports", "templates"), autoescape=select_autoescape(["html"]))
    formatting.install_filters(env)
    by_bucket = (data.snapshot.groupby("bucket").agg(documents=("document_ref", "size"),
                                                     outstanding=("outstanding", "sum"))
                 .reindex(labels, fill_value=0).reset_index())
    top = (data.snapshot.groupby("partner_name", dropna=False)["outstanding"].sum().sort_values(ascending=False)
           .head(15).reset_index())
    eff = data.effectiveness.loc[data.effectiveness["segment"].eq("все")]
    html = env.get_template("report.html").render(
        data=data, k=data.kpis, labels=labels, names=BUCKET_NAMES, charts=charts(data, labels), run=run or {},
        by_bucket=by_bucket.to_dict("records"), top=top.to_dict("records"), eff=eff.to_dict("records"),
        actions=data.actions.groupby(["action", "outcome"])["count"].sum().reset_index().to_dict("records")
        if len(data.actions) else [], timeline=_timeline(data.actions), cases=data.cases.to_dict("records"),
        definitions=DEFINITIONS)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html, encoding="utf-8")
    return path


def write_report(warehouse: Any, as_of: dt.date, out: Path, *, bounds: list[int] | None = None,
                 run_id: str | None = None, tz: str = "Europe/Moscow", run: dict[str, Any] | None = None,
                 templates: dict[str, str] | None = None, client: Any = None, case_set: str | None = None
                 ) -> tuple[Path, Path]:
    labels = bucket_labels(bounds or [30, 60, 90])
    data = collect(warehouse, as_of, run_id=run_id, tz=tz, templates=templates, client=client, case_set=case_set)
    stem = f"aging_{as_of.isoformat()}"
    xlsx = write_workbook(data, out / f"{stem}.xlsx", labels)
    html = write_html(data, out / f"{stem}.html", labels, run=run)
    (out / f"{stem}.json").write_text(json.dumps({"kpis": data.kpis}, default=str, ensure_ascii=False, indent=1),
                                      encoding="utf-8")
    return xlsx, html
