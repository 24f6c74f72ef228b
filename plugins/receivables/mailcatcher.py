"""A local SMTP server that saves every message it receives (demo and staging)."""

from __future__ import annotations

import itertools
import signal
import threading
from pathlib import Path

from aiosmtpd.controller import Controller


class SaveToFolder:
    """aiosmtpd handler: each message becomes ``NNNNN.eml`` in `folder` (duplicates too)."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        start = len(list(self.folder.glob("*.eml")))
        self._seq = itertools.count(start + 1)
        self._lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
        with self._lock:
            path = self.folder / f"{next(self._seq):05d}.eml"
        path.write_bytes(envelope.original_content or envelope.content)
        return "250 OK saved"


def start(host: str = "127.0.0.1", port: int = 8025, out: str | Path = ".demo/mail") -> Controller:
    ctl = Controller(SaveToFolder(Path(out)), hostname=host, port=port)
    ctl.start()
    return ctl


def serve(host: str, port: int, out: str | Path) -> None:
    ctl = start(host, port, out)
    print(f"mail catcher on smtp://{host}:{port}, saving to {Path(out).resolve()}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        ctl.stop()
