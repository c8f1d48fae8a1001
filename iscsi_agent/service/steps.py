"""Journalled steps and the rollback stack of one attach or detach.

``StepRecorder.run`` writes the step's intent before calling it and its outcome after, and adds
the step to a failing error's message and details, so an error says which step failed and what it
saw. ``Rollback`` undoes in reverse order and carries on past a failed undo (collecting, as
os-brick's cleanup does), because stopping at the first would leave the rest behind.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from iscsi_agent.errors import AgentError
from iscsi_agent.faults import FaultPoints, faults, step_point
from iscsi_agent.host.waiting import Clock
from iscsi_agent.journal.errors import JournalError
from iscsi_agent.journal.model import Kind, OperationId, Outcome, ParamValue, Step, StepId
from iscsi_agent.journal.store import Journal
from iscsi_agent.service.observe import Observer

log = logging.getLogger(__name__)

T = TypeVar("T")


class StepRecorder:
    def __init__(
        self,
        journal: Journal,
        op: OperationId,
        what: str,
        *,
        operation: str,
        clock: Clock,
        observer: Observer,
        fault_points: FaultPoints = faults,
    ) -> None:
        self._journal = journal
        self.op = op
        self._what = what
        self._operation = operation
        self._clock = clock
        self._observer = observer
        self._faults = fault_points

    def run(
        self,
        step: Step,
        action: Callable[[], T],
        *,
        result: Callable[[T], Mapping[str, ParamValue]] | None = None,
        **params: ParamValue,
    ) -> T:
        step_id = self._journal.intend(self.op, step, **params)
        self._faults.hit(step_point(self._operation, step.value, "intended"))
        started = self._clock.monotonic()
        try:
            value = action()
        except AgentError as exc:
            self._record_failed(step_id, exc.code, exc.message)
            raise _at_step(exc, step, self._what) from None
        except BaseException as exc:
            self._record_failed(step_id, "internal_error", f"{type(exc).__name__}: {exc}")
            raise
        finally:
            self._observer.step(self._operation, step.value, self._clock.monotonic() - started)
        self._journal.record_done(step_id, **(result(value) if result else {}))
        self._faults.hit(step_point(self._operation, step.value, "done"))
        return value

    def _record_failed(self, step_id: StepId, code: str, message: str) -> None:
        """Write a failure down; when the journal cannot, the step stays open (its outcome unknown to
        recovery, which then looks before it acts) and the step's own error is the one that counts."""
        try:
            self._journal.record_failed(step_id, code, message)
        except JournalError as exc:
            log.error("%s: could not record that %s failed (%s): %s", self._what, step_id, code, exc)


def _at_step(exc: AgentError, step: Step, what: str) -> AgentError:
    """The same error, its message prefixed with the step, once (a nested step keeps the inner one)."""
    if "at_step" not in exc.details:
        exc.details["at_step"] = step.value
        exc.message = f"{what} failed at {step.value}: {exc.message}"
        exc.args = (exc.message,)
    return exc


class Rollback:
    def __init__(self, what: str) -> None:
        self._what = what
        self._lock = threading.Lock()
        self._undo: list[tuple[str, Callable[[], Any]]] = []

    def push(self, label: str, undo: Callable[[], Any]) -> None:
        with self._lock:
            self._undo.append((label, undo))

    def run(self) -> list[tuple[str, BaseException]]:
        """Undo everything pushed, newest first; the failures, which are also logged, are returned."""
        with self._lock:
            pending, self._undo = list(reversed(self._undo)), []
        failures: list[tuple[str, BaseException]] = []
        for label, undo in pending:
            try:
                undo()
            except Exception as exc:  # noqa: BLE001 - the edge: collect and carry on undoing
                log.error("%s: rollback step %r failed: %s", self._what, label, exc)
                failures.append((label, exc))
        if pending:
            log.info("%s rolled back %d step(s), %d failed", self._what, len(pending), len(failures))
        return failures


class LeftOpen:
    """Operations that ended unsettled while the agent ran: a rollback that could not undo
    everything, or a journal write that failed. They stay in flight in the journal, exactly as if
    the agent had died there, and recovery's retries (every reconciler pass) take them over; until
    then health is degraded. Start-up recovery adds the operations a dead agent left."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids: set[OperationId] = set()

    def add(self, op: OperationId) -> None:
        with self._lock:
            self._ids.add(op)

    def discard(self, op: OperationId) -> None:
        with self._lock:
            self._ids.discard(op)

    def ids(self) -> frozenset[OperationId]:
        with self._lock:
            return frozenset(self._ids)


class Operations:
    """Runs one attach or detach as a journalled operation: begun, its steps recorded, its rollback
    run on failure (newest first), finished with its outcome, and its duration and outcome observed.

    An operation that cannot be settled (an undo failed, or the journal could not record the
    outcome) is not closed as failed, which would make everyone forget what it left behind: it
    stays in flight and goes to ``left_open``. The client still gets the error that stopped it."""

    def __init__(
        self,
        journal: Journal,
        clock: Clock,
        observer: Observer,
        left_open: LeftOpen,
        fault_points: FaultPoints = faults,
    ) -> None:
        self._journal = journal
        self._clock = clock
        self._observer = observer
        self._left_open = left_open
        self._faults = fault_points

    def run(
        self,
        kind: Kind,
        volume: str,
        lun_uuid: str,
        body: Callable[[StepRecorder, Rollback], T],
    ) -> T:
        started = self._clock.monotonic()
        what = f"{kind.value} of {volume}"
        op = self._journal.begin(kind, volume, lun_uuid)
        self._faults.hit(f"{kind.value}.begun")
        steps = StepRecorder(
            self._journal,
            op,
            what,
            operation=kind.value,
            clock=self._clock,
            observer=self._observer,
            fault_points=self._faults,
        )
        rollback = Rollback(what)
        try:
            value = body(steps, rollback)
        except BaseException as exc:
            failures = rollback.run()
            code = exc.code if isinstance(exc, AgentError) else "internal_error"
            if failures:
                self._leave_open(op, what, f"{len(failures)} undo step(s) failed", exc)
                if isinstance(exc, AgentError):
                    exc.details["left_for_recovery"] = [label for label, _ in failures]
            else:
                self._finish(op, what, Outcome.FAILED, code)
            self._observer.finished(kind.value, self._clock.monotonic() - started, code)
            raise
        self._finish(op, what, Outcome.SUCCEEDED)
        self._observer.finished(kind.value, self._clock.monotonic() - started, None)
        return value

    def _finish(self, op: OperationId, what: str, outcome: Outcome, code: str | None = None) -> None:
        try:
            self._journal.finish(op, outcome, code)
        except JournalError as exc:
            self._leave_open(op, what, f"its outcome could not be recorded ({exc.code})", exc)
            if outcome is Outcome.SUCCEEDED:
                raise

    def _leave_open(self, op: OperationId, what: str, why: str, error: BaseException) -> None:
        log.error("%s: %s; it stays open for recovery (operation %s) after: %s", what, why, op, error)
        self._left_open.add(op)
