"""Named crash points for crash-safety tests (`RECEIVABLES_FAILPOINT=<name>`).

`hit(name)` kills the current process with SIGKILL when the variable names it, the way
an OOM killer or a lost worker would: no cleanup, no exception handlers, no flush.
Unset in production, it costs one environment lookup.
"""

from __future__ import annotations

import os
import signal


def hit(name: str) -> None:
    if os.environ.get("RECEIVABLES_FAILPOINT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
