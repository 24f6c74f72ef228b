"""The per-run HTML report: totals, aging by bucket and the run's outcomes (Russian)."""

from __future__ import annotations

from typing import Any

import pandas as pd
from jinja2 import Environment, PackageLoader, select_autoescape

from receivables import formatting


def render_run_report(run: Any, snap: pd.DataFrame, summary: dict[str, Any]) -> str:
    env = Environment(loader=PackageLoader("receivables.reports", "templates"),
                      autoescape=select_autoescape(["html"]))
    formatting.install_filters(env)
    by_bucket = (snap.groupby("bucket", sort=False)
                 .agg(documents=("document_ref", "size"), outstanding=("outstanding", "sum"))
                 .reset_index())
    top = (snap.groupby(["partner_ref", "partner_name"], dropna=False)["outstanding"].sum()
           .sort_values(ascending=False).head(20).reset_index())
    return env.get_template("run_report.html").render(
        run=run, summary=summary, by_bucket=by_bucket.to_dict("records"),
        top=top.to_dict("records"), total=int(snap["outstanding"].sum()), documents=len(snap))
