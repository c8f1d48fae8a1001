"""Reusable fakes for host-side tests: a command runner that records and replays, a clock that
steps instead of sleeping, block-device operations, and a synthetic sysfs//dev//proc tree that
reacts like the kernel to scan and delete writes when the clock ticks."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from iscsi_agent.host.command import CommandResult, CommandTimeout, mask
from iscsi_agent.host.errors import KernelCallTimeout
from iscsi_agent.host.sessions import ScsiAddress
from iscsi_agent.naa import netapp_wwid

T = TypeVar("T")


@dataclass(frozen=True)
class Call:
    argv: tuple[str, ...]
    timeout: float
    secrets: tuple[str, ...]


@dataclass
class FakeRunner:
    """Records every argv; answers from scripted replies, matched on an argv prefix (first match wins).

    Like the real runner, it masks secrets in the argv and output it hands back.
    """

    replies: list[tuple[tuple[str, ...], int, str, str]] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    hang_on: tuple[str, ...] | None = None

    def reply(self, prefix: Sequence[str], exit_code: int = 0, stdout: str = "", stderr: str = "") -> None:
        self.replies.append((tuple(prefix), exit_code, stdout, stderr))

    def __call__(self, argv: Sequence[str], *, timeout: float, secrets: Sequence[str] = ()) -> CommandResult:
        argv = tuple(argv)
        self.calls.append(Call(argv, timeout, tuple(secrets)))
        shown = tuple(mask(arg, secrets) for arg in argv)
        if self.hang_on is not None and argv[: len(self.hang_on)] == self.hang_on:
            raise CommandTimeout(f"{' '.join(shown)} did not finish within {timeout:g}s", argv=list(shown))
        for prefix, exit_code, stdout, stderr in self.replies:
            if argv[: len(prefix)] == prefix:
                return CommandResult(shown, exit_code, mask(stdout, secrets), mask(stderr, secrets))
        return CommandResult(shown, 0, "", "")

    @property
    def argvs(self) -> list[tuple[str, ...]]:
        return [call.argv for call in self.calls]


def polling(
    folders: Iterable[Path], fallback: Callable[[float], None]
) -> AbstractContextManager[Callable[[float], None]]:
    """A ``Devices`` watch that never watches: waits pause through the (fake) clock alone."""
    return nullcontext(fallback)


@dataclass
class FakeClock:
    """Monotonic time that only moves when slept on; each sleep first lets ``on_sleep`` act (the "kernel")."""

    now: float = 1000.0
    sleeps: list[float] = field(default_factory=list)
    on_sleep: Callable[[], None] | None = None

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        if self.on_sleep is not None:
            self.on_sleep()


@dataclass
class FakeClaim:
    """An exclusive claim on a synthetic node: the node's inode and its sysfs number, taken when claimed."""

    node: Path
    device_number: str
    ops: FakeBlockOps
    inode: int
    held: bool = True

    def flush(self) -> None:
        if self.ops.on_flush is not None:
            self.ops.on_flush()
        if self.ops.flush_error is not None:
            raise self.ops.flush_error
        self.ops.flushed.append(self.node.name)

    def node_changed(self) -> str | None:
        try:
            inode = os.stat(self.node).st_ino
        except FileNotFoundError:
            return f"{self.node} is gone"
        return None if inode == self.inode else f"{self.node} was made anew"

    def close(self) -> None:
        self.held = False
        self.ops.released.append(self.node.name)


@dataclass
class FakeBlockOps:
    """Claims and flushes on a synthetic tree; ``claimed`` names devices someone else holds (EBUSY).

    ``block_dir`` is the tree's sys/block, where a claim reads the device number of its node.
    """

    block_dir: Path | None = None
    claimed: set[str] = field(default_factory=set)
    flushed: list[str] = field(default_factory=list)
    released: list[str] = field(default_factory=list)
    flush_error: OSError | None = None
    on_flush: Callable[[], None] | None = None
    on_claim: Callable[[Path], None] | None = None  # another program acting right before a claim
    claims: list[FakeClaim] = field(default_factory=list)

    def claimed_elsewhere(self, node: Path) -> bool:
        return node.name in self.claimed

    def claim(self, node: Path) -> FakeClaim:
        if self.on_claim is not None:
            self.on_claim(node)
        if node.name in self.claimed:
            raise OSError(errno.EBUSY, "Device or resource busy", str(node))
        inode = os.stat(node).st_ino  # FileNotFoundError, like open() of a node that went
        number = (self.block_dir / node.name / "dev").read_text().strip() if self.block_dir else "0:0"
        claim = FakeClaim(node, number, self, inode)
        self.claims.append(claim)
        return claim

    @property
    def held(self) -> list[str]:
        return [claim.node.name for claim in self.claims if claim.held]


@dataclass
class FakeKernelCalls:
    """Runs kernel calls inline, recording each step and its deadline; a step in ``hang`` times out.

    ``on_step`` runs before each call: a test changes the world there, between check and delete.
    """

    hang: set[str] = field(default_factory=set)
    steps: list[tuple[str, float]] = field(default_factory=list)
    on_step: Callable[[str], None] | None = None

    def run(
        self,
        call: Callable[[], T],
        timeout: float,
        *,
        device: str,
        step: str,
        late: Callable[[T], None] | None = None,
    ) -> T:
        self.steps.append((step, timeout))
        if self.on_step is not None:
            self.on_step(step)
        if step in self.hang:
            raise KernelCallTimeout(
                f"{step} of {device} did not return within {timeout:g}s (fake)",
                device=device,
                step=step,
                timeout=timeout,
                abandoned=True,
            )
        return call()

    @property
    def step_names(self) -> list[str]:
        return [step for step, _ in self.steps]


def ontap_wwid(serial: str) -> str:
    """The WWID as sysfs shows it for an ONTAP LUN."""
    return "naa." + netapp_wwid(serial)


def vpd_pg80(serial: str, width: int = 36) -> bytes:
    """A VPD page 0x80 as ONTAP sends it: the serial right-aligned with spaces."""
    body = serial.rjust(width).encode("ascii")
    return bytes([0, 0x80]) + len(body).to_bytes(2, "big") + body


class HostTree:
    """A synthetic host under ``root`` laid out like Linux 6.1 (see iscsi_agent/host/sessions.py, devices.py).

    ``kernel_step`` plays the kernel and udev: a LUN written to a host's ``scan`` appears when
    the target maps it (``map_lun``), and a SCSI device whose ``delete`` got "1" goes away.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.mapped: dict[tuple[int, int], dict] = {}
        self.udev = True
        self.udev_removes_links = True
        for folder in (
            "sys/class/iscsi_session",
            "sys/class/scsi_host",
            "sys/class/scsi_device",
            "sys/block",
            "sys/devices/platform",
            "dev/disk/by-path",
            "dev/disk/by-id",
            "dev/mapper",
            "proc/self",
        ):
            (root / folder).mkdir(parents=True, exist_ok=True)
        (root / "proc/self/mountinfo").write_text("22 1 0:21 / /proc rw,nosuid - proc proc rw\n")

    # --- iSCSI sessions -------------------------------------------------------------
    def add_session(
        self,
        sid: int,
        host: int,
        iqn: str,
        portal: str = "127.0.0.1:3260",
        *,
        state: str = "LOGGED_IN",
        recovery_tmo: int = 120,  # iscsid hands the node record's replacement_timeout over at login
        iface: str = "default",
    ) -> None:
        address, _, port = portal.rpartition(":")
        host_dir = self.root / f"sys/devices/platform/host{host}"
        session_dir = host_dir / f"session{sid}"
        attrs = session_dir / f"iscsi_session/session{sid}"
        attrs.mkdir(parents=True)
        for name, value in (
            ("targetname", iqn),
            ("state", state),
            ("tpgt", "1"),
            ("ifacename", iface),
            ("recovery_tmo", str(recovery_tmo)),
        ):
            (attrs / name).write_text(value + "\n")
        (attrs / "device").symlink_to(f"../../../session{sid}")
        connection = session_dir / f"connection{sid}:0/iscsi_connection/connection{sid}:0"
        connection.mkdir(parents=True)
        for name, value in (
            ("persistent_address", address),
            ("persistent_port", port),
            ("address", address),
            ("port", port),
        ):
            (connection / name).write_text(value + "\n")
        (self.root / f"sys/class/iscsi_session/session{sid}").symlink_to(
            f"../../devices/platform/host{host}/session{sid}/iscsi_session/session{sid}"
        )
        scsi_host = host_dir / f"scsi_host/host{host}"
        scsi_host.mkdir(parents=True)
        (scsi_host / "scan").write_text("")
        (self.root / f"sys/class/scsi_host/host{host}").symlink_to(
            f"../../devices/platform/host{host}/scsi_host/host{host}"
        )

    def session_attr(self, sid: int, name: str) -> Path:
        """A session's attribute file (class/iscsi_session/sessionN/NAME)."""
        return self.root / f"sys/class/iscsi_session/session{sid}" / name

    def refuse_session_attr(self, sid: int, name: str) -> None:
        """Make writing a session attribute fail, as the kernel's EBUSY for recovery_tmo of a
        session in recovery does (EISDIR stands for it)."""
        path = self.session_attr(sid, name)
        path.unlink(missing_ok=True)
        path.mkdir()

    def remove_session(self, sid: int, host: int) -> None:
        """A logout: the session and its SCSI host go, with every disk on them."""
        for link in list((self.root / "sys/class/scsi_device").iterdir()):
            if ScsiAddress.parse(link.name).host == host:
                self.remove_disk(ScsiAddress.parse(link.name))
        (self.root / f"sys/class/iscsi_session/session{sid}").unlink()
        (self.root / f"sys/class/scsi_host/host{host}").unlink()
        _rmtree(self.root / f"sys/devices/platform/host{host}")

    def scan_request(self, host: int) -> str:
        return (self.root / f"sys/class/scsi_host/host{host}/scan").read_text()

    # --- SCSI disks -----------------------------------------------------------------
    def map_lun(self, host: int, lun: int, name: str, serial: str, **identity: object) -> None:
        """The target offers this LUN on host's session; it appears once scanned (kernel_step)."""
        self.mapped[(host, lun)] = dict(name=name, serial=serial, **identity)

    def add_disk(
        self,
        address: ScsiAddress,
        name: str,
        serial: str,
        *,
        wwid: str | None = None,
        sid: int | None = None,
        iqn: str = "iqn.1992-08.com.netapp:sn.abc:vs.3",
        portal: str = "127.0.0.1:3260",
        size_bytes: int = 64 << 20,
        links: bool = True,
        node: bool = True,
        pg80: bytes | None = None,
    ) -> Path:
        """A disk the kernel probed: sysfs device + block device, /dev node and (if udev ran) its links."""
        parent = self.root / f"sys/devices/platform/host{address.host}"
        if sid is not None:
            parent = parent / f"session{sid}"
        device = parent / f"target{address.host}:{address.channel}:{address.target}" / str(address)
        (device / "block" / name / "holders").mkdir(parents=True)
        (device / "scsi_device" / str(address)).mkdir(parents=True)
        for attr, value in (
            ("vendor", "NETAPP  "),
            ("model", "LUN C-Mode      "),
            ("rev", "9800"),
            ("state", "running"),
            ("wwid", wwid or ontap_wwid(serial)),
        ):
            (device / attr).write_text(value + "\n")
        (device / "vpd_pg80").write_bytes(pg80 if pg80 is not None else vpd_pg80(serial))
        for attr in ("rescan", "delete"):
            (device / attr).write_text("")
        block = device / "block" / name
        (block / "size").write_text(f"{size_bytes // 512}\n")
        (block / "dev").write_text(f"8:{16 * (ord(name[-1]) - ord('a'))}\n")
        (device / "scsi_device" / str(address) / "device").symlink_to(f"../../../{address}")
        (self.root / f"sys/class/scsi_device/{address}").symlink_to(
            os.path.relpath(device / "scsi_device" / str(address), self.root / "sys/class/scsi_device")
        )
        (self.root / f"sys/block/{name}").symlink_to(os.path.relpath(block, self.root / "sys/block"))
        if node:
            (self.root / "dev" / name).write_text("")
        if links:
            links = self.add_links(name, serial, iqn=iqn, portal=portal, lun=address.lun)
            self.udev_db(name).parent.mkdir(parents=True, exist_ok=True)
            self.udev_db(name).write_text("".join(f"S:{link}\n" for link in links) + "E:ID_BUS=scsi\n")
        return device

    def udev_db(self, name: str) -> Path:
        number = (self.root / f"sys/block/{name}/dev").read_text().strip()
        return self.root / f"run/udev/data/b{number}"

    def add_links(self, name: str, serial: str, *, iqn: str, portal: str, lun: int) -> list[str]:
        """udev's links for a disk; returns them relative to /dev, as udev's database lists them."""
        links = [
            f"disk/by-path/ip-{portal}-iscsi-{iqn}-lun-{lun}",
            f"disk/by-id/scsi-3{netapp_wwid(serial)}",
            f"disk/by-id/wwn-0x{netapp_wwid(serial)}",
        ]
        for relative in links:
            link = self.root / "dev" / relative
            link.unlink(missing_ok=True)  # a second path to the same LUN takes the link over, as with udev
            link.symlink_to(f"../../{name}")
        return links

    def add_partition(self, name: str, number: int) -> str:
        part = f"{name}{number}"
        folder = (self.root / f"sys/block/{name}").resolve() / part
        (folder / "holders").mkdir(parents=True)
        (folder / "dev").write_text(f"8:{number}\n")
        (self.root / "dev" / part).write_text("")
        return part

    def set_identity(self, address: ScsiAddress, serial: str) -> None:
        """What a rescan would read after the LUN id got reused (tests write it before calling)."""
        device = (self.root / f"sys/class/scsi_device/{address}/device").resolve()
        (device / "wwid").write_text(ontap_wwid(serial) + "\n")
        (device / "vpd_pg80").write_bytes(vpd_pg80(serial))

    def set_size(self, name: str, size_bytes: int) -> None:
        """What a rescan reads after the LUN grew on the array."""
        (self.root / f"sys/block/{name}/size").write_text(f"{size_bytes // 512}\n")

    def break_attr(self, address: ScsiAddress, attr: str) -> None:
        """Make reading a device attribute fail with an error other than "absent" (EISDIR stands for EIO)."""
        path = (self.root / f"sys/class/scsi_device/{address}/device").resolve() / attr
        path.unlink(missing_ok=True)
        path.mkdir()

    def remove_attr(self, address: ScsiAddress, attr: str) -> None:
        """The kernel shows no such attribute (vpd_pg80 of a device without page 0x80)."""
        ((self.root / f"sys/class/scsi_device/{address}/device").resolve() / attr).unlink()

    def hang_attr(self, address: ScsiAddress, attr: str) -> Path:
        """A write to the attribute blocks (a FIFO with no reader), as delete does on a dead path.

        Open the returned FIFO for reading to let the write through.
        """
        path = (self.root / f"sys/class/scsi_device/{address}/device").resolve() / attr
        path.unlink(missing_ok=True)
        os.mkfifo(path)
        return path

    def remove_disk(self, address: ScsiAddress) -> None:
        device = (self.root / f"sys/class/scsi_device/{address}/device").resolve()
        names = [entry.name for entry in (device / "block").iterdir()]
        for name in names:
            self.udev_db(name).unlink(missing_ok=True)
            (self.root / f"sys/block/{name}").unlink()
            (self.root / "dev" / name).unlink(missing_ok=True)
            for folder in ("by-path", "by-id") if self.udev_removes_links else ():
                for link in (self.root / "dev/disk" / folder).iterdir():
                    if os.readlink(link) == f"../../{name}":
                        link.unlink()
        (self.root / f"sys/class/scsi_device/{address}").unlink()
        _rmtree(device)

    # --- users of a device ------------------------------------------------------------
    def mount(self, name: str, mount_point: str) -> None:
        number = (
            (self.root / f"sys/block/{name}/dev").read_text().strip()
            if (self.root / f"sys/block/{name}").exists()
            else next((self.root / "sys/block").glob(f"*/{name}/dev")).read_text().strip()
        )
        with (self.root / "proc/self/mountinfo").open("a") as out:
            out.write(f"40 22 {number} / {mount_point} rw,relatime shared:1 - ext4 /dev/{name} rw\n")

    def hold(self, name: str, holder: str, dm_name: str | None = None) -> None:
        (self.root / f"sys/block/{name}/holders/{holder}").write_text("")
        if dm_name:
            (self.root / f"sys/block/{holder}/dm").mkdir(parents=True, exist_ok=True)
            (self.root / f"sys/block/{holder}/dm/name").write_text(dm_name + "\n")

    def open_by(self, pid: int, command: str, name: str) -> None:
        fd = self.root / f"proc/{pid}/fd"
        fd.mkdir(parents=True, exist_ok=True)
        (self.root / f"proc/{pid}/comm").write_text(command + "\n")
        (fd / str(len(list(fd.iterdir())) + 3)).symlink_to(f"/dev/{name}")

    # --- dm-multipath ---------------------------------------------------------------
    def add_multipath(self, dm: str, name: str, uuid: str, slaves: Sequence[str]) -> None:
        folder = self.root / f"sys/devices/virtual/block/{dm}"
        (folder / "dm").mkdir(parents=True)
        (folder / "slaves").mkdir()
        (folder / "holders").mkdir()
        (folder / "dm/uuid").write_text(uuid + "\n")
        (folder / "dm/name").write_text(name + "\n")
        (folder / "dev").write_text(f"254:{dm.removeprefix('dm-')}\n")
        for slave in slaves:
            self.add_multipath_slave(dm, slave)
        (folder / "size").write_text(
            (self.root / f"sys/block/{slaves[0]}/size").read_text() if slaves else "0\n"
        )
        (self.root / f"sys/block/{dm}").symlink_to(f"../devices/virtual/block/{dm}")
        (self.root / f"dev/mapper/{name}").write_text("")

    def slaves(self, dm: str) -> list[str]:
        return sorted(entry.name for entry in (self.root / f"sys/block/{dm}/slaves").iterdir())

    def add_multipath_slave(self, dm: str, slave: str) -> None:
        (self.root / f"sys/devices/virtual/block/{dm}/slaves/{slave}").write_text("")
        (self.root / f"sys/block/{slave}/holders/{dm}").write_text("")

    def remove_multipath_slave(self, dm: str, slave: str) -> None:
        """multipathd lets go of one path (``del path``)."""
        (self.root / f"sys/devices/virtual/block/{dm}/slaves/{slave}").unlink(missing_ok=True)
        (self.root / f"sys/block/{slave}/holders/{dm}").unlink(missing_ok=True)

    def remove_multipath(self, dm: str) -> tuple[str, ...]:
        """The map goes (``multipath -f``): its node, its folder, its paths' holder entries; returns its paths."""
        folder = (self.root / f"sys/block/{dm}").resolve()
        name = (folder / "dm/name").read_text().strip()
        slaves = tuple(sorted(entry.name for entry in (folder / "slaves").iterdir()))
        for slave in slaves:
            (self.root / f"sys/block/{slave}/holders/{dm}").unlink(missing_ok=True)
        (self.root / f"sys/block/{dm}").unlink()
        (self.root / f"dev/mapper/{name}").unlink(missing_ok=True)
        _rmtree(folder)
        return slaves

    # --- the kernel and udev reacting ---------------------------------------------------
    def kernel_step(self) -> None:
        """Act on writes since the last step: targeted scans add mapped LUNs, deletes remove disks."""
        for host_link in (self.root / "sys/class/scsi_host").iterdir():
            host = int(host_link.name.removeprefix("host"))
            request = (host_link / "scan").read_text().split()
            (host_link / "scan").write_text("")  # a write to scan is one request, carried out once
            if len(request) == 3 and (host, int(request[2])) in self.mapped:
                lun = int(request[2])
                address = ScsiAddress(host, int(request[0]), int(request[1]), lun)
                if not (self.root / f"sys/class/scsi_device/{address}").exists():
                    spec = dict(self.mapped[(host, lun)])
                    self.add_disk(address, spec.pop("name"), spec.pop("serial"), links=self.udev, **spec)
        for link in list((self.root / "sys/class/scsi_device").iterdir()):
            if (link / "device/delete").read_text().strip() == "1":
                self.remove_disk(ScsiAddress.parse(link.name))


def _rmtree(folder: Path) -> None:
    for entry in sorted(folder.rglob("*"), key=lambda path: len(path.parts), reverse=True):
        if entry.is_symlink() or entry.is_file():
            entry.unlink()
        else:
            entry.rmdir()
    folder.rmdir()
