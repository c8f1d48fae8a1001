"""Start-up recovery: finish or undo every attach and detach the agent was in the middle of when it died.

The journal holds each operation's steps, each written before it was taken. An attach that never
handed its device out is rolled back: its paths removed (never one in use), its map removed when
the agent made it, its sessions logged out when nothing else needs them. An attach whose device
was handed out stands. A detach is finished. ``plan_recovery`` decides from the record alone;
``Recovery`` carries the plan out with the detach's own steps, appended to the interrupted
operation, so that a recovery that is itself killed leaves a record the next one reads the same way.

A step whose outcome is unknown is treated as possibly taken: a map intended in this host's own
igroup (the agent's by name) is removed if it is there, since nothing but the agent maps into
that igroup; a map intended elsewhere is left, because it may have been there before.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from iscsi_agent.errors import AgentError
from iscsi_agent.faults import FaultPoints, faults
from iscsi_agent.host.errors import DeviceInUse
from iscsi_agent.host.waiting import Clock
from iscsi_agent.journal.model import (
    Attachment,
    AttachmentState,
    Kind,
    Operation,
    OperationId,
    Outcome,
    Step,
    StepRecord,
    StepStatus,
)
from iscsi_agent.journal.store import Journal
from iscsi_agent.naa import multipath_wwid, serial_from_wwid
from iscsi_agent.portal import Portal
from iscsi_agent.service.detach import Detacher
from iscsi_agent.service.observe import Observer
from iscsi_agent.service.steps import LeftOpen, StepRecorder

log = logging.getLogger(__name__)


class Resolution(enum.Enum):
    KEEP = "keep"  # the attach handed its device out: it stands
    ROLL_BACK = "roll_back"  # the attach changed the array or the host and never handed out: undo it
    FINISH_DETACH = "finish_detach"
    CLOSE = "close"  # nothing is left to do (nothing was changed, or the detach had finished its work)
    SUPERSEDED = "superseded"  # a detach whose volume a client attached again since: it stands


@dataclass(frozen=True)
class RecoveryPlan:
    operation: Operation
    resolution: Resolution
    undo: Attachment | None = None  # what the rollback or the detach takes down

    @property
    def outcome(self) -> Outcome:
        if self.resolution is Resolution.SUPERSEDED:
            return Outcome.CANCELLED
        if self.resolution is Resolution.KEEP or self.operation.kind is not Kind.ATTACH:
            return Outcome.SUCCEEDED
        return Outcome.ROLLED_BACK


def plan_recovery(
    operation: Operation, recorded: Attachment | None, own_igroup: str, *, reattached: bool = False
) -> RecoveryPlan:
    """What to do about ``operation``, interrupted, given the journal's attachment of its LUN;
    ``reattached`` when that attachment was recorded attached after the operation began (a client
    attached the volume again while recovery of the operation waited for the array)."""
    if operation.kind is Kind.RECONCILE:  # the next pass sees what this one left and carries on
        return RecoveryPlan(operation, Resolution.CLOSE)
    if operation.kind is Kind.DETACH:
        if recorded is None:  # the record goes last: every device, map and session step was done
            return RecoveryPlan(operation, Resolution.CLOSE)
        if reattached:  # the newer attach stands; finishing the old detach would take it away
            return RecoveryPlan(operation, Resolution.SUPERSEDED)
        return RecoveryPlan(
            operation, Resolution.FINISH_DETACH, replace(recorded, state=AttachmentState.DETACHING)
        )
    if recorded is not None and recorded.state is AttachmentState.ATTACHED:
        return RecoveryPlan(operation, Resolution.KEEP)
    undo = attempted(operation, own_igroup)
    if undo is None:
        return RecoveryPlan(operation, Resolution.CLOSE)
    return RecoveryPlan(operation, Resolution.ROLL_BACK, undo)


def attempted(operation: Operation, own_igroup: str) -> Attachment | None:
    """What an interrupted attach may have set up, as an attachment in state detaching; None when
    it changed nothing (it stopped before its map, login and scan)."""
    steps = operation.steps
    map_step = _first(steps, Step.MAP)
    wwid = (
        _param(steps, "wwid", Step.SCAN, Step.WAIT_DEVICE, Step.VERIFY, Step.MULTIPATH)
        if _may_have_scanned(steps)
        else ""
    )
    target = _param(steps, "target_iqn", Step.LOGIN, Step.SCAN, Step.DISCOVER)
    if map_step is None and not wwid and not target:
        return None
    lun_path = str(map_step.params["lun_path"]) if map_step else ""
    igroup = str(map_step.params["igroup"]) if map_step else ""
    lun_id = -1
    map_created = False
    if map_step is not None and map_step.status is StepStatus.DONE and map_step.result is not None:
        igroup = str(map_step.result.get("igroup") or igroup)
        found_id = map_step.result.get("lun_id")
        lun_id = found_id if isinstance(found_id, int) else -1
        map_created = bool(map_step.result.get("created"))
    elif map_step is not None:  # outcome unknown: the request may have made it, unless it was there before
        map_created = igroup == own_igroup and not map_step.params.get("mapped_before", False)
    serial = serial_from_wwid(wwid) if wwid else None
    return Attachment(
        lun_uuid=operation.lun_uuid or "",
        lun_path=lun_path,
        volume=operation.volume,
        svm="",
        serial=serial or "",
        wwid=multipath_wwid(serial) if serial else "",
        lun_id=lun_id,
        igroup=igroup,
        map_created=map_created,
        target_iqn=target,
        portals=tuple(_portals(steps)),
        multipath=_first(steps, Step.MULTIPATH) is not None,
        state=AttachmentState.DETACHING,
    )


def _may_have_scanned(steps: Iterable[StepRecord]) -> bool:
    """Whether the attach may have brought a device in: a scan step that did, or whose outcome is
    not known to be "found it there". A device that was there before (scanned in by hand) is not
    the attach's to remove."""
    return any(
        record.status is not StepStatus.DONE or (record.result or {}).get("scanned", True)
        for record in steps
        if record.step is Step.SCAN
    )


def _first(steps: Iterable[StepRecord], step: Step) -> StepRecord | None:
    return next((record for record in steps if record.step is step), None)


def _param(steps: Iterable[StepRecord], name: str, *among: Step) -> str:
    for record in steps:
        if record.step in among and record.params.get(name):
            return str(record.params[name])
    return ""


def _portals(steps: Iterable[StepRecord]) -> list[Portal]:
    found: list[Portal] = []
    for record in steps:
        if record.step in (Step.DISCOVER, Step.LOGIN, Step.SCAN) and record.params.get("portal"):
            portal = Portal.parse(str(record.params["portal"]))
            if portal not in found:
                found.append(portal)
    return found


@dataclass(frozen=True)
class Recovered:
    operation: OperationId
    kind: Kind
    volume: str
    resolution: Resolution
    error: str | None = None  # the error code when it could not be carried out (the operation stays open)


class Recovery:
    """Carries out the plans; operations it could not settle stay open and are tried again by
    ``retry`` (the reconciler's passes), never any operation begun after start-up."""

    def __init__(
        self,
        journal: Journal,
        detacher: Detacher,
        *,
        own_igroup: str,
        left_open: LeftOpen,
        clock: Clock,
        observer: Observer,
        fault_points: FaultPoints = faults,
    ) -> None:
        self._journal = journal
        self._detacher = detacher
        self._own_igroup = own_igroup
        self._clock = clock
        self._observer = observer
        self._faults = fault_points
        self._pending = left_open

    @property
    def pending(self) -> frozenset[OperationId]:
        """Operations still open: interrupted, or left unsettled by a failure; not recovered yet."""
        return self._pending.ids()

    def interrupted(self) -> list[Operation]:
        """The operations in flight in the journal: before serving, every one was interrupted."""
        return self._journal.in_flight()

    def run(self, operations: Sequence[Operation] | None = None) -> list[Recovered]:
        """Recover ``operations`` (by default every one in flight); call before serving, when none can be live."""
        if operations is None:
            operations = self.interrupted()
        for operation in operations:
            self._pending.add(operation.id)
        if operations:
            log.warning("recovering %d operation(s) interrupted when the agent last stopped", len(operations))
        return [self._recover(operation) for operation in operations]

    def retry(self) -> list[Recovered]:
        """Try again the operations left open: those ``run`` could not settle, and those a failure
        left unsettled since (never one still running: the caller holds the operation gate)."""
        pending = self.pending
        if not pending:
            return []
        return [self._recover(op) for op in self._journal.in_flight() if op.id in pending]

    def _recover(self, operation: Operation) -> Recovered:
        recorded = self._journal.attachment(operation.lun_uuid) if operation.lun_uuid else None
        reattached = (
            recorded is not None
            and recorded.attachment.state is AttachmentState.ATTACHED
            and self._journal.attached_since(recorded.attachment.lun_uuid, operation.id)
        )
        plan = plan_recovery(
            operation, recorded.attachment if recorded else None, self._own_igroup, reattached=reattached
        )
        what = f"recovery of {operation.kind.value} {operation.id} of {operation.volume}"
        log.info("%s: %s", what, plan.resolution.value)
        self._journal.settle_interrupted(operation.id)
        self._faults.hit("recovery.settled")
        steps = StepRecorder(
            self._journal,
            operation.id,
            what,
            operation="recovery",
            clock=self._clock,
            observer=self._observer,
            fault_points=self._faults,
        )
        try:
            if plan.undo is not None:
                self._detacher.take_down(plan.undo, steps)
        except DeviceInUse as exc:
            return self._in_use(plan, what, exc)
        except AgentError as exc:
            log.error("%s failed (%s); it stays open and is tried again: %s", what, exc.code, exc)
            return Recovered(operation.id, operation.kind, operation.volume, plan.resolution, exc.code)
        self._journal.finish(operation.id, plan.outcome)
        self._pending.discard(operation.id)
        log.info("%s: done (%s)", what, plan.outcome.value)
        return Recovered(operation.id, operation.kind, operation.volume, plan.resolution)

    def _in_use(self, plan: RecoveryPlan, what: str, exc: DeviceInUse) -> Recovered:
        """A detach whose device is in use again goes back to attached when nothing of it was removed
        yet (the client's retry gets the refusal), else stays open; an attach's device that something opened stays, reported, until it is let go."""
        operation = plan.operation
        if (
            plan.resolution is Resolution.FINISH_DETACH
            and plan.undo is not None
            and not exc.details.get("removed")
        ):
            self._journal.put_attachment(replace(plan.undo, state=AttachmentState.ATTACHED))
            self._journal.finish(operation.id, Outcome.FAILED, exc.code)
            self._pending.discard(operation.id)
            log.warning("%s: %s; the volume stays attached", what, exc)
        else:
            log.error("%s: %s; left in place and tried again", what, exc)
        return Recovered(operation.id, operation.kind, operation.volume, plan.resolution, exc.code)
