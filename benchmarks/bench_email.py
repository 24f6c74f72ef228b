"""Benchmark 5: reminder emails per second to a loopback SMTP server (issue 8).

The server is the project's mail catcher (``receivables mailcatcher``: aiosmtpd, every
message saved as a file) in its own process, as in ``make demo``. Three loops send the
same N distinct letters (the shipped templates, a different partner, address and
documents each), each over one SMTP session:

- **pipeline**: what ``perform.send_emails`` does per letter: ``TemplateRenderer.render``
  (sandboxed Jinja2, templates already compiled by ``check``) and ``build_message`` with the
  Message-ID claimed beforehand (both through ``built_messages``, one letter ahead in a worker
  thread, as the pipeline sends), and ``SmtpSender.send``; the metric;
- **sender**: ``SmtpSender.send`` alone on the already built messages;
- **raw**: ``smtplib.SMTP.sendmail`` of the same messages already serialised to bytes:
  the baseline, the least work a Python client can do per message.

After each loop the catcher's folder must hold N new files, so every side is known to
have delivered what it counted.
"""

from __future__ import annotations

import datetime as dt
import io
import smtplib
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from email.generator import BytesGenerator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from receivables.demo import free_port, stop_processes

TODAY = dt.date(2026, 11, 20)
TEMPLATES = ("unpaid_order", "before_due", "due_today", "overdue")


def log(msg: str) -> None:
    print(f"[email] {msg}", file=sys.stderr, flush=True)


@contextmanager
def mail_catcher(out: Path) -> Iterator[int]:
    """``receivables mailcatcher`` in a child process, saving into `out`; yield its port."""
    port = free_port()
    exe = Path(sys.executable).parent / "receivables"
    proc = subprocess.Popen([str(exe), "mailcatcher", "--port", str(port), "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the mail catcher exited with code {proc.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                    if s.recv(3) == b"220":
                        break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("the mail catcher did not start within 60 s") from None
                time.sleep(0.1)
        yield port
    finally:
        stop_processes([proc])


def make_letters(n: int) -> list[Any]:
    """N distinct letters over the shipped templates and the template checker's shapes."""
    from receivables.actions.email import sample_letters

    shapes = [letter for name in TEMPLATES for letter in sample_letters(name)]
    letters = []
    for i in range(n):
        base = shapes[i % len(shapes)]
        items = [replace(it, document_ref=f"{i:08d}-0000-0000-0000-{k:012d}", document_number=f"ТД00-{i:06d}")
                 for k, it in enumerate(base.items)]
        letters.append(replace(base, partner_ref=f"{i:08d}-0000-0000-0000-0000000000aa",
                               partner_name=f"ООО «Клиент {i}»", to_addr=f"buh{i}@client{i % 97}.example.ru",
                               items=items))
    return letters


def _wire_bytes(msg: EmailMessage) -> bytes:
    """The message as smtplib.send_message puts it on the wire (CRLF line ends)."""
    out = io.BytesIO()
    BytesGenerator(out, policy=msg.policy.clone(linesep="\r\n")).flatten(msg, linesep="\r\n")
    return out.getvalue()


def _saved(folder: Path) -> int:
    return sum(1 for _ in folder.glob("*.eml"))


def _check_delivered(folder: Path, before: int, n: int, side: str) -> None:
    deadline = time.monotonic() + 10  # the catcher writes the file before it answers 250
    while _saved(folder) - before < n and time.monotonic() < deadline:
        time.sleep(0.05)
    got = _saved(folder) - before
    if got != n:
        raise RuntimeError(f"{side}: the catcher saved {got} messages of {n}")


def run(n: int = 500, repeats: int = 3) -> dict[str, Any]:
    """Messages per second of the pipeline's sender (render+build+send), the sender alone
    and a raw smtplib loop, medians of `repeats` runs of `n` messages each."""
    from receivables import settings
    from receivables.actions.email import (
        SmtpSender,
        SmtpSettings,
        TemplateRenderer,
        build_message,
        built_messages,
        message_id,
    )

    renderer = TemplateRenderer(settings.templates_dir() / "email")
    renderer.check(TEMPLATES)  # compiles the templates, as send_emails does before sending
    letters = make_letters(n)
    # perform claims each letter's Message-ID before sending and passes it to build_message
    mids = [message_id(lt.pairs, lt.from_addr.rsplit("@", 1)[-1]) for lt in letters]
    built: list[EmailMessage] = [build_message(lt, renderer.render(lt, today=TODAY)) for lt in letters]
    raw = [(m["From"].addresses[0].addr_spec, [m["To"].addresses[0].addr_spec], _wire_bytes(m)) for m in built]
    runs: dict[str, list[float]] = {"pipeline": [], "sender": [], "raw": []}
    cpu_ms: dict[str, list[float]] = {k: [] for k in runs}  # this process's CPU: robust to a busy machine
    with tempfile.TemporaryDirectory(prefix="receivables-bench-mail-") as tmp, mail_catcher(Path(tmp)) as port:
        folder = Path(tmp)
        smtp = SmtpSettings(host="127.0.0.1", port=port, timeout=30)

        def pipeline() -> None:
            with SmtpSender(smtp) as sender:
                items = ((None, letter, mid) for letter, mid in zip(letters, mids, strict=True))
                for _, _, msg in built_messages(items, renderer, today=TODAY):
                    if isinstance(msg, Exception):
                        raise msg
                    result = sender.send(msg)
                    if result.status != "sent":
                        raise RuntimeError(f"pipeline: {result}")

        def sender_only() -> None:
            with SmtpSender(smtp) as sender:
                for msg in built:
                    result = sender.send(msg)
                    if result.status != "sent":
                        raise RuntimeError(f"sender: {result}")

        def raw_loop() -> None:
            with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
                for sender_addr, rcpt, data in raw:
                    s.sendmail(sender_addr, rcpt, data)

        loops = {"pipeline": pipeline, "sender": sender_only, "raw": raw_loop}
        raw_loop()  # warm-up: the catcher's first connection, the page cache
        _check_delivered(folder, 0, n, "warm-up")
        for i in range(repeats):
            names = list(loops) if i % 2 == 0 else list(reversed(loops))  # alternate the order
            for name in names:
                before = _saved(folder)
                started, cpu = time.perf_counter(), time.process_time()
                loops[name]()
                seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
                _check_delivered(folder, before, n, name)
                runs[name].append(n / seconds)
                cpu_ms[name].append(cpu / n * 1000)
            log(f"run {i + 1}/{repeats}: " + ", ".join(f"{k} {v[-1]:.0f}/s" for k, v in runs.items()))
    med = {k: statistics.median(v) for k, v in runs.items()}
    return {
        "messages": n,
        "repeats": repeats,
        "bytes_per_message": round(statistics.mean(len(r[2]) for r in raw)),
        "pipeline_per_s": round(med["pipeline"], 1),
        "sender_per_s": round(med["sender"], 1),
        "raw_per_s": round(med["raw"], 1),
        "client_cpu_ms_per_message": {k: round(statistics.median(v), 2) for k, v in cpu_ms.items()},
        "runs_per_s": {k: [round(x, 1) for x in v] for k, v in runs.items()},
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=1))
