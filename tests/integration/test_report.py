"""The analysts' report: history from a backfill, workbook totals equal the warehouse, the HTML
page rendered by headless Chromium with its charts and tables."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import tempfile

import pytest
from openpyxl import load_workbook
from sqlalchemy import text
from test_exactly_once import AS_OF, World, default_policy

from harness import CaughtMail, SmtpServer
from receivables.domain.calendar import get_calendar
from receivables.onec.emulator.generator import generate_company
from receivables.onec.emulator.server import EmulatorServer
from receivables.reports.report import write_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def reported(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    mail = CaughtMail()
    with EmulatorServer(generate_company(seed=3, scale=0.03, end_date=AS_OF)) as onec, SmtpServer(mail) as smtp:
        world = World(tmp, onec, smtp, mail)
        pol = default_policy()
        # a month of backfill (auto mode, past dates: compute and record only), then today live
        start = AS_OF - dt.timedelta(days=30)
        days = [start + dt.timedelta(days=i) for i in range(31)]
        working = [d for d in days if get_calendar().is_working_date(d) and d < AS_OF]
        for d in working:
            world.run(policy=pol, mode="auto", as_of=d)
        world.run(policy=pol, mode="live")
        wh = world.warehouse()
        xlsx, html = write_report(wh, AS_OF, tmp / "out")
        yield wh, xlsx, html, working, tmp


def test_backfill_fills_a_snapshot_for_every_working_day(reported):
    wh, _, _, working, _ = reported
    with wh.engine.connect() as conn:
        dates = {r[0] for r in conn.execute(text("SELECT DISTINCT as_of_date FROM aging_snapshot"))}
    assert {str(d) for d in working} | {str(AS_OF)} == {str(d) for d in dates}


def test_workbook_sheets_totals_and_formats(reported):
    wh, xlsx, _, _, _ = reported
    wb = load_workbook(xlsx)
    assert wb.sheetnames == ["Сводка", "По организациям", "По менеджерам", "По сегментам", "Крупнейшие должники",
                             "Открытые документы", "Эффективность", "Действия запуска"]
    snap = wh.read_snapshot(AS_OF)
    expected = int(snap["outstanding"].sum())
    docs = wb["Открытые документы"]
    header = [c.value for c in docs[1]]
    col = header.index("outstanding") + 1
    total = sum(round(docs.cell(row=r, column=col).value * 100) for r in range(2, docs.max_row + 1))
    assert total == expected and docs.max_row - 1 == len(snap)
    assert docs.cell(row=2, column=col).number_format == '#,##0.00 "₽"'
    assert docs.freeze_panes == "A2" and docs.auto_filter.ref
    orgs = wb["По организациям"]
    org_total = sum(round(orgs.cell(row=r, column=orgs.max_column).value * 100) for r in range(2, orgs.max_row + 1))
    assert org_total == expected
    assert round(wb["Сводка"]["B5"].value * 100) == expected
    acts = wb["Действия запуска"]
    assert acts.max_row > 1


def test_html_report_is_self_contained_and_renders_in_headless_chromium(reported):
    _, _, html, _, tmp = reported
    page = html.read_text(encoding="utf-8")
    import re

    # works offline: nothing is fetched (SVG namespaces are identifiers, not requests)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page), "external resource in the report"
    assert "<script" not in page and "@import" not in page
    assert page.count("<svg") == 3 and "Эффективность напоминаний" in page and "DSO" in page
    chromium = CHROMIUM
    assert chromium, "Debian's chromium is needed (make test installs it)"
    shot = tmp / "report.png"
    profile = tempfile.mkdtemp()
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
                    "--window-size=1200,2400", f"--screenshot={shot}", html.as_uri()],
                   check=True, capture_output=True, timeout=120)
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 50_000
    dump = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                           "--disable-component-update", "--disable-sync", "--no-first-run",
                           f"--user-data-dir={profile}", "--dump-dom", html.as_uri()],
                          check=True, capture_output=True, text=True, timeout=120).stdout
    for heading in ("Задолженность по срокам", "Динамика", "Крупнейшие должники", "Эффективность напоминаний"):
        assert heading in dump
    assert dump.count("<svg") == 3


def test_sql_views_agree_with_the_snapshot(reported):
    wh = reported[0]
    snap = wh.read_snapshot(AS_OF)
    with wh.engine.connect() as conn:
        by_bucket = conn.execute(text("SELECT SUM(outstanding) FROM v_aging_by_bucket WHERE as_of_date = :d"),
                                 {"d": AS_OF}).scalar()
        eff = conn.execute(text("SELECT step_id, reminded, paid_since FROM v_effectiveness_by_step")).all()
        status = conn.execute(text("SELECT SUM(register_rows) FROM v_register_status")).scalar()
    assert round(float(by_bucket) * 100) == int(snap["outstanding"].sum())
    reg = wh.read_register()
    assert eff and eff[0][1] == int(reg["sent_at"].notna().sum())
    assert status == len(reg)


def test_case_stages_are_read_back_from_1c():
    from receivables.onec.client import ODataClient, ODataConfig
    from receivables.reports.report import case_states

    with EmulatorServer(generate_company(seed=3, scale=0.01, end_date=AS_OF)) as onec:
        refs = [f"00000000-0000-4000-8000-00000000000{i}" for i in range(1, 4)]
        with ODataClient(ODataConfig(base_url=onec.url, login="Администратор", password="1c-demo")) as c:
            for ref, status in zip(refs, ["ВРаботе", "ВРаботе", "Выиграна"], strict=True):
                c.post("Catalog_СделкиСКлиентами", {"Ref_Key": ref, "Description": "Долг", "Статус": status})
            states = case_states(c, "Catalog_СделкиСКлиентами", refs + ["00000000-0000-4000-8000-0000000000ff"])
    assert states == {refs[0]: "ВРаботе", refs[1]: "ВРаботе", refs[2]: "Выиграна"}


def test_workbook_text_stays_text_and_money_keeps_its_format(tmp_path):
    """A partner named like a formula or a link is written as text (no formula runs when an
    accountant opens the file); money columns carry the ruble format, missing values stay empty."""
    import pandas as pd

    from receivables.reports.report import MONEY_FORMAT, _sheet, _Workbook

    path = tmp_path / "t.xlsx"
    wb = _Workbook(path)
    df = pd.DataFrame({"partner_name": ["=HYPERLINK(\"http://evil\")", "http://example.ru", None, "{=1+1}"],
                       "outstanding": pd.array([1250, None, 300, 1], dtype="Int64")})  # kopecks
    _sheet(wb, "Лист", df, {"outstanding"})
    wb.book.close()
    ws = load_workbook(path)["Лист"]
    assert [c.value for c in ws["A"]] == ["partner_name", "=HYPERLINK(\"http://evil\")", "http://example.ru", None,
                                          "{=1+1}"]
    # (XlsxWriter's write() makes "{=...}" an array formula whatever its options; the column-wise rows do not)
    assert ws["A2"].data_type == "s" and ws["A5"].data_type == "s" and ws["A3"].hyperlink is None
    assert [c.value for c in ws["B"]][1:] == [12.5, None, 3.0, 0.01]
    assert ws["B2"].number_format == MONEY_FORMAT and ws["B4"].number_format == MONEY_FORMAT
    assert ws.freeze_panes == "A2" and ws.auto_filter.ref == "A1:B5"


def test_a_table_longer_than_a_sheet_continues_on_further_sheets(tmp_path):
    """Excel holds 1 048 576 rows a sheet and XlsxWriter drops cells beyond that without an error:
    a longer table (a million open documents) continues on "name (2)"..., each part with its header,
    filter and formats, no row lost or repeated; a cell format given by row lands on its part."""
    import pandas as pd

    from receivables.reports.report import MONEY_FORMAT, _sheet, _Workbook

    path = tmp_path / "long.xlsx"
    wb = _Workbook(path)
    df = pd.DataFrame({"document_number": [f"ТД-{i}" for i in range(7)],
                       "outstanding": pd.array([100 * i for i in range(7)], dtype="Int64"),
                       "note": [None, "a", None, "b", None, "c", None]})
    sheets = _sheet(wb, "Открытые документы", df, {"outstanding"}, rows_per_sheet=3,
                    cell_formats={(4, "note"): MONEY_FORMAT})
    wb.book.close()
    assert len(sheets) == 3
    book = load_workbook(path)
    assert book.sheetnames == ["Открытые документы", "Открытые документы (2)", "Открытые документы (3)"]
    numbers, money = [], []
    for ws in book.worksheets:
        rows = list(ws.iter_rows(values_only=True))
        assert rows[0] == ("document_number", "outstanding", "note")
        assert ws.freeze_panes == "A2" and ws.auto_filter.ref == f"A1:C{len(rows)}"
        numbers += [r[0] for r in rows[1:]]
        money += [r[1] for r in rows[1:]]
        assert all(ws.cell(row=k, column=2).number_format == MONEY_FORMAT for k in range(2, len(rows) + 1))
    assert numbers == list(df["document_number"]) and money == [float(i) for i in range(7)]
    second = book["Открытые документы (2)"]
    assert second["C3"].number_format == MONEY_FORMAT and second["C2"].number_format == "General"
    assert [c.value for c in second["C"]][1:] == ["b", None, "c"]


def test_sheet_rows_is_what_the_writer_holds(tmp_path):
    """SHEET_ROWS data rows after the header fit; the next row is refused (-1), which is why
    longer tables are split rather than written on."""
    import xlsxwriter

    from receivables.reports.report import SHEET_ROWS

    book = xlsxwriter.Workbook(str(tmp_path / "limit.xlsx"), {"constant_memory": True})
    ws = book.add_worksheet()
    assert ws.write_row(SHEET_ROWS, 0, [1]) == 0
    assert ws.write_row(SHEET_ROWS + 1, 0, [1]) == -1
    book.close()


def _written(tmp_path, name, df, money, dates, *, cell_by_cell):
    """`df` written as the report's sheet, by the column-wise rows or XlsxWriter cell by cell;
    (each cell's value, type and number format read back by openpyxl, the sheet's XML)."""
    import zipfile

    from receivables.reports import report, sheet_rows

    path = tmp_path / f"{name}.xlsx"
    wb = report._Workbook(path)
    kinds = sheet_rows.column_kinds
    try:
        if cell_by_cell:
            sheet_rows.column_kinds = lambda *a: None
        report._sheet(wb, "Лист", df, money, dates)
    finally:
        sheet_rows.column_kinds = kinds
    wb.book.close()
    ws = load_workbook(path)["Лист"]
    cells = [[(c.value, c.data_type, c.number_format) for c in row] for row in ws.iter_rows()]
    with zipfile.ZipFile(path) as z:
        xml = z.read("xl/worksheets/sheet1.xml").decode()
    return cells, xml, ws


def test_column_wise_rows_are_the_cells_xlsxwriter_writes(tmp_path):
    """The report's rows built a column at a time (`sheet_rows`) are the cells XlsxWriter writes
    one by one: same values, types and formats; text escaped byte for byte as it escapes it
    (markup, edge spaces of every kind, control characters, its own _xHHHH_ pattern); missing
    values and empty text as no cell. Text over Excel's 32 767 characters is cut as XlsxWriter
    cuts it, and the row's other cells stay (XlsxWriter's write_row dropped them)."""
    import numpy as np
    import pandas as pd

    from receivables.reports import sheet_rows

    text = ["ООО «Рога & Копыта» <опт>", " ведущий пробел", "хвост\u3000", "\u00a0nbsp", "tab\tвнутри\nстрока",
            "ctl\x01char", "_x0041_ как есть", "", None, 'кавычки "да"', "конец\n", "\ufffeне символ"]
    n = len(text)
    df = pd.DataFrame({
        "name": pd.Series(text, dtype="str"),
        "segment": pd.Categorical((["Опт", None, "Розница & Ко"] * n)[:n]),
        "obj": pd.Series(text, dtype=object),
        "outstanding": pd.array([125_099, None, -1, 0, 10**14 + 7, *range(n - 5)], dtype="Int64"),
        "due_date": pd.Series(["2026-11-20", None, "2000-01-01", *["2099-12-31"] * (n - 3)], dtype="datetime64[s]"),
        "days": np.arange(n, dtype="int64") - 3,
        "docs": pd.array([None, *range(n - 1)], dtype="Int64"),
        "share": [0.07, np.nan, 1 / 3, 1e-7, 1e16, *[0.5] * (n - 5)],
    })
    fast, fast_xml, ws = _written(tmp_path, "fast", df, {"outstanding"}, {"due_date"}, cell_by_cell=False)
    slow, slow_xml, _ = _written(tmp_path, "slow", df, {"outstanding"}, {"due_date"}, cell_by_cell=True)
    assert sheet_rows.column_kinds(df, {"outstanding"}, {"due_date"}) == [
        "text", "text", "text", "money", "date", "number", "number", "number"]
    assert fast == slow
    assert ws["A2"].value == "ООО «Рога & Копыта» <опт>" and ws["D2"].value == 1250.99 and ws["A10"].value is None
    # Excel's escapes as the file holds them (Excel shows the control character and "_x0041_")
    assert ws["A7"].value == "ctl_x0001_char" and ws["A8"].value == "_x005F_x0041_ как есть"
    long = df.iloc[[0]].assign(name="x" * 40_000)
    cells, _, _ = _written(tmp_path, "long", long, {"outstanding"}, {"due_date"}, cell_by_cell=False)
    assert len(cells[1][0][0]) == 32_767 and [c[0] for c in cells[1][1:]] == [c[0] for c in fast[1][1:]]

    def text_cells(xml):  # the inline strings, in order
        import re
        return re.findall(r'<c r="[A-C]\d+"[^>]*t="inlineStr"><is>.*?</is></c>', xml, flags=re.S)

    # three headers, two columns of text but the empty and the missing one, 8 segments of 12
    assert text_cells(fast_xml) == text_cells(slow_xml) and len(text_cells(fast_xml)) == 3 + 2 * (n - 2) + 8


def test_column_wise_rows_span_blocks_and_leave_mixed_sheets_to_xlsxwriter(tmp_path, monkeypatch):
    """Rows built block by block follow one another (row numbers, dimension, filter); a column of
    mixed values (the summary sheet's) or a per-cell format leaves the sheet to XlsxWriter."""
    import pandas as pd

    from receivables.reports import sheet_rows

    monkeypatch.setattr(sheet_rows, "BLOCK_ROWS", 4)
    df = pd.DataFrame({"n": [f"ТД-{i}" for i in range(11)], "v": pd.array(range(11), dtype="Int64")})
    cells, xml, ws = _written(tmp_path, "blocks", df, {"v"}, set(), cell_by_cell=False)
    assert [row[0][0] for row in cells] == ["n", *df["n"]] and [row[1][0] for row in cells][1:] == [i / 100 for i in range(11)]
    assert '<dimension ref="A1:B12"/>' in xml and ws.auto_filter.ref == "A1:B12" and ws.freeze_panes == "A2"
    mixed = pd.DataFrame({"показатель": ["a", "b"], "значение": ["01.12.2026", 5]})
    assert sheet_rows.column_kinds(mixed, set(), set()) is None
    assert sheet_rows.column_kinds(pd.DataFrame({"f": [True, False]}), set(), set()) is None
    assert sheet_rows.column_kinds(pd.DataFrame({"x": [1.0, float("inf")]}), set(), set()) is None
    assert sheet_rows.column_kinds(pd.DataFrame({"d": pd.to_datetime(["1900-02-28"])}), set(), {"d"}) is None
    assert sheet_rows.column_kinds(pd.DataFrame({"d": pd.to_datetime(["2026-11-20"], utc=True)}), set(), {"d"}) is None
