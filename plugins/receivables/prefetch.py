"""One item ahead: the next item of an iterator produced in a worker thread while the
caller handles the current one. Used where each item waits on a server (1C's pages, SMTP
replies) and the other side's work is CPU in this process."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
_END = object()


def read_ahead(items: Iterator[T], *, name: str = "read-ahead") -> Iterator[T]:
    """`items` in order, each next one produced while the caller handles the one before.

    Still one item at a time (the next starts when the previous is handed over), so a
    server sees the same sequence; the worker's errors are raised here, in order, when the
    caller reaches the item that failed."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix=name) as pool:
        pending = pool.submit(next, items, _END)
        try:
            while (item := pending.result()) is not _END:
                pending = pool.submit(next, items, _END)
                yield item
        finally:
            pending.cancel()
