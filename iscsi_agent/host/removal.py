"""Removing a SCSI disk safely: find who uses it, refuse if anyone does, flush, delete, wait until gone.

The decision (``removal_blocker``) is a pure function of what was found (``DeviceUsage``);
gathering the facts and acting on them are the I/O around it. Order follows the kernel:
a mounted, dm-held or open device is refused; otherwise buffers are flushed, the SCSI device
is deleted through sysfs, and the wait ends when the node and its udev links are gone.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from iscsi_agent.host.blockdev import BlockOps
from iscsi_agent.host.devices import BlockDevice, Devices
from iscsi_agent.host.errors import DeviceInUse, SysfsError
from iscsi_agent.host.paths import HostPaths
from iscsi_agent.host.sessions import ScsiAddress
from iscsi_agent.host.sysfs import entries, read_attr, read_link, write_attr

log = logging.getLogger(__name__)

_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")
# udev opens every new or changed disk to probe it (idle workers were seen still holding it);
# that is not a user, and deleting the device under a probe is harmless.
UDEV_WORKERS = frozenset({"(udev-worker)", "systemd-udevd", "udevd"})


@dataclass(frozen=True)
class Mount:
    device_number: str
    mount_point: str
    source: str


@dataclass(frozen=True)
class Opener:
    pid: int
    command: str


@dataclass(frozen=True)
class DeviceUsage:
    """Everything that can keep a device (or one of its partitions) busy."""

    device: str
    mounts: tuple[Mount, ...] = ()
    holders: tuple[str, ...] = ()
    openers: tuple[Opener, ...] = ()
    claimed: bool = False


def parse_mountinfo(text: str) -> tuple[Mount, ...]:
    """Mounts from /proc/self/mountinfo (man 5 proc); mount points have octal escapes undone::

    36 35 98:0 /mnt1 /mnt1 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
    """
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 7 or "-" not in fields[6:]:
            continue
        after = fields[fields.index("-", 6) + 1 :]
        mounts.append(Mount(fields[2], _unescape(fields[4]), _unescape(after[1]) if len(after) > 1 else ""))
    return tuple(mounts)


def _unescape(text: str) -> str:
    return _OCTAL_ESCAPE.sub(lambda match: chr(int(match[1], 8)), text)


def removal_blocker(usage: DeviceUsage) -> str | None:
    """What keeps the device from being removed, in words naming the holder; None when it is free."""
    if usage.mounts:
        return "mounted at " + ", ".join(mount.mount_point for mount in usage.mounts)
    if usage.holders:
        return "held by " + ", ".join(usage.holders)
    users = [opener for opener in usage.openers if opener.command not in UDEV_WORKERS]
    if users:
        return "open by " + ", ".join(f"pid {opener.pid} ({opener.command})" for opener in users)
    if usage.claimed:
        return "claimed exclusively by another user (the kernel answered EBUSY)"
    return None


class DeviceRemover:
    """Looks for users of a device and removes it only when it has none."""

    def __init__(self, paths: HostPaths, devices: Devices, block: BlockOps) -> None:
        self._paths = paths
        self._devices = devices
        self._block = block

    def usage(self, name: str) -> DeviceUsage:
        """Who uses block device ``name`` ("sdb", or "dm-3" for a multipath map) or its partitions."""
        folders = self._block_folders(name)
        numbers = {read_attr(folder / "dev") for folder in folders} - {""}
        nodes = {self._paths.host_view(self._paths.dev(folder.name)) for folder in folders}
        node = self._paths.dev(name)
        return DeviceUsage(
            device=self._paths.host_view(node),
            mounts=tuple(mount for mount in self._mounts() if mount.device_number in numbers),
            holders=tuple(
                self._holder_label(holder.name)
                for folder in folders
                for holder in sorted(entries(folder / "holders"))
            ),
            openers=self._openers(nodes),
            claimed=self._block.claimed_elsewhere(node),
        )

    def remove(self, device: BlockDevice, timeout: float, force_flush: bool = False) -> None:
        """Refuse if in use; else flush, delete the SCSI device and wait until node and links are gone.

        ``force_flush`` carries on when the flush fails, for devices whose LUN is already gone
        at the array (there is nothing left to write back to).
        """
        node = self._paths.host_view(device.node)
        blocker = removal_blocker(self.usage(device.name))
        if blocker:
            raise DeviceInUse(f"{node} ({device.address}) is in use: {blocker}", device=node, holder=blocker)
        try:
            self._block.flush(device.node)
        except OSError as exc:
            if not force_flush:
                raise SysfsError(f"flushing {node} failed: {exc}", device=node) from exc
            log.warning("flushing %s failed (%s); removing it anyway", node, exc)
        self.delete(device.address)
        self._devices.wait_gone(device, timeout)
        log.info("removed %s (%s)", node, device.address)

    def delete(self, address: ScsiAddress) -> None:
        """Tell the kernel to drop the SCSI device; udev then removes node and links."""
        folder = self._devices.sysfs_dir(address)
        if not folder.exists():
            log.debug("%s was already gone", address)
            return
        write_attr(folder / "delete", "1", f"deleting {address}", address=str(address))

    def _block_folders(self, name: str) -> list[Path]:
        """sysfs block/<name> and its partitions' folders (block/sdb/sdb1): each can be mounted or held."""
        disk = self._paths.block(name)
        return [disk, *sorted(entry for entry in entries(disk) if entry.name.startswith(name))]

    def _holder_label(self, holder: str) -> str:
        """ "dm-3 (3600a0980...)": the dm name is what an operator finds in /dev/mapper."""
        try:
            dm_name = (self._paths.block(holder, "dm", "name")).read_text().strip()
        except OSError:
            return holder
        return f"{holder} ({dm_name})"

    def _mounts(self) -> tuple[Mount, ...]:
        try:
            return parse_mountinfo(self._paths.mountinfo().read_text())
        except OSError:
            return ()

    def _openers(self, nodes: set[str]) -> tuple[Opener, ...]:
        """Processes with the device open, from their /proc/PID/fd links (what fuser does)."""
        openers = []
        for process in entries(self._paths.proc()):
            if not process.name.isdigit() or int(process.name) == os.getpid():
                continue
            if any(read_link(fd) in nodes for fd in entries(process / "fd")):
                openers.append(Opener(int(process.name), read_attr(process / "comm") or "?"))
        return tuple(sorted(openers, key=lambda opener: opener.pid))
