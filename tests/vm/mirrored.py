"""The simulated array mirrored into the VM's real tgtd, and I/O that bypasses the page cache: what
the tests that look at the target below the agent (the mirror, a LUN grown on the array) share."""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from iscsi_agent.array.client import ArrayClient
from iscsi_agent.array.connect import connect
from iscsi_agent.array.settings import ApiChoice, ArraySettings
from iscsi_agent.host.command import SubprocessRunner
from iscsi_agent.host.devices import BlockDevice, Devices
from iscsi_agent.host.iscsi_db import IscsiDatabase
from iscsi_agent.host.iscsiadm import Iscsiadm, NodeSettings
from iscsi_agent.host.paths import HostPaths
from iscsi_agent.host.sessions import ScsiAddress, Sessions
from iscsi_agent.host.waiting import SystemClock
from ontap_sim import Simulator
from ontap_sim.mirror import TgtMirror
from ontap_sim.tgt import Tgtadm
from tests.vm.cleanup import reset_initiator


@dataclass
class MirroredArray:
    sim: Simulator
    client: ArrayClient
    tgt: Tgtadm


@dataclass(frozen=True)
class Scanned:
    devices: Devices
    address: ScsiAddress
    device: BlockDevice


def log_in_and_scan(client: ArrayClient, lun_id: int, timeout: float = 60.0) -> Scanned:
    """What the agent's attach does by hand: a discovery on the array's first portal (which must offer
    the array's target), the node record, a login and a targeted scan of ``lun_id``; its device."""
    paths, clock = HostPaths(), SystemClock()
    iscsiadm = Iscsiadm(SubprocessRunner(), IscsiDatabase(paths, clock), timeout=60, login_timeout=120)
    sessions, devices = Sessions(paths), Devices(paths, clock)
    target_iqn, portal = client.iscsi_service().target_iqn, client.portals()[0].portal
    assert [found.iqn for found in iscsiadm.discover(portal)] == [target_iqn]
    iscsiadm.configure_node(target_iqn, portal, NodeSettings())
    iscsiadm.login(target_iqn, portal)
    session = sessions.find(target_iqn, portal)
    assert session is not None
    sessions.scan_lun(session.host_number, lun_id)
    address = ScsiAddress(session.host_number, 0, 0, lun_id)
    return Scanned(devices, address, devices.wait_for(address, timeout, context=f"session{session.sid}"))


@contextmanager
def mirrored_array(backing: Path, tid: int, api: ApiChoice) -> Iterator[MirroredArray]:
    """The simulator serving on loopback with its maps mirrored into tgtd target ``tid`` (LUNs backed
    by files under ``backing``), and the agent's array client over ``api``; the initiator's sessions
    end before the mirror drops the target."""
    tgt = Tgtadm(backing_dir=backing)
    sim = Simulator(tgt=TgtMirror(tgt, tid=tid))
    url = urlsplit(sim.start())
    client = connect(
        ArraySettings(
            hostname=url.hostname or "127.0.0.1",
            port=url.port,
            scheme="http",
            username="admin",
            password="netapp1!",
            vserver="svm1",
            api=api,
        )
    )
    try:
        yield MirroredArray(sim, client, tgt)
    finally:
        client.close()
        reset_initiator()
        sim.stop()


def write_direct(node: Path, offset: int, data: bytes) -> None:
    """Write past the page cache (O_DIRECT, page-aligned buffer): what reaches tgtd is what is checked."""
    buffer = mmap.mmap(-1, len(data))
    buffer.write(data)
    fd = os.open(node, os.O_RDWR | os.O_DIRECT)
    try:
        assert os.pwritev(fd, [buffer], offset) == len(data)
    finally:
        os.close(fd)


def read_direct(node: Path, offset: int, length: int) -> bytes:
    """Read past the page cache: the bytes come from the target."""
    buffer = mmap.mmap(-1, length)
    fd = os.open(node, os.O_RDONLY | os.O_DIRECT)
    try:
        read = os.preadv(fd, [buffer], offset)
    finally:
        os.close(fd)
    return bytes(buffer[:read])
