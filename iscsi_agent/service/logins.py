"""Sessions to the SVM's target: reused when logged in, otherwise one login per target and portal.

Every LUN of an SVM shares one target IQN, so attaches running in parallel want the same
sessions. A session already logged in costs no iscsiadm call at all; a missing one is created by
the first attach that needs it while the others wait for that login (single flight). Attaches in
flight hold a *use* of each session, so one attach's rollback never logs out a session another
attach is about to scan a LUN on.

Every session handed to an attach carries the configured replacement timeout. The node record
gives it to a new login; a session that logged in before the mode changed keeps its old one (120 s
stalls a multipath volume for two minutes on a dead path), so it is changed in sysfs when an attach
uses the session and, at start, for every session the attachments use. A session the kernel will
not change (it is reconnecting) keeps its value and is still used: the next use tries again.

Without ``[iscsi] ifaces`` the discovery, node record and login name open-iscsi's default iface, so
an iface record on the host that the agent was not told about is never used. With them a login goes through the iface of the listed interface the kernel routes
its portal through (``IfaceBinding``): the iface record is kept bound to it, and the discovery,
node record and login name it. open-iscsi's discovery may ignore the iface and make only the
default iface's record, so the iface's record is read after it, and made when missing. A session
already logged in to the target through the portal on another iface (from before ``ifaces`` was
set) is used as it is, with a warning: its devices may be in use, so it is never logged out for
this, and while the route stays, the kernel sends its packets through the same interface anyway.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager

from iscsi_agent.host.errors import SysfsError, WaitTimeout
from iscsi_agent.host.iscsiadm import DEFAULT_IFACE, Chap, Iscsiadm, NodeSettings
from iscsi_agent.host.sessions import Session, Sessions
from iscsi_agent.host.waiting import Clock, wait_until
from iscsi_agent.journal.model import Step
from iscsi_agent.portal import Portal
from iscsi_agent.service.errors import TargetMismatch
from iscsi_agent.service.ifaces import IfaceBinding
from iscsi_agent.service.locks import SingleFlight
from iscsi_agent.service.steps import StepRecorder

log = logging.getLogger(__name__)

SESSION_APPEAR_TIMEOUT = 10.0  # iscsiadm returns once logged in; sysfs follows within moments

SessionKey = tuple[str, Portal]


class Logins:
    def __init__(
        self,
        iscsiadm: Iscsiadm,
        sessions: Sessions,
        settings: NodeSettings,
        clock: Clock,
        binding: IfaceBinding | None = None,
    ) -> None:
        self._iscsiadm = iscsiadm
        self._sessions = sessions
        self._settings = settings
        self._clock = clock
        self._binding = binding
        self._warned_foreign: set[int] = set()  # sessions on an unlisted iface, warned of once
        self._flight: SingleFlight[tuple[Session, bool]] = SingleFlight()
        self._guard = threading.Lock()
        self._uses: Counter[SessionKey] = Counter()

    @contextmanager
    def using(self, target_iqn: str, portal: Portal) -> Iterator[None]:
        """Mark the session as needed by an operation in flight, so no rollback logs it out meanwhile."""
        key = (target_iqn, portal)
        with self._iscsiadm.portal_lock(portal), self._guard:  # waits for a logout in progress there
            self._uses[key] += 1
        try:
            yield
        finally:
            with self._guard:
                self._uses[key] -= 1
                if self._uses[key] <= 0:
                    del self._uses[key]

    def existing(self, target_iqn: str, portal: Portal) -> Session | None:
        """The logged-in session to the target through portal, read from sysfs (no iscsiadm call),
        with the configured replacement timeout."""
        found = self._sessions.find(target_iqn, portal)
        if found is None or not found.logged_in:
            return None
        self._fit_timeout(found)
        self._warn_if_foreign(found)
        return found

    def _warn_if_foreign(self, session: Session) -> None:
        if self._binding is None or not self._binding.foreign(session.iface):
            return
        with self._guard:
            if session.sid in self._warned_foreign:
                return
            self._warned_foreign.add(session.sid)
        log.warning(
            "session%s to %s via %s is on iface %s, not one of %s ([iscsi] ifaces); used as it is "
            "(it may carry devices in use). To bind it, detach the volumes that use it and attach them again",
            session.sid,
            session.target_iqn,
            session.portal,
            session.iface,
            ", ".join(self._binding.ifaces),
        )

    def fit_timeouts(self, used: Iterable[SessionKey]) -> None:
        """Give each logged-in session of these (target, portal) pairs the configured replacement timeout."""
        for target_iqn, portal in sorted(set(used), key=str):
            self.existing(target_iqn, portal)

    def _fit_timeout(self, session: Session) -> None:
        wanted = self._settings.replacement_timeout
        current = self._sessions.recovery_timeout(session)
        if current is None or current == wanted:  # None: the session went meanwhile
            return
        where = f"session{session.sid} to {session.target_iqn} via {session.portal}"
        try:
            self._sessions.set_recovery_timeout(session, wanted)
        except SysfsError as exc:
            log.warning("%s keeps its recovery timeout of %ss, not %ss: %s", where, current, wanted, exc)
            return
        log.info("%s: recovery timeout %ss -> %ss (replacement_timeout)", where, current, wanted)

    def use_chap(self, chap: Chap | None) -> None:
        """Every login and discovery from now on carries these credentials (a rotated secret)."""
        self._settings = dataclasses.replace(self._settings, chap=chap)

    @contextmanager
    def between_logins(self, portals: Iterable[Portal]) -> Iterator[None]:
        """No login, discovery or record change at these portals runs while this is held, and none is
        left halfway when it is taken: what a credential change needs, so that a login never reads
        one secret from its record while the target already checks another. Each portal's lock is
        taken in one order, so two holders never wait on each other."""
        with ExitStack() as held:
            for portal in sorted(set(portals), key=str):
                held.enter_context(self._iscsiadm.portal_lock(portal))
            yield

    def rewrite_records(self, target_iqn: str, portals: Iterable[Portal]) -> None:
        """Give the node records of the target at these portals the current settings (none is made:
        a portal without a record gets one at its first login), so whoever logs in there next, the
        agent or iscsiadm by hand, uses them."""
        for portal in portals:
            with self._iscsiadm.portal_lock(portal):
                records = self._iscsiadm.node_records(target_iqn, portal)
                if records is not None:
                    self._iscsiadm.ensure_node(target_iqn, portal, self._settings, known=records)

    def session(self, target_iqn: str, portal: Portal) -> tuple[Session, bool]:
        """A logged-in session to the target through portal, and whether this call logged it in."""
        existing = self.existing(target_iqn, portal)
        if existing is not None:
            return existing, False
        return self._flight.run((target_iqn, portal), lambda: self._log_in(target_iqn, portal))

    def log_out_if_unused(self, target_iqn: str, portal: Portal, steps: StepRecorder) -> bool:
        """Log out and delete the node record when no device remains on the session and no operation
        in flight needs it; True when it did. Never logs out a session that still carries a LUN.

        The portal's lock is held from the checks to the logout, and ``using`` takes it too, so no
        attach can start to rely on the session in between.
        """
        with self._iscsiadm.portal_lock(portal):
            return self._log_out_if_unused(target_iqn, portal, steps)

    def _log_out_if_unused(self, target_iqn: str, portal: Portal, steps: StepRecorder) -> bool:
        session = self._sessions.find(target_iqn, portal)
        if session is not None and self._sessions.devices(session):
            log.info("keeping the session to %s via %s: it still carries LUNs", target_iqn, portal)
            return False
        with self._guard:
            if self._uses[(target_iqn, portal)] > 0:  # an attach in flight is about to scan a LUN there
                log.info("keeping the session to %s via %s: another operation needs it", target_iqn, portal)
                return False

        # The session found unused, and no other: a session there through another iface may be
        # another user's. The records: of that iface, and of every iface the agent logs in through
        # (a discovery may have made the default's beside a listed iface's).
        iface = session.iface if session is not None and session.iface else DEFAULT_IFACE
        listed = self._binding.ifaces if self._binding is not None else ()
        records = dict.fromkeys((iface, *listed, DEFAULT_IFACE))

        def log_out() -> bool:
            logged_out = self._iscsiadm.logout(target_iqn, portal, iface=iface)
            for record in records:
                self._iscsiadm.delete_node(target_iqn, portal, iface=record)
            return logged_out

        return steps.run(
            Step.LOGOUT,
            log_out,
            target_iqn=target_iqn,
            portal=str(portal),
            delete_record=True,
            result=lambda logged_out: {"logged_out": logged_out},
        )

    def _log_in(self, target_iqn: str, portal: Portal) -> tuple[Session, bool]:
        existing = self.existing(target_iqn, portal)
        if existing is not None:
            return existing, False  # a waiter that came after the leader finished
        bound = self._binding.iface_for(portal) if self._binding is not None else None
        iface = bound or DEFAULT_IFACE
        if bound is not None:
            self._iscsiadm.ensure_iface(bound)
        with self._iscsiadm.portal_lock(portal):  # no discovery or record change between these steps
            records = self._iscsiadm.node_records(target_iqn, portal, iface=iface)
            if records is None:
                offered = {
                    target.iqn for target in self._iscsiadm.discover(portal, self._settings.chap, iface=iface)
                }
                if target_iqn not in offered:
                    raise TargetMismatch(
                        f"discovery through {portal} offers {', '.join(sorted(offered)) or 'no target'}, "
                        f"not the SVM's target {target_iqn}",
                        portal=str(portal),
                        target_iqn=target_iqn,
                        offered=sorted(offered),
                    )
                # The discovery added the record, with iscsid.conf's defaults; through an iface it
                # may have made the default iface's instead: ensure_node reads (and makes) the iface's.
                records = () if bound is None else None
            self._iscsiadm.ensure_node(target_iqn, portal, self._settings, known=records, iface=iface)
            logged_in = self._iscsiadm.login(target_iqn, portal, iface=iface)

        def logged_in_session() -> Session | None:
            found = self._sessions.find(target_iqn, portal)
            return found if found is not None and found.logged_in else None

        try:
            session = wait_until(
                logged_in_session,
                SESSION_APPEAR_TIMEOUT,
                self._clock,
                what=f"session to {target_iqn} via {portal}",
            )
        except WaitTimeout:
            log.warning("logged in to %s via %s, but no logged-in session shows in sysfs", target_iqn, portal)
            raise
        self._fit_timeout(session)  # the record gave it at login; a record another tool changed did not
        return session, logged_in
