"""What the attach/detach service promises its callers: the Protocol, its result values and its errors.

The socket API (``iscsi_agent.api``) is written against this Protocol only, so the service, the
journal and the reconciler can change behind it, and the API's tests drive a small fake. Values are
frozen dataclasses; the API alone turns them into JSON (``iscsi_agent.api.wire``), including the
os-brick ``connection_info`` that is derived from an Attachment and so can never carry a secret.

Errors the service raises for the caller's volume, drawn once (other layers' errors pass through,
and ``iscsi_agent.api.status`` maps every class to an HTTP status in one table):

    ServiceError            service_error
    ├── VolumeNotFound      volume_not_found     no LUN has that path, name or UUID; (volume)
    ├── VolumeAmbiguous     volume_ambiguous     a name that several LUNs share; (volume, candidates)
    ├── NotAttached         not_attached         the volume is not attached by this agent; (volume)
    ├── VolumeInUse         volume_in_use        detach refused: something holds the device; (volume, holders,
    │                                            device, removed, left)
    └── PathDown            path_down            resize refused: a path of the volume is down; (volume, path,
                                                 device, state)
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from iscsi_agent.errors import AgentError
from iscsi_agent.portal import Portal


class ServiceError(AgentError):
    code = "service_error"


class VolumeNotFound(ServiceError):
    code = "volume_not_found"

    def __init__(self, volume: str) -> None:
        super().__init__(f"no LUN on the array is named {volume!r} (path, name or UUID)", volume=volume)


class VolumeAmbiguous(ServiceError):
    code = "volume_ambiguous"

    def __init__(self, volume: str, candidates: Sequence[str]) -> None:
        super().__init__(
            f"{volume!r} names {len(candidates)} LUNs; give the LUN path or UUID",
            volume=volume,
            candidates=list(candidates),
        )


class NotAttached(ServiceError):
    code = "not_attached"

    def __init__(self, volume: str) -> None:
        super().__init__(f"{volume} is not attached by this agent", volume=volume)


class ReconcileBusy(ServiceError):
    """Attaches and detaches kept the host busy for as long as a pass may wait for a quiet moment."""

    code = "reconcile_busy"

    def __init__(self, waited: float) -> None:
        super().__init__(
            f"attaches and detaches kept the host busy for {waited:g}s; try the pass again", waited=waited
        )


class VolumeInUse(ServiceError):
    """A detach refused by a holder. ``device`` is the one held; when the detach had already removed
    something before it met the holder, ``removed`` and ``left`` name the devices on each side (the
    volume is then listed as detaching until a retry finishes the detach)."""

    code = "volume_in_use"

    def __init__(
        self,
        volume: str,
        holders: Sequence[str],
        *,
        device: str | None = None,
        removed: Sequence[str] = (),
        left: Sequence[str] = (),
    ) -> None:
        done = (
            f"; this detach removed {', '.join(removed)}, left {', '.join(left) or 'no device'}"
            if removed
            else ""
        )
        super().__init__(
            f"{volume} is in use: {', '.join(holders)}{done}; stop that use and detach again",
            volume=volume,
            holders=list(holders),
            device=device,
            removed=list(removed),
            left=list(left),
        )


class PathDown(ServiceError):
    """A resize refused before it touched any device: one path of the volume cannot be rescanned now
    (its session in recovery, its device offline), and resizing the others would leave the paths of
    one map at different sizes, which multipathd refuses to resize over."""

    code = "path_down"

    def __init__(self, volume: str, path: str, state: str, *, device: str | None = None) -> None:
        where = f"path {path}" + (f" ({device})" if device else "")
        super().__init__(
            f"{volume}: {where} is down ({state}); not resizing until every path is up",
            volume=volume,
            path=path,
            device=device,
            state=state,
        )


class VolumeState(enum.Enum):
    ATTACHED = "attached"
    DETACHING = "detaching"  # a detach stopped partway (what it left is still on the host): detach again


@dataclass(frozen=True)
class Attachment:
    """A LUN attached to this host: the stable device path and how the host reaches the LUN."""

    volume: str  # the LUN path, whichever form the caller named it by
    lun_uuid: str
    device: Path  # /dev/disk/by-id/wwn-0x..., or /dev/mapper/<wwid> with multipath
    wwid: str
    lun_id: int
    target_iqn: str
    portals: tuple[Portal, ...]  # the portals logged in to, the preferred one first
    multipath: bool
    auth_username: str | None = None  # the CHAP user of the sessions; never the secret
    state: VolumeState = VolumeState.ATTACHED


@dataclass(frozen=True)
class Detachment:
    volume: str


@dataclass(frozen=True)
class Resized:
    """What every path and the multipath map of an attached volume show after a resize: its LUN's size."""

    volume: str
    device: Path
    size_bytes: int


class HealthStatus(enum.Enum):
    OK = "ok"
    DEGRADED = "degraded"


@dataclass(frozen=True)
class ArrayHealth:
    reachable: bool
    api: str | None = None  # "rest" or "zapi" once detected
    error: str | None = None  # the error code of the last failed array call, while unreachable


@dataclass(frozen=True)
class Health:
    status: HealthStatus
    array: ArrayHealth
    sessions: int  # iSCSI sessions logged in
    attachments: int
    last_reconcile: datetime | None  # timezone-aware; None before the first pass
    problems: tuple[str, ...] = ()  # why the status is degraded beside the array: held stale devices, ...


@dataclass(frozen=True)
class ReconcileAction:
    action: str  # e.g. remove_stale_device, logout_idle_session
    target: str  # what it acts on: a device, a session, a map
    reason: str
    done: bool  # False in a dry run, or when the action failed


class AttachService(Protocol):
    """The operations behind the socket API.

    Connection threads call these concurrently, so an implementation must be thread-safe. Every
    method either returns its value or raises an AgentError (the errors above, or the array and
    host layers' own); anything else is reported to the client as an internal error.
    """

    def attach(self, volume: str) -> tuple[Attachment, bool]:
        """Attach the volume (path, name or LUN UUID); True when this call attached it, False when it
        already was and its device, read afresh, is still that LUN (otherwise it attaches again).
        Raises VolumeNotFound or VolumeAmbiguous for a volume it cannot name, whether or not one of
        the LUNs a name could mean is attached."""
        ...

    def detach(self, volume: str, *, force: bool) -> Detachment:
        """Detach the volume. Raises NotAttached when it is not attached, unless ``force`` (then its
        devices, if any, are removed by WWID and it succeeds); raises VolumeInUse when something holds
        the device, also with ``force``, which only carries on past a flush that fails on dead paths."""
        ...

    def resize(self, volume: str) -> Resized:
        """Bring the attached volume's devices to its LUN's size on the array, without a detach. Raises
        NotAttached; PathDown, before touching any device, when a path cannot be rescanned; WrongDevice
        when a device is no longer the LUN; WaitTimeout when a device does not show the new size."""
        ...

    def attachments(self) -> Sequence[Attachment]:
        """Every attachment this agent owns, those a detach left partway (state detaching) included."""
        ...

    def attachment(self, volume: str) -> Attachment:
        """The attachment of the volume in any form; raises NotAttached, VolumeAmbiguous, or WrongDevice
        or IdentityUnreadable when its device, read afresh, is not (or cannot be shown to be) the LUN."""
        ...

    def health(self) -> Health: ...

    def reconcile(self, *, dry_run: bool) -> Sequence[ReconcileAction]:
        """Run one reconciler pass now; with ``dry_run`` report what it would do and change nothing."""
        ...
