"""Where an operation's time goes: the agent's own steps as its metrics see them, its journal's writes
around them, and the rest (decisions, locks, the answer), so each ratio over the floor can be read.

The steps are the ones ``iscsi_agent_step_duration_seconds`` records (the same observer call). The
journal's writes are the operation's begin, each step's intent and outcome, and its finish; a step
that is itself a journal write (``handed_out``) counts as that step.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from iscsi_agent.journal.store import Journal
from iscsi_agent.service.observe import Unobserved

JOURNAL = "journal writes"
OTHER = "other"
_JOURNAL_WRITES = frozenset({"begin", "intend", "record_done", "record_failed", "finish"})


class StepTimes(Unobserved):
    """Seconds per step since the last ``take``, summed over repeats (a login per portal) and threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seconds: defaultdict[str, float] = defaultdict(float)

    def step(self, operation: str, step: str, seconds: float) -> None:
        self.add(step, seconds)

    def add(self, name: str, seconds: float) -> None:
        with self._lock:
            self._seconds[name] += seconds

    def take(self) -> dict[str, float]:
        with self._lock:
            taken, self._seconds = dict(self._seconds), defaultdict(float)
        return taken


class TimedJournal:
    """The journal, its writes timed into ``times`` under ``JOURNAL``; everything else passes through."""

    def __init__(
        self, journal: Journal, times: StepTimes, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._journal = journal
        self._times = times
        self._clock = clock

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._journal, name)
        if name not in _JOURNAL_WRITES:
            return value

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = self._clock()
            try:
                return value(*args, **kwargs)
            finally:
                self._times.add(JOURNAL, self._clock() - started)

        return timed


def split(
    times: StepTimes, action: Callable[[], object], clock: Callable[[], float] = time.monotonic
) -> dict[str, float]:
    """``action``'s wall time under ``"total"``, its steps and journal writes, and ``OTHER``: the rest.
    With threads the steps are summed across them, and ``OTHER`` is then left out (it has no meaning)."""
    times.take()
    started = clock()
    action()
    total = clock() - started
    parts = times.take()
    rest = total - sum(parts.values())
    return {"total": total, **parts, **({OTHER: rest} if rest >= 0 else {})}
