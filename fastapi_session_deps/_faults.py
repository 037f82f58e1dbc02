"""One warning per store fault: the first "try again later" of an outage is logged at once.

A store that is down answers every request with a 503; logging each would flood the log
with thousands of identical lines, and logging none (as before) hides the outage from
whoever reads the log. So the first one is logged, and repeats at most once a minute, with
the number of 503s in between.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

logger = logging.getLogger("fastapi_session_deps")

#: Seconds between two warnings about the same kind of fault.
REPEAT_AFTER = 60.0


class FaultLog:
    """Logs a fault as a warning, at most once per ``repeat_after`` seconds per kind."""

    def __init__(
        self, repeat_after: float = REPEAT_AFTER, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.repeat_after = repeat_after
        self.clock = clock
        self._last: dict[str, float] = {}
        self._quiet: dict[str, int] = {}
        self._lock = threading.Lock()

    def reset(self) -> None:
        """Forget what was logged, so the next fault of every kind is logged at once."""
        with self._lock:
            self._last.clear()
            self._quiet.clear()

    def report(self, kind: str, exc: BaseException) -> None:
        """Note one fault of ``kind`` (its answer already decided), logging it if due."""
        now = self.clock()
        with self._lock:
            last = self._last.get(kind)
            if last is not None and now - last < self.repeat_after:
                self._quiet[kind] = self._quiet.get(kind, 0) + 1
                return
            self._last[kind] = now
            quiet = self._quiet.pop(kind, 0)
        since = f" ({quiet} more since the last warning)" if quiet else ""
        logger.warning(
            "%s: %s%s",
            kind,
            exc,
            since,
            extra={"event": "store_fault", "fault": kind, "store": getattr(exc, "backend", "")},
        )


#: The process's fault log, shared by every manager and middleware.
faults = FaultLog()
