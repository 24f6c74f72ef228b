"""Merging a Bank of Russia KeyRateXML answer into the key-rate table."""

from __future__ import annotations

import datetime as dt
import shutil
from decimal import Decimal

from receivables import settings
from receivables.domain.penalties import KeyRates
from receivables.keyrates import merge, parse_key_rate_xml

# the shape public clients of DailyInfo.asmx read: //KeyRate/KR with DT and Rate
ANSWER = b"""<?xml version="1.0" encoding="utf-8"?>
<soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope"><soap:Body>
<KeyRateXMLResponse xmlns="http://web.cbr.ru/"><KeyRateXMLResult>
<KeyRate xmlns=""><KR><DT>2026-07-27T00:00:00+03:00</DT><Rate>14.00</Rate></KR>
<KR><DT>2026-09-14T00:00:00+03:00</DT><Rate>13.50</Rate></KR>
<KR><DT>2026-09-15T00:00:00+03:00</DT><Rate>13.50</Rate></KR></KeyRate>
</KeyRateXMLResult></KeyRateXMLResponse></soap:Body></soap:Envelope>"""


def test_parse_and_merge_keeps_only_changes_and_marks_them_verified(tmp_path):
    path = tmp_path / "cbr_key_rate.csv"
    shutil.copy(settings.key_rates_path(), path)
    days = parse_key_rate_xml(ANSWER)
    assert days[0] == (dt.date(2026, 7, 27), Decimal("14.00"))
    added, last = merge(path, days)
    assert (added, last) == (1, dt.date(2026, 9, 15))
    text = path.read_text(encoding="utf-8")
    assert "2026-09-14,13.50,yes" in text and "2026-07-27,14.00,yes" in text and "2026-09-15" not in text
    rates = KeyRates.load(path, tmp_path / "none.json")
    assert rates.rate_on(dt.date(2026, 10, 1)) == Decimal("13.50")
