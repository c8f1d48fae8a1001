"""Carries out one planned action, re-checking on the host right before it changes anything.

The plan was made from a moment ago; the executor acts only on what still holds: a device is
re-read (a changed name means it is another device now), an identity mismatch is confirmed on a
fresh read (unreadable is not evidence), a removal goes through the safe remover (it refuses a
device anything holds, and the refusal is reported, not retried by force), a link is removed only
while it still dangles, a session is logged out only by the checks every logout passes.
Host and array changes are journalled steps of the pass's operation, like an attach's.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial

from iscsi_agent.array.client import ArrayClient
from iscsi_agent.errors import AgentError
from iscsi_agent.host.devices import Devices
from iscsi_agent.host.errors import DeviceInUse, MultipathError
from iscsi_agent.host.multipath import Multipath
from iscsi_agent.host.paths import HostPaths
from iscsi_agent.host.removal import DeviceRemover, beside_multipath, removal_blocker
from iscsi_agent.host.sessions import Sessions
from iscsi_agent.journal.model import Step
from iscsi_agent.reconcile.plan import Action, ActionKind, Reason
from iscsi_agent.service.array_view import ArrayView
from iscsi_agent.service.logins import Logins
from iscsi_agent.service.recovery import Recovery
from iscsi_agent.service.steps import StepRecorder

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Result:
    done: bool
    detail: str = ""
    held_by: str | None = None  # a stale device or map left alone because something holds it


class Executor:
    def __init__(
        self,
        *,
        array: ArrayClient,
        view: ArrayView,
        initiator: str,
        sessions: Sessions,
        devices: Devices,
        remover: DeviceRemover,
        multipath: Multipath | None,
        logins: Logins,
        paths: HostPaths,
        recovery: Recovery,
        removal_timeout: float,
    ) -> None:
        self._array = array
        self._view = view
        self._initiator = initiator
        self._sessions = sessions
        self._devices = devices
        self._remover = remover
        self._multipath = multipath
        self._logins = logins
        self._paths = paths
        self._recovery = recovery
        self._removal_timeout = removal_timeout

    def preview(self, action: Action) -> Result:
        """A dry run: nothing changes (not even a rescan); a removal says whether it would be refused."""
        blocker = None
        if action.kind is ActionKind.REMOVE_DEVICE and action.device is not None:
            blocker = self._path_blocker(action.device.name)
        elif action.kind is ActionKind.FLUSH_MULTIPATH and action.multipath_map is not None:
            blocker = removal_blocker(self._remover.usage(action.multipath_map.dm))
        if blocker:
            return Result(False, f"would be left: in use ({blocker})", held_by=blocker)
        return Result(False, "dry run")

    def _path_blocker(self, name: str) -> str | None:
        """What keeps a stale path from going, multipathd's own path checker aside (told to let go)."""
        return removal_blocker(beside_multipath(self._remover.usage(name)))

    def run(self, action: Action, steps: StepRecorder) -> Result:
        try:
            return self._run(action, steps)
        except DeviceInUse as exc:
            holder = str(exc.details.get("holder") or exc.message)
            log.warning("reconcile: %s %s left alone: in use (%s)", action.kind.value, action.target, holder)
            return Result(False, f"in use: {holder}", held_by=holder)
        except AgentError as exc:
            log.error("reconcile: %s %s failed (%s): %s", action.kind.value, action.target, exc.code, exc)
            return Result(False, f"{exc.code}: {exc.message}")

    def _run(self, action: Action, steps: StepRecorder) -> Result:
        handlers = {
            ActionKind.REMOVE_DEVICE: self._remove_device,
            ActionKind.REMOVE_LINK: self._remove_link,
            ActionKind.FLUSH_MULTIPATH: self._flush_map,
            ActionKind.RELOGIN: self._relogin,
            ActionKind.SCAN: self._scan,
            ActionKind.ADD_PATH: self._add_path,
            ActionKind.LOGOUT: self._logout,
            ActionKind.REPAIR_IGROUP: self._repair_igroup,
            ActionKind.RECOVER: self._recover,
        }
        handler = handlers.get(action.kind)
        if handler is None:  # reports: the reconciler logs them
            return Result(False, "reported")
        return handler(action, steps)

    def _remove_device(self, action: Action, steps: StepRecorder) -> Result:
        planned = action.device
        assert planned is not None
        device = self._devices.read(planned.address)
        if device is None:
            return Result(True, "already gone")
        if device.name != planned.name:
            return Result(False, f"{planned.address} now holds {device.name}; left for the next pass")
        unmapped = action.reason is Reason.LUN_UNMAPPED
        if not unmapped:
            fresh = self._devices.fresh_identity(planned.address)
            if fresh.unreadable or not fresh.serial:
                return Result(False, "identity could not be read fresh; not evidence, left alone")
            log.warning(
                "reconcile: %s (%s) was scanned as serial %r; the array maps serial %r at LUN %d, and "
                "it now reads %r",
                device.node,
                planned.address,
                planned.serial,
                action.expected_serial,
                planned.lun_id,
                fresh.serial,
            )
        blocker = self._path_blocker(device.name)
        if blocker:  # checked before multipathd is told to let go of a path something still uses
            raise DeviceInUse(f"{device.node} is in use: {blocker}", device=str(device.node), holder=blocker)
        self._release_from_multipathd(device.name)
        steps.run(
            Step.REMOVE_PATHS,
            # an unmapped LUN has nowhere to write back to; a reused id would take the old data to the new LUN
            lambda: self._remover.remove(device, self._removal_timeout, force_flush=unmapped, flush=unmapped),
            wwid=planned.wwid or "",
            device=device.name,
            reason=action.reason.value,
        )
        return Result(True)

    def _release_from_multipathd(self, name: str) -> None:
        """Have multipathd stop checking a path it may hold open (its path checker), as a detach does."""
        if self._multipath is None:
            return
        try:
            self._multipath.forget_path(name)
        except MultipathError as exc:  # not a path multipathd knows: nothing to release
            log.debug("multipathd did not release %s: %s", name, exc)

    def _remove_link(self, action: Action, steps: StepRecorder) -> Result:
        link = action.link
        assert link is not None
        if not link.is_symlink():
            return Result(True, "already gone")
        if self._paths.resolve_link(link).exists():
            return Result(False, "its device came back; kept")
        link.unlink(missing_ok=True)
        log.info("reconcile: removed dangling link %s", link)
        return Result(True)

    def _flush_map(self, action: Action, steps: StepRecorder) -> Result:
        planned = action.multipath_map
        assert planned is not None and self._multipath is not None
        multipath = self._multipath
        current = multipath.find(planned.wwid)
        if current is None:
            return Result(True, "already gone")
        blocker = removal_blocker(
            self._remover.usage(current.dm, unstick=partial(multipath.stop_queueing, current))
        )
        if blocker:
            raise DeviceInUse(
                f"{current.node} is in use: {blocker}", device=str(current.node), holder=blocker
            )
        steps.run(
            Step.REMOVE_MULTIPATH, lambda: self._remover.flush_map(multipath, current), wwid=planned.wwid
        )
        return Result(True)

    def _relogin(self, action: Action, steps: StepRecorder) -> Result:
        assert action.portal is not None
        target, portal = action.target_iqn, action.portal
        session, logged_in = steps.run(
            Step.LOGIN,
            lambda: self._logins.session(target, portal),
            target_iqn=target,
            portal=str(portal),
            result=lambda outcome: {"logged_in": outcome[1], "sid": outcome[0].sid},
        )
        for lun_id in action.lun_ids:
            self._scan_one(session.host_number, target, lun_id, str(portal), steps)
        return Result(True, "logged in" if logged_in else "session back")

    def _scan(self, action: Action, steps: StepRecorder) -> Result:
        assert action.portal is not None
        session = self._sessions.find(action.target_iqn, action.portal)
        if session is None or not session.logged_in:
            return Result(False, "the session is not logged in; the next pass logs it in")
        for lun_id in action.lun_ids:
            self._scan_one(session.host_number, action.target_iqn, lun_id, str(action.portal), steps)
        return Result(True)

    def _scan_one(self, host: int, target: str, lun_id: int, portal: str, steps: StepRecorder) -> None:
        steps.run(
            Step.SCAN,
            lambda: self._sessions.scan_lun(host, lun_id),
            target_iqn=target,
            lun_id=lun_id,
            portal=portal,
        )

    def _add_path(self, action: Action, steps: StepRecorder) -> Result:
        assert action.device is not None and self._multipath is not None
        multipath, name = self._multipath, action.device.name
        steps.run(
            Step.MULTIPATH,
            lambda: multipath.add_path(name),
            wwid=action.device.wwid or "",
            device=name,
        )
        return Result(True)

    def _logout(self, action: Action, steps: StepRecorder) -> Result:
        assert action.portal is not None
        done = self._logins.log_out_if_unused(action.target_iqn, action.portal, steps)
        return Result(done, "" if done else "still needed; kept")

    def _repair_igroup(self, action: Action, steps: StepRecorder) -> Result:
        if action.reason is Reason.INITIATOR_MISSING:
            steps.run(
                Step.IGROUP,
                lambda: self._array.add_initiator(action.target, self._initiator),
                igroup=action.target,
                repair="add_initiator",
            )
            return Result(True, f"added {self._initiator}")
        self._view.forget(igroup=True)
        igroup = steps.run(
            Step.IGROUP, self._view.igroup, igroup=self._view.own_igroup_name, repair="recreate"
        )
        return Result(True, f"using igroup {igroup.name}")

    def _recover(self, action: Action, steps: StepRecorder) -> Result:
        failed = [outcome for outcome in self._recovery.retry() if outcome.error]
        return Result(not failed, ", ".join(f"{o.kind.value} {o.operation}: {o.error}" for o in failed))
