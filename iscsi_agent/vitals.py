"""Whether the agent can do its job now: its servers accept, it can start a program, its journal takes a write.

A live accept loop alone said nothing when the process was out of descriptors: iscsiadm could not
start and the journal could not be written, yet the watchdog was pinged and systemd never
restarted the agent. The watchdog now pings only while every vital holds, and health reports the
failing ones as problems.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Protocol

log = logging.getLogger(__name__)


class Waiter(Protocol):
    def wait(self, timeout: float | None = None) -> bool: ...


class Vitals:
    """Named checks, each raising when the agent cannot do that thing; the last outcome is kept."""

    def __init__(self, checks: Mapping[str, Callable[[], None]] | None = None) -> None:
        self._checks = dict(checks or {})
        self._lock = threading.Lock()
        self._problems: tuple[str, ...] = ()

    def watch(self, checks: Mapping[str, Callable[[], None]]) -> None:
        """Add checks of what exists only once the agent is wired (its servers)."""
        self._checks.update(checks)

    def check(self) -> tuple[str, ...]:
        problems = []
        for name, check in self._checks.items():
            try:
                check()
            except Exception as exc:  # noqa: BLE001 - whatever stops it, the agent cannot do this now
                problems.append(f"{name}: {exc}")
        with self._lock:
            self._problems = tuple(problems)
        return self._problems

    @property
    def problems(self) -> tuple[str, ...]:
        """What the last check found (health asks often; a check starts a program)."""
        with self._lock:
            return self._problems


def keep_watch(
    stop: Waiter, interval: float, vitals: Vitals, notify: Callable[[str], None], status: Callable[[], str]
) -> None:
    """Until ``stop``: every ``interval``, check the vitals; ping the watchdog only while all hold, so
    that systemd restarts an agent that cannot work."""
    while not stop.wait(interval):
        problems = vitals.check()
        if problems:
            log.error("not telling the watchdog we are alive: %s", "; ".join(problems))
            notify(f"STATUS=cannot work: {'; '.join(problems)}")
            continue
        notify(f"WATCHDOG=1\nSTATUS={status()}")
