"""Reads what a reconciler pass decides on: one array request (every map that reaches this host's
initiator, through its own igroup or any other holding the initiator, such as a cluster's), then sysfs
and /dev for the sessions to the SVM's target, their disks, links and multipath maps.

Only sessions to the SVM's target (and to targets the journal's attachments name) are looked at:
the host may have sessions to other arrays, and they are not the agent's to heal or log out.
Identities are the ones sysfs holds (cached at scan time); the executor reads a fresh one before
it acts on a mismatch.

The igroup's own record (is the initiator still in it?) is read every ``IGROUP_CHECK_EVERY``
passes, and in any pass where a device or an attachment sits at a LUN id the maps do not show: the
maps are read by initiator, so an initiator taken out of the igroup hides the igroup's maps, and
the planner must know that before it calls a device unmapped. The attached LUNs' sizes are read on
the same cadence, halfway between (``SIZE_CHECK_EVERY``), fifty LUNs at a time. A steady pass costs
one request, every fifth pass two.
A read that fails fails the pass: no decision is taken on part of the view.

The maps are asked for on a thread of their own while the host is read, so a pass waits for the
array's answer or for the host's thousands of sysfs reads, whichever is longer, not for both in
turn; the host reads do not depend on the answer, and nothing is judged before both are in.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextvars import copy_context
from pathlib import Path

from iscsi_agent.array.client import UUIDS_PER_QUERY, ArrayClient
from iscsi_agent.array.errors import ArrayNotFound
from iscsi_agent.array.model import Lun, LunMap
from iscsi_agent.host.devices import Devices
from iscsi_agent.host.multipath import Multipath
from iscsi_agent.host.paths import HostPaths
from iscsi_agent.host.sessions import Session, Sessions
from iscsi_agent.host.sysfs import entry_names
from iscsi_agent.host.waiting import Clock
from iscsi_agent.journal.model import Attachment, AttachmentState
from iscsi_agent.journal.store import Journal
from iscsi_agent.naa import NETAPP_NAA_PREFIX, normalize_wwid
from iscsi_agent.reconcile.state import (
    Capacity,
    DeviceState,
    IgroupState,
    MappedLun,
    MultipathState,
    Observed,
    SessionState,
)
from iscsi_agent.service.array_view import ArrayView

IGROUP_CHECK_EVERY = 10
# The attached LUNs' sizes on the array, to report an extend no resize brought to the host: one
# request every this many passes (halfway between two igroup checks, so no pass makes three), for
# the next UUIDS_PER_QUERY attachments in UUID order, round and round.
SIZE_CHECK_EVERY = 10
SIZE_CHECK_PASS = SIZE_CHECK_EVERY // 2
# links udev makes for iSCSI paths and ONTAP LUNs; a dangling link of any other kind is not ours
_OWN_LINK_MARKS = ("-iscsi-", NETAPP_NAA_PREFIX, "NETAPP")
_OWN_LINK = re.compile("|".join(map(re.escape, _OWN_LINK_MARKS)))  # one search per name, of thousands


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
        self._lun_sizes: dict[str, int] = {}  # LUN UUID -> bytes on the array, as last read
        self._sizes_read_to = ""  # the last UUID whose size was read: the next read goes on from it
        self._grown: set[str] = set()  # LUN UUIDs last seen larger on the array than on the host

    def read(self) -> Observed:
        attachments = tuple(record.attachment for record in self._journal.attachments())
        igroup = self._view.igroup().name
        target_iqn = self._view.target_iqn()
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="reconcile-maps") as pool:
            asked = pool.submit(copy_context().run, self._array.maps_of_initiator, self._initiator)
            now = self._clock.monotonic()
            targets = {target_iqn} | {a.target_iqn for a in attachments if a.target_iqn}
            current = [s for s in self._sessions.current() if s.target_iqn in targets]
            sessions = tuple(self._session_state(s, now) for s in current)
            self._forget_sessions_gone({s.sid for s in sessions})
            devices = tuple(self._device_states(current))
            dangling_links = self._dangling_links()
            multipath_maps = self._multipath_maps()
            found = asked.result()  # a failed read fails the pass, as it would have in line
        occupied = {device.lun_id for device in devices}
        named = {a.lun_id for a in attachments if a.lun_id >= 0}
        igroup_state = self._igroup_state(
            igroup, unaccounted=bool((occupied | named) - {m.lun_id for m in found})
        )
        capacities = self._capacities(attachments, multipath_maps)
        self._passes += 1
        known = {a.lun_uuid: a.serial for a in attachments}
        maps = {
            m.lun_id: self._identified(m, known, occupied=m.lun_id in occupied, named=m.lun_id in named)
            for m in found
        }
        return Observed(
            igroup=igroup,
            igroup_state=igroup_state,
            maps=maps,
            sessions=sessions,
            devices=devices,
            dangling_links=dangling_links,
            multipath_maps=multipath_maps,
            attachments=attachments,
            capacities=capacities,
            now=now,
        )

    def _igroup_state(self, igroup: str, *, unaccounted: bool) -> IgroupState:
        """The igroup's record, read when due or when something on the host is ``unaccounted`` for by
        the maps (until then PRESENT, as last read)."""
        if not unaccounted and self._passes % IGROUP_CHECK_EVERY != 0:
            return IgroupState.PRESENT
        record = self._array.igroup_by_name(igroup)
        if record is None:
            return IgroupState.MISSING
        if self._initiator.lower() not in {i.lower() for i in record.initiators}:
            return IgroupState.WITHOUT_INITIATOR
        return IgroupState.PRESENT

    def _capacities(
        self, attachments: tuple[Attachment, ...], maps: tuple[MultipathState, ...]
    ) -> dict[str, Capacity]:
        """Array and host sizes of the attached LUNs whose array size this pass read, and of those
        found grown before (so a resize ends their report at the next pass); the host's read now."""
        attached = {a.lun_uuid: a for a in attachments if a.state is AttachmentState.ATTACHED and a.device}
        read = (
            next_chunk(sorted(attached), self._sizes_read_to)
            if self._passes % SIZE_CHECK_EVERY == SIZE_CHECK_PASS
            else []
        )
        if read:
            found_luns = {lun.uuid: lun.size for lun in self._array.luns_by_uuid(read)}
            for uuid in read:
                self._lun_sizes.pop(uuid, None)
            self._lun_sizes.update(found_luns)
            self._sizes_read_to = read[-1]
        self._lun_sizes = {uuid: size for uuid, size in self._lun_sizes.items() if uuid in attached}
        dm_of = {normalize_wwid(m.wwid): m.dm for m in maps}
        found = {}
        for uuid in (set(read) | self._grown) & self._lun_sizes.keys():
            attachment = attached[uuid]
            name = (
                dm_of.get(normalize_wwid(attachment.wwid)) if attachment.multipath else self._disk(attachment)
            )
            device_bytes = self._devices.size_bytes(name) if name else 0
            if device_bytes:
                found[uuid] = Capacity(self._lun_sizes[uuid], f"/dev/{name}", device_bytes)
        self._grown = {uuid for uuid, seen in found.items() if seen.array_bytes > seen.device_bytes}
        return found

    def _disk(self, attachment: Attachment) -> str | None:
        """The disk a single-path attachment's device (its by-id link, or the node) leads to now."""
        try:
            return self._paths.under_root(attachment.device or "").resolve(strict=True).name
        except (OSError, ValueError):
            return None

    def _identified(self, found: LunMap, known: dict[str, str], *, occupied: bool, named: bool) -> MappedLun:
        """The mapped LUN with what the planner judges by, looked up only where it needs it (lookups are
        cached). Its UUID: the map's, or, at an id a device sits at (``occupied``) or an attachment
        names (``named``), the LUN's by path. Its serial: the journal's when it attached it; else, only
        at an occupied id (the serial is what that device is judged against), the array's."""
        uuid = found.lun_uuid
        if uuid is None and (occupied or named):
            by_path = self._lun(lambda: self._array.lun_by_path(found.lun_path))
            uuid = by_path.uuid if by_path else None
        if uuid is None:
            return MappedLun(found.lun_path, None, found.igroup)
        serial = known.get(uuid)
        if serial is None and occupied:
            by_uuid = self._lun(lambda: self._array.lun_by_uuid(uuid))
            serial = by_uuid.serial if by_uuid else None
        return MappedLun(found.lun_path, uuid, found.igroup, serial)

    @staticmethod
    def _lun(lookup: Callable[[], Lun]) -> Lun | None:
        try:
            return lookup()
        except ArrayNotFound:
            return None  # deleted since it was mapped: nothing to judge by

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
        """The disks of these sessions, in session order, each found by its SCSI host (a session's own)."""
        sid_of = {session.host_number: session.sid for session in sessions}
        found = [
            DeviceState(
                address=address, sid=sid_of[address.host], name=name, serial=serial if readable else None
            )
            for address, name, serial, readable in self._devices.disks(sid_of)
        ]
        return sorted(found, key=lambda device: device.sid)

    def _dangling_links(self) -> tuple[Path, ...]:
        dangling = []
        for folder in (os.fspath(self._paths.by_path()), os.fspath(self._paths.by_id())):
            ours = [name for name in entry_names(folder) if _OWN_LINK.search(name)]
            dangling += [Path(folder, name) for name in self._paths.dangling(folder, ours)]
        return tuple(sorted(dangling))

    def _multipath_maps(self) -> tuple[MultipathState, ...]:
        if self._multipath is None:
            return ()
        return tuple(
            MultipathState(name, dm, normalize_wwid(wwid), slaves)
            for name, dm, wwid, slaves in self._multipath.listed()
        )


def next_chunk(uuids: list[str], read_to: str) -> list[str]:
    """The next UUIDS_PER_QUERY of the sorted ``uuids`` after ``read_to`` (the last one read), wrapping
    round: every attachment's size is read in turn, whichever come and go meanwhile."""
    after = [uuid for uuid in uuids if uuid > read_to]
    return (after + [uuid for uuid in uuids if uuid <= read_to])[:UUIDS_PER_QUERY]
