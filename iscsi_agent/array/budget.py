"""One retry budget per client call, shared by every layer that may send a request again.

One client call (``add_initiator``) may send several requests: read the igroup, post the
initiator, read again after a failure. Two layers may resend: the transport after a transient
failure of an idempotent request, and ``recovery.write_then_verify`` after a write whose outcome
is unknown. When each layer counted its own attempts they multiplied: nine POSTs and six GETs
for one add against an array that kept resetting, and a lun-map resent at once, without backoff.

So the client opens one ``CallBudget`` per call (``one_budget_per_call``). Every resend below it,
whichever layer sends it, first takes a retry from that budget and sleeps the backoff; none
starts when the budget is spent or when it would start after the call's deadline, and each
request's timeouts are cut to the time left. First sends (the reads that tell whether a write
happened) cost no retry. A call made inside another (``create_igroup`` adding its initiators)
shares the outer call's budget. The active budget is a context variable, so threads sharing one
client each have their own. Clock, sleep and the jitter's random source are injected, so tests
run without real waiting.
"""

from __future__ import annotations

import functools
import inspect
import logging
import random
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar

from iscsi_agent.array.errors import ArrayTimeout

log = logging.getLogger(__name__)

C = TypeVar("C", bound=type)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and for how long one client call may retry.

    ``attempts`` counts tries of the whole call, so a call resends at most ``attempts - 1`` times
    in total. Retry n waits ``uniform(0, min(max_delay, base_delay * 2**n))`` (full jitter).
    ``deadline`` is in seconds from the start of the call.
    """

    attempts: int = 3
    base_delay: float = 0.5
    max_delay: float = 8.0
    deadline: float = 120.0

    def delay(self, retry_number: int, rand: float) -> float:
        return rand * min(self.max_delay, self.base_delay * float(2**retry_number))


class CallBudget:
    """The retries and time one client call has left."""

    __slots__ = ("_clock", "_ends_at", "_rand", "_sleep", "policy", "retries")

    def __init__(
        self,
        policy: RetryPolicy,
        *,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
        rand: Callable[[], float],
    ) -> None:
        self.policy = policy
        self.retries = 0
        self._clock = clock
        self._sleep = sleep
        self._rand = rand
        self._ends_at = clock() + policy.deadline

    def time_left(self) -> float:
        return self._ends_at - self._clock()

    def timeouts(self, connect: float, read: float, what: str) -> tuple[float, float]:
        """The connect and read timeouts of one request, cut to the time the call has left."""
        left = self.time_left()
        if left <= 0:
            raise ArrayTimeout(
                f"{what} not sent: the call's {self.policy.deadline:g}s deadline has passed",
                deadline=self.policy.deadline,
            )
        return (min(connect, left), min(read, left))

    def retry(self, what: str, why: str) -> bool:
        """Sleep the backoff and return True, or return False at once when retrying is over."""
        if self.retries >= self.policy.attempts - 1:
            log.warning("%s failed (%s); giving up after %d tries", what, why, self.retries + 1)
            return False
        delay = self.policy.delay(self.retries, self._rand())
        if delay >= self.time_left():
            log.warning(
                "%s failed (%s); giving up: the call's %gs deadline ends first",
                what,
                why,
                self.policy.deadline,
            )
            return False
        self.retries += 1
        log.warning(
            "%s failed (%s); retry %d of %d in %.2fs",
            what,
            why,
            self.retries,
            self.policy.attempts - 1,
            delay,
        )
        self._sleep(delay)
        return True


DEFAULT_POLICY = RetryPolicy()

_ACTIVE: ContextVar[CallBudget | None] = ContextVar("iscsi_agent_call_budget", default=None)


class Budgets:
    """Opens the budget of each client call, with one policy, clock, sleep and random source."""

    def __init__(
        self,
        policy: RetryPolicy = DEFAULT_POLICY,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.policy = policy
        self._clock = clock
        self._sleep = sleep
        self._rand = rand

    def new(self) -> CallBudget:
        return CallBudget(self.policy, clock=self._clock, sleep=self._sleep, rand=self._rand)

    def current(self) -> CallBudget:
        """The active call's budget; a request sent outside any client call gets one of its own."""
        return _ACTIVE.get() or self.new()


def one_budget_per_call(cls: C) -> C:
    """Give each call of a public method of ``cls`` one budget from ``self.budgets``; nested calls share it."""
    for name, member in list(vars(cls).items()):
        if not name.startswith("_") and inspect.isfunction(member):
            setattr(cls, name, _within_budget(member))
    return cls


def _within_budget(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        if _ACTIVE.get() is not None:  # called from within another client call: share its budget
            return method(self, *args, **kwargs)
        token = _ACTIVE.set(self.budgets.new())
        try:
            return method(self, *args, **kwargs)
        finally:
            _ACTIVE.reset(token)

    return call
