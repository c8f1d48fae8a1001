"""What the journal records, as values: steps and their parameters, operations, attachments."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import NewType

from iscsi_agent.portal import Portal

OperationId = NewType("OperationId", int)

ParamValue = str | int | float | bool | None | tuple[str, ...]
"""What a step parameter or result may be: it is stored as JSON, so sequences are tuples of text."""


class Kind(enum.Enum):
    ATTACH = "attach"
    DETACH = "detach"
    RECONCILE = "reconcile"  # a reconciler pass that changed the host or the array (schema version 2)


class Step(enum.Enum):
    """One action of an attach or detach that changes (or reads) the array or the host.

    An attach's rollback and a detach use the same undo steps (flush .. logout).
    """

    LOOKUP = "lookup"
    IGROUP = "igroup"
    MAP = "map"
    DISCOVER = "discover"
    LOGIN = "login"
    SCAN = "scan"
    WAIT_DEVICE = "wait_device"
    VERIFY = "verify"
    MULTIPATH = "multipath"
    HANDED_OUT = "handed_out"
    FLUSH = "flush"
    REMOVE_MULTIPATH = "remove_multipath"
    REMOVE_PATHS = "remove_paths"
    UNMAP = "unmap"
    LOGOUT = "logout"


STEP_PARAMS: Mapping[Step, frozenset[str]] = {
    Step.LOOKUP: frozenset(),
    Step.IGROUP: frozenset({"igroup"}),
    Step.MAP: frozenset({"lun_path", "igroup"}),
    Step.DISCOVER: frozenset({"target_iqn", "portal"}),
    Step.LOGIN: frozenset({"target_iqn", "portal"}),
    Step.SCAN: frozenset({"target_iqn", "lun_id"}),
    Step.WAIT_DEVICE: frozenset({"wwid"}),
    Step.VERIFY: frozenset({"wwid"}),
    Step.MULTIPATH: frozenset({"wwid"}),
    Step.HANDED_OUT: frozenset({"device"}),
    Step.FLUSH: frozenset({"device"}),
    Step.REMOVE_MULTIPATH: frozenset({"wwid"}),
    Step.REMOVE_PATHS: frozenset({"wwid"}),
    Step.UNMAP: frozenset({"lun_path", "igroup"}),
    Step.LOGOUT: frozenset({"target_iqn", "portal"}),
}
"""The parameters an intent must carry: what recovery needs to find, undo or finish the step when
the agent died before learning its outcome (a map is found by LUN path and igroup, a session by
target and portal, a device by WWID). More may be given, and should be where it decides recovery:
``map`` with ``mapped_before`` (a map that was there before is never removed), ``login`` with
``session_existed``, ``logout`` with ``delete_record``. Results carry what the step learned:
``lookup`` → ``lun_uuid``, ``serial``; ``map`` → ``lun_id``, ``created``; ``wait_device`` → ``device``."""


class StepStatus(enum.Enum):
    INTENDED = "intended"  # written before the step was taken; whether it was taken is unknown
    DONE = "done"
    FAILED = "failed"


class Outcome(enum.Enum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # with an error code; what the operation did was rolled back as far as it could be
    CANCELLED = "cancelled"  # stopped at shutdown between steps, or superseded by a newer attach
    ROLLED_BACK = "rolled_back"  # interrupted (the agent died), and recovery undid what it had done


class AttachmentState(enum.Enum):
    ATTACHING = "attaching"
    ATTACHED = "attached"
    DETACHING = "detaching"


@dataclass(frozen=True, order=True)
class StepId:
    operation: OperationId
    seq: int  # 1, 2, ... in the order the steps were intended

    def __str__(self) -> str:
        return f"{self.operation}.{self.seq}"


@dataclass(frozen=True)
class StepRecord:
    id: StepId
    step: Step
    params: Mapping[str, ParamValue]
    status: StepStatus
    intended_at: datetime
    settled_at: datetime | None = None
    result: Mapping[str, ParamValue] | None = None
    error_code: str | None = None
    error_message: str | None = None


@dataclass(frozen=True)
class Operation:
    """An attach or detach that has not finished; ``volume`` is as the client named it."""

    id: OperationId
    kind: Kind
    volume: str
    lun_uuid: str | None
    started_at: datetime
    steps: tuple[StepRecord, ...]

    @property
    def unsettled(self) -> tuple[StepRecord, ...]:
        """Steps intended whose outcome was never written: recovery must look before it acts."""
        return tuple(step for step in self.steps if step.status is StepStatus.INTENDED)


@dataclass(frozen=True)
class Attachment:
    """A volume this agent attached (or is attaching or detaching) on this host.

    ``map_created`` says whether the agent made the LUN map: detach unmaps only maps it made.
    ``volume`` is the name the client gave; ``lun_uuid`` is the key. No credential is kept here.
    ``igroup_uuid`` is the map's igroup's UUID where the attach learnt it ("" otherwise): with the
    LUN's UUID it names the map, so the detach needs no read to find it.
    """

    lun_uuid: str
    lun_path: str
    volume: str
    svm: str
    serial: str
    wwid: str
    lun_id: int
    igroup: str
    map_created: bool
    target_iqn: str
    portals: tuple[Portal, ...]
    multipath: bool
    state: AttachmentState
    device: str | None = None  # the path handed out, once it was
    igroup_uuid: str = ""


@dataclass(frozen=True)
class AttachmentRecord:
    attachment: Attachment
    created_at: datetime
    updated_at: datetime
