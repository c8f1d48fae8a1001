"""What a reconciler pass saw, as plain values: the array's maps for this host, the host's sessions,
devices, links and multipath maps, and the journal's attachments. The planner decides from these alone."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from iscsi_agent.host.sessions import LOGGED_IN, ScsiAddress
from iscsi_agent.journal.model import Attachment
from iscsi_agent.naa import netapp_wwid
from iscsi_agent.portal import Portal


@dataclass(frozen=True)
class MappedLun:
    """A LUN the array maps to this host's initiator, through ``igroup`` (this host's own or another
    holding its initiator, e.g. a cluster's); ``lun_uuid`` and ``serial`` are None where not known."""

    lun_path: str
    lun_uuid: str | None
    igroup: str
    serial: str | None = None


class IgroupState(enum.Enum):
    PRESENT = "present"
    MISSING = "missing"  # deleted on the array
    WITHOUT_INITIATOR = "without_initiator"  # there, but this host's initiator was taken out of it


@dataclass(frozen=True)
class SessionState:
    sid: int
    target_iqn: str
    portal: Portal | None
    state: str  # the kernel's: LOGGED_IN, FAILED, FREE
    down_since: float | None = None  # monotonic seconds; when the pass first saw it not logged in

    @property
    def logged_in(self) -> bool:
        return self.state == LOGGED_IN

    def __str__(self) -> str:
        return f"{self.target_iqn} via {self.portal or '?'} (session {self.sid})"


@dataclass(frozen=True)
class DeviceState:
    """One SCSI disk on a session to the SVM's target, with the identity sysfs holds for it."""

    address: ScsiAddress
    sid: int
    name: str  # the block device ("sdc")
    serial: str | None  # from sysfs (cached at scan time); None when unreadable or absent

    @property
    def lun_id(self) -> int:
        return self.address.lun

    @property
    def wwid(self) -> str | None:
        """The NAA WWID its serial gives (bare hex), as ONTAP derives it."""
        return netapp_wwid(self.serial) if self.serial else None

    def __str__(self) -> str:
        return f"{self.name} ({self.address})"


@dataclass(frozen=True)
class MultipathState:
    name: str
    dm: str
    wwid: str  # bare NAA hex
    slaves: tuple[str, ...]


@dataclass(frozen=True)
class Capacity:
    """An attached LUN's size on the array (as last read) beside its device's on the host (now)."""

    array_bytes: int
    device: str  # the node the attachment handed out, resolved: "/dev/sdc", "/dev/dm-2"
    device_bytes: int


@dataclass(frozen=True)
class Observed:
    igroup: str
    igroup_state: IgroupState
    maps: Mapping[int, MappedLun]  # LUN id -> LUN, for every igroup that holds this host's initiator
    sessions: tuple[SessionState, ...]
    devices: tuple[DeviceState, ...]
    dangling_links: tuple[Path, ...]  # by-path and by-id links (iSCSI, NetApp) whose node is gone
    multipath_maps: tuple[MultipathState, ...]
    attachments: tuple[Attachment, ...]
    capacities: Mapping[str, Capacity] = field(default_factory=dict)  # LUN UUID -> sizes, where both known
    now: float = 0.0  # monotonic seconds, the clock down_since is on
