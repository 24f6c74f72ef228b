"""Long-running processes for distributed integration tests: start, wait, explain, stop.

Each component runs in its own session (process group) with stdout and stderr in a log
file. Every process started here carries a marker in its environment, inherited by all
its descendants, so a leak is found even when a descendant moved to its own process
group (Airflow's task supervisor does) or was re-parented after its parent died.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import psutil

T = TypeVar("T")
MARKER = "RECEIVABLES_DISTRIBUTED_TEST"


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now (the kernel picks it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def tail(path: Path, lines: int = 60) -> str:
    """The last `lines` lines of a text file, or a note that it does not exist."""
    if not path.exists():
        return f"({path} does not exist)"
    text = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return "\n".join(text[-lines:])


def wait_for(check: Callable[[], T], *, timeout: float, what: str, interval: float = 1.0,
             explain: Callable[[], str] = lambda: "") -> T:
    """Call `check` until it returns something truthy; AssertionError with `explain()` after `timeout`.

    Other exceptions from `check` count as "not yet"; an AssertionError from it ends the wait at once.
    """
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            result = check()
            if result:
                return result
        except AssertionError:
            raise  # the check saw a failure that waiting cannot fix (a component died, a task failed)
        except Exception as exc:  # noqa: BLE001 - a component still starting refuses connections
            last_error = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}"
                                 + (f" (last error: {last_error!r})" if last_error else "")
                                 + "\n" + explain())
        time.sleep(interval)


@dataclass
class Component:
    name: str
    argv: list[str]
    log: Path
    process: subprocess.Popen

    @property
    def pgid(self) -> int:
        # start_new_session=True: the child is a session and group leader, pgid == pid
        return self.process.pid


@dataclass
class Cluster:
    """Components started as separate process groups from one environment; `stop()` ends all."""

    env: Mapping[str, str]
    log_dir: Path
    token: str = field(default_factory=lambda: uuid.uuid4().hex)
    components: list[Component] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.env = {**self.env, MARKER: self.token}
        self.log_dir.mkdir(parents=True, exist_ok=True)

    def start(self, name: str, argv: Sequence[str]) -> Component:
        log = self.log_dir / f"{name}.log"
        with log.open("ab") as out:  # the child keeps its own copy of the descriptor
            proc = subprocess.Popen(list(argv), env=dict(self.env), stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        comp = Component(name, list(argv), log, proc)
        self.components.append(comp)
        return comp

    def run(self, name: str, argv: Sequence[str], timeout: float = 300) -> subprocess.CompletedProcess:
        """A one-shot command (e.g. `airflow db migrate`) in the same environment; fails loudly."""
        result = subprocess.run(list(argv), env=dict(self.env), capture_output=True, text=True, timeout=timeout)
        assert result.returncode == 0, f"{name} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        return result

    def exited(self) -> list[str]:
        """Components that are no longer running, with their exit codes."""
        return [f"{c.name} (exit {c.process.returncode})" for c in self.components if c.process.poll() is not None]

    def explain(self, lines: int = 60) -> str:
        """The tail of every component's log, for a failure message in CI."""
        parts = []
        for c in self.components:
            state = "running" if c.process.poll() is None else f"exited {c.process.returncode}"
            parts.append(f"===== {c.name} ({state}): {' '.join(c.argv)}\n{tail(c.log, lines)}")
        return "\n".join(parts)

    def marked_processes(self) -> list[psutil.Process]:
        """Every live process whose environment carries this cluster's token."""
        found = []
        for proc in psutil.process_iter():
            if proc.pid == os.getpid():
                continue
            try:
                if proc.environ().get(MARKER) == self.token and proc.status() != psutil.STATUS_ZOMBIE:
                    found.append(proc)
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
        return found

    def live_groups(self) -> list[str]:
        """Components whose process group still has a member."""
        alive = []
        for c in self.components:
            c.process.poll()  # reap the leader so a zombie does not count as alive
            try:
                os.killpg(c.pgid, 0)
            except ProcessLookupError:
                continue
            except PermissionError:
                pass
            alive.append(c.name)
        return alive

    def stop(self, grace: float = 30.0) -> list[str]:
        """SIGTERM each component's main process, wait up to `grace` seconds, SIGKILL what is left.

        Like `docker stop`: the main process gets the SIGTERM and shuts its own children down
        in order (a Celery worker lets its pool finish); the group and every marked process
        get SIGKILL only if they outlive the grace period. Returns a description of each
        process still alive afterwards (empty when clean).
        """
        for c in self.components:
            with _gone():
                c.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and (self.live_groups() or self.marked_processes()):
            time.sleep(0.5)
        for c in self.components:
            with _gone():
                os.killpg(c.pgid, signal.SIGKILL)
        for proc in self.marked_processes():
            with _gone():
                proc.kill()
        for c in self.components:
            try:
                c.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        time.sleep(0.5)
        survivors = [f"group of {name}" for name in self.live_groups()]
        survivors += [f"pid {p.pid} {' '.join(_cmdline(p))[:200]}" for p in self.marked_processes()]
        return survivors


class _gone:
    """Ignore 'no such process': it already ended, which is what we want."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, exc, tb) -> bool:
        return kind is not None and issubclass(kind, (ProcessLookupError, psutil.NoSuchProcess))


def _cmdline(proc: psutil.Process) -> list[str]:
    try:
        return proc.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return ["?"]


__all__ = ["MARKER", "Cluster", "Component", "free_port", "tail", "wait_for"]
