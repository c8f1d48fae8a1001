"""Online resize: bring an attached volume's devices to its LUN's size on the array, without a detach.

A LUN grown on the array (a Cinder or Trident extend) reaches the host only when each of its
paths is rescanned: the SCSI layer re-reads the capacity then and not before. The order is
os-brick's: every path first (``device/rescan``, this LUN's paths only, never a host-wide scan),
then the multipath map (``multipathd resize map``), which takes its paths' size and refuses when
they differ. So a path that cannot be rescanned now, its session in recovery or its device
offline, refuses the whole resize before any device is touched: growing the other paths would
leave the map's paths at two sizes. Resizing twice is harmless, so nothing is journaled: a resize
cut short is finished by asking again.

The rescan doubles as the identity check (``HandedOutDevices``): a device that now reads as
another LUN is never grown, and its size never answered.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

from iscsi_agent.array.client import ArrayClient
from iscsi_agent.errors import AgentError
from iscsi_agent.host.blockdev import AbandoningCalls, KernelCalls
from iscsi_agent.host.devices import Devices
from iscsi_agent.host.errors import DeviceTimeout, WaitTimeout
from iscsi_agent.host.multipath import Multipath, MultipathMap
from iscsi_agent.host.paths import HostPaths
from iscsi_agent.host.sessions import Session, Sessions
from iscsi_agent.host.waiting import Clock, wait_until
from iscsi_agent.journal.model import Attachment
from iscsi_agent.service.handed_out import HandedOutDevices
from iscsi_agent.service.observe import Observer
from iscsi_agent.service_api import PathDown

log = logging.getLogger(__name__)

RUNNING = "running"  # a SCSI device's state while commands reach it
# a path whose rescan did not show the new size yet is rescanned again this often: a target can
# take a moment to show a grown LUN (tgtd re-creates the LU), and the kernel re-reads only on a rescan
RESCAN_INTERVAL = 1.0


@dataclass(frozen=True)
class _Path:
    disk: str
    portal: str
    session: Session | None
    device_state: str

    @property
    def trouble(self) -> str | None:
        """Why the path cannot be rescanned now, or None."""
        if self.session is None:
            return "no session"
        if not self.session.logged_in:
            return self.session.state
        return None if self.device_state == RUNNING else f"device {self.device_state or 'gone'}"


class Resizer:
    """Rescans an attached volume's paths, then resizes its map, until all show the LUN's size."""

    def __init__(
        self,
        *,
        array: ArrayClient,
        sessions: Sessions,
        devices: Devices,
        multipath: Multipath | None,
        handed_out: HandedOutDevices,
        paths: HostPaths,
        clock: Clock,
        timeout: float,
        observer: Observer,
        calls: KernelCalls | None = None,
    ) -> None:
        self._array = array
        self._sessions = sessions
        self._devices = devices
        self._multipath = multipath
        self._handed_out = handed_out
        self._paths = paths
        self._clock = clock
        self._timeout = timeout
        self._calls = calls or AbandoningCalls()
        self._observer = observer

    def resize(self, attachment: Attachment) -> int:
        """The LUN's size, once every path and the map show it; the caller holds the volume's lock.
        Timed and counted by outcome, as attaches and detaches are."""
        started = self._clock.monotonic()
        try:
            size = self._resize(attachment)
        except AgentError as exc:
            self._observer.finished("resize", self._clock.monotonic() - started, exc.code)
            raise
        self._observer.finished("resize", self._clock.monotonic() - started, None)
        return size

    def _resize(self, attachment: Attachment) -> int:
        mpath = self._map(attachment)
        disks = sorted(
            {*(mpath.slaves if mpath is not None else self._disks(attachment)), *self._lun_disks(attachment)}
        )
        self._refuse_if_a_path_is_down(attachment, disks, mpath)
        size = self._array.lun_by_uuid(attachment.lun_uuid, fresh=True).size
        finding = self._handed_out.check(attachment)  # rescans every disk: identity and capacity
        if not finding.verified:
            raise finding.refusal()
        for disk in disks:
            self._wait_for_size(disk, size, rescan=True)
        if mpath is not None:
            assert self._multipath is not None
            self._multipath.resize(mpath)
            self._wait_for_size(mpath.dm, size, rescan=False, shown=str(self._paths.host_view(mpath.node)))
        log.info("%s (%s) is %d bytes on every path", attachment.lun_path, attachment.device, size)
        return size

    def _map(self, attachment: Attachment) -> MultipathMap | None:
        if not attachment.multipath or self._multipath is None:
            return None
        return self._multipath.find(attachment.wwid)

    def _disks(self, attachment: Attachment) -> tuple[str, ...]:
        try:
            return (self._paths.under_root(attachment.device or "").resolve(strict=True).name,)
        except OSError:
            return ()

    def _lun_disks(self, attachment: Attachment) -> list[str]:
        """The LUN's disks on the sessions to its target, a path multipathd let go of among them:
        left at the old size it could not rejoin the grown map."""
        on = [s for s in self._sessions.current() if s.target_iqn == attachment.target_iqn]
        return [device.name for device in self._devices.of_wwid(self._sessions, on, attachment.wwid)]

    def _refuse_if_a_path_is_down(
        self, attachment: Attachment, disks: Sequence[str], mpath: MultipathMap | None
    ) -> None:
        """Every disk behind the device is running on a logged-in session and, with multipath, every
        portal the volume was attached through still has its session (a path gone from the map is
        down too): else PathDown naming the first that is not."""
        for portal in attachment.portals if mpath is not None else ():
            session = self._sessions.find(attachment.target_iqn, portal)
            if session is None or not session.logged_in:
                raise PathDown(attachment.lun_path, str(portal), session.state if session else "no session")
        for path in self._paths_of(disks):
            if path.trouble is not None:
                node = self._paths.host_view(self._paths.dev(path.disk))
                raise PathDown(attachment.lun_path, path.portal, path.trouble, device=str(node))

    def _paths_of(self, disks: Sequence[str]) -> list[_Path]:
        by_host = {session.host_number: session for session in self._sessions.current()}
        found = []
        for disk in disks:
            address = self._devices.address_of(disk)
            session = by_host.get(address.host) if address is not None else None
            portal = str(session.portal) if session is not None and session.portal is not None else "?"
            device = self._devices.read(address) if address is not None else None
            found.append(_Path(disk, portal, session, device.state if device is not None else ""))
        return found

    def _wait_for_size(self, name: str, size: int, *, rescan: bool, shown: str = "") -> None:
        """Until sysfs shows ``size`` for block device ``name``; a path is rescanned again meanwhile."""
        shown = shown or str(self._paths.host_view(self._paths.dev(name)))
        seen = [self._devices.size_bytes(name)]

        def grown() -> bool:
            seen[0] = self._devices.size_bytes(name)
            if seen[0] != size and rescan:
                self._rescan(name, shown)
            return seen[0] == size

        try:
            wait_until(
                grown,
                self._timeout,
                self._clock,
                what=f"{shown} to show {size} bytes",
                interval=RESCAN_INTERVAL,
            )
        except WaitTimeout as exc:
            raise DeviceTimeout(
                f"{shown} still shows {seen[0]} bytes, not the LUN's {size}, after {self._timeout:g}s",
                device=shown,
                size_bytes=seen[0],
                lun_size_bytes=size,
            ) from exc

    def _rescan(self, name: str, shown: str) -> None:
        address = self._devices.address_of(name)
        if address is not None:
            self._calls.run(
                partial(self._devices.fresh_identity, address),
                self._timeout,
                device=shown,
                step="capacity rescan",
            )
