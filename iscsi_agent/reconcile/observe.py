"""Reads what a reconciler pass decides on: one array request (the maps of this host's igroup), then
sysfs and /dev for the sessions to the SVM's target, their disks, links and multipath maps.

Only sessions to the SVM's target (and to targets the journal's attachments name) are looked at:
the host may have sessions to other arrays, and they are not the agent's to heal or log out.
Identities are the ones sysfs holds (cached at scan time); the executor reads a fresh one before
it acts on a mismatch. The igroup's own record (is the initiator still in it?) is read every
``IGROUP_CHECK_EVERY`` passes, so that a steady pass costs one request.
"""

from __future__ import annotations

import os
from pathlib import Path

from iscsi_agent.array.client import ArrayClient
from iscsi_agent.array.errors import ArrayNotFound
from iscsi_agent.host.devices import Devices
from iscsi_agent.host.multipath import Multipath
from iscsi_agent.host.paths import HostPaths
from iscsi_agent.host.sessions import Session, Sessions
from iscsi_agent.host.sysfs import entry_names
from iscsi_agent.host.waiting import Clock
from iscsi_agent.journal.store import Journal
from iscsi_agent.naa import NETAPP_NAA_PREFIX, normalize_wwid
from iscsi_agent.reconcile.state import (
    DeviceState,
    IgroupState,
    MappedLun,
    MultipathState,
    Observed,
    SessionState,
)
from iscsi_agent.service.array_view import ArrayView

IGROUP_CHECK_EVERY = 10
# links udev makes for iSCSI paths and ONTAP LUNs; a dangling link of any other kind is not ours
_OWN_LINK_MARKS = ("-iscsi-", NETAPP_NAA_PREFIX, "NETAPP")


class StateReader:
    def __init__(
        self,
        *,
        array: ArrayClient,
        view: ArrayView,
        initiator: str,
        sessions: Sessions,
        devices: Devices,
        multipath: Multipath | None,
        paths: HostPaths,
        journal: Journal,
        clock: Clock,
    ) -> None:
        self._array = array
        self._view = view
        self._initiator = initiator
        self._sessions = sessions
        self._devices = devices
        self._multipath = multipath
        self._paths = paths
        self._journal = journal
        self._clock = clock
        self._down_since: dict[int, float] = {}
        self._passes = 0

    def read(self) -> Observed:
        attachments = tuple(record.attachment for record in self._journal.attachments())
        igroup = self._view.igroup().name
        target_iqn = self._view.target_iqn()
        igroup_state, maps = self._maps(igroup)
        self._passes += 1
        now = self._clock.monotonic()
        targets = {target_iqn} | {a.target_iqn for a in attachments if a.target_iqn}
        current = [s for s in self._sessions.current() if s.target_iqn in targets]
        sessions = tuple(self._session_state(s, now) for s in current)
        self._forget_sessions_gone({s.sid for s in sessions})
        devices = tuple(self._device_states(current))
        known = {a.lun_uuid: a.serial for a in attachments}
        occupied = {device.lun_id for device in devices}
        maps = {lun_id: self._with_serial(lun, known, lun_id in occupied) for lun_id, lun in maps.items()}
        return Observed(
            igroup=igroup,
            igroup_state=igroup_state,
            maps=maps,
            sessions=sessions,
            devices=devices,
            dangling_links=self._dangling_links(),
            multipath_maps=self._multipath_maps(),
            attachments=attachments,
            now=now,
        )

    def _maps(self, igroup: str) -> tuple[IgroupState, dict[int, MappedLun]]:
        try:
            found = self._array.maps_of_igroup(igroup)
        except ArrayNotFound as exc:
            if exc.kind != "igroup":
                raise
            return IgroupState.MISSING, {}
        maps = {m.lun_id: MappedLun(m.lun_path, m.lun_uuid) for m in found}
        if self._passes % IGROUP_CHECK_EVERY == 0:
            record = self._array.igroup_by_name(igroup)
            if record is None:
                return IgroupState.MISSING, {}
            if self._initiator.lower() not in {i.lower() for i in record.initiators}:
                return IgroupState.WITHOUT_INITIATOR, maps
        return IgroupState.PRESENT, maps

    def _with_serial(self, lun: MappedLun, known: dict[str, str], occupied: bool) -> MappedLun:
        """The LUN with its serial: the journal's when it attached it; else, only when a device sits at
        its id (``occupied``: the serial is what that device is judged against), the array's (its LUN
        lookup is cached)."""
        if lun.lun_uuid is None:
            return lun
        serial = known.get(lun.lun_uuid)
        if serial is None and occupied:
            try:
                serial = self._array.lun_by_uuid(lun.lun_uuid).serial
            except ArrayNotFound:
                serial = None
        return MappedLun(lun.lun_path, lun.lun_uuid, serial)

    def _session_state(self, session: Session, now: float) -> SessionState:
        down_since = None
        if session.logged_in:
            self._down_since.pop(session.sid, None)
        else:
            down_since = self._down_since.setdefault(session.sid, now)
        return SessionState(session.sid, session.target_iqn, session.portal, session.state, down_since)

    def _forget_sessions_gone(self, present: set[int]) -> None:
        for sid in set(self._down_since) - present:
            del self._down_since[sid]

    def _device_states(self, sessions: list[Session]) -> list[DeviceState]:
        return [
            DeviceState(
                address=address,
                sid=session.sid,
                name=name,
                serial=serial if readable else None,
            )
            for session in sessions
            for address, name, serial, readable in self._devices.disks(self._sessions.devices(session))
        ]

    def _dangling_links(self) -> tuple[Path, ...]:
        dangling = []
        for folder in (self._paths.by_path(), self._paths.by_id()):
            for name in entry_names(folder):
                if not any(mark in name for mark in _OWN_LINK_MARKS):
                    continue
                link = os.path.join(folder, name)
                try:
                    target = self._paths.link_target(link)
                except OSError:
                    continue  # not a link, or gone meanwhile
                if not os.path.exists(target):
                    dangling.append(Path(link))
        return tuple(sorted(dangling))

    def _multipath_maps(self) -> tuple[MultipathState, ...]:
        if self._multipath is None:
            return ()
        return tuple(
            MultipathState(m.name, m.dm, normalize_wwid(m.wwid), m.slaves) for m in self._multipath.maps()
        )
