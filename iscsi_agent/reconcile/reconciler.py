"""One reconciler pass (observe, plan, act, report) and the schedule that runs it.

A pass never overlaps another (a lock; the scheduler also runs at most one instance) and has the
host to itself while it runs (``OperationGate``): it waits for attaches and detaches in flight and
gives up, rather than hold them back, when they keep the host busy. Its changes are one journalled
operation of kind ``reconcile``. Passes run every ``interval`` seconds with a random jitter of up
to a tenth of it, the first one at a random point of the first interval, so that a fleet restarted
together does not call its array in step. apscheduler is imported when the schedule is made, once
the daemon serves, not with this module.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from iscsi_agent.errors import AgentError
from iscsi_agent.host.waiting import Clock
from iscsi_agent.journal.model import Kind
from iscsi_agent.reconcile.act import Executor, Result
from iscsi_agent.reconcile.observe import StateReader
from iscsi_agent.reconcile.plan import Action, ActionKind, Policy, Reason, plan
from iscsi_agent.service.chap import ChapRotation
from iscsi_agent.service.locks import OperationGate
from iscsi_agent.service.observe import Observer
from iscsi_agent.service.recovery import Recovery
from iscsi_agent.service.steps import Operations, StepRecorder
from iscsi_agent.service_api import ReconcileAction, ReconcileBusy

if TYPE_CHECKING:
    from apscheduler.triggers.interval import IntervalTrigger

log = logging.getLogger(__name__)

JITTER_SHARE = 0.1
_REPORTS = frozenset({ActionKind.REPORT, ActionKind.REPORT_STALE_DEVICE})


@dataclass(frozen=True)
class PassReport:
    """The last pass that ran: when it finished, what it left because something holds it, and the
    extends it found waiting for a resize."""

    finished_at: datetime
    held: tuple[str, ...] = ()
    grown: tuple[str, ...] = ()  # attached LUNs larger on the array than on the host


class Reconciler:
    def __init__(
        self,
        *,
        reader: StateReader,
        executor: Executor,
        operations: Operations,
        recovery: Recovery,
        gate: OperationGate,
        policy: Policy,
        clock: Clock,
        observer: Observer,
        busy_timeout: float,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        chap: ChapRotation | None = None,
    ) -> None:
        self._reader = reader
        self._chap = chap
        self._executor = executor
        self._operations = operations
        self._recovery = recovery
        self._gate = gate
        self._policy = policy
        self._clock = clock
        self._observer = observer
        self._busy_timeout = busy_timeout
        self._now = now
        self._lock = threading.Lock()
        self._reported: set[tuple[Reason, str]] = set()
        self.last: PassReport | None = None

    def run(self, *, dry_run: bool = False) -> list[ReconcileAction]:
        """One pass now; with ``dry_run`` the plan, changing nothing. Raises ReconcileBusy or the
        error that kept it from seeing the array or the host."""
        with self._lock:
            started = self._clock.monotonic()
            held: list[str] = []
            grown: list[str] = []
            try:
                with self._gate.exclusive(self._busy_timeout) as quiet:
                    if not quiet:
                        raise ReconcileBusy(self._busy_timeout)
                    if self._chap is not None and not dry_run:
                        self._chap.ensure()  # a rotated secret reaches the array before this pass logs in
                    actions = self._plan()
                    results = self._preview(actions) if dry_run else self._act(actions)
            except AgentError:
                if not dry_run:
                    self._observer.reconcile_pass(self._clock.monotonic() - started, 0, True)
                raise
            answered = []
            for action, result in zip(actions, results, strict=True):
                outcome = _outcome(action, result, dry_run)
                self._observer.reconcile_action(action.kind.value, action.reason.value, outcome)
                if result.held_by:
                    held.append(f"{action.target} (held by {result.held_by})")
                if action.reason is Reason.LUN_GROWN:
                    grown.append(action.target)
                target = action.target + (f": {result.detail}" if result.detail else "")
                answered.append(ReconcileAction(action.kind.value, target, action.reason.value, result.done))
            if not dry_run:
                self._observer.reconcile_pass(self._clock.monotonic() - started, len(held), False)
                self.last = PassReport(self._now(), tuple(held), tuple(grown))
            return answered

    def run_scheduled(self) -> None:
        """The scheduler's job: a pass whose failure is logged (the next one tries again)."""
        try:
            actions = self.run()
        except AgentError as exc:
            log.warning("reconcile pass skipped: %s", exc)
            return
        changed = [a for a in actions if a.done]
        if changed:
            log.info("reconcile pass: %d action(s) taken", len(changed))

    @property
    def degraded(self) -> list[str]:
        """Why health is degraded as far as the reconciler knows: held stale devices, unsettled recovery,
        LUNs grown on the array and not on the host."""
        last = self.last or PassReport(self._now())
        reasons = [
            *last.held,
            *(f"{grown}; resize it (POST /v1/attachments/{{volume}}/resize)" for grown in last.grown),
        ]
        if self._recovery.pending:
            reasons.append(f"{len(self._recovery.pending)} interrupted operation(s) not yet recovered")
        return reasons

    def _plan(self) -> list[Action]:
        actions = plan(self._reader.read(), self._policy)
        pending = self._recovery.pending
        if pending:
            ids = ", ".join(str(op) for op in sorted(pending))
            actions.insert(0, Action(ActionKind.RECOVER, Reason.INTERRUPTED, f"operation(s) {ids}"))
        seen, self._reported = self._reported, {(a.reason, a.target) for a in actions if a.kind in _REPORTS}
        for action in actions:
            if action.kind not in _REPORTS:
                log.info("reconcile: %s %s (%s)", action.kind.value, action.target, action.reason.value)
            elif (action.reason, action.target) not in seen:  # said once, not every interval
                log.warning("reconcile: %s: %s", action.reason.value, action.target)
        return actions

    def _preview(self, actions: Sequence[Action]) -> list[Result]:
        return [self._executor.preview(action) for action in actions]

    def _act(self, actions: Sequence[Action]) -> list[Result]:
        if all(action.kind in _REPORTS for action in actions):
            return [Result(False, "reported") for _ in actions]

        def body(steps: StepRecorder, _: object) -> list[Result]:
            return [self._executor.run(action, steps) for action in actions]

        return self._operations.run(Kind.RECONCILE, "", "", body)


def _outcome(action: Action, result: Result, dry_run: bool) -> str:
    if dry_run:
        return "planned"
    if result.held_by:
        return "held"
    if action.kind in _REPORTS:
        return "reported"
    return "done" if result.done else "not_done"


def pass_trigger(interval: float, now: datetime, rng: random.Random) -> IntervalTrigger:
    """Every ``interval`` seconds on average, each gap drawn afresh within a tenth of it, starting at a
    random point of the first interval: agents restarted together spread their passes instead of
    calling in step, and stay spread. (apscheduler adds its jitter after the interval, counting the
    next gap from the jittered fire time, so the base is half a jitter short.)"""
    from apscheduler.triggers.interval import IntervalTrigger

    jitter = interval * JITTER_SHARE
    return IntervalTrigger(
        seconds=interval - jitter / 2,
        jitter=jitter,
        start_date=now + timedelta(seconds=rng.uniform(0, interval)),
    )


class Schedule:
    """Runs ``job`` on ``pass_trigger``'s times, on apscheduler's background thread, one at a time."""

    def __init__(self, job: Callable[[], None], interval: float, rng: random.Random | None = None) -> None:
        from apscheduler.schedulers.background import BackgroundScheduler

        trigger = pass_trigger(interval, datetime.now(UTC), rng or random.Random())
        self._scheduler = BackgroundScheduler(daemon=True)
        self._scheduler.add_job(
            job,
            trigger,
            id="reconcile",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
            next_run_time=trigger.start_date,
        )

    def start(self) -> None:
        self._scheduler.start()

    def stop(self) -> None:
        """Stop scheduling, and wait for a pass that is running (it may be removing a device)."""
        self._scheduler.shutdown(wait=True)
