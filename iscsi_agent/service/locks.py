"""Per-key locks and single-flight calls: parallel work on different volumes, one login per portal.

os-brick serialises every attach on a host behind one lock; here only what must be serialised is:
operations on one volume, and changes to one target's node record at one portal. A login that
several attaches need at once is done by the first and awaited by the rest.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass
class _Entry:
    lock: threading.Lock = field(default_factory=threading.Lock)
    users: int = 0


class KeyedLocks:
    """One mutex per key, created on first use and dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._entries: dict[Hashable, _Entry] = {}

    @contextmanager
    def hold(self, key: Hashable) -> Iterator[None]:
        with self._guard:
            entry = self._entries.setdefault(key, _Entry())
            entry.users += 1
        try:
            with entry.lock:
                yield
        finally:
            with self._guard:
                entry.users -= 1
                if entry.users == 0:
                    del self._entries[key]

    def __len__(self) -> int:
        """Keys held or waited for now (a leak check for tests and metrics)."""
        with self._guard:
            return len(self._entries)


@dataclass
class _Call(Generic[T]):
    done: threading.Event = field(default_factory=threading.Event)
    result: T | None = None
    error: BaseException | None = None


class SingleFlight(Generic[T]):
    """``run(key, fn)``: concurrent callers with one key share one call of ``fn`` and its outcome."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._calls: dict[Hashable, _Call[T]] = {}

    def run(self, key: Hashable, fn: Callable[[], T]) -> T:
        with self._guard:
            call = self._calls.get(key)
            leader = call is None
            if call is None:
                call = self._calls[key] = _Call()
        if leader:
            try:
                call.result = fn()
            except BaseException as exc:  # noqa: BLE001 - re-raised below, to the leader and every waiter
                call.error = exc
            finally:
                with self._guard:
                    del self._calls[key]
                call.done.set()
        else:
            call.done.wait()
        if call.error is not None:
            raise call.error
        return call.result  # type: ignore[return-value]  # set whenever error is None


class OperationGate:
    """Attaches and detaches pass through together; a reconciler pass has the host to itself.

    A pass reads the array's maps and then the host's devices: an attach that mapped and scanned
    a LUN in between would look like a stale device to it. So a pass waits until no operation is
    in flight and holds new ones back only while it runs. It gives way (reader preference): an
    operation never waits for a pass that has not started, and a pass that cannot find a quiet
    moment within its ``timeout`` is skipped rather than holding attaches back.
    """

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._operations = 0
        self._passing = False

    @contextmanager
    def operation(self) -> Iterator[None]:
        with self._condition:
            self._condition.wait_for(lambda: not self._passing)
            self._operations += 1
        try:
            yield
        finally:
            with self._condition:
                self._operations -= 1
                self._condition.notify_all()

    @contextmanager
    def exclusive(self, timeout: float | None = None) -> Iterator[bool]:
        """Yields True with the host to itself, or False when operations kept it busy past ``timeout``."""
        with self._condition:
            quiet = self._condition.wait_for(lambda: not self._passing and not self._operations, timeout)
            if quiet:
                self._passing = True
        try:
            yield quiet
        finally:
            if quiet:
                with self._condition:
                    self._passing = False
                    self._condition.notify_all()
