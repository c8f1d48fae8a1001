"""SCSI disks in sysfs and /dev: find the block device of one LUN, read its identity, wait for its links.

Layout (Linux 6.1)::

    class/scsi_device/6:0:0:1/device/{vendor,model,rev,state,wwid,vpd_pg80,rescan,delete}
    class/scsi_device/6:0:0:1/device/block/sda
    block/sda/{size,dev,holders/}
    /dev/sda, /dev/disk/by-path/ip-127.0.0.1:3260-iscsi-<iqn>-lun-1 -> ../../sda
"""

from __future__ import annotations

import enum
import logging
import os
from collections.abc import Callable, Collection, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from pathlib import Path

from iscsi_agent.host.errors import DeviceTimeout, SysfsError, WaitTimeout
from iscsi_agent.host.paths import HostPaths
from iscsi_agent.host.sessions import ScsiAddress, Session, Sessions
from iscsi_agent.host.sysfs import (
    entries,
    entry_names,
    read_attr,
    read_attr_if_present,
    read_bytes,
    write_attr,
)
from iscsi_agent.host.waiting import Clock, wait_until
from iscsi_agent.host.watch import watching
from iscsi_agent.naa import normalize_wwid

log = logging.getLogger(__name__)

SECTOR_BYTES = 512
VPD_SERIAL_PAGE = 0x80
VPD_HEADER_BYTES = 4
# With inotify waking the wait on link changes, polling only backs up sysfs changes.
WATCHED_POLL_INTERVAL = 0.5
# How long udev gets to remove a gone disk's links before dangling ones are removed for it.
LINK_GRACE = 10.0

Watch = Callable[[Iterable[Path], Callable[[float], None]], AbstractContextManager[Callable[[float], None]]]


def parse_vpd_pg80(data: bytes) -> str:
    """The unit serial number from a raw VPD page 0x80 (Unit Serial Number), stripped.

    ONTAP (and tgtd staging ONTAP) right-align the serial with spaces; a captured page::

        00 80 00 24  20 20 ... 20  61 62 3f 24 2f 43 64 33 66 47 68 31   ("...ab?$/Cd3fGh1")
    """
    if len(data) < VPD_HEADER_BYTES:
        raise ValueError(f"VPD page 0x80 is {len(data)} bytes, shorter than its header")
    if data[1] != VPD_SERIAL_PAGE:
        raise ValueError(f"page code is 0x{data[1]:02x}, not 0x80")
    length = int.from_bytes(data[2:4], "big")
    if len(data) < VPD_HEADER_BYTES + length:
        raise ValueError(
            f"VPD page 0x80 says {length} serial bytes but carries {len(data) - VPD_HEADER_BYTES}"
        )
    serial = data[VPD_HEADER_BYTES : VPD_HEADER_BYTES + length]
    return serial.decode("ascii", errors="replace").strip(" \x00")


def parse_udev_links(db_text: str) -> tuple[str, ...]:
    """The links (relative to /dev) udev keeps for a device, from its database entry's S: lines::

    S:disk/by-path/ip-127.0.0.1:3260-iscsi-iqn.1992-08.com.netapp:sn.4b1d6e0f:vs.3-lun-1
    """
    return tuple(line[2:] for line in db_text.splitlines() if line.startswith("S:") and len(line) > 2)


@dataclass(frozen=True)
class DeviceIdentity:
    """What the LUN says it is: INQUIRY strings, VPD 0x80 serial and the kernel's WWID (VPD 0x83).

    ``serial``/``wwid`` are None when the device reports none. ``unreadable`` names what could
    not be read ("vpd_pg80: [Errno 5] Input/output error"); while it is not empty the identity is
    unknown, which is never a verdict about the device (see identity.is_lun).
    """

    vendor: str
    model: str
    revision: str
    serial: str | None
    wwid: str | None
    unreadable: tuple[str, ...] = ()


@dataclass(frozen=True)
class BlockDevice:
    address: ScsiAddress
    name: str
    node: Path
    size_bytes: int
    state: str
    identity: DeviceIdentity
    by_path: tuple[Path, ...] = ()
    by_id: tuple[Path, ...] = ()


class WaitStep(enum.Enum):
    """How far a LUN got on its way to a usable device; a timeout names the step it stopped at."""

    SCSI_DEVICE = "the kernel has no SCSI device at this address (LUN not mapped, or not scanned)"
    BLOCK_DEVICE = "the SCSI device has no block device yet (sd driver not bound)"
    DEVICE_NODE = "the block device has no node in /dev yet"
    BY_PATH_LINK = "udev has not created the by-path link yet"
    UDEV_DONE = "udev has not finished with the device yet (no udev database entry)"
    READY = "ready"


@dataclass
class _Progress:
    step: WaitStep = WaitStep.SCSI_DEVICE
    seen: dict[str, object] = field(default_factory=dict)


class Devices:
    """Reads SCSI disks from sysfs and /dev under the host root, and waits for them to come and go."""

    def __init__(self, paths: HostPaths, clock: Clock, watch: Watch = watching) -> None:
        self._paths = paths
        self._clock = clock
        self._watch = watch

    def sysfs_dir(self, address: ScsiAddress) -> Path:
        return self._paths.scsi_devices() / str(address) / "device"

    def block_name(self, address: ScsiAddress) -> str | None:
        """ "sda" for a LUN, or None while it has no block device."""
        names = sorted(entry.name for entry in entries(self.sysfs_dir(address) / "block"))
        return names[0] if names else None

    def address_of(self, name: str) -> ScsiAddress | None:
        """The SCSI address of block device ``name`` ("sdb"); None when it is gone or not a SCSI disk.

        ``block/sdb`` links into the SCSI device's folder: ``.../6:0:0:1/block/sdb``.
        """
        try:
            folder = self._paths.block(name).resolve(strict=True)
            return ScsiAddress.parse(folder.parent.parent.name)
        except (OSError, ValueError):
            return None

    def identity(self, address: ScsiAddress) -> DeviceIdentity:
        """The identity sysfs holds now; it is cached since the last probe or rescan (see fresh_identity).

        An attribute that is absent (or an empty page) means the device reports none; one that
        exists but cannot be read, or a malformed page, leaves the identity unknown (``unreadable``).
        """
        folder = self.sysfs_dir(address)
        unreadable: list[str] = []
        serial = self._serial(folder / "vpd_pg80", unreadable)
        try:
            wwid = read_attr_if_present(folder / "wwid") or None
        except OSError as exc:
            unreadable.append(f"wwid: {exc}")
            wwid = None
        if unreadable:
            log.warning("identity of %s could not be read: %s", address, "; ".join(unreadable))
        return DeviceIdentity(
            vendor=read_attr(folder / "vendor"),
            model=read_attr(folder / "model"),
            revision=read_attr(folder / "rev"),
            serial=serial,
            wwid=wwid,
            unreadable=tuple(unreadable),
        )

    def disks(self, hosts: Collection[int]) -> list[tuple[ScsiAddress, str, str | None, bool]]:
        """Every SCSI disk on the SCSI hosts ``hosts`` (an iSCSI session's host carries its LUNs), in
        address order: its block device ("sda"), the serial sysfs holds (VPD page 0x80, cached since
        the last probe or rescan) and whether it could be read.

        One listing of ``block/`` and a readlink per entry find them: each links into its SCSI
        device's folder (``../devices/platform/host6/session1/target6:0:0/6:0:0:1/block/sda``),
        which names the address and holds the page. A listing of each device's ``block/`` folder,
        or a path through its class links, would cost a directory open or a symlink walk per disk,
        and a reconciler pass reads thousands. Where a device had two names, the first in order is
        kept, as ``block_name`` keeps it."""
        block = os.fspath(self._paths.block())
        folders: dict[ScsiAddress, tuple[str, str]] = {}
        for name in entry_names(block):
            if name.startswith("dm-"):
                continue  # a device-mapper map (multipath's over these disks): never a SCSI device's
            try:
                target = os.readlink(f"{block}/{name}")
            except OSError:
                continue  # gone meanwhile
            folder, _, own = target.rpartition("/block/")
            if own != name or folder.startswith("/"):
                continue  # not a SCSI disk's entry (nvme, loop), or not linked as the kernel links
            address = ScsiAddress.named(folder.rpartition("/")[2])
            if address is None or address.host not in hosts:
                continue
            if address not in folders or name < folders[address][0]:
                folders[address] = (name, f"{block}/{folder}")
        found = []
        for address in sorted(folders, key=ScsiAddress.key):
            name, folder = folders[address]
            unreadable: list[str] = []
            serial = self._serial(f"{folder}/vpd_pg80", unreadable)
            found.append((address, name, serial, not unreadable))
        return found

    @staticmethod
    def _serial(page: str | os.PathLike[str], unreadable: list[str]) -> str | None:
        try:
            data = read_bytes(page)
        except FileNotFoundError:
            return None  # the device has no page 0x80: the kernel shows no attribute
        except OSError as exc:
            unreadable.append(f"vpd_pg80: {exc}")
            return None
        if not data:
            return None
        try:
            return parse_vpd_pg80(data)
        except ValueError as exc:
            unreadable.append(f"vpd_pg80: {exc}")
            return None

    def fresh_identity(self, address: ScsiAddress) -> DeviceIdentity:
        """Rescan the device first: after a LUN id is reused, sysfs keeps the OLD identity until then.

        When the rescan cannot be written, what sysfs holds is not fresh: the identity comes back
        marked unreadable, so no verdict rests on the cached one.
        """
        try:
            write_attr(self.sysfs_dir(address) / "rescan", "1", f"rescan of {address}", address=str(address))
        except SysfsError as exc:
            cached = self.identity(address)
            return replace(cached, unreadable=(*cached.unreadable, f"rescan: {exc}"))
        return self.identity(address)

    def read(self, address: ScsiAddress) -> BlockDevice | None:
        """The LUN's block device with identity and links, or None while it has none."""
        name = self.block_name(address)
        if name is None:
            return None
        by_path, by_id = self.links(name)
        return BlockDevice(
            address=address,
            name=name,
            node=self._paths.dev(name),
            size_bytes=self.size_bytes(name),
            state=read_attr(self.sysfs_dir(address) / "state"),
            identity=self.identity(address),
            by_path=by_path,
            by_id=by_id,
        )

    def size_bytes(self, name: str) -> int:
        """The size sysfs shows for block device ``name`` ("sdb", "dm-3"): what the kernel last read."""
        return _int(read_attr(self._paths.block(name, "size"))) * SECTOR_BYTES

    def of_wwid(self, sessions: Sessions, on: Iterable[Session], wwid: str) -> list[BlockDevice]:
        """Block devices on these sessions whose WWID (as sysfs last read it) is ``wwid``: a LUN's
        paths, found by identity, not by a remembered name (the kernel reuses names)."""
        wanted = normalize_wwid(wwid)
        found = []
        for session in on:
            for address in sessions.devices(session):
                device = self.read(address)
                if (
                    device is not None
                    and device.identity.wwid
                    and normalize_wwid(device.identity.wwid) == wanted
                ):
                    found.append(device)
        return found

    def addresses(self) -> tuple[ScsiAddress, ...]:
        """Every SCSI device the kernel has, of any transport."""
        found = []
        for entry in entries(self._paths.scsi_devices()):
            try:
                found.append(ScsiAddress.parse(entry.name))
            except ValueError:
                continue
        return tuple(sorted(found))

    def links(self, name: str) -> tuple[tuple[Path, ...], tuple[Path, ...]]:
        """The by-path and by-id links of /dev/<name> (partitions' links excluded).

        udev's database entry says which links are this disk's: links left behind by an earlier
        disk of the same name (seen after a LUN id was reused) resolve to /dev/<name> too, but
        belong to another LUN. Without an entry the link folders are scanned.
        """
        node = self._paths.dev(name)
        listed = self._udev_links(name)
        candidates = listed if listed is not None else self._scanned_links()
        mine = sorted(link for link in candidates if link.is_symlink() and self._points_to(link, node))
        return (
            tuple(link for link in mine if link.parent == self._paths.by_path()),
            tuple(link for link in mine if link.parent == self._paths.by_id()),
        )

    def stray_links(self, name: str) -> tuple[Path, ...]:
        """Links that resolve to /dev/<name> but that udev does not list for it: another disk's leftovers."""
        listed = self._udev_links(name)
        if listed is None:
            return ()
        node = self._paths.dev(name)
        return tuple(
            sorted(
                link
                for link in self._scanned_links()
                if link not in listed and link.is_symlink() and self._points_to(link, node)
            )
        )

    def _udev_links(self, name: str) -> list[Path] | None:
        try:
            text = self._paths.udev_db(read_attr(self._paths.block(name, "dev"))).read_text()
        except OSError:
            return None
        return [self._paths.dev(*relative.split("/")) for relative in parse_udev_links(text)]

    def _scanned_links(self) -> list[Path]:
        return entries(self._paths.by_path()) + entries(self._paths.by_id())

    def _points_to(self, link: Path, node: Path) -> bool:
        try:
            return self._paths.resolve_link(link) == node
        except OSError:
            return False  # removed while we looked

    def wait_for(self, address: ScsiAddress, timeout: float, context: str = "") -> BlockDevice:
        """Wait until the LUN has a block device, its /dev node, a by-path link and udev is done; return it.

        A timeout raises DeviceTimeout naming the step it stopped at and what was seen.
        """
        progress = _Progress()

        def ready() -> BlockDevice | None:
            device = self._progress(address, progress)
            return device if progress.step is WaitStep.READY else None

        where = f"LUN {address.lun} on host{address.host}" + (f" ({context})" if context else "")
        try:
            with self._watch(self._link_folders(), self._clock.sleep) as pause:
                device = wait_until(
                    ready,
                    timeout,
                    self._clock,
                    what=f"{where} to appear",
                    pause=pause,
                    interval=WATCHED_POLL_INTERVAL,
                )
        except WaitTimeout as exc:
            raise DeviceTimeout(
                f"{where}: no usable device within {timeout:g}s; {progress.step.value}",
                address=str(address),
                host=address.host,
                lun=address.lun,
                step=progress.step.name.lower(),
                seen=progress.seen,
                timeout=timeout,
                context=context,
            ) from exc
        log.info("%s is %s (by-path %s)", where, device.node, ", ".join(link.name for link in device.by_path))
        return device

    def _progress(self, address: ScsiAddress, progress: _Progress) -> BlockDevice | None:
        if not self.sysfs_dir(address).exists():
            progress.step = WaitStep.SCSI_DEVICE
            return None
        progress.seen["scsi_device"] = str(address)
        device = self.read(address)
        if device is None:
            progress.step = WaitStep.BLOCK_DEVICE
            return None
        progress.seen.update(block=device.name, state=device.state)
        if not device.node.exists():
            progress.step = WaitStep.DEVICE_NODE
            return None
        progress.seen["by_id"] = [link.name for link in device.by_id]
        if not device.by_path:
            progress.step = WaitStep.BY_PATH_LINK
            return None
        progress.seen["by_path"] = [link.name for link in device.by_path]
        # by-path can appear before udev's other links; its database entry is written last.
        if not self._paths.udev_db(read_attr(self._paths.block(device.name, "dev"))).exists():
            progress.step = WaitStep.UDEV_DONE
            return None
        device = self.read(address) or device  # re-read: links created meanwhile
        progress.step = WaitStep.READY
        return device

    def wait_gone(self, device: BlockDevice, timeout: float, link_grace: float = LINK_GRACE) -> None:
        """Wait until the kernel has dropped the device (sysfs entry and node), then until udev drops its links.

        Links udev still leaves ``link_grace`` seconds after the node went (seen under load, when
        a new disk of the same name came and went meanwhile) dangle, and would silently lead to
        the next disk given that name; they are removed here, while the name is still unused.
        """
        try:
            with self._watch(self._link_folders(), self._clock.sleep) as pause:
                wait_until(
                    lambda: not self._kernel_leftovers(device),
                    timeout,
                    self._clock,
                    what=f"{device.node} to go",
                    pause=pause,
                    interval=WATCHED_POLL_INTERVAL,
                )
                wait_until(
                    lambda: not self._own_links(device),
                    link_grace,
                    self._clock,
                    what=f"links of {device.node} to go",
                    pause=pause,
                    interval=WATCHED_POLL_INTERVAL,
                )
        except WaitTimeout as exc:
            left = self.leftovers(device)
            if self._kernel_leftovers(device):
                raise DeviceTimeout(
                    f"{device.node} ({device.address}) still present after {timeout:g}s: {', '.join(left)}",
                    address=str(device.address),
                    device=device.name,
                    left=left,
                    timeout=timeout,
                ) from exc
            self._remove_dangling(device)

    def leftovers(self, device: BlockDevice) -> list[str]:
        """What is still there of a device being removed, in words for errors and logs."""
        return self._kernel_leftovers(device) + [
            f"link {self._paths.host_view(link)}" for link in self._own_links(device)
        ]

    def _kernel_leftovers(self, device: BlockDevice) -> list[str]:
        left = []
        if self._paths.block(device.name).exists():
            left.append(f"sysfs block/{device.name}")
        if device.node.exists():
            left.append(f"node {self._paths.host_view(device.node)}")
        return left

    def _own_links(self, device: BlockDevice) -> list[Path]:
        return [
            link
            for link in device.by_path + device.by_id
            if link.is_symlink() and self._points_to(link, device.node)
        ]

    def _remove_dangling(self, device: BlockDevice) -> None:
        for link in self._own_links(device):
            if device.node.exists():
                return  # the name is in use again: what points to it now is not ours to judge
            log.warning(
                "udev left %s dangling after %s went; removing it", self._paths.host_view(link), device.node
            )
            link.unlink(missing_ok=True)

    def _link_folders(self) -> tuple[Path, ...]:
        return (self._paths.by_path(), self._paths.by_id(), self._paths.dev())


def _int(text: str) -> int:
    return int(text) if text.isdigit() else 0
