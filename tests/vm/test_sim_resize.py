"""A LUN grown on the simulated array reaches the real initiator with its data kept.

The simulator mirrors its maps into a real tgtd; the LUN is mapped and logged in to, a known
pattern written at its start, and then the LUN grown through the simulator's own wire (a REST
PATCH of ``space.size`` as Trident and Cinder send it, or ZAPI ``lun-resize``). After the host
rescans the device's capacity (``device/rescan``), the block device has the array's new size,
the pattern reads back intact, and the new last block takes a write and reads it back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from iscsi_agent.array.client import ArrayClient
from iscsi_agent.array.settings import ApiChoice
from iscsi_agent.host.devices import BlockDevice
from ontap_sim import Simulator
from tests.array_admin import grow_lun_rest, resize_lun_zapi
from tests.vm.mirrored import log_in_and_scan, mirrored_array, read_direct, write_direct

MIRROR_TID = 13  # a tid no other test uses, so a leftover of one cannot mask the other
IGROUP = "openstack-vmtier-resize"
LUN = "/vol/vol1/lun2"  # seeded at 1 GiB
GROWN = (1 << 30) + (64 << 20) + 100  # not whole blocks: the array rounds it up
GROWN_SET = (1 << 30) + (64 << 20) + 512
SECTOR = 512
PATTERN = bytes(range(256)) * 4096  # 1 MiB


@dataclass
class MappedLun:
    sim: Simulator
    client: ArrayClient
    device: BlockDevice


@pytest.fixture
def mapped(tmp_path: Path, initiator_iqn: str) -> Iterator[MappedLun]:
    """LUN mapped through the simulator (REST client), logged in, and its /dev/sdX found."""
    with mirrored_array(tmp_path / "backing", MIRROR_TID, ApiChoice.REST) as array:
        client = array.client
        igroup = client.create_igroup(IGROUP, "linux", [initiator_iqn])
        lun_id = client.map_lun(LUN, igroup.name)
        device = log_in_and_scan(client, lun_id).device
        print(f"{LUN} at LUN {lun_id} is {device.node}, {device.size_bytes} bytes")
        yield MappedLun(array.sim, client, device)


def sysfs_size(name: str) -> int:
    return int(Path(f"/sys/block/{name}/size").read_text()) * SECTOR


GROWERS: dict[str, Callable[[Simulator, str, int], int]] = {
    "rest": grow_lun_rest,
    "zapi": resize_lun_zapi,
}


@pytest.mark.parametrize("wire", sorted(GROWERS))
def test_a_lun_grown_on_the_array_shows_its_new_size_after_a_rescan_with_its_data_kept(
    mapped: MappedLun, wire: str
) -> None:
    device = mapped.device
    assert sysfs_size(device.name) == 1 << 30
    write_direct(device.node, 0, PATTERN)

    assert GROWERS[wire](mapped.sim, LUN, GROWN) == GROWN_SET
    assert mapped.client.lun_by_path(LUN, fresh=True).size == GROWN_SET
    assert sysfs_size(device.name) == 1 << 30  # the host sees nothing until it rescans

    Path(f"/sys/block/{device.name}/device/rescan").write_text("1")
    print(f"after rescan {device.name} is {sysfs_size(device.name)} bytes; array says {GROWN_SET}")
    assert sysfs_size(device.name) == GROWN_SET
    assert read_direct(device.node, 0, len(PATTERN)) == PATTERN
    last = GROWN_SET - SECTOR
    block = b"NEW-LAST-BLOCK".ljust(SECTOR, b"\xa5")
    write_direct(device.node, last, block)
    assert read_direct(device.node, last, SECTOR) == block
