"""Waiting with a deadline: one ``wait_until`` for the whole host layer, with time injected.

The clock is a dependency so unit tests step a fake one instead of sleeping. Between checks
the wait pauses through ``pause`` (the clock's sleep by default); a link-directory watcher
(``iscsi_agent.host.watch``) can stand in for it, so a udev link that appears wakes the wait
at once instead of at the next poll.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol, TypeVar

from iscsi_agent.host.errors import WaitTimeout

T = TypeVar("T")

POLL_INTERVAL = 0.25


class Clock(Protocol):
    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock: monotonic time, real sleeps."""

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


def wait_until(
    predicate: Callable[[], T | None],
    timeout: float,
    clock: Clock,
    *,
    what: str = "condition",
    pause: Callable[[float], None] | None = None,
    interval: float = POLL_INTERVAL,
) -> T:
    """Return the first truthy value of ``predicate``; raise WaitTimeout once ``timeout`` has passed.

    The predicate is always checked once more at the deadline, so a condition that came true
    during the last pause is not reported as a timeout.
    """
    pause = pause or clock.sleep
    deadline = clock.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        remaining = deadline - clock.monotonic()
        if remaining <= 0:
            raise WaitTimeout(f"{what} did not happen within {timeout:g}s", waited_for=what, timeout=timeout)
        pause(min(interval, remaining))
