"""iSCSI sessions as the kernel reports them in sysfs, and the targeted LUN scan on a session's host.

sysfs, not ``iscsiadm -m session`` text, is the source: it is what the kernel acts on and
it gives the SCSI host number directly. Layout on Linux 6.1 (seen in the test VM)::

    class/iscsi_session/session1 -> ../../devices/platform/host6/session1/iscsi_session/session1
    class/iscsi_session/session1/{targetname,state,tpgt,ifacename,recovery_tmo}
    class/iscsi_session/session1/device -> ../../../session1        (its parent is host6)
    .../session1/device/connection1:0/iscsi_connection/connection1:0/{persistent_address,persistent_port}
    .../session1/device/target6:0:0/6:0:0:1                          (the session's SCSI devices)
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from iscsi_agent.host.paths import HostPaths
from iscsi_agent.host.sysfs import entries, entry_names, read_attr, write_attr
from iscsi_agent.portal import Portal

log = logging.getLogger(__name__)

_SESSION = re.compile(r"session(\d+)")
_HOST = re.compile(r"host(\d+)")
_CONNECTION = re.compile(r"connection\d+:\d+")
_SCSI_ADDRESS = re.compile(r"(\d+):(\d+):(\d+):(\d+)")
LOGGED_IN = "LOGGED_IN"


@dataclass(frozen=True, order=True)
class ScsiAddress:
    """H:C:T:L, the kernel's name for one LUN behind one SCSI host."""

    host: int
    channel: int
    target: int
    lun: int

    @classmethod
    def parse(cls, text: str) -> ScsiAddress:
        address = cls.named(text)
        if address is None:
            raise ValueError(f"not a SCSI address: {text!r}")
        return address

    @classmethod
    def named(cls, text: str) -> ScsiAddress | None:
        """The address a sysfs entry is named after ("6:0:0:1"); None for any other name (no
        exception: listings of thousands of entries hold many other names)."""
        match = _SCSI_ADDRESS.fullmatch(text)
        return cls(int(match[1]), int(match[2]), int(match[3]), int(match[4])) if match else None

    def key(self) -> tuple[int, int, int, int]:
        """The order of addresses as a plain tuple: sorting thousands compares tuples, not dataclasses."""
        return (self.host, self.channel, self.target, self.lun)

    def __str__(self) -> str:
        return f"{self.host}:{self.channel}:{self.target}:{self.lun}"


@dataclass(frozen=True)
class Session:
    sid: int
    target_iqn: str
    portal: Portal | None
    state: str
    host_number: int
    tpgt: int | None = None
    iface: str | None = None

    @property
    def logged_in(self) -> bool:
        return self.state == LOGGED_IN


class Sessions:
    """Reads sessions and their SCSI devices from sysfs, and scans single LUNs."""

    def __init__(self, paths: HostPaths) -> None:
        self._paths = paths

    def current(self) -> tuple[Session, ...]:
        """Every iSCSI session the kernel has, in session-id order; none when iSCSI is not loaded."""
        sessions = []
        for entry in entries(self._paths.iscsi_sessions()):
            match = _SESSION.fullmatch(entry.name)
            session = self._read(int(match[1]), entry) if match else None
            if session is not None:
                sessions.append(session)
        return tuple(sorted(sessions, key=lambda session: session.sid))

    def find(self, target_iqn: str, portal: Portal) -> Session | None:
        """The session to target_iqn through portal, if logged in or recovering."""
        for session in self.current():
            if session.target_iqn == target_iqn and session.portal == portal:
                return session
        return None

    def devices(self, session: Session) -> tuple[ScsiAddress, ...]:
        """The SCSI devices (LUNs) the kernel has on this session, whatever their state."""
        device = os.fspath(self._device_dir(session.sid))
        found = []
        for target in entry_names(device):
            if target.startswith("target"):
                named = map(ScsiAddress.named, entry_names(f"{device}/{target}"))
                found += [address for address in named if address is not None]
        return tuple(sorted(found, key=ScsiAddress.key))

    def scan_lun(self, host: int, lun: int, channel: int = 0, target: int = 0) -> None:
        """Ask the kernel to probe exactly one LUN; never the "- - -" wildcard, which maps every LUN."""
        write_attr(
            self._paths.scsi_host(host) / "scan",
            f"{channel} {target} {lun}",
            f"scan of LUN {lun} on host{host}",
            host=host,
            lun=lun,
        )
        log.info("scanned host%s channel %s target %s LUN %s", host, channel, target, lun)

    def recovery_timeout(self, session: Session) -> int | None:
        """Seconds the kernel holds the session's I/O while it reconnects before failing it
        (``recovery_tmo``; -1 when "off": held for ever), or None when the session is gone."""
        text = read_attr(self._attrs(session.sid) / "recovery_tmo")
        return -1 if text == "off" else _int_or_none(text)

    def set_recovery_timeout(self, session: Session, seconds: int) -> None:
        """Change it on the live session. The node record's replacement_timeout reaches the kernel
        only at login; a value written here stays for the session's life (iscsid's reconnects do
        not set it back), and the kernel refuses it (EBUSY) while the session is down."""
        write_attr(
            self._attrs(session.sid) / "recovery_tmo",
            str(seconds),
            f"setting the recovery timeout of session{session.sid} to {seconds}s",
            sid=session.sid,
        )

    def _attrs(self, sid: int) -> Path:
        return self._paths.iscsi_sessions() / f"session{sid}"

    def _read(self, sid: int, entry: Path) -> Session | None:
        """One session, or None when it vanished while being read (a logout racing us)."""
        target_iqn = read_attr(entry / "targetname")
        host = self._host_number(sid)
        if not target_iqn or host is None:
            log.debug("session%s vanished while being read", sid)
            return None
        return Session(
            sid=sid,
            target_iqn=target_iqn,
            portal=self._portal(sid),
            state=read_attr(entry / "state"),
            host_number=host,
            tpgt=_int_or_none(read_attr(entry / "tpgt")),
            iface=read_attr(entry / "ifacename") or None,
        )

    def _device_dir(self, sid: int) -> Path:
        return (self._paths.iscsi_sessions() / f"session{sid}" / "device").resolve()

    def _host_number(self, sid: int) -> int | None:
        """The SCSI host the session's device sits under (devices/platform/host6/session1)."""
        for folder in self._device_dir(sid).parents:
            match = _HOST.fullmatch(folder.name)
            if match:
                return int(match[1])
        return None

    def _portal(self, sid: int) -> Portal | None:
        """The portal the session was configured with; persistent_* survives reconnects to another address."""
        for connection in sorted(self._device_dir(sid).glob("connection*")):
            if not _CONNECTION.fullmatch(connection.name):
                continue
            attrs = connection / "iscsi_connection" / connection.name
            address = read_attr(attrs / "persistent_address") or read_attr(attrs / "address")
            port = read_attr(attrs / "persistent_port") or read_attr(attrs / "port")
            if address and port.isdigit():
                return Portal(address, int(port))
        return None


def _int_or_none(text: str) -> int | None:
    return int(text) if text.lstrip("-").isdigit() else None
