"""Attach one volume: map it to this host's igroup, log in, bring up its device, verify, hand it out.

Every step that changes the array or the host is written to the journal before it is taken, and
an attach that fails after changing anything undoes what *it* did (never what it found: a map that
was there, a session another attach uses, a device scanned in by hand) in reverse order. A steady
attach (igroup, target and LIFs known, session logged in) costs one array call: the map; a LUN
never attached before adds its lookup.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass

from iscsi_agent.array.client import ArrayClient
from iscsi_agent.array.errors import ArrayNotFound
from iscsi_agent.array.model import Igroup, Lif, Lun, MapOutcome
from iscsi_agent.config import Network
from iscsi_agent.errors import AgentError
from iscsi_agent.host.devices import BlockDevice
from iscsi_agent.host.errors import DeviceTimeout, IscsiadmError, MultipathError
from iscsi_agent.host.multipath import Multipath
from iscsi_agent.host.paths import HostPaths
from iscsi_agent.host.routes import Route, RouteTable
from iscsi_agent.host.sessions import Session
from iscsi_agent.host.waiting import Clock
from iscsi_agent.journal.model import Attachment, AttachmentState, Kind, Step
from iscsi_agent.journal.store import Journal
from iscsi_agent.naa import multipath_wwid, netapp_wwid
from iscsi_agent.portal import Portal
from iscsi_agent.service.array_view import ArrayView
from iscsi_agent.service.chap import ChapRotation
from iscsi_agent.service.errors import DevicesLeftBehind, NoUsablePortal, TargetMismatch
from iscsi_agent.service.ifaces import routed_through
from iscsi_agent.service.logins import Logins
from iscsi_agent.service.lun_device import LunDevices
from iscsi_agent.service.observe import Observer
from iscsi_agent.service.portals import choose_lifs
from iscsi_agent.service.steps import LeftOpen, Operations, Rollback, StepRecorder

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AttachSettings:
    multipath: bool = False
    portal_networks: tuple[Network, ...] = ()
    multipath_timeout: float = 60.0
    ifaces: tuple[str, ...] = ()  # sessions only through these interfaces (service/ifaces.py)


@dataclass(frozen=True)
class PathDevice:
    """One path of the LUN: the session it came through and its verified block device."""

    session: Session
    device: BlockDevice


class Attacher:
    def __init__(
        self,
        *,
        array: ArrayClient,
        view: ArrayView,
        logins: Logins,
        lun_devices: LunDevices,
        routes: RouteTable,
        multipath: Multipath | None,
        journal: Journal,
        paths: HostPaths,
        svm: str,
        settings: AttachSettings,
        clock: Clock,
        observer: Observer,
        left_open: LeftOpen,
        chap: ChapRotation | None = None,
    ) -> None:
        self._array = array
        self._view = view
        self._chap = chap
        self._logins = logins
        self._lun_devices = lun_devices
        self._routes = routes
        self._multipath = multipath
        self._journal = journal
        self._paths = paths
        self._svm = svm
        self._settings = settings
        self._operations = Operations(journal, clock, observer, left_open)

    def attach(self, volume: str, lun: Lun) -> Attachment:
        """Attach ``lun`` (named ``volume`` by the client); the caller holds the volume's lock."""

        def body(steps: StepRecorder, rollback: Rollback) -> Attachment:
            with ExitStack() as uses:
                return self._attach(volume, lun, steps, rollback, uses)

        return self._operations.run(Kind.ATTACH, volume, lun.uuid, body)

    def _igroup(self) -> Igroup:
        """This host's igroup, with the initiator's CHAP entry (a rotated secret first) in place."""
        if self._chap is not None:
            self._chap.ensure()
        return self._view.igroup()

    def _attach(
        self, volume: str, lun: Lun, steps: StepRecorder, rollback: Rollback, uses: ExitStack
    ) -> Attachment:
        igroup = steps.run(Step.IGROUP, self._igroup, igroup=self._view.own_igroup_name)
        mapping = self._map(lun, igroup, steps, rollback)
        target_iqn = self._view.target_iqn()
        lifs = self._lifs(lun, mapping)
        try:
            sessions = self._log_in(target_iqn, lifs, steps, rollback, uses)
        except (TargetMismatch, IscsiadmError):
            self._view.forget(target=True)  # the SVM's target or LIFs may have changed: read them again
            raise
        try:
            paths = self._bring_up(sessions, mapping.lun_id, lun, steps, rollback)
        except DeviceTimeout:
            self._view.forget(lun_path=lun.path)  # its LIFs' nodes may no longer report it (a volume move)
            raise
        device = self._device_path(lun, paths, steps, rollback)
        attachment = Attachment(
            lun_uuid=lun.uuid,
            lun_path=lun.path,
            volume=volume,
            svm=self._svm,
            serial=lun.serial,
            wwid=multipath_wwid(lun.serial),
            lun_id=mapping.lun_id,
            igroup=mapping.igroup,
            map_created=mapping.created or self._map_was_ours(lun, mapping),
            igroup_uuid=_igroup_uuid(mapping, igroup),
            target_iqn=target_iqn,
            portals=tuple(path.session.portal for path in paths if path.session.portal is not None),
            multipath=self._settings.multipath,
            state=AttachmentState.ATTACHED,
            device=device,
        )
        steps.run(Step.HANDED_OUT, lambda: self._journal.put_attachment(attachment), device=device)
        log.info("attached %s (%s) as %s, LUN %s of %s", volume, lun.path, device, mapping.lun_id, target_iqn)
        return attachment

    def _map(self, lun: Lun, igroup: Igroup, steps: StepRecorder, rollback: Rollback) -> MapOutcome:
        """Map the LUN to ``igroup`` (or use the map through which this host sees it already).

        Whether a map to ``igroup`` was there before is known first and written into the intent: if
        the agent dies before it learns the outcome, recovery removes a map of this igroup only
        when it was not there before (an operator may have made it), and does remove one the lost
        request made. It is known without a request of its own when the journal shows that this
        agent's last change to the map was to remove it, or when the LUN's lookup in this attach
        read that the LUN was not mapped to ``igroup`` (``Lun.mapped_to``); a steady attach then
        costs one request, the map. A lookup that saw a map to ``igroup`` is not trusted with its
        LUN id (a detach may have removed it since): the map is read."""
        name = igroup.name
        try:
            before = (
                None
                if self._journal.last_left_unmapped(lun.uuid, name, asking=steps.op)
                or (lun.mapped_to is not None and name not in lun.mapped_to)
                else self._array.lun_map(lun.path, name)
            )
            mapping = steps.run(
                Step.MAP,
                lambda: (
                    MapOutcome(before.lun_id, name, created=False, igroup_uuid=before.igroup_uuid)
                    if before is not None
                    else self._array.ensure_mapped(lun.path, name)
                ),
                lun_path=lun.path,
                igroup=name,
                mapped_before=before is not None,
                result=lambda m: {"lun_id": m.lun_id, "created": m.created, "igroup": m.igroup},
            )
        except ArrayNotFound as exc:
            if exc.kind == "igroup":  # deleted behind the agent's back: the next attach finds or makes one
                self._view.forget(igroup=True)
            raise
        if mapping.created:
            uuid = mapping.igroup_uuid or igroup.uuid or ""
            rollback.push("unmap", lambda: self._unmap(lun, name, uuid, steps))
        elif mapping.igroup != name:
            log.info(
                "%s is visible to this host through igroup %s as LUN %s; using that map",
                lun.path,
                mapping.igroup,
                mapping.lun_id,
            )
        return mapping

    def _unmap(self, lun: Lun, igroup: str, igroup_uuid: str, steps: StepRecorder) -> None:
        """The map's undo; refused while a device of the LUN is still on the host (an undo before it
        failed): I/O to a LUN unmapped under its device fails, and the device would be stale. The
        operation then stays open, and recovery removes the device first."""
        left = self._lun_devices.present(lun.serial)
        if left:
            raise DevicesLeftBehind(
                f"not unmapping {lun.path} from {igroup}: {', '.join(left)} of it still on this host",
                lun_path=lun.path,
                igroup=igroup,
                devices=left,
            )
        steps.run(
            Step.UNMAP,
            lambda: self._array.unmap_lun(lun.path, igroup, lun_uuid=lun.uuid, igroup_uuid=igroup_uuid),
            lun_path=lun.path,
            igroup=igroup,
        )

    def _map_was_ours(self, lun: Lun, mapping: MapOutcome) -> bool:
        """A map found in place that an earlier attachment of this LUN made (a re-attach after a
        reboot took its devices, or while its detach waits for the array): still the agent's to
        remove at detach, or nobody ever would."""
        previous = self._journal.attachment(lun.uuid)
        return (
            previous is not None
            and previous.attachment.map_created
            and previous.attachment.igroup == mapping.igroup
        )

    def _reporting_nodes(self, lun: Lun, mapping: MapOutcome) -> tuple[str, ...]:
        """The nodes to log in through. A map ONTAP makes reports the LUN through the node hosting it
        and that node's HA partner (Selective LUN Map's default), so for a map this attach made, one
        path needs no read when that node is known (``ArrayView.hosting_node``). Otherwise (several
        paths want the partner too; a map found in place may report other nodes) the map's own
        reporting nodes, kept per volume. Those the map's own answer gave come first: they are the
        freshest."""
        if mapping.reporting_nodes is not None:
            self._view.learn_reporting_nodes(lun.path, mapping.reporting_nodes)
            return mapping.reporting_nodes
        if mapping.created and not self._settings.multipath and (node := self._view.hosting_node(lun)):
            return (node,)
        return self._view.reporting_nodes(lun.path, mapping.igroup)

    def _lifs(self, lun: Lun, mapping: MapOutcome) -> tuple[Lif, ...]:
        nodes = self._reporting_nodes(lun, mapping)
        lifs = self._view.lifs()
        routes = self._routes.lookup_all(lif.address for lif in lifs)
        chosen = choose_lifs(lifs, nodes, routes, self._settings.portal_networks, self._settings.ifaces)
        if not chosen:
            self._view.forget(target=True, lun_path=lun.path)
            raise self._no_usable_portal(lun, nodes, lifs, routes)
        return chosen

    def _no_usable_portal(
        self, lun: Lun, nodes: Sequence[str], lifs: Sequence[Lif], routes: Mapping[str, Route]
    ) -> NoUsablePortal:
        """The error naming the LIFs; with ``ifaces``, the interface the kernel routes each through."""
        through = routed_through(routes, (lif.address for lif in lifs))
        ifaces = self._settings.ifaces
        if ifaces:
            listed = ", ".join(ifaces)
            wanted = (
                f"is routed through one of the interfaces sessions are bound to ([iscsi] ifaces = {listed})"
            )
            shown = [f"{lif.portal} through {through[lif.address]}" for lif in lifs]
        else:
            wanted = "is routable from this host"
            shown = [str(lif.portal) for lif in lifs]
        return NoUsablePortal(
            f"no iSCSI LIF of the SVM on the nodes reporting {lun.path} ({', '.join(nodes) or 'any'}) "
            f"{wanted}; LIFs: {', '.join(shown) or 'none'}",
            lun_path=lun.path,
            reporting_nodes=list(nodes),
            lifs=[str(lif.portal) for lif in lifs],
            unroutable={address: route.problem for address, route in routes.items() if not route.reachable},
            routed_through=through,
        )

    def _log_in(
        self, target_iqn: str, lifs: Sequence[Lif], steps: StepRecorder, rollback: Rollback, uses: ExitStack
    ) -> list[Session]:
        """One session (the first LIF that logs in), or with multipath every LIF that does, in parallel."""
        for lif in lifs:
            uses.enter_context(self._logins.using(target_iqn, lif.portal))
        if not self._settings.multipath:
            errors: list[AgentError] = []
            for lif in lifs:
                try:
                    return [self._log_in_one(target_iqn, lif.portal, steps, rollback)]
                except AgentError as exc:
                    log.warning(
                        "login to %s via %s failed (%s); trying the next LIF", target_iqn, lif.portal, exc
                    )
                    errors.append(exc)
            raise errors[-1]
        with ThreadPoolExecutor(max_workers=len(lifs), thread_name_prefix="login") as pool:
            futures = [pool.submit(self._log_in_one, target_iqn, lif.portal, steps, rollback) for lif in lifs]
            outcomes = [
                (future.result() if future.exception() is None else future.exception()) for future in futures
            ]
        sessions = [outcome for outcome in outcomes if isinstance(outcome, Session)]
        failures = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
        for lif, failure in zip(lifs, outcomes, strict=True):
            if isinstance(failure, BaseException):
                log.warning(
                    "login to %s via %s failed: %s; attaching with the other paths",
                    target_iqn,
                    lif.portal,
                    failure,
                )
        if not sessions:
            raise failures[0]
        return sessions

    def _log_in_one(
        self, target_iqn: str, portal: Portal, steps: StepRecorder, rollback: Rollback
    ) -> Session:
        existing = self._logins.existing(target_iqn, portal)
        if existing is not None:
            return existing  # reused without any iscsiadm call or journal entry: nothing to undo
        # Pushed before the login: a login that fails or whose session never shows may still have
        # left a session or the node record its discovery made. Dropped when the session was there.
        ours = [True]
        rollback.push(
            f"logout {portal}",
            lambda: self._logins.log_out_if_unused(target_iqn, portal, steps) if ours[0] else None,
        )
        session, logged_in = steps.run(
            Step.LOGIN,
            lambda: self._logins.session(target_iqn, portal),
            target_iqn=target_iqn,
            portal=str(portal),
            result=lambda outcome: {"logged_in": outcome[1], "sid": outcome[0].sid},
        )
        ours[0] = logged_in
        return session

    def _bring_up(
        self, sessions: Sequence[Session], lun_id: int, lun: Lun, steps: StepRecorder, rollback: Rollback
    ) -> list[PathDevice]:
        lock = threading.Lock()
        paths: list[PathDevice] = []

        def one(session: Session) -> PathDevice:
            device, scanned = steps.run(
                Step.SCAN,
                lambda: self._lun_devices.bring_up(session, lun_id, lun.serial),
                target_iqn=session.target_iqn,
                lun_id=lun_id,
                portal=str(session.portal),
                wwid=netapp_wwid(lun.serial),
                result=lambda outcome: {"device": outcome[0].name, "scanned": outcome[1]},
            )
            path = PathDevice(session, device)
            with lock:
                paths.append(path)
                if scanned:
                    rollback.push(f"remove {device.name}", lambda: self._remove_path(device, lun.serial))
            return path

        if len(sessions) == 1:
            return [one(sessions[0])]
        with ThreadPoolExecutor(max_workers=len(sessions), thread_name_prefix="scan") as pool:
            results = list(pool.map(one, sessions))
        return results

    def _remove_path(self, device: BlockDevice, serial: str) -> None:
        """A path this attach scanned in, removed as a detach removes one: multipathd lets go of it
        first, so its path checker neither holds it open nor builds the map again from it."""
        if self._settings.multipath and self._multipath is not None:
            try:
                self._multipath.forget_path(device.name)
            except MultipathError as exc:  # it never took the path: nothing to let go of
                log.debug("multipathd did not let go of %s: %s", device.name, exc)
        self._lun_devices.remove(device, serial)

    def _device_path(
        self, lun: Lun, paths: Sequence[PathDevice], steps: StepRecorder, rollback: Rollback
    ) -> str:
        wwid = multipath_wwid(lun.serial)
        if self._settings.multipath and self._multipath is not None:
            multipath = self._multipath
            names = [path.device.name for path in paths]

            def build() -> str:
                multipath.add_wwid(wwid)
                for name in names:
                    multipath.add_path(name)
                return str(
                    self._paths.host_view(
                        multipath.wait_for(wwid, names, self._settings.multipath_timeout).node
                    )
                )

            # Pushed before the step: a map that never comes up whole still holds the paths it has.
            rollback.push("flush multipath map", lambda: self._flush_map(multipath, wwid))
            return steps.run(Step.MULTIPATH, build, wwid=wwid, result=lambda node: {"device": node})
        device = paths[0].device
        wanted = f"wwn-0x{netapp_wwid(lun.serial)}"
        for link in device.by_id:
            if link.name == wanted:
                return self._paths.host_view(link)
        log.warning("%s has no by-id link %s; handing out its node", device.node, wanted)
        return self._paths.host_view(device.node)

    @staticmethod
    def _flush_map(multipath: Multipath, wwid: str) -> None:
        found = multipath.find(wwid)
        if found is not None:
            multipath.flush(found)


def _igroup_uuid(mapping: MapOutcome, igroup: Igroup) -> str:
    """The UUID of the map's igroup where the map's answer or the igroup's record gave it, else ""."""
    if mapping.igroup_uuid:
        return mapping.igroup_uuid
    return igroup.uuid or "" if mapping.igroup == igroup.name else ""
