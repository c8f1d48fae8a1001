"""Drives a real tgtd (the Linux SCSI target daemon) through `tgtadm`, so that LUNs exist on the wire.

The simulator mirrors its maps into tgtd through this class, and the VM test tier uses it
directly to stage LUNs with ONTAP's identity: vendor NETAPP, product "LUN C-Mode", the
LUN's 12-character serial on VPD page 0x80, and the NAA WWID ``600a0980`` + hex(serial).

Two limits of tgtd shape what can be mirrored (both seen on a real tgtd 1.0.x):
- LUN 0 of every target is tgtd's own "controller" LU. It can be neither deleted nor
  replaced (``tgtadm: this logical unit number already exists`` / ``invalid request``),
  so data LUNs start at ``FIRST_DATA_LUN_ID``. ONTAP itself has no such LU.
- ``--params`` is a comma-separated ``key=value`` list, so a serial that contains ``,``
  or ``=`` (ONTAP never generates those in practice) cannot be staged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from iscsi_agent.host.command import CommandRunner, SubprocessRunner

log = logging.getLogger(__name__)

FIRST_DATA_LUN_ID = 1
UNSTAGEABLE_SERIAL_CHARS = frozenset(",= \t\n")
NETAPP_VENDOR = "NETAPP"
NETAPP_PRODUCT = "LUN C-Mode"
NETAPP_REVISION = "9800"
NAA_PREFIX = "600a0980"
TIMEOUT = 30.0
# tgtd refuses to delete an LU while it has commands in flight; a resize waits that out, briefly
LU_BUSY = "still active"
LU_BUSY_ATTEMPTS = 20
LU_BUSY_PAUSE = 0.25


class TgtError(Exception):
    """tgtadm refused a request; the message carries its own words."""


def _acl_entry(initiator: str) -> tuple[str, str]:
    is_name = initiator.startswith(("iqn.", "eui.", "naa."))
    return ("--initiator-name", initiator) if is_name else ("--initiator-address", initiator)


def naa_id(serial: str) -> str:
    """The NAA WWID ONTAP derives from a LUN serial (shared/ontap-api.md, section 4)."""
    return NAA_PREFIX + serial.encode("ascii").hex()


class Tgtadm:
    """One tgtd's targets, LUNs, ACLs, portals and CHAP accounts."""

    def __init__(
        self,
        runner: CommandRunner | None = None,
        program: str = "tgtadm",
        backing_dir: Path = Path("/tmp/tgt-backing"),
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._run_command = runner or SubprocessRunner()
        self._program = program
        self._backing_dir = backing_dir
        self._sleep = sleep

    def create_target(self, tid: int, iqn: str) -> None:
        self._tgtadm("--op", "new", "--mode", "target", "--tid", str(tid), "-T", iqn)

    def delete_target(self, tid: int) -> None:
        self._tgtadm("--op", "delete", "--force", "--mode", "target", "--tid", str(tid))

    def bind_initiator(self, tid: int, initiator: str) -> None:
        """Let an initiator log in: how an igroup's membership reaches the target's ACL.

        An iSCSI name binds by ``--initiator-name``; "ALL" or an IP address by
        ``--initiator-address`` (tgtadm's ``-I`` matches addresses, never names).
        """
        self._tgtadm("--op", "bind", "--mode", "target", "--tid", str(tid), *_acl_entry(initiator))

    def unbind_initiator(self, tid: int, initiator: str) -> None:
        self._tgtadm("--op", "unbind", "--mode", "target", "--tid", str(tid), *_acl_entry(initiator))

    def add_lun(self, tid: int, lun_id: int, serial: str, size_bytes: int) -> Path:
        """Create a sparse-file LU at lun_id that reports the ONTAP identity of ``serial``."""
        self._check_stageable(lun_id, serial)
        self._backing_dir.mkdir(parents=True, exist_ok=True)
        backing = self._backing(tid, lun_id)
        with backing.open("wb") as sparse:
            sparse.truncate(size_bytes)
        self._create_lu(tid, lun_id, serial, backing)
        log.info("tgtd target %s: LUN %s is serial %s (%s)", tid, lun_id, serial, backing)
        return backing

    def resize_lun(self, tid: int, lun_id: int, serial: str, size_bytes: int) -> Path:
        """Give the LU at lun_id a new size and keep its data, as ``lun resize`` does on ONTAP.

        tgtd reads an LU's size only when the LU is created, so the LU is deleted (waiting out
        commands in flight), its backing file grown or cut in place, and the LU created again on
        that file with the same identity. An initiator sees the new capacity when it rescans.
        """
        self._check_stageable(lun_id, serial)
        backing = self._backing(tid, lun_id)
        with backing.open("r+b") as disk:  # opened first: without its file the LU is left as it is
            self._delete_lu(tid, lun_id)
            disk.truncate(size_bytes)
        self._create_lu(tid, lun_id, serial, backing)
        log.info("tgtd target %s: LUN %s (serial %s) is now %s bytes", tid, lun_id, serial, size_bytes)
        return backing

    def _check_stageable(self, lun_id: int, serial: str) -> None:
        if lun_id < FIRST_DATA_LUN_ID:
            raise TgtError(f"LUN {lun_id} is tgtd's controller LU; data LUNs start at {FIRST_DATA_LUN_ID}")
        bad = UNSTAGEABLE_SERIAL_CHARS.intersection(serial)
        if bad:
            raise TgtError(f"serial {serial!r} has characters tgtadm cannot carry: {sorted(bad)}")

    def _backing(self, tid: int, lun_id: int) -> Path:
        return self._backing_dir / f"tid{tid}-lun{lun_id}.img"

    def _create_lu(self, tid: int, lun_id: int, serial: str, backing: Path) -> None:
        """The LU on ``backing``, with vendor, product, serial and NAA id set before any host scans it."""
        self._tgtadm(
            "--op",
            "new",
            "--mode",
            "logicalunit",
            "--tid",
            str(tid),
            "--lun",
            str(lun_id),
            "-b",
            str(backing),
        )
        params = ",".join(
            (
                f"vendor_id={NETAPP_VENDOR}",
                f"product_id={NETAPP_PRODUCT}",
                f"product_rev={NETAPP_REVISION}",
                f"scsi_sn={serial}",
                f"scsi_id={naa_id(serial)}",
            )
        )
        self._tgtadm(
            "--op",
            "update",
            "--mode",
            "logicalunit",
            "--tid",
            str(tid),
            "--lun",
            str(lun_id),
            "--params",
            params,
        )

    def _delete_lu(self, tid: int, lun_id: int) -> None:
        """Delete the LU, retrying while tgtd says it is still active (commands in flight)."""
        for attempt in range(1, LU_BUSY_ATTEMPTS + 1):
            try:
                self._tgtadm(
                    "--op", "delete", "--mode", "logicalunit", "--tid", str(tid), "--lun", str(lun_id)
                )
                return
            except TgtError as exc:
                if LU_BUSY not in str(exc) or attempt == LU_BUSY_ATTEMPTS:
                    raise
                log.warning("tgtd target %s: LUN %s busy, delete %s retried: %s", tid, lun_id, attempt, exc)
                self._sleep(LU_BUSY_PAUSE)

    def remove_lun(self, tid: int, lun_id: int) -> None:
        self._tgtadm("--op", "delete", "--mode", "logicalunit", "--tid", str(tid), "--lun", str(lun_id))
        self._backing(tid, lun_id).unlink(missing_ok=True)

    def add_portal(self, address: str, port: int = 3260) -> None:
        self._tgtadm("--op", "new", "--mode", "portal", "--param", f"portal={address}:{port}")

    def remove_portal(self, address: str, port: int = 3260) -> None:
        self._tgtadm("--op", "delete", "--mode", "portal", "--param", f"portal={address}:{port}")

    def connections(self, tid: int) -> list[tuple[str, str]]:
        """(session id, connection id) of every connection tgtd has on target ``tid``. Parses::

        Session: 3
            Connection: 0
                Initiator: iqn.1993-08.org.debian:01:5b1c2d3e4f
        """
        shown = self._tgtadm("--op", "show", "--mode", "conn", "--tid", str(tid))
        found: list[tuple[str, str]] = []
        session = None
        for line in shown.splitlines():
            words = line.split()
            if words[:1] == ["Session:"] and len(words) == 2:
                session = words[1]
            elif words[:1] == ["Connection:"] and len(words) == 2 and session is not None:
                found.append((session, words[1]))
        return found

    def drop_connection(self, tid: int, session: str, connection: str) -> None:
        """Cut one connection at the target, as a dead network would; the initiator logs in again."""
        self._tgtadm(
            "--op", "delete", "--mode", "conn", "--tid", str(tid), "--sid", session, "--cid", connection
        )

    def set_account(self, user: str, password: str) -> None:
        """Create (or replace) a CHAP account; tgtd keeps accounts global, bound per target."""
        self._tgtadm("--op", "delete", "--mode", "account", "--user", user, check=False)
        self._tgtadm(
            "--op", "new", "--mode", "account", "--user", user, "--password", password, secrets=(password,)
        )

    def delete_account(self, user: str) -> None:
        self._tgtadm("--op", "delete", "--mode", "account", "--user", user)

    def bind_account(self, tid: int, user: str, outgoing: bool = False) -> None:
        """Require ``user`` from initiators (or, outgoing, present it to them for mutual CHAP)."""
        self._tgtadm(
            "--op",
            "bind",
            "--mode",
            "account",
            "--tid",
            str(tid),
            "--user",
            user,
            *(("--outgoing",) if outgoing else ()),
        )

    def unbind_account(self, tid: int, user: str, outgoing: bool = False) -> None:
        self._tgtadm(
            "--op",
            "unbind",
            "--mode",
            "account",
            "--tid",
            str(tid),
            "--user",
            user,
            *(("--outgoing",) if outgoing else ()),
        )

    def accounts(self) -> list[str]:
        """CHAP user names tgtd knows. Parses::

        Account list:
            alice
        """
        listing = self._tgtadm("--op", "show", "--mode", "account")
        return [line.strip() for line in listing.splitlines()[1:] if line.strip()]

    def show(self) -> str:
        """tgtadm's own description of every target, for logs and failure messages."""
        return self._tgtadm("--op", "show", "--mode", "target")

    def _tgtadm(self, *args: str, check: bool = True, secrets: Sequence[str] = ()) -> str:
        result = self._run_command([self._program, "--lld", "iscsi", *args], timeout=TIMEOUT, secrets=secrets)
        if check and result.exit_code != 0:
            raise TgtError(f"{' '.join(result.argv)}: {result.stderr.strip() or f'exit {result.exit_code}'}")
        return result.stdout
