"""open-iscsi's iscsiadm, driven through the CommandRunner: discovery, node records, login, logout.

Every call has a timeout, no call carries a CHAP secret (they go into the record files), and
open-iscsi's exit codes become typed errors. Some codes mean "already done" for one
operation and a fault for another, so each operation says which codes it tolerates.

Records are shared, so they are written only when they must be (iscsiadm 2.1.8, seen in the VM):

- A node record (target, portal) serves every LUN of that target; ``-o new`` resets it to
  iscsid.conf's defaults (automatic LUN scan, no CHAP), and a sendtargets discovery through a
  portal rewrites every node record at that portal the same way. A login that starts while a
  record holds defaults scans every LUN, or fails authentication.
- ``ensure_node`` therefore reads the record first and writes nothing when it already holds the
  agent's settings; otherwise it writes every setting in one ``-o update`` with several
  ``-n NAME -v VALUE`` pairs (iscsiadm checks every name before it writes, then writes the record
  once: a bad pair leaves the record as it was), preceded by ``-o new`` only when the record is missing.
- CHAP secrets never go on iscsiadm's command line, which any local user can read in /proc while
  it runs: after the update, ``IscsiDatabase`` writes them into the record files themselves (and
  leaves a file that holds them already as it is). The update carries the method and user names.

Interfaces (``[iscsi] ifaces``): open-iscsi binds a session to a network interface through an
*iface* record (``iscsiadm -m iface -I NAME``, ``iface.net_ifacename``), which ``ensure_iface``
keeps as ``ensure_node`` keeps node records: read, made or changed only when it differs. A
discovery, node record and login for a bound portal name the iface (``-I NAME``); the node record
of an iface is its own (``nodes/T/A,P,TPGT/NAME``), beside any default iface's one. Without
``ifaces`` they name open-iscsi's built-in ``default`` iface: a discovery that names none binds its
records to every software iface record on the host (an administrator's, or one an offload driver
made) and not to the default, and a login that names none logs in through every record of the
target, so sessions would go through interfaces the agent was never told about. Logout and record
deletion name none: they end every session and record of the target at the portal.

Concurrency, per portal: every method holds its portal's lock (``PortalLocks``) while it runs
iscsiadm, so no two of them interleave on one portal's records. A caller must itself hold
``Iscsiadm.portal_lock(portal)`` across a sequence whose later step relies on the earlier one:
discover → ensure_node → login (a discovery or another configuration in between would let the
login run on defaults), and "the session carries no LUN" → logout → delete_node (an attach in
between would lose its session). The lock is re-entrant, so the steps take it again freely.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from iscsi_agent.host.command import CommandResult, CommandRunner, CommandTimeout
from iscsi_agent.host.errors import (
    IscsiadmError,
    IscsiAuthFailed,
    IscsiConnectionFailed,
    IscsidUnreachable,
    IscsiLoginFailed,
    IscsiNoRecords,
    IscsiSessionExists,
    IscsiTimeout,
    IscsiTransportMissing,
)
from iscsi_agent.host.iscsi_db import IscsiDatabase
from iscsi_agent.portal import Portal

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 30.0
DEFAULT_LOGIN_TIMEOUT = 120.0
DEFAULT_IFACE = "default"  # open-iscsi's built-in iface: the kernel's routing picks the interface

# open-iscsi's exit codes (include/iscsi_err.h; iscsiadm(8), EXIT STATUS) that callers act on.
EXIT_TRANSPORT = 4  # ISCSI_ERR_TRANS
EXIT_LOGIN = 5  # ISCSI_ERR_LOGIN
EXIT_IDBM = 6  # ISCSI_ERR_IDBM; also "Discovery record [...] not found."
EXIT_TIMEOUT = 8  # ISCSI_ERR_TRANS_TIMEOUT
EXIT_PDU_TIMEOUT = 11  # ISCSI_ERR_PDU_TIMEOUT
EXIT_TRANSPORT_NOT_FOUND = 12  # ISCSI_ERR_TRANS_NOT_FOUND
EXIT_SESSION_EXISTS = 15  # ISCSI_ERR_SESS_EXISTS
EXIT_ISCSID_COMM = 18  # ISCSI_ERR_ISCSID_COMM_ERR
EXIT_FATAL_LOGIN = 19  # ISCSI_ERR_FATAL_LOGIN
EXIT_ISCSID_NOT_CONNECTED = 20  # ISCSI_ERR_ISCSID_NOTCONN
EXIT_NO_RECORDS = 21  # ISCSI_ERR_NO_OBJS_FOUND
EXIT_LOGIN_AUTH_FAILED = 24  # ISCSI_ERR_LOGIN_AUTH_FAILED
EXIT_REQUEST_TIMEOUT = 33  # ISCSI_ERR_REQ_TIMEDOUT

_ERRORS: dict[int, tuple[type[IscsiadmError], str]] = {
    EXIT_TRANSPORT: (IscsiConnectionFailed, "could not connect to the portal"),
    EXIT_LOGIN: (IscsiLoginFailed, "login failed (the exchange broke off or negotiation failed)"),
    EXIT_TIMEOUT: (IscsiTimeout, "connection timed out"),
    # an unreachable portal ends as "connection login retries exceeded ... iSCSI PDU timed out"
    EXIT_PDU_TIMEOUT: (IscsiTimeout, "the portal did not answer"),
    EXIT_TRANSPORT_NOT_FOUND: (IscsiTransportMissing, "iSCSI transport not loaded (modprobe iscsi_tcp)"),
    EXIT_SESSION_EXISTS: (IscsiSessionExists, "session already exists"),
    EXIT_ISCSID_COMM: (IscsidUnreachable, "lost its connection to iscsid mid-request (did iscsid stop?)"),
    EXIT_FATAL_LOGIN: (IscsiLoginFailed, "fatal login failure (target refused, or mutual CHAP failed)"),
    EXIT_ISCSID_NOT_CONNECTED: (IscsidUnreachable, "cannot reach iscsid (is it running?)"),
    EXIT_NO_RECORDS: (IscsiNoRecords, "no records found"),
    EXIT_LOGIN_AUTH_FAILED: (IscsiAuthFailed, "login authentication failed (CHAP user or secret)"),
    EXIT_REQUEST_TIMEOUT: (IscsiTimeout, "iscsid did not answer in time"),
}
# The rest of iscsiadm(8)'s list, so an IscsiadmError still says what its code means.
_MEANINGS: dict[int, str] = {
    1: "failed (generic error)",
    2: "session not found",
    3: "out of memory or resources",
    EXIT_IDBM: "error reading or writing the iSCSI database (node and discovery records)",
    7: "invalid argument",
    9: "internal iscsid or kernel failure",
    10: "logout failed",
    13: "permission denied (iscsiadm must run as root)",
    14: "the transport does not support this operation",
    16: "iscsid refused the request as invalid",
    17: "iSNS is not supported",
    22: "object not found in sysfs",
    23: "SCSI host not found",
    25: "iSNS query failed",
    26: "iSNS registration failed",
    27: "operation not supported",
    28: "device or resource busy",
    29: "temporary failure, try again",
    30: "unknown discovery type",
    31: "a child process ended",
    32: "session not connected",
}

HIDDEN = "********"  # how iscsiadm shows a secret that is set (iscsiadm -S would print it)
EMPTY = "<empty>"  # how it shows an empty value
_SENDTARGETS_LINE = re.compile(r"(?P<portal>\S+),(?P<tpgt>-?\d+)\s+(?P<iqn>\S+)")
_RECORD_BEGIN = "# BEGIN RECORD"
_RECORD_END = "# END RECORD"

Pairs = tuple[tuple[str, str], ...]
Record = Mapping[str, str]


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


@dataclass(frozen=True)
class NodeSettings:
    """What the agent sets on every node record: manual start and scan, bounded timeouts, CHAP."""

    login_timeout: int = 15
    replacement_timeout: int = 120
    login_retries: int = 1
    chap: Chap | None = None

    def values(self) -> Pairs:
        """(name, value) pairs for ``iscsiadm -m node -o update``; never a secret (see ``secrets``)."""
        pairs = [
            ("node.startup", "manual"),
            # manual: login must not scan every LUN; the agent scans the one it wants.
            ("node.session.scan", "manual"),
            ("node.conn[0].timeo.login_timeout", str(self.login_timeout)),
            ("node.session.timeo.replacement_timeout", str(self.replacement_timeout)),
            ("node.session.initial_login_retry_max", str(self.login_retries)),
        ]
        return tuple(pairs) + _auth_values("node.session.auth", self.chap)

    def secrets(self) -> Pairs:
        """The CHAP secrets as (name, value) pairs, for the record files (``IscsiDatabase``) only."""
        return _auth_secrets("node.session.auth", self.chap)


def _auth_values(prefix: str, chap: Chap | None) -> Pairs:
    if chap is None:
        return ((f"{prefix}.authmethod", "None"),)
    pairs = [(f"{prefix}.authmethod", "CHAP"), (f"{prefix}.username", chap.username)]
    if chap.username_in and chap.password_in:
        pairs.append((f"{prefix}.username_in", chap.username_in))
    return tuple(pairs)


def _auth_secrets(prefix: str, chap: Chap | None) -> Pairs:
    if chap is None:
        return ()
    pairs = [(f"{prefix}.password", chap.password)]
    if chap.username_in and chap.password_in:
        pairs.append((f"{prefix}.password_in", chap.password_in))
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


def parse_records(output: str) -> tuple[dict[str, str], ...]:
    """The records ``iscsiadm -m node|discoverydb ... -o show`` prints, one dict each::

        # BEGIN RECORD 2.1.8
        node.name = iqn.1992-08.com.netapp:sn.4b1d6e0f2a9c11efb3c1005056a7d2e4:vs.3
        node.tpgt = -1
        node.session.auth.username = <empty>
        node.session.auth.password = ********
        node.session.scan = manual
        # END RECORD

    ``<empty>`` becomes ""; a secret that is set stays ``HIDDEN``. One target at one portal can
    have several records (one per tpgt or iface); lines outside a record (warnings) are skipped.
    """
    records: list[dict[str, str]] = []
    current: dict[str, str] | None = None
    for line in output.splitlines():
        if line.startswith(_RECORD_BEGIN):
            current = {}
        elif line.startswith(_RECORD_END):
            if current is not None:
                records.append(current)
            current = None
        elif current is not None:
            name, equals, value = line.partition(" = ")
            if equals:
                current[name.strip()] = "" if value == EMPTY else value
    return tuple(records)


def pending_update(records: Sequence[Record], wanted: Pairs) -> Pairs:
    """The pairs to write so that every record holds ``wanted``: none when all already do, else all."""
    if records and all(record.get(name) == value for record in records for name, value in wanted):
        return ()
    return wanted


def error_for(action: str, result: CommandResult) -> IscsiadmError:
    """The typed error for a failed iscsiadm run (argv and output arrive already masked)."""
    kind, meaning = _ERRORS.get(result.exit_code, (IscsiadmError, _MEANINGS.get(result.exit_code, "failed")))
    said = (result.stderr.strip() or result.stdout.strip()).splitlines()
    return kind(
        f"iscsiadm {action}: {meaning} (exit {result.exit_code}){': ' + said[-1] if said else ''}",
        argv=list(result.argv),
        exit_code=result.exit_code,
        stderr=result.stderr,
    )


def _iface_args(iface: str | None) -> tuple[str, ...]:
    """``-I NAME``; nothing when no iface is named (iscsiadm then acts on every iface's records)."""
    return ("-I", iface) if iface else ()


def _through(iface: str | None) -> str:
    return f" through iface {iface}" if iface and iface != DEFAULT_IFACE else ""


class PortalLocks:
    """One re-entrant lock per portal, for every iscsiadm run that touches the portal's records.

    Keyed by portal rather than by (target, portal) because a sendtargets discovery through a
    portal rewrites the records of every target there; an ONTAP LIF serves one SVM, so one
    target, so in practice this is the per-(target, portal) lock. A daemon shares one registry
    between its Iscsiadm and anything else that must not run beside a record change.
    """

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[Portal, threading.RLock] = {}

    def lock(self, portal: Portal) -> threading.RLock:
        with self._guard:
            return self._locks.setdefault(portal, threading.RLock())


class Iscsiadm:
    """The operations the agent needs from iscsiadm; every one is safe to repeat.

    Each holds the portal's lock while it runs; see the module docstring for the sequences a
    caller must hold ``portal_lock`` across.
    """

    def __init__(
        self,
        runner: CommandRunner,
        database: IscsiDatabase,
        *,
        program: str = "iscsiadm",
        timeout: float = DEFAULT_TIMEOUT,
        login_timeout: float = DEFAULT_LOGIN_TIMEOUT,
        locks: PortalLocks | None = None,
    ) -> None:
        self._runner = runner
        self._database = database
        self._program = program
        self._timeout = timeout
        self._login_timeout = login_timeout
        self._locks = locks or PortalLocks()
        self._iface_lock = threading.Lock()  # iface records are shared by every portal

    def portal_lock(self, portal: Portal) -> threading.RLock:
        """The portal's re-entrant lock, for a caller's sequence of steps (``with iscsiadm.portal_lock(p):``)."""
        return self._locks.lock(portal)

    def ensure_iface(self, name: str) -> bool:
        """Make the iface record ``name`` bind to the network interface of that name; True when it wrote.

        One read when it does already; otherwise ``-o new`` (only when missing: exit 6, "Could not
        read iface") and one ``-o update`` of ``iface.net_ifacename``. The rest of the record keeps
        open-iscsi's defaults (tcp, the host's initiator name).
        """
        with self._iface_lock:
            written = self._ensure_record(
                f"iface {name}", ("-m", "iface", "-I", name), (("iface.net_ifacename", name),), (EXIT_IDBM,)
            )
        if written:
            log.info("iface %s bound to network interface %s", name, name)
        return written

    def discover(
        self, portal: Portal, chap: Chap | None = None, *, iface: str | None = None
    ) -> tuple[DiscoveredTarget, ...]:
        """SendTargets discovery through one portal (each portal answers only for itself).

        ``-o new`` adds records only for targets the host does not know yet: a plain discovery
        rewrites every node record at the portal with iscsid.conf's defaults, which is the hazard
        the VM tests show. A record it adds holds those defaults until ``ensure_node``. Without
        discovery CHAP it is one call; with it, the discovery record carries the credentials first
        (the secret written into its file, as for a node record). One-way only: the target proves
        itself (mutual CHAP) at the login of the session, and a discovery that demanded it fails on
        a target that does not authenticate discovery sessions (tgtd answers None, which the
        initiator then refuses); a discovery session only lists target names. With ``iface`` the
        discovery goes through it; open-iscsi may still make the records for the default iface (or
        for no iface asked): the caller reads the iface's record afterwards rather than assume it.
        """
        if chap is None:
            base: tuple[str, ...] = ("-m", "discovery", "-t", "sendtargets", "-p", str(portal))
        else:
            base = ("-m", "discoverydb", "-t", "sendtargets", "-p", str(portal))
        with self._locks.lock(portal):
            if chap is not None:
                chap = dataclasses.replace(chap, username_in=None, password_in=None)
                # A discovery record that is missing shows as exit 6, "Discovery record [...] not found."
                self._ensure_record(
                    f"discoverydb {portal}",
                    base,
                    _auth_values("discovery.sendtargets.auth", chap),
                    (EXIT_IDBM,),
                )
                self._database.set_discovery_values(portal, _auth_secrets("discovery.sendtargets.auth", chap))
                base = (*base, "--discover")
            # exit 21: the portal knows no targets for us; that is an empty answer, not a fault.
            result = self._run(
                f"discovery via {portal}{_through(iface)}",
                (*base, *_iface_args(iface), "-o", "new"),
                tolerate=(EXIT_NO_RECORDS,),
            )
        targets = parse_sendtargets(result.stdout)
        log.info(
            "discovery via %s%s found %s",
            portal,
            _through(iface),
            ", ".join(target.iqn for target in targets) or "nothing",
        )
        return targets

    def node_records(
        self, iqn: str, portal: Portal, *, iface: str | None = None
    ) -> tuple[Record, ...] | None:
        """The node records of iqn at portal (of that iface only, when named; one read); None when
        the host has none."""
        with self._locks.lock(portal):
            return self._read_records(
                f"node {iqn} {portal}{_through(iface)}", self._node(iqn, portal, iface), (EXIT_NO_RECORDS,)
            )

    def ensure_node(
        self,
        iqn: str,
        portal: Portal,
        settings: NodeSettings,
        *,
        known: tuple[Record, ...] | None = None,
        iface: str | None = None,
    ) -> bool:
        """Make the node record for iqn at portal hold the agent's settings; True when it had to write.

        One read when the record is right already; one read and one update when it differs; one
        read, ``-o new`` and one update when it is missing. ``known`` are records the caller read
        under the portal lock just now (``()`` for one a discovery has just added), so they are not
        read again. With CHAP, the record files then get the secrets they do not hold yet. With
        ``iface``, the record is that iface's (and only its file gets the secrets).
        """
        with self._locks.lock(portal):
            written = self._ensure_record(
                f"node {iqn} {portal}{_through(iface)}",
                self._node(iqn, portal, iface),
                settings.values(),
                (EXIT_NO_RECORDS,),
                known=known,
            )
            if settings.secrets():
                written = (
                    self._database.set_node_values(iqn, portal, settings.secrets(), iface=iface) or written
                )
        if written:
            log.info(
                "node record %s at %s%s configured (chap=%s)",
                iqn,
                portal,
                _through(iface),
                settings.chap is not None,
            )
        else:
            log.debug("node record %s at %s%s already configured", iqn, portal, _through(iface))
        return written

    # The name callers used when every call rewrote the record; same operation.
    configure_node = ensure_node

    def login(self, iqn: str, portal: Portal, *, iface: str | None = None) -> bool:
        """Log in (with the iface's record only, when named); False when a session existed already
        (exit 15), which is success too."""
        with self._locks.lock(portal):
            result = self._run(
                f"login to {iqn} via {portal}{_through(iface)}",
                (*self._node(iqn, portal, iface), "--login"),
                tolerate=(EXIT_SESSION_EXISTS,),
                timeout=self._login_timeout,
            )
        if result.exit_code == EXIT_SESSION_EXISTS:
            log.debug("already logged in to %s via %s%s", iqn, portal, _through(iface))
            return False
        log.info("logged in to %s via %s%s", iqn, portal, _through(iface))
        return True

    def logout(self, iqn: str, portal: Portal, *, iface: str) -> bool:
        """Log out the session through ``iface``; False when there was none (exit 21).

        The iface is always named: without it iscsiadm ends every session to the target through the
        portal, on every iface, another user's included."""
        with self._locks.lock(portal):
            result = self._run(
                f"logout from {iqn} via {portal}{_through(iface)}",
                (*self._node(iqn, portal, iface), "--logout"),
                tolerate=(EXIT_NO_RECORDS,),
            )
        if result.exit_code == EXIT_NO_RECORDS:
            return False
        log.info("logged out of %s via %s%s", iqn, portal, _through(iface))
        return True

    def delete_node(self, iqn: str, portal: Portal, *, iface: str) -> bool:
        """Delete the iface's node record; False when there was none (exit 21, or exit 6 for an iface
        with no record of its own) or a session still uses it (exit 15: iscsiadm keeps it)."""
        with self._locks.lock(portal):
            result = self._run(
                f"node delete {iqn} {portal}{_through(iface)}",
                (*self._node(iqn, portal, iface), "-o", "delete"),
                tolerate=(EXIT_NO_RECORDS, EXIT_SESSION_EXISTS, EXIT_IDBM),
            )
        if result.exit_code in (EXIT_SESSION_EXISTS, EXIT_IDBM):
            said = result.stderr.strip().splitlines()
            log.info(
                "node record %s at %s%s kept: %s",
                iqn,
                portal,
                _through(iface),
                said[-1] if said else "in use",
            )
        if result.exit_code != 0:
            return False
        log.info("node record %s at %s%s deleted", iqn, portal, _through(iface))
        return True

    def _node(self, iqn: str, portal: Portal, iface: str | None = None) -> tuple[str, ...]:
        return ("-m", "node", "-T", iqn, "-p", str(portal), *_iface_args(iface))

    def _read_records(
        self, what: str, base: Sequence[str], missing: Sequence[int]
    ) -> tuple[dict[str, str], ...] | None:
        """The records at base; None when iscsiadm says there are none (an exit code in ``missing``)."""
        result = self._run(f"{what} show", (*base, "-o", "show"), tolerate=missing)
        return parse_records(result.stdout) if result.exit_code == 0 else None

    def _ensure_record(
        self,
        what: str,
        base: Sequence[str],
        wanted: Pairs,
        missing: Sequence[int],
        known: tuple[Record, ...] | None = None,
    ) -> bool:
        """Read the record, create it when missing, write every wanted pair in one update when it differs.

        Only a record iscsiadm calls missing is made with ``-o new``: output that cannot be parsed
        counts as differing, and gets the update alone, never a reset to defaults.
        """
        records = known if known is not None else self._read_records(what, base, missing)
        pairs = pending_update(records or (), wanted)
        if not pairs:
            return False
        if records is None:
            self._run(f"{what} new", (*base, "-o", "new"))
        arguments = [argument for name, value in pairs for argument in ("-n", name, "-v", value)]
        self._run(f"{what} update", (*base, "-o", "update", *arguments))
        return True

    def _run(
        self,
        action: str,
        args: Sequence[str],
        *,
        tolerate: Sequence[int] = (),
        timeout: float | None = None,
    ) -> CommandResult:
        timeout = timeout or self._timeout
        try:
            result = self._runner([self._program, *args], timeout=timeout)
        except CommandTimeout as exc:
            raise IscsiTimeout(
                f"iscsiadm {action}: no answer within {timeout:g}s",
                argv=exc.details.get("argv"),
                exit_code=None,
            ) from exc
        if result.exit_code != 0 and result.exit_code not in tolerate:
            raise error_for(action, result)
        return result
