"""Refreshing the key-rate table from the Bank of Russia (`receivables rates refresh`).

The Bank of Russia's DailyInfo web service answers `KeyRateXML(fromDate, ToDate)` with
one `<KR><DT>…</DT><Rate>…</Rate></KR>` per day; the table keeps only the days the rate
changed. The refresh merges those into `cbr_key_rate.csv` (marked verified) and moves
`covered_through` in the sidecar JSON to the last day the service reported.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import xml.etree.ElementTree as ET
from decimal import Decimal
from pathlib import Path

SERVICE = "https://www.cbr.ru/DailyInfoWebServ/DailyInfo.asmx"
SOAP = """<?xml version="1.0" encoding="utf-8"?>
<soap12:Envelope xmlns:soap12="http://www.w3.org/2003/05/soap-envelope">
  <soap12:Body><KeyRateXML xmlns="http://web.cbr.ru/"><fromDate>{start}</fromDate><ToDate>{end}</ToDate>
  </KeyRateXML></soap12:Body></soap12:Envelope>"""


def parse_key_rate_xml(content: bytes) -> list[tuple[dt.date, Decimal]]:
    """(day, rate) from a KeyRateXML answer, in date order."""
    root = ET.fromstring(content)
    out = []
    for kr in root.iter():
        if kr.tag.rsplit("}", 1)[-1] != "KR":
            continue
        fields = {child.tag.rsplit("}", 1)[-1]: (child.text or "").strip() for child in kr}
        out.append((dt.date.fromisoformat(fields["DT"][:10]), Decimal(fields["Rate"].replace(",", "."))))
    if not out:
        raise ValueError("the Bank of Russia answer holds no <KR> rows")
    return sorted(out)


def merge(csv_path: Path, days: list[tuple[dt.date, Decimal]]) -> tuple[int, dt.date]:
    """Add the days where the rate changed; returns (rows added, last day reported)."""
    with open(csv_path, encoding="utf-8") as fh:
        rows = {dt.date.fromisoformat(r["date_from"]): (Decimal(r["rate_percent"]), r["verified"])
                for r in csv.DictReader(fh)}
    current = None
    added = 0
    known = sorted(rows)
    for day, rate in days:
        before = [d for d in known if d <= day]
        current = rows[before[-1]][0] if before else current
        if current != rate:
            rows[day] = (rate, "yes")
            known = sorted(rows)
            current = rate
            added += 1
        elif day in rows:
            rows[day] = (rows[day][0], "yes")
    with open(csv_path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["date_from", "rate_percent", "verified"])
        for d in sorted(rows):
            w.writerow([d.isoformat(), f"{rows[d][0]:.2f}", rows[d][1]])
    return added, days[-1][0]


def refresh(csv_path: Path, *, start: dt.date, end: dt.date, timeout: float = 60) -> tuple[int, dt.date]:
    """Fetch the rates for [start, end] from the Bank of Russia and merge them."""
    import requests

    body = SOAP.format(start=start.isoformat(), end=end.isoformat()).encode("utf-8")
    resp = requests.post(SERVICE, data=body, timeout=timeout,
                         headers={"Content-Type": "application/soap+xml; charset=utf-8"})
    resp.raise_for_status()
    added, last = merge(csv_path, parse_key_rate_xml(resp.content))
    meta = csv_path.with_suffix(".meta.json")
    doc = json.loads(meta.read_text(encoding="utf-8")) if meta.exists() else {}
    doc["covered_through"] = last.isoformat()
    meta.write_text(json.dumps(doc, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return added, last
