"""open-iscsi's iscsiadm, driven through the CommandRunner: discovery, node records, login, logout.

Every call has a timeout, CHAP secrets are handed to the runner to be masked, and
open-iscsi's exit codes become typed errors. Some codes mean "already done" for one
operation and a fault for another, so each operation says which codes it tolerates.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from iscsi_agent.host.command import CommandResult, CommandRunner, CommandTimeout
from iscsi_agent.host.errors import (
    IscsiadmError,
    IscsiAuthFailed,
    IscsidUnreachable,
    IscsiLoginFailed,
    IscsiNoRecords,
    IscsiSessionExists,
    IscsiTimeout,
    IscsiTransportMissing,
)
from iscsi_agent.portal import Portal

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 30.0
DEFAULT_LOGIN_TIMEOUT = 120.0

# open-iscsi's exit codes (include/iscsi_err.h) that callers act on.
EXIT_TIMEOUT = 8
EXIT_PDU_TIMEOUT = 11
EXIT_TRANSPORT_NOT_FOUND = 12
EXIT_SESSION_EXISTS = 15
EXIT_FATAL_LOGIN = 19
EXIT_ISCSID_NOT_CONNECTED = 20
EXIT_NO_RECORDS = 21
EXIT_LOGIN_AUTH_FAILED = 24

_ERRORS: dict[int, tuple[type[IscsiadmError], str]] = {
    EXIT_TIMEOUT: (IscsiTimeout, "timed out"),
    # an unreachable portal ends as "connection login retries exceeded ... iSCSI PDU timed out"
    EXIT_PDU_TIMEOUT: (IscsiTimeout, "the portal did not answer"),
    EXIT_TRANSPORT_NOT_FOUND: (IscsiTransportMissing, "iSCSI transport not loaded (modprobe iscsi_tcp)"),
    EXIT_SESSION_EXISTS: (IscsiSessionExists, "session already exists"),
    EXIT_FATAL_LOGIN: (IscsiLoginFailed, "fatal login failure (target refused, or mutual CHAP failed)"),
    EXIT_ISCSID_NOT_CONNECTED: (IscsidUnreachable, "cannot reach iscsid (is it running?)"),
    EXIT_NO_RECORDS: (IscsiNoRecords, "no records found"),
    EXIT_LOGIN_AUTH_FAILED: (IscsiAuthFailed, "login authentication failed (CHAP user or secret)"),
}

_SENDTARGETS_LINE = re.compile(r"(?P<portal>\S+),(?P<tpgt>-?\d+)\s+(?P<iqn>\S+)")


@dataclass(frozen=True)
class DiscoveredTarget:
    portal: Portal
    tpgt: int
    iqn: str


@dataclass(frozen=True)
class Chap:
    """One-way CHAP (the target checks us); with the *_in pair also mutual (we check the target)."""

    username: str
    password: str = field(repr=False)
    username_in: str | None = None
    password_in: str | None = field(default=None, repr=False)

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(secret for secret in (self.password, self.password_in) if secret)


@dataclass(frozen=True)
class NodeSettings:
    """What the agent sets on every node record: manual start and scan, bounded timeouts, CHAP."""

    login_timeout: int = 15
    replacement_timeout: int = 120
    login_retries: int = 1
    chap: Chap | None = None

    def values(self) -> tuple[tuple[str, str], ...]:
        """(name, value) pairs for ``iscsiadm -m node -o update``, secrets included."""
        pairs = [
            ("node.startup", "manual"),
            # manual: login must not scan every LUN; the agent scans the one it wants.
            ("node.session.scan", "manual"),
            ("node.conn[0].timeo.login_timeout", str(self.login_timeout)),
            ("node.session.timeo.replacement_timeout", str(self.replacement_timeout)),
            ("node.session.initial_login_retry_max", str(self.login_retries)),
        ]
        return tuple(pairs) + _auth_values("node.session.auth", self.chap)


def _auth_values(prefix: str, chap: Chap | None) -> tuple[tuple[str, str], ...]:
    if chap is None:
        return ((f"{prefix}.authmethod", "None"),)
    pairs = [
        (f"{prefix}.authmethod", "CHAP"),
        (f"{prefix}.username", chap.username),
        (f"{prefix}.password", chap.password),
    ]
    if chap.username_in and chap.password_in:
        pairs += [(f"{prefix}.username_in", chap.username_in), (f"{prefix}.password_in", chap.password_in)]
    return tuple(pairs)


def parse_sendtargets(output: str) -> tuple[DiscoveredTarget, ...]:
    """Targets from a sendtargets discovery; lines that are not target lines (warnings) are skipped::

    127.0.0.1:3260,1 iqn.1992-08.com.netapp:sn.4b1d6e0f2a9c11efb3c1005056a7d2e4:vs.3
    """
    found = []
    for line in output.splitlines():
        match = _SENDTARGETS_LINE.fullmatch(line.strip())
        if not match:
            continue
        try:
            portal = Portal.parse(match["portal"])
        except ValueError:
            continue
        found.append(DiscoveredTarget(portal, int(match["tpgt"]), match["iqn"]))
    return tuple(found)


def error_for(action: str, result: CommandResult) -> IscsiadmError:
    """The typed error for a failed iscsiadm run (argv and output arrive already masked)."""
    kind, meaning = _ERRORS.get(result.exit_code, (IscsiadmError, "failed"))
    said = (result.stderr.strip() or result.stdout.strip()).splitlines()
    return kind(
        f"iscsiadm {action}: {meaning} (exit {result.exit_code}){': ' + said[-1] if said else ''}",
        argv=list(result.argv),
        exit_code=result.exit_code,
        stderr=result.stderr,
    )


class Iscsiadm:
    """The operations the agent needs from iscsiadm; every one is safe to repeat."""

    def __init__(
        self,
        runner: CommandRunner,
        program: str = "iscsiadm",
        timeout: float = DEFAULT_TIMEOUT,
        login_timeout: float = DEFAULT_LOGIN_TIMEOUT,
    ) -> None:
        self._runner = runner
        self._program = program
        self._timeout = timeout
        self._login_timeout = login_timeout

    def discover(self, portal: Portal, chap: Chap | None = None) -> tuple[DiscoveredTarget, ...]:
        """SendTargets discovery through one portal (each portal answers only for itself)."""
        base = ("-m", "discoverydb", "-t", "sendtargets", "-p", str(portal))
        # "-o new" on an existing record rewrites it with defaults; the auth settings follow.
        self._run(f"discoverydb new {portal}", (*base, "-o", "new"))
        for name, value in _auth_values("discovery.sendtargets.auth", chap):
            self._update(base, name, value, chap)
        # exit 21: the portal knows no targets for us; that is an empty answer, not a fault.
        result = self._run(f"discovery via {portal}", (*base, "--discover"), tolerate=(EXIT_NO_RECORDS,))
        targets = parse_sendtargets(result.stdout)
        log.info(
            "discovery via %s found %s", portal, ", ".join(target.iqn for target in targets) or "nothing"
        )
        return targets

    def configure_node(self, iqn: str, portal: Portal, settings: NodeSettings) -> None:
        """Create (or overwrite) the node record for iqn at portal and apply the agent's settings."""
        base = self._node(iqn, portal)
        self._run(f"node new {iqn} {portal}", (*base, "-o", "new"))
        for name, value in settings.values():
            self._update(base, name, value, settings.chap)
        log.info("node record %s at %s configured (chap=%s)", iqn, portal, settings.chap is not None)

    def login(self, iqn: str, portal: Portal) -> bool:
        """Log in; False when a session existed already (exit 15), which is success too."""
        result = self._run(
            f"login to {iqn} via {portal}",
            (*self._node(iqn, portal), "--login"),
            tolerate=(EXIT_SESSION_EXISTS,),
            timeout=self._login_timeout,
        )
        if result.exit_code == EXIT_SESSION_EXISTS:
            log.debug("already logged in to %s via %s", iqn, portal)
            return False
        log.info("logged in to %s via %s", iqn, portal)
        return True

    def logout(self, iqn: str, portal: Portal) -> bool:
        """Log out; False when there was no session (exit 21), so nothing was to do."""
        result = self._run(
            f"logout from {iqn} via {portal}",
            (*self._node(iqn, portal), "--logout"),
            tolerate=(EXIT_NO_RECORDS,),
        )
        if result.exit_code == EXIT_NO_RECORDS:
            return False
        log.info("logged out of %s via %s", iqn, portal)
        return True

    def delete_node(self, iqn: str, portal: Portal) -> bool:
        """Delete the node record; False when there was none (exit 21)."""
        result = self._run(
            f"node delete {iqn} {portal}",
            (*self._node(iqn, portal), "-o", "delete"),
            tolerate=(EXIT_NO_RECORDS,),
        )
        if result.exit_code == EXIT_NO_RECORDS:
            return False
        log.info("node record %s at %s deleted", iqn, portal)
        return True

    def _node(self, iqn: str, portal: Portal) -> tuple[str, ...]:
        return ("-m", "node", "-T", iqn, "-p", str(portal))

    def _update(self, base: Sequence[str], name: str, value: str, chap: Chap | None) -> None:
        secrets = chap.secrets if chap else ()
        self._run(f"update {name}", (*base, "-o", "update", "-n", name, "-v", value), secrets=secrets)

    def _run(
        self,
        action: str,
        args: Sequence[str],
        *,
        tolerate: Sequence[int] = (),
        timeout: float | None = None,
        secrets: Sequence[str] = (),
    ) -> CommandResult:
        timeout = timeout or self._timeout
        try:
            result = self._runner([self._program, *args], timeout=timeout, secrets=secrets)
        except CommandTimeout as exc:
            raise IscsiTimeout(
                f"iscsiadm {action}: no answer within {timeout:g}s",
                argv=exc.details.get("argv"),
                exit_code=None,
            ) from exc
        if result.exit_code != 0 and result.exit_code not in tolerate:
            raise error_for(action, result)
        return result
