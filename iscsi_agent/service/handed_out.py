"""Is the device an attachment handed out still its LUN? Asked before the journal answers again.

The kernel reuses disk names and the array reuses LUN ids: a recorded ``/dev/sdX`` (handed out when
the disk had no ``wwn-`` link) may now be another LUN's disk, and a by-id link, named by the WWID
udev read when it made it, may lead to a disk that now reads as another LUN. So the path alone
proves nothing: every disk behind it (the disk itself, or each path of a multipath map) is read
afresh, under a deadline because a rescan on a dead path can block, and compared with the LUN's
serial. Only a positive match hands the device out again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial

from iscsi_agent.errors import AgentError
from iscsi_agent.host.blockdev import AbandoningCalls, KernelCalls
from iscsi_agent.host.devices import DeviceIdentity, Devices
from iscsi_agent.host.errors import IdentityUnreadable
from iscsi_agent.host.identity import Verdict, verify_lun
from iscsi_agent.host.multipath import Multipath
from iscsi_agent.host.paths import HostPaths
from iscsi_agent.journal.model import Attachment
from iscsi_agent.service.errors import WrongDevice

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 30.0


@dataclass(frozen=True)
class Finding:
    """What the recorded device is now: ``verdict`` is None when it is gone (or has no disk behind it);
    otherwise the first non-matching disk's verdict and fresh identity, or MATCH for all of them."""

    attachment: Attachment
    verdict: Verdict | None
    disk: str = ""
    identity: DeviceIdentity | None = None

    @property
    def verified(self) -> bool:
        return self.verdict is Verdict.MATCH

    @property
    def unreadable(self) -> bool:
        return self.verdict is Verdict.UNREADABLE

    def refusal(self) -> AgentError:
        """Why the device is not handed out, with the facts: IdentityUnreadable, or WrongDevice."""
        attached = self.attachment
        device = attached.device or ""
        facts = {"device": device, "volume": attached.lun_path, "serial": attached.serial}
        if self.verdict is None:
            return WrongDevice(
                f"{device}, handed out for {attached.lun_path}, is gone; attach it again",
                verdict="gone",
                **facts,
            )
        identity = self.identity
        assert identity is not None  # a verdict comes with the identity it was read from
        if self.unreadable:
            return IdentityUnreadable(
                f"{device} ({self.disk}), handed out for {attached.lun_path}: its identity cannot be read "
                f"({'; '.join(identity.unreadable)}); not handing it out",
                disk=self.disk,
                unreadable=list(identity.unreadable),
                **facts,
            )
        assert self.verdict is not None
        return WrongDevice(
            f"{device} ({self.disk}), handed out for {attached.lun_path} (serial {attached.serial}), is now "
            f"serial {identity.serial!r}, wwid {identity.wwid!r}: {self.verdict.value}; not handing it out",
            disk=self.disk,
            verdict=self.verdict.name.lower(),
            found_serial=identity.serial,
            found_wwid=identity.wwid,
            **facts,
        )


class HandedOutDevices:
    """Checks a recorded device against its LUN on a fresh read of every disk behind it."""

    def __init__(
        self,
        paths: HostPaths,
        devices: Devices,
        multipath: Multipath | None,
        *,
        calls: KernelCalls | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self._paths = paths
        self._devices = devices
        self._multipath = multipath
        self._calls = calls or AbandoningCalls()
        self._timeout = timeout

    def check(self, attachment: Attachment) -> Finding:
        """Raises KernelCallTimeout when a rescan does not return within the deadline."""
        disks = self._disks(attachment)
        if not disks:
            return Finding(attachment, None)
        for disk in disks:
            address = self._devices.address_of(disk)
            if address is None:
                return Finding(attachment, None)
            verdict, identity = self._calls.run(
                partial(verify_lun, self._devices, address, attachment.serial),
                self._timeout,
                device=f"/dev/{disk}",
                step="identity check (rescan)",
            )
            if verdict is not Verdict.MATCH:
                log.warning(
                    "%s (%s), handed out for %s, is not that LUN now: %s",
                    attachment.device,
                    disk,
                    attachment.lun_path,
                    verdict.value,
                )
                return Finding(attachment, verdict, disk, identity)
        return Finding(attachment, Verdict.MATCH)

    def _disks(self, attachment: Attachment) -> tuple[str, ...]:
        """The disks behind the recorded device: a map's paths, or the disk a link or node leads to."""
        if not attachment.device:
            return ()
        path = self._paths.under_root(attachment.device)
        if attachment.multipath:
            mpath = self._multipath.find(attachment.wwid) if self._multipath is not None else None
            if mpath is None or self._paths.host_view(mpath.node) != attachment.device or not path.exists():
                return ()
            return mpath.slaves
        try:
            return (path.resolve(strict=True).name,)
        except OSError:
            return ()
