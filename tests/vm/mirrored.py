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
from ontap_sim import Simulator
from ontap_sim.mirror import TgtMirror
from ontap_sim.tgt import Tgtadm
from tests.vm.cleanup import reset_initiator


@dataclass
class MirroredArray:
    sim: Simulator
    client: ArrayClient
    tgt: Tgtadm


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
