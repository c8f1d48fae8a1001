"""One LUN id on one session, brought up as a block device that is verifiably that LUN.

A device may already sit at the LUN id: scanned by hand before the agent was asked (fine, when it
is that LUN), or left behind after the array gave the id to another LUN (stale: sysfs still shows
the old identity, I/O reaches the new LUN). Only a fresh identity read decides, and a device is
handed out only on a positive match. A stale device is removed when nothing holds it and the id
is scanned again; a held one stops the attach, naming the holder, rather than risking the data
behind it. A stale path that runs under the old LUN's multipath map is held by that map, which
is not a user: when nothing uses the map either, the map goes first (it leads to the new LUN
too, so nobody must open it again), then the path. tgtd (and a busy array) can leave a freshly
scanned disk at 0 bytes until a rescan reads its capacity again; such a disk is never handed
out either.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from functools import partial

from iscsi_agent.errors import AgentError
from iscsi_agent.host.devices import BlockDevice, Devices
from iscsi_agent.host.errors import DeviceInUse, MultipathError, WaitTimeout
from iscsi_agent.host.identity import MISMATCHES, Verdict, is_lun, verify_lun
from iscsi_agent.host.multipath import Multipath
from iscsi_agent.host.removal import DeviceRemover, removal_blocker
from iscsi_agent.host.sessions import ScsiAddress, Session, Sessions
from iscsi_agent.host.waiting import Clock, wait_until
from iscsi_agent.naa import netapp_wwid, normalize_wwid
from iscsi_agent.service.errors import WrongDevice
from iscsi_agent.service.observe import Observer, Unobserved

log = logging.getLogger(__name__)

SIZE_RETRY_INTERVAL = 0.5


@dataclass(frozen=True)
class LunDeviceTimeouts:
    device: float = 30.0  # scan to a ready device with its udev links
    removal: float = 30.0  # a stale device to go
    size: float = 10.0  # a 0-byte disk to report its capacity after a rescan


class LunDevices:
    def __init__(
        self,
        sessions: Sessions,
        devices: Devices,
        remover: DeviceRemover,
        clock: Clock,
        *,
        timeouts: LunDeviceTimeouts | None = None,
        observer: Observer | None = None,
        multipath: Multipath | None = None,
    ) -> None:
        self._sessions = sessions
        self._devices = devices
        self._remover = remover
        self._clock = clock
        self._timeouts = timeouts or LunDeviceTimeouts()
        self._observer = observer or Unobserved()
        self._multipath = multipath
        self._maps = threading.Lock()  # the paths on every session come up in parallel, under one map

    def bring_up(self, session: Session, lun_id: int, serial: str) -> tuple[BlockDevice, bool]:
        """The verified device for ``lun_id`` on ``session``, and whether this call scanned it in.

        Raises WrongDevice when the device at that id is not the LUN and cannot be replaced.
        """
        address = ScsiAddress(session.host_number, 0, 0, lun_id)
        context = f"{session.target_iqn} via {session.portal}"
        found = self._devices.read(address)
        if found is not None and (before := is_lun(found.identity, serial)) in MISMATCHES:
            # A device made for another LUN whose id the array gave to this one: a rescan would make
            # it read as this LUN, but udev's links would still name the old one. Replace it.
            return self._with_capacity(self._replace_stale(found, serial, before, context), context), True
        scanned = found is None
        if scanned:
            self._sessions.scan_lun(address.host, lun_id)
        try:
            device = self._devices.wait_for(address, self._timeouts.device, context=context)
            verdict, _ = verify_lun(self._devices, address, serial)
            if verdict in MISMATCHES:
                device = self._replace_stale(device, serial, verdict, context)
                scanned = True
            elif verdict is not Verdict.MATCH:
                raise WrongDevice(
                    f"{device.node} at LUN {lun_id} ({context}): cannot verify it is the LUN with serial "
                    f"{serial}: {verdict.value}",
                    device=str(device.node),
                    lun_id=lun_id,
                    verdict=verdict.name.lower(),
                )
            return self._with_capacity(device, context), scanned
        except AgentError:
            if scanned:
                self._remove_unusable(address, context)
            raise

    def present(self, serial: str) -> list[str]:
        """Names of the devices of the LUN with ``serial`` on any session, by the WWID sysfs last read."""
        wanted = netapp_wwid(serial)
        return [
            device.name
            for session in self._sessions.current()
            for address in self._sessions.devices(session)
            if (device := self._devices.read(address)) is not None
            and device.identity.wwid
            and normalize_wwid(device.identity.wwid) == wanted
        ]

    def remove(self, device: BlockDevice, serial: str) -> None:
        """Remove a path of the LUN with ``serial`` this agent scanned in (a rollback); refuses while
        anything holds it, or when the address no longer holds that LUN."""
        self._remover.remove(device, self._timeouts.removal, serial=serial)

    def _remove_unusable(self, address: ScsiAddress, context: str) -> None:
        """Take out a device this call scanned in and will not hand out (at 0 bytes, identity unreadable
        or wrong): left there, it would sit under a LUN the rollback unmaps. Unflushed, since nothing
        was written through it; a failure is logged, and the rollback then keeps the map."""
        device = self._devices.read(address)
        if device is None:
            return
        try:
            self._remover.remove(device, self._timeouts.removal, flush=False)
        except AgentError as exc:
            log.error(
                "could not remove %s at %s (%s), which this attach scanned in: %s",
                device.node,
                address,
                context,
                exc,
            )

    def _replace_stale(self, stale: BlockDevice, serial: str, verdict: Verdict, context: str) -> BlockDevice:
        address = stale.address
        self._observer.identity_mismatch()
        log.warning(
            "%s at %s (%s) is not the LUN with serial %s (%s): a stale device from a reused LUN id; replacing it",
            stale.node,
            address,
            context,
            serial,
            verdict.value,
        )
        self._release_from_old_map(stale, context)
        try:
            self._remover.remove(stale, self._timeouts.removal, flush=False)
        except DeviceInUse as exc:
            raise WrongDevice(
                f"LUN {address.lun} ({context}) holds a stale device {stale.node} of another LUN, "
                f"and it is in use ({exc.details.get('holder')}); not touching it",
                device=str(stale.node),
                lun_id=address.lun,
                holder=exc.details.get("holder"),
            ) from exc
        self._sessions.scan_lun(address.host, address.lun)
        device = self._devices.wait_for(address, self._timeouts.device, context=context)
        verdict, identity = verify_lun(self._devices, address, serial)
        if verdict is not Verdict.MATCH:
            raise WrongDevice(
                f"LUN {address.lun} ({context}) is still not the LUN with serial {serial} after replacing "
                f"the stale device: {verdict.value} (serial {identity.serial!r}, wwid {identity.wwid!r})",
                device=str(device.node),
                lun_id=address.lun,
                verdict=verdict.name.lower(),
            )
        return device

    def _release_from_old_map(self, stale: BlockDevice, context: str) -> None:
        """Take down the multipath map a stale path runs under, unless something uses it, and have
        multipathd let go of the path. The map is the old LUN's (multipathd built it from the path's
        identity then) and now leads to the new LUN: it is removed, never used again."""
        if self._multipath is None:
            return
        with self._maps:
            mpath = self._multipath.holding(stale.name)
            if mpath is not None:
                blocker = removal_blocker(
                    self._remover.usage(mpath.dm, unstick=partial(self._multipath.stop_queueing, mpath))
                )
                if blocker:
                    raise WrongDevice(
                        f"LUN {stale.address.lun} ({context}) holds a stale device {stale.node} of another "
                        f"LUN, under multipath map {mpath.name} ({mpath.dm}), and the map is in use "
                        f"({blocker}); not touching either",
                        device=str(stale.node),
                        lun_id=stale.address.lun,
                        multipath_map=mpath.name,
                        holder=blocker,
                    )
                log.warning(
                    "%s (%s) runs under multipath map %s (%s) of the LUN that had this id; nothing uses "
                    "the map: removing it",
                    stale.node,
                    context,
                    mpath.name,
                    mpath.dm,
                )
                self._remover.flush_map(self._multipath, mpath)
            try:
                self._multipath.forget_path(stale.name)
            except MultipathError as exc:  # not a path multipathd knows: nothing to let go of
                log.debug("multipathd did not release %s: %s", stale.name, exc)

    def _with_capacity(self, device: BlockDevice, context: str) -> BlockDevice:
        if device.size_bytes > 0:
            return device
        log.warning("%s (%s) reports 0 bytes; rescanning it for its capacity", device.node, context)

        def sized() -> BlockDevice | None:
            self._devices.fresh_identity(device.address)  # a rescan re-reads the capacity too
            current = self._devices.read(device.address)
            return current if current is not None and current.size_bytes > 0 else None

        try:
            return wait_until(
                sized,
                self._timeouts.size,
                self._clock,
                what=f"capacity of {device.node}",
                interval=SIZE_RETRY_INTERVAL,
            )
        except WaitTimeout as exc:
            raise WrongDevice(
                f"{device.node} at LUN {device.address.lun} ({context}) still reports 0 bytes after "
                f"{self._timeouts.size:g}s of rescans; not handing it out",
                device=str(device.node),
                lun_id=device.address.lun,
            ) from exc
