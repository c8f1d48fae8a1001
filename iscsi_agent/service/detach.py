"""Detach one volume: check nobody uses it, flush, remove the multipath map and the paths, unmap
only a map this agent made, and log out of sessions that carry no LUN any more.

The devices are found by the LUN's WWID on the sessions to its target, not by a remembered name:
names are reused by the kernel, WWIDs are not. The in-use check comes before any change, so a
refused detach leaves everything as it was; the removal itself re-checks right before deleting,
and a holder that appears between the two stops the detach there: with nothing removed yet the
volume is attached as before, otherwise it stays listed as detaching and the error names what is
left (see ``Detacher._stopped``).

The WWID found is the one sysfs read when the device was probed. If the array has since given
the LUN id to another LUN (unmapped and remapped behind the agent's back), a fresh inquiry on
the path names that other LUN: the path and its map are still this volume's leftovers (nothing
of the other LUN was ever scanned through them), but their I/O now reaches the other LUN. Such
a path is removed without flushing it: whatever it buffers was written for this volume, and
writing it back would put it on the other LUN.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from functools import partial

from iscsi_agent.array.client import ArrayClient
from iscsi_agent.errors import AgentError
from iscsi_agent.host.devices import BlockDevice, Devices
from iscsi_agent.host.errors import DeviceInUse
from iscsi_agent.host.identity import MISMATCHES, verify_lun
from iscsi_agent.host.multipath import Multipath, MultipathMap
from iscsi_agent.host.paths import HostPaths
from iscsi_agent.host.removal import DeviceRemover, beside_multipath, removal_blocker
from iscsi_agent.host.sessions import Sessions
from iscsi_agent.host.waiting import Clock
from iscsi_agent.journal.model import Attachment, AttachmentState, Kind, Step
from iscsi_agent.journal.store import Journal
from iscsi_agent.service.logins import Logins
from iscsi_agent.service.observe import Observer
from iscsi_agent.service.steps import LeftOpen, Operations, StepRecorder

log = logging.getLogger(__name__)


class Detacher:
    def __init__(
        self,
        *,
        array: ArrayClient,
        sessions: Sessions,
        devices: Devices,
        remover: DeviceRemover,
        multipath: Multipath | None,
        logins: Logins,
        journal: Journal,
        paths: HostPaths,
        clock: Clock,
        observer: Observer,
        left_open: LeftOpen,
        removal_timeout: float = 30.0,
    ) -> None:
        self._array = array
        self._sessions = sessions
        self._devices = devices
        self._remover = remover
        self._multipath = multipath
        self._logins = logins
        self._journal = journal
        self._paths = paths
        self._removal_timeout = removal_timeout
        self._operations = Operations(journal, clock, observer, left_open)

    def detach(self, volume: str, attachment: Attachment, *, force: bool = False) -> None:
        """Detach what ``attachment`` describes; the caller holds the volume's lock.

        ``force`` carries on past a flush that fails or hangs (paths already dead: nothing is left
        to write back to), and past a fresh identity a dead path cannot give, for a device whose
        identity was verified when it was handed out (``attachment.device`` set: the attach hands
        out only a verified device) and whose recorded identity is still that LUN's. It never
        removes a device that is in use: that stays a refusal naming the holder, because removing
        it under a mount or a process loses the data in flight.
        """
        self._operations.run(
            Kind.DETACH,
            volume,
            attachment.lun_uuid,
            lambda steps, _: self.take_down(attachment, steps, force),
        )

    def take_down(self, attachment: Attachment, steps: StepRecorder, force: bool = False) -> None:
        """The detach itself, its steps recorded by ``steps``; recovery also rolls an interrupted attach
        back with it. An empty WWID or target (an attach that stopped before its scan or login) means
        no device or no session of its own to look for."""
        sessions = [
            s
            for s in self._sessions.current()
            if attachment.target_iqn and s.target_iqn == attachment.target_iqn
        ]
        paths = self._devices.of_wwid(self._sessions, sessions, attachment.wwid) if attachment.wwid else []
        mpath = (
            self._multipath.find(attachment.wwid) if self._multipath is not None and attachment.wwid else None
        )
        self._refuse_if_in_use(attachment, paths, mpath)
        if attachment.state is not AttachmentState.DETACHING:
            self._journal.put_attachment(replace(attachment, state=AttachmentState.DETACHING))
        try:
            self._remove_devices(attachment, paths, mpath, steps, force)
            self._unmap(attachment, steps)
        except AgentError as exc:
            self._stopped(attachment, paths, mpath, exc)
            raise
        portals = [session.portal for session in sessions if session.portal is not None]
        portals += [portal for portal in attachment.portals if portal not in portals]
        for portal in portals if attachment.target_iqn else ():
            self._logins.log_out_if_unused(attachment.target_iqn, portal, steps)
        self._journal.remove_attachment(attachment.lun_uuid)
        log.info("detached %s (%s)", attachment.volume, attachment.lun_path)

    def _remove_devices(
        self,
        attachment: Attachment,
        paths: list[BlockDevice],
        mpath: MultipathMap | None,
        steps: StepRecorder,
        force: bool,
    ) -> None:
        """The multipath map first (its paths cannot go while it holds them), then each path."""
        if mpath is not None:
            steps.run(
                Step.REMOVE_MULTIPATH, partial(self._flush_map, attachment, mpath), wwid=attachment.wwid
            )
        for device in paths:
            if mpath is not None and self._multipath is not None:
                self._multipath.forget_path(device.name)
            steps.run(
                Step.REMOVE_PATHS,
                partial(self._remove_path, attachment, device, force),
                wwid=attachment.wwid,
                device=device.name,
            )

    def _flush_map(self, attachment: Attachment, mpath: MultipathMap) -> None:
        """Flush the map; one that something opened since the in-use check is refused naming it."""
        assert self._multipath is not None  # a map is only found with multipath configured
        try:
            self._remover.flush_map(self._multipath, mpath)
        except DeviceInUse as exc:
            raise _in_use(attachment, self._paths.host_view(mpath.node), exc.details["holder"]) from exc

    def _unmap(self, attachment: Attachment, steps: StepRecorder) -> None:
        if attachment.map_created:
            steps.run(
                Step.UNMAP,
                lambda: self._array.unmap_lun(
                    attachment.lun_path,
                    attachment.igroup,
                    lun_uuid=attachment.lun_uuid,
                    igroup_uuid=attachment.igroup_uuid,
                ),
                lun_path=attachment.lun_path,
                igroup=attachment.igroup,
                result=lambda removed: {"removed": removed},
            )
        else:
            log.info(
                "%s: map to igroup %s was not made by this agent; leaving it",
                attachment.lun_path,
                attachment.igroup,
            )

    def _stopped(
        self, attachment: Attachment, paths: list[BlockDevice], mpath: MultipathMap | None, exc: AgentError
    ) -> None:
        """Settle the record of a detach that stopped partway, and add to ``exc`` what it left.

        Nothing removed: the record goes back to what it was, so the volume is attached as before
        (listed, answered, not attached anew) and the error is the refusal itself. Something removed
        (the map, a path): the record stays detaching, listed, so that the client's retry finishes
        the detach; going back to attached would answer a device (the map) that is gone, or hand out
        a volume with half its paths. The error then names what was removed and what is left.
        """
        removed: list[str] = []
        left: list[str] = []
        if mpath is not None and self._multipath is not None:
            map_left = self._multipath.find(mpath.wwid) is not None
            (left if map_left else removed).append(self._paths.host_view(mpath.node))
        for device in paths:
            present = self._devices.block_name(device.address) == device.name
            (left if present else removed).append(self._paths.host_view(device.node))
        if exc.details.get("at_step") == Step.UNMAP.value:
            left.append(f"the map of {attachment.lun_path} to igroup {attachment.igroup}")
        if not removed and attachment.state is not AttachmentState.DETACHING:
            self._journal.put_attachment(attachment)
            log.warning(
                "detach of %s stopped before it removed anything; it stays attached", attachment.volume
            )
            return
        exc.details.update(removed=removed, left=left)
        exc.message += f"; removed {', '.join(removed) or 'nothing'}, left {', '.join(left) or 'no device'}"
        exc.args = (exc.message,)
        log.warning(
            "detach of %s stopped partway: removed %s, left %s; it stays listed as detaching",
            attachment.volume,
            ", ".join(removed) or "nothing",
            ", ".join(left) or "no device",
        )

    def _remove_path(self, attachment: Attachment, device: BlockDevice, force: bool) -> None:
        """Remove one path of the volume: flushed and checked against its serial, or, when a fresh
        inquiry shows its LUN id now leads to another LUN, unflushed (see the module docstring)."""
        verdict, identity = verify_lun(self._devices, device.address, attachment.serial)
        if verdict not in MISMATCHES:
            self._remover.remove(
                device,
                self._removal_timeout,
                force,
                serial=attachment.serial,
                recorded_identity=force and attachment.device is not None,
            )
            return
        log.warning(
            "%s (%s) of %s now reaches another LUN (serial %r, wwid %r): LUN id %d was reused; "
            "removing it without writing back what it buffers",
            device.node,
            device.address,
            attachment.volume,
            identity.serial,
            identity.wwid,
            device.address.lun,
        )
        self._remover.remove(device, self._removal_timeout, flush=False)

    def _refuse_if_in_use(
        self, attachment: Attachment, paths: list[BlockDevice], mpath: MultipathMap | None
    ) -> None:
        if mpath is not None and self._multipath is not None:
            blocker = removal_blocker(
                self._remover.usage(mpath.dm, unstick=partial(self._multipath.stop_queueing, mpath))
            )
            if blocker:
                raise _in_use(attachment, self._paths.host_view(mpath.node), blocker)
        for device in paths:
            usage = self._remover.usage(device.name)
            if mpath is not None:  # the map goes first and multipathd lets go: neither counts
                usage = beside_multipath(usage, mpath.dm)
            blocker = removal_blocker(usage)
            if blocker:
                raise _in_use(attachment, self._paths.host_view(device.node), blocker)


def _in_use(attachment: Attachment, device: str, blocker: str) -> DeviceInUse:
    return DeviceInUse(
        f"{attachment.volume} ({device}) is in use: {blocker}; not detaching",
        device=device,
        holder=blocker,
        volume=attachment.volume,
    )
