"""Online resize on a real kernel: a LUN grown on the array (through ONTAP's REST API, as Cinder's or
Trident's extend does) reaches the attached device, single path and under a multipath map, while a
writer keeps the device open; the data before the old end is intact and the new blocks take writes.
A path that is down refuses the resize, naming it, and leaves every device as it was."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from iscsi_agent.array.settings import ApiChoice
from iscsi_agent.service_api import PathDown
from tests.vm.agent_host import AgentHost, agent_host
from tests.vm.mirrored import read_direct, write_direct

MIRROR_TID = 14  # a tid no other test uses, so a leftover of one cannot mask the other
LUN = "/vol/vol1/lun1"  # 2 GiB in the seed
GiB = 1 << 30


@pytest.fixture
def agent(tmp_path: Path, initiator_iqn: str) -> Iterator[AgentHost]:
    with agent_host(ApiChoice.REST, tmp_path / "state", initiator_iqn, MIRROR_TID) as host:
        yield host


def size_of(node: Path) -> int:
    """What the kernel says the block device holds (BLKGETSIZE64's answer, through lseek)."""
    fd = os.open(node, os.O_RDONLY)
    try:
        return os.lseek(fd, 0, os.SEEK_END)
    finally:
        os.close(fd)


def slaves(node: Path) -> list[str]:
    return sorted(entry.name for entry in Path(f"/sys/block/{node.resolve().name}/slaves").iterdir())


@pytest.mark.parametrize("multipath", [False, True], ids=["single path", "multipath"])
def test_a_grown_lun_reaches_the_open_device_with_its_data_intact_and_its_new_blocks_writable(
    agent: AgentHost, multipath: bool
):
    service = agent.reconfigure("multipath = true\n") if multipath else agent.service
    attachment, _ = service.attach(LUN)
    node = attachment.device
    assert size_of(node) == 2 * GiB
    before, after = os.urandom(1 << 20), os.urandom(1 << 20)
    writer = os.open(node, os.O_RDWR)  # a guest's disk: open across the whole resize
    try:
        write_direct(node, 2 * GiB - len(before), before)  # the old last MiB, on the target
        agent.grow_lun(LUN, 3 * GiB)  # no I/O meanwhile: tgtd fails it while it re-creates the LU
        resized = service.resize(LUN)
        print(f"resized {node} over {slaves(node) if multipath else [node.resolve().name]}: {resized}")
        assert (resized.volume, resized.device, resized.size_bytes) == (LUN, node, 3 * GiB)
        assert size_of(node) == 3 * GiB
        if multipath:
            assert all(size_of(Path(f"/dev/{path}")) == 3 * GiB for path in slaves(node))
        assert os.pwrite(writer, after, 3 * GiB - len(after)) == len(
            after
        )  # the new last MiB, through the open fd
        os.fsync(writer)
    finally:
        os.close(writer)
    assert read_direct(node, 2 * GiB - len(before), len(before)) == before
    assert read_direct(node, 3 * GiB - len(after), len(after)) == after
    service.detach(LUN, force=False)


def test_an_offline_path_refuses_the_resize_naming_it_and_no_device_changes(agent: AgentHost):
    service = agent.reconfigure("multipath = true\n")
    attachment, _ = service.attach(LUN)
    node = attachment.device
    down, up = slaves(node)
    state = Path(f"/sys/block/{down}/device/state")
    agent.grow_lun(LUN, 3 * GiB)
    state.write_text("offline\n")  # the kernel takes a state only with its newline
    try:
        with pytest.raises(PathDown) as refused:
            service.resize(LUN)
        print(f"refused: {refused.value}")
        assert refused.value.details["device"] == f"/dev/{down}" and "offline" in str(refused.value)
        assert [size_of(Path(f"/dev/{name}")) for name in (up,)] == [2 * GiB]  # the other path left alone
        assert size_of(node) == 2 * GiB
    finally:
        state.write_text("running\n")
    assert service.resize(LUN).size_bytes == 3 * GiB  # once the path is back, the resize goes through
    service.detach(LUN, force=False)
