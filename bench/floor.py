"""The raw floor: an attach and a detach as the plain command sequence an operator would type.

No checks, no identity verification, no journal: node record new + update, login, a targeted scan
(``echo "0 0 N" > /sys/class/scsi_host/hostH/scan``), and a wait for the one by-path link (a
20 ms poll, the cheapest wait: no program to start); detach is flush, ``echo 1 > .../device/delete``
and waiting for the link to go. What the agent or os-brick spend above this is their own cost.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

TIMEOUT = 120.0
POLL = 0.02


def sh(*argv: str) -> None:
    subprocess.run(list(argv), stdin=subprocess.DEVNULL, capture_output=True, timeout=TIMEOUT, check=True)


def by_path(portal: str, iqn: str, lun_id: int) -> Path:
    return Path(f"/dev/disk/by-path/ip-{portal}-iscsi-{iqn}-lun-{lun_id}")


def wait_links(links: Sequence[Path], present: bool) -> None:
    deadline = time.monotonic() + TIMEOUT
    while any(link.exists() != present for link in links):
        if time.monotonic() > deadline:
            raise TimeoutError(f"links not {'there' if present else 'gone'} after {TIMEOUT:g}s: {links}")
        time.sleep(POLL)


class Steps:
    """Seconds per named step, when the caller wants the breakdown."""

    def __init__(self, into: dict[str, float] | None) -> None:
        self.into = into
        self.last = time.monotonic()

    def mark(self, name: str) -> None:
        now = time.monotonic()
        if self.into is not None:
            self.into[name] = now - self.last
        self.last = now


def login(portal: str, iqn: str, steps: Steps) -> None:
    """Node record new + update (manual scan, as the agent and os-brick set), then log in."""
    node = ("iscsiadm", "-m", "node", "-T", iqn, "-p", portal)
    sh(*node, "-o", "new")
    sh(*node, "-o", "update", "-n", "node.session.scan", "-v", "manual")
    steps.mark("node record")
    sh(*node, "--login")
    steps.mark("login")


def scsi_host(iqn: str) -> str:
    """hostH of the session to this target: sysfs places sessionN under hostH."""
    for session in Path("/sys/class/iscsi_session").iterdir():
        if (session / "targetname").read_text().strip() == iqn:
            return (session / "device").resolve().parent.name
    raise RuntimeError(f"no session to {iqn}")


def scan_and_wait(portal: str, iqn: str, lun_ids: Sequence[int], steps: Steps | None = None) -> list[Path]:
    steps = steps or Steps(None)
    host = scsi_host(iqn)
    for lun_id in lun_ids:
        Path(f"/sys/class/scsi_host/{host}/scan").write_text(f"0 0 {lun_id}")
    steps.mark("scan")
    links = [by_path(portal, iqn, lun_id) for lun_id in lun_ids]
    wait_links(links, present=True)
    steps.mark("link wait")
    return links


def attach_first(
    portal: str, iqn: str, lun_ids: Sequence[int], breakdown: dict[str, float] | None = None
) -> list[Path]:
    """First LUN(s) of a target: login, then the batched scan of every id and one wait for all links."""
    steps = Steps(breakdown)
    login(portal, iqn, steps)
    return scan_and_wait(portal, iqn, lun_ids, steps)


def detach(link: Path, breakdown: dict[str, float] | None = None) -> None:
    steps = Steps(breakdown)
    disk = link.resolve().name
    sh("blockdev", "--flushbufs", str(link))
    steps.mark("flush")
    Path(f"/sys/block/{disk}/device/delete").write_text("1")
    steps.mark("delete")
    wait_links([link], present=False)
    steps.mark("link gone")


def logout(portal: str, iqn: str) -> None:
    node = ("iscsiadm", "-m", "node", "-T", iqn, "-p", portal)
    sh(*node, "--logout")
    sh(*node, "-o", "delete")
