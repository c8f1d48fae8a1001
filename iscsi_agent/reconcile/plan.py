"""The reconciler's decisions: what a pass saw in, the actions to take out, as one pure function.

The rules lean one way: when in doubt, report and leave alone. A device is stale only on
evidence: its LUN id is no longer mapped to this host, or the identity sysfs holds for it is not
the LUN now mapped at that id (the executor confirms that on a fresh read before it acts; an
identity that cannot be read is never evidence). A session is logged out only when it carries no
device and no attachment needs it (a self-heal that logged out a busy session turned filesystems
read-only for Trident's users). A map the host did not ask for is reported, never removed: someone
else made it.

"Unmapped" is judged against every map that reaches this host's initiator, through its own igroup
or any other holding the initiator (a cluster's igroup, whose maps attaches use too), and only on a
whole view: nothing is judged stale in a pass that could not see this host's igroup, and nothing is
judged unmapped while the igroup lacks the initiator (its maps reach the host again once repaired).
"""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from iscsi_agent.host.sessions import ScsiAddress
from iscsi_agent.journal.model import Attachment, AttachmentState
from iscsi_agent.naa import normalize_wwid, serial_from_wwid
from iscsi_agent.portal import Portal
from iscsi_agent.reconcile.state import (
    DeviceState,
    IgroupState,
    MappedLun,
    MultipathState,
    Observed,
    SessionState,
)


class ActionKind(enum.Enum):
    REMOVE_DEVICE = "remove_device"
    REPORT_STALE_DEVICE = "report_stale_device"  # stale, and removal is off in the configuration
    REMOVE_LINK = "remove_link"
    FLUSH_MULTIPATH = "flush_multipath"
    RELOGIN = "relogin"
    SCAN = "scan"
    ADD_PATH = "add_multipath_path"
    LOGOUT = "logout"
    REPAIR_IGROUP = "repair_igroup"
    RECOVER = "recover"  # an operation interrupted by a crash that start-up could not settle
    REPORT = "report"  # drift the reconciler does not repair, said out loud


class Reason(enum.Enum):
    LUN_UNMAPPED = "lun_unmapped"
    IDENTITY_MISMATCH = "identity_mismatch"
    DEVICE_GONE = "device_gone"
    NO_PATHS = "no_paths"
    SESSION_DOWN = "session_down"
    SESSION_MISSING = "session_missing"
    PATH_MISSING = "path_missing"
    PATH_NOT_IN_MAP = "path_not_in_map"
    IDLE = "idle"
    IGROUP_MISSING = "igroup_missing"
    INITIATOR_MISSING = "initiator_missing"
    INTERRUPTED = "interrupted"
    UNREQUESTED_MAP = "unrequested_map"
    ATTACHMENT_UNMAPPED = "attachment_unmapped"
    LUN_GROWN = "lun_grown"  # larger on the array than on the host: an extend waiting for a resize


@dataclass(frozen=True)
class Policy:
    remove_stale_devices: bool = True
    logout_idle_sessions: bool = True
    session_grace: float = 60.0  # seconds a session may be down before it is logged in again


@dataclass(frozen=True)
class Action:
    kind: ActionKind
    reason: Reason
    target: str  # what it acts on, as an operator reads it
    device: DeviceState | None = None
    session: SessionState | None = None
    target_iqn: str = ""
    portal: Portal | None = None
    lun_ids: tuple[int, ...] = ()  # LUN ids to scan on (target_iqn, portal)
    link: Path | None = None
    multipath_map: MultipathState | None = None
    expected_serial: str | None = None  # for an identity mismatch: the LUN mapped at that id


def plan(observed: Observed, policy: Policy) -> list[Action]:
    """Every action this pass should take, in the order to take them (maps before their paths)."""
    actions = _igroup_repairs(observed)
    if observed.igroup_state is IgroupState.MISSING:
        return actions + _dangling_links(observed)
    maps = observed.maps
    serials = _serials_by_id(maps, observed.attachments)
    whole = observed.igroup_state is IgroupState.PRESENT
    stale = {
        device.address: found
        for device in observed.devices
        if (found := _staleness(device, maps, serials, whole)) is not None
    }
    actions += _stale_maps(observed, stale, policy)
    for device in observed.devices:
        if device.address in stale:
            reason, expected = stale[device.address]
            kind = ActionKind.REMOVE_DEVICE if policy.remove_stale_devices else ActionKind.REPORT_STALE_DEVICE
            actions.append(Action(kind, reason, str(device), device=device, expected_serial=expected))
    actions += _dangling_links(observed)
    actions += _sessions(observed, maps, policy, set(stale))
    actions += _missing_multipath_paths(observed, set(stale))
    actions += _array_drift(observed, whole)
    actions += _grown(observed)
    return actions


def _igroup_repairs(observed: Observed) -> list[Action]:
    if observed.igroup_state is IgroupState.MISSING:
        return [Action(ActionKind.REPAIR_IGROUP, Reason.IGROUP_MISSING, observed.igroup)]
    if observed.igroup_state is IgroupState.WITHOUT_INITIATOR:
        return [Action(ActionKind.REPAIR_IGROUP, Reason.INITIATOR_MISSING, observed.igroup)]
    return []


def _attached(observed: Observed) -> list[Attachment]:
    return [a for a in observed.attachments if a.state is AttachmentState.ATTACHED]


def _serials_by_id(maps: Mapping[int, MappedLun], attachments: Iterable[Attachment]) -> dict[int, str]:
    """The serial of the LUN at each mapped id, where known (the array's answer, or the journal's)."""
    by_uuid = {a.lun_uuid: a.serial for a in attachments if a.serial}
    found = {}
    for lun_id, lun in maps.items():
        serial = lun.serial or (by_uuid.get(lun.lun_uuid) if lun.lun_uuid else None)
        if serial:
            found[lun_id] = serial
    return found


def _staleness(
    device: DeviceState, maps: Mapping[int, MappedLun], serials: Mapping[int, str], whole: bool
) -> tuple[Reason, str | None] | None:
    """Why the device is stale, if it is: its id unmapped (only on a ``whole`` view of the maps), or
    another LUN's identity than the one mapped there (a map seen is evidence on any view)."""
    if device.lun_id not in maps:
        return (Reason.LUN_UNMAPPED, None) if whole else None
    expected = serials.get(device.lun_id)
    if expected is not None and device.serial is not None and device.serial != expected:
        return Reason.IDENTITY_MISMATCH, expected
    return None


def _stale_maps(
    observed: Observed, stale: Mapping[ScsiAddress, tuple[Reason, str | None]], policy: Policy
) -> list[Action]:
    """Multipath maps of NetApp LUNs with no path left, or whose every path is a stale device (the
    latter only when stale devices are removed: otherwise the paths are reported, the map kept)."""
    by_name = {device.name: device for device in observed.devices}
    actions = []
    for mpath in observed.multipath_maps:
        if serial_from_wwid(mpath.wwid) is None:
            continue  # not an ONTAP LUN's map
        if not mpath.slaves:
            actions.append(
                Action(ActionKind.FLUSH_MULTIPATH, Reason.NO_PATHS, mpath.name, multipath_map=mpath)
            )
            continue
        paths = [by_name.get(name) for name in mpath.slaves]
        if policy.remove_stale_devices and all(path is not None and path.address in stale for path in paths):
            first = paths[0]
            assert first is not None
            reason = stale[first.address][0]
            actions.append(Action(ActionKind.FLUSH_MULTIPATH, reason, mpath.name, multipath_map=mpath))
    return actions


def _dangling_links(observed: Observed) -> list[Action]:
    return [
        Action(ActionKind.REMOVE_LINK, Reason.DEVICE_GONE, str(link), link=link)
        for link in observed.dangling_links
    ]


def _sessions(
    observed: Observed, maps: Mapping[int, MappedLun], policy: Policy, stale: set[ScsiAddress]
) -> list[Action]:
    devices_by_sid: dict[int, list[DeviceState]] = defaultdict(list)
    for device in observed.devices:
        devices_by_sid[device.sid].append(device)
    needed: dict[tuple[str, Portal], list[Attachment]] = defaultdict(list)
    for attachment in _attached(observed):
        for portal in attachment.portals:
            needed[(attachment.target_iqn, portal)].append(attachment)
    mapped_uuids = {lun_id: lun.lun_uuid for lun_id, lun in maps.items()}
    actions: list[Action] = []
    seen: set[tuple[str, Portal]] = set()
    for session in observed.sessions:
        key = (session.target_iqn, session.portal) if session.portal is not None else None
        if key is not None:
            seen.add(key)
        users = needed.get(key, []) if key is not None else []
        live = [d for d in devices_by_sid[session.sid] if d.address not in stale]
        idle = not devices_by_sid[session.sid] and not users
        if not session.logged_in:
            if session.down_since is None or observed.now - session.down_since < policy.session_grace:
                continue
            if idle:
                actions += _logout(session, policy)
            else:
                actions.append(
                    Action(
                        ActionKind.RELOGIN,
                        Reason.SESSION_DOWN,
                        str(session),
                        session=session,
                        target_iqn=session.target_iqn,
                        portal=session.portal,
                        lun_ids=_expected_ids(users, mapped_uuids),
                    )
                )
            continue
        if idle:
            actions += _logout(session, policy)
            continue
        present = {d.lun_id for d in live}
        missing = tuple(lun_id for lun_id in _expected_ids(users, mapped_uuids) if lun_id not in present)
        if missing:
            actions.append(
                Action(
                    ActionKind.SCAN,
                    Reason.PATH_MISSING,
                    f"{session} LUN {', '.join(map(str, missing))}",
                    session=session,
                    target_iqn=session.target_iqn,
                    portal=session.portal,
                    lun_ids=missing,
                )
            )
    for (target_iqn, portal), users in needed.items():
        if (target_iqn, portal) in seen:
            continue
        actions.append(
            Action(
                ActionKind.RELOGIN,
                Reason.SESSION_MISSING,
                f"{target_iqn} via {portal} (no session)",
                target_iqn=target_iqn,
                portal=portal,
                lun_ids=_expected_ids(users, mapped_uuids),
            )
        )
    return actions


def _logout(session: SessionState, policy: Policy) -> list[Action]:
    if not policy.logout_idle_sessions:
        return []
    return [
        Action(
            ActionKind.LOGOUT,
            Reason.IDLE,
            str(session),
            session=session,
            target_iqn=session.target_iqn,
            portal=session.portal,
        )
    ]


def _expected_ids(users: Iterable[Attachment], mapped_uuids: Mapping[int, str | None]) -> tuple[int, ...]:
    """The LUN ids the attachments expect behind a session that the array still maps to them."""
    return tuple(
        sorted(
            {
                a.lun_id
                for a in users
                if a.lun_id in mapped_uuids and mapped_uuids[a.lun_id] in (a.lun_uuid, None)
            }
        )
    )


def _missing_multipath_paths(observed: Observed, stale: set[ScsiAddress]) -> list[Action]:
    """Paths of a multipath attachment that the kernel has but its map does not."""
    maps = {normalize_wwid(m.wwid): m for m in observed.multipath_maps}
    paths: dict[tuple[int, str], list[DeviceState]] = defaultdict(list)
    for device in observed.devices:
        if device.serial and device.address not in stale:
            paths[(device.lun_id, device.serial)].append(device)
    actions = []
    for attachment in _attached(observed):
        if not attachment.multipath:
            continue
        mpath = maps.get(normalize_wwid(attachment.wwid))
        in_map = set(mpath.slaves) if mpath is not None else set()
        actions += [
            Action(
                ActionKind.ADD_PATH,
                Reason.PATH_NOT_IN_MAP,
                f"{device} of {attachment.lun_path}",
                device=device,
            )
            for device in paths.get((attachment.lun_id, attachment.serial), ())
            if device.name not in in_map
        ]
    return actions


def _array_drift(observed: Observed, whole: bool) -> list[Action]:
    """Maps to this host's igroup nobody on this host asked for (another igroup's maps are its
    owner's business), and, on a whole view, attachments whose map is gone: reported, not touched."""
    uuids = {a.lun_uuid for a in observed.attachments}
    actions = [
        Action(ActionKind.REPORT, Reason.UNREQUESTED_MAP, f"{lun.lun_path} (LUN {lun_id})")
        for lun_id, lun in sorted(observed.maps.items())
        if lun.igroup == observed.igroup and lun.lun_uuid not in uuids
    ]
    if not whole:
        return actions
    mapped = {(lun_id, lun.lun_uuid) for lun_id, lun in observed.maps.items()}
    actions += [
        Action(ActionKind.REPORT, Reason.ATTACHMENT_UNMAPPED, f"{a.lun_path} (was LUN {a.lun_id})")
        for a in _attached(observed)
        if (a.lun_id, a.lun_uuid) not in mapped
    ]
    return actions


def _grown(observed: Observed) -> list[Action]:
    """Attached LUNs larger on the array than their device: reported until a resize brings them."""
    actions = []
    for attachment in _attached(observed):
        size = observed.capacities.get(attachment.lun_uuid)
        if size is not None and size.array_bytes > size.device_bytes:
            target = f"{attachment.lun_path}: {size.array_bytes} bytes on the array, {size.device} {size.device_bytes}"
            actions.append(Action(ActionKind.REPORT, Reason.LUN_GROWN, target))
    return actions
