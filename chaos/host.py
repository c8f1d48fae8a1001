"""What the soak reads on the guest, fresh each time and with the tools an operator would use: a disk's
identity by a new SCSI inquiry (never sysfs's cached copy), sessions, disks, multipath maps, udev links;
and the marker blocks it writes to each attached volume and reads back."""

from __future__ import annotations

import hashlib
import mmap
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

NAA_PREFIX = "600a0980"  # design.md: the NAA WWID is 600a0980 + the serial's bytes in hex
MARKER_OFFSET = 1 << 20  # clear of a partition table and of what udev's probes read
MARKER_SIZE = 4096
TIMEOUT = 60


def wwid_of_serial(serial: str) -> str:
    return NAA_PREFIX + serial.encode("ascii").hex()


def run(*argv: str, timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
    """A program's outcome; one that ran past ``timeout`` comes back as exit code -1 with no output."""
    try:
        return subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(list(argv), -1, "", f"timed out after {timeout:g} s")


def settle_udev() -> None:
    """Under software emulation a burst of 16 attaches keeps udev busy for minutes; waiting is enough."""
    run("udevadm", "settle", "--timeout=240", timeout=300)


def fresh_wwid(disk: str) -> str | None:
    """The WWID a new VPD 0x83 inquiry reports for /dev/<disk> (without scsi_id's leading 3), or None."""
    done = run("/lib/udev/scsi_id", "--whitelisted", "--replace-whitespace", f"--device=/dev/{disk}")
    text = done.stdout.strip()
    return text[1:] if done.returncode == 0 and text.startswith("3") else None


def disks() -> list[str]:
    return sorted(path.name for path in Path("/sys/block").glob("sd*"))


def slaves(node: str) -> list[str]:
    """The disks under a block node: itself for an sd disk, its paths for a dm map."""
    if node.startswith("dm-"):
        return sorted(path.name for path in Path(f"/sys/block/{node}/slaves").iterdir())
    return [node]


def multipath_maps() -> dict[str, str]:
    """dm node -> map name of every multipath map."""
    done = run("dmsetup", "ls", "--target", "multipath")
    found = {}
    for line in done.stdout.splitlines():
        match = re.match(r"^(\S+)\s+\((\d+)[:, ]\s*(\d+)\)", line)
        if match:
            found[f"dm-{match.group(3)}"] = match.group(1)
    return found


def dangling_links() -> list[str]:
    """udev links of iSCSI or NetApp disks whose node is gone."""
    found = []
    for folder, pattern in (("/dev/disk/by-path", "*-iscsi-*"), ("/dev/disk/by-id", f"*{NAA_PREFIX}*")):
        for link in Path(folder).glob(pattern) if Path(folder).exists() else ():
            if not link.exists():
                found.append(str(link))
    return sorted(found)


@dataclass(frozen=True)
class SessionSeen:
    sid: str
    portal: str  # address:port
    disks: tuple[str, ...]


def sessions() -> list[SessionSeen]:
    found = []
    for session in sorted(Path("/sys/class/iscsi_session").glob("session*")):
        sid = session.name.removeprefix("session")
        portal = ""
        for connection in Path("/sys/class/iscsi_connection").glob(f"connection{sid}:*"):
            try:
                address = (connection / "persistent_address").read_text().strip()
                port = (connection / "persistent_port").read_text().strip()
            except OSError:
                continue
            portal = f"{address}:{port}"
        held = tuple(sorted(p.name for p in session.glob("device/target*/*:*:*:*/block/sd*")))
        found.append(SessionSeen(sid, portal, held))
    return found


def node_of(device: str) -> str | None:
    """The block node (sdX or dm-N) a handed-out path resolves to, or None when it is gone."""
    path = Path(device)
    if not path.exists():
        return None
    return path.resolve().name


def vanished(device: str, node: str) -> str:
    """What is left of a handed-out device the soak found gone: its block node, the map's name and
    what udev keeps for it, and whether the link is back once udev's queue is empty (a link udev
    dropped and made again while processing a later event, or a device really gone)."""
    facts = [f"/dev/{node} {'exists' if Path('/dev', node).exists() else 'is gone'}"]
    name = Path(f"/sys/block/{node}/dm/name")
    if name.exists():
        facts.append(f"{node} is map {name.read_text().strip()} over {', '.join(slaves(node)) or 'no paths'}")
    linked = run("udevadm", "info", "--query=symlink", f"--name=/dev/{node}")
    facts.append(f"udev's links of {node}: {linked.stdout.strip() or linked.stderr.strip() or 'none'}")
    settle_udev()
    facts.append(f"after udev settled, {device} {'is back' if Path(device).exists() else 'is still gone'}")
    return "; ".join(facts)


# -- marker blocks ----------------------------------------------------------------------


def marker(seed: int, volume: str, generation: int) -> bytes:
    digest = hashlib.sha256(f"{seed}:{volume}:{generation}".encode()).digest()
    return (digest * (MARKER_SIZE // len(digest)))[:MARKER_SIZE]


def write_block(device: str, data: bytes) -> None:
    """Past the page cache (O_DIRECT), so the read-back proves the LUN holds it, not the host's memory."""
    buffer = mmap.mmap(-1, MARKER_SIZE)
    buffer.write(data)
    fd = os.open(device, os.O_RDWR | os.O_DIRECT)
    try:
        os.pwrite(fd, buffer, MARKER_OFFSET)
        os.fsync(fd)
    finally:
        os.close(fd)
        buffer.close()


def read_block(device: str) -> bytes:
    buffer = mmap.mmap(-1, MARKER_SIZE)
    fd = os.open(device, os.O_RDONLY | os.O_DIRECT)
    try:
        os.preadv(fd, [buffer], MARKER_OFFSET)
        return bytes(buffer)
    finally:
        os.close(fd)
        buffer.close()


class Holder:
    """A process holding a device open, as a VM's QEMU would."""

    def __init__(self, device: str, volume: str, until_step: int) -> None:
        self.device, self.volume, self.until_step = device, volume, until_step
        self.node = node_of(device)
        with open(device, "rb") as opened:
            self.process = subprocess.Popen(["sleep", "100000"], stdin=opened)

    def release(self) -> None:
        self.process.kill()
        self.process.wait(30)
