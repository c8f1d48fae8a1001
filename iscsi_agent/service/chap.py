"""CHAP credentials that follow their secret files, so an operator rotates a secret without a restart.

Each attach (before its igroup step) and each reconciler pass reads the secret files again and
compares a digest of users and secrets with the one applied last; only the digest is kept, and
nothing of it is logged. A change goes out in the order logins need it: first the initiator's
entry on the array (the target checks the next login against it), then this agent's node settings
(every later login and discovery) and the node records of the SVM's target at its LIFs (a login
by anyone else: iscsiadm by hand, the next start). No login runs at the SVM's LIFs while they change
(``Logins.between_logins``): one that started with the old secrets finishes first, so a rotation
never fails a concurrent attach's login. A session logged in keeps running: iSCSI
authenticates at login only. iscsid keeps the credentials a session logged in with for its own
reconnects, so a session that drops after a rotation comes back through a new login (the
reconciler's, once the session is gone), which reads the record.

When the array refuses the entry, nothing on the host changes and the next check tries again, so
the host never expects secrets the array does not hold. A secret file that becomes unusable (a
wrong owner or mode, a link, a bad secret) is logged naming the file and key, and the secrets in
use stay.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable

from iscsi_agent.array.client import ArrayClient
from iscsi_agent.array.model import ChapAuth, ChapCredentials
from iscsi_agent.config import ChapSecrets, ConfigError
from iscsi_agent.host.iscsiadm import Chap
from iscsi_agent.service.array_view import ArrayView
from iscsi_agent.service.logins import Logins

log = logging.getLogger(__name__)


class ChapUsers:
    """The CHAP users of the configuration; the secrets come from ``ChapRotation``'s reads."""

    def __init__(self, initiator: str, username: str, target_username: str) -> None:
        self.initiator = initiator
        self.username = username
        self.target_username = target_username

    def for_array(self, secrets: ChapSecrets) -> ChapCredentials:
        """The initiator's entry: inbound (the array checks us), outbound for mutual CHAP."""
        return ChapCredentials(
            self.initiator,
            ChapAuth.CHAP,
            inbound_user=self.username,
            inbound_secret=secrets.secret,
            outbound_user=self.target_username or None,
            outbound_secret=secrets.target_secret or None,
        )

    def for_host(self, secrets: ChapSecrets) -> Chap:
        """The node records' credentials: ours, and the target's for mutual CHAP (``*_in``)."""
        return Chap(
            self.username,
            secrets.secret,
            username_in=self.target_username or None,
            password_in=secrets.target_secret or None,
        )

    def digest(self, secrets: ChapSecrets) -> bytes:
        fields = (self.username, secrets.secret, self.target_username, secrets.target_secret)
        return hashlib.sha256("\0".join(fields).encode()).digest()


class ChapRotation:
    def __init__(
        self,
        users: ChapUsers,
        read: Callable[[], ChapSecrets],
        *,
        array: ArrayClient,
        view: ArrayView,
        logins: Logins,
    ) -> None:
        self._users = users
        self._read = read
        self._array = array
        self._view = view
        self._logins = logins
        self._lock = threading.Lock()
        self._applied: bytes | None = None  # the digest of what the array and the host hold

    def ensure(self) -> None:
        """Carry changed secrets to the array entry, then to the host; nothing when they did not change."""
        with self._lock:
            secrets = self._current()
            if secrets is None:
                return
            digest = self._users.digest(secrets)
            if digest == self._applied:
                return
            first = self._applied is None
            target = self._view.target_iqn()
            portals = [lif.portal for lif in self._view.lifs()]
            with self._logins.between_logins(portals):
                self._array.set_chap_credentials(self._users.for_array(secrets))
                self._logins.use_chap(self._users.for_host(secrets))
                self._logins.rewrite_records(target, portals)
            self._applied = digest
        if first:
            log.info("CHAP entry of %s set on the array (mutual: %s)", self._users.initiator, self._mutual)
        else:
            log.info(
                "CHAP secrets changed: the array entry of %s and the node records of %s hold the new ones; "
                "sessions logged in keep running and use them at their next login",
                self._users.initiator,
                target,
            )

    @property
    def _mutual(self) -> bool:
        return bool(self._users.target_username)

    def _current(self) -> ChapSecrets | None:
        """The secrets as the files hold them; None (keep what is applied) when a file is unusable now."""
        try:
            return self._read()
        except ConfigError as exc:
            if self._applied is None:
                raise
            log.error("%s; the CHAP secrets in use stay until it is fixed", exc)
            return None
