"""Stop signals: SLURM sends SIGTERM (time limit, preemption) or SIGUSR1 before it kills a job.

While a run is active the signals only raise a flag; the loop then saves ``last.pt`` at the next
step and the job exits with :data:`EXIT_PREEMPTED`, so a rerun resumes where it stopped.
"""

from __future__ import annotations

import signal
import threading
from typing import Any

# Exit status of a run stopped by a signal after saving last.pt (EX_TEMPFAIL: "try again").
EXIT_PREEMPTED = 75
STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


class Preempted(Exception):
    """The run stopped on a signal, with ``last.pt`` saved."""


class StopSignals:
    """While active (``with``), SIGTERM and SIGUSR1 set :attr:`received` instead of killing us."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():  # Python's rule for handlers
            for sig in STOP_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.received = signum

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
