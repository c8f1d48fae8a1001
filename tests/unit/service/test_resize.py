"""Online resize: a LUN grown on the array reaches its attached device without a detach.

Every path of the LUN is rescanned (``device/rescan``, that LUN's paths only), the multipath map is
resized after them (``multipathd resize map``), and the answer is the new size, once every path and
the map show the array's size. A path that is down refuses the whole resize, naming the path,
before any device is touched: a map over paths of different sizes is worse than one not yet grown.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from iscsi_agent.array.errors import ArrayError
from iscsi_agent.host.errors import WaitTimeout
from iscsi_agent.host.sessions import ScsiAddress
from iscsi_agent.service.errors import WrongDevice
from iscsi_agent.service.observe import Unobserved
from iscsi_agent.service_api import NotAttached, PathDown, Resized
from tests.unit.service.conftest import (
    OWN_IGROUP,
    Host,
    config_for,
    grow_on_the_array,
    serial_of,
    unmap_behind_the_agents_back,
)

LUN1, LUN2 = "/vol/vol1/lun1", "/vol/vol1/lun2"
GiB = 1 << 30


def block_name(host: Host, device: Path) -> str:
    """The block device a handed-out path (a by-id link, or a map's /dev/mapper node) leads to."""
    maps = {name: dm for dm, name in host.initiator.multipath_maps().items()}
    return maps.get(device.name) or host.layer.paths.under_root(device).resolve().name


def size_of(host: Host, name: str) -> int:
    return int((host.tree.root / f"sys/block/{name}/size").read_text()) * 512


def address_of(host: Host, name: str) -> ScsiAddress:
    """sys/block/sda -> .../6:0:0:1/block/sda"""
    return ScsiAddress.parse((host.tree.root / f"sys/block/{name}").resolve().parent.parent.name)


def with_multipath(host: Host, tmp_path: Path) -> None:
    host.with_config(config_for(host.sim, host.tree.root, tmp_path / "state", multipath=True))


def slaves(host: Host, dm: str) -> list[str]:
    return sorted(entry.name for entry in (host.tree.root / f"sys/block/{dm}/slaves").iterdir())


def test_a_lun_grown_on_the_array_reaches_its_device_and_the_answer_is_the_new_size(host: Host):
    attachment, _ = host.service.attach(LUN1)
    device = block_name(host, attachment.device)
    assert size_of(host, device) == 2 * GiB
    grow_on_the_array(host, LUN1, 3 * GiB)
    resized = host.service.resize(LUN1)
    assert resized == Resized(volume=LUN1, device=attachment.device, size_bytes=3 * GiB)
    assert size_of(host, device) == 3 * GiB
    assert host.service.attachment(LUN1) == attachment  # still attached, the same device


def test_only_the_paths_of_that_lun_are_rescanned(host: Host):
    attachment, _ = host.service.attach(LUN1)
    other, _ = host.service.attach(LUN2)
    grow_on_the_array(host, LUN1, 3 * GiB)
    grow_on_the_array(host, LUN2, 3 * GiB)
    host.initiator.rescanned.clear()
    host.service.resize(LUN1)
    assert host.initiator.rescanned == [address_of(host, block_name(host, attachment.device))]
    assert size_of(host, block_name(host, other.device)) == 1 * GiB


def test_a_resize_with_nothing_grown_answers_the_size_it_has(host: Host):
    host.service.attach(LUN1)
    assert host.service.resize(LUN1).size_bytes == 2 * GiB


def test_with_multipath_every_path_then_the_map_is_resized(host: Host, tmp_path: Path):
    with_multipath(host, tmp_path)
    attachment, _ = host.service.attach(LUN1)
    dm = block_name(host, attachment.device)
    paths = slaves(host, dm)
    assert len(paths) == 2 and size_of(host, dm) == 2 * GiB
    grow_on_the_array(host, LUN1, 3 * GiB)
    host.initiator.rescanned.clear()
    resized = host.service.resize(LUN1)
    assert resized.size_bytes == 3 * GiB and resized.device == attachment.device
    assert sorted(host.initiator.rescanned) == sorted(address_of(host, name) for name in paths)
    # multipathd resizes a map only over paths of one size: the map grew, so its paths went first
    assert [size_of(host, name) for name in (*paths, dm)] == [3 * GiB] * 3
    resizes = [call for call in host.initiator.calls if call[:2] == ("multipathd", "resize")]
    assert resizes == [("multipathd", "resize", "map", attachment.wwid)]


def test_a_path_of_the_lun_outside_its_map_is_rescanned_too_so_it_can_rejoin_it(host: Host, tmp_path: Path):
    with_multipath(host, tmp_path)
    attachment, _ = host.service.attach(LUN1)
    dm = block_name(host, attachment.device)
    dropped, kept = slaves(host, dm)
    host.initiator(["multipathd", "del", "path", dropped], timeout=10)  # its checker failed it once
    assert slaves(host, dm) == [kept]
    grow_on_the_array(host, LUN1, 3 * GiB)
    host.service.resize(LUN1)
    assert [size_of(host, name) for name in (dropped, kept, dm)] == [3 * GiB] * 3


def test_a_path_that_is_down_refuses_the_resize_naming_it_and_nothing_is_rescanned(
    host: Host, tmp_path: Path
):
    with_multipath(host, tmp_path)
    attachment, _ = host.service.attach(LUN1)
    down = attachment.portals[1]
    session = host.initiator.sessions[(attachment.target_iqn, str(down))]
    host.tree.session_attr(session.sid, "state").write_text("FAILED\n")  # in recovery: the portal went away
    grow_on_the_array(host, LUN1, 3 * GiB)
    host.initiator.rescanned.clear()
    with pytest.raises(PathDown, match=f"{down}.*FAILED") as refused:
        host.service.resize(LUN1)
    assert refused.value.details["path"] == str(down) and refused.value.details["volume"] == LUN1
    assert host.initiator.rescanned == []
    assert not [call for call in host.initiator.calls if call[:2] == ("multipathd", "resize")]


def test_a_path_whose_device_is_offline_refuses_the_resize_naming_the_device(host: Host):
    attachment, _ = host.service.attach(LUN1)
    device = block_name(host, attachment.device)
    state = (host.tree.root / f"sys/block/{device}").resolve().parent.parent / "state"
    state.write_text("transport-offline\n")
    host.initiator.rescanned.clear()
    with pytest.raises(PathDown, match=f"/dev/{device}.*transport-offline") as refused:
        host.service.resize(LUN1)
    assert refused.value.details["device"] == f"/dev/{device}"
    assert host.initiator.rescanned == []


def test_a_volume_not_attached_is_not_found(host: Host):
    with pytest.raises(NotAttached):
        host.service.resize(LUN1)


def test_a_device_that_is_now_another_lun_is_refused_and_its_size_never_answered(host: Host):
    attachment, _ = host.service.attach(LUN1)
    unmap_behind_the_agents_back(host, LUN1)  # and the id given to another LUN: what the rescan reads
    assert host.array.map_lun(LUN2, OWN_IGROUP, attachment.lun_id) == attachment.lun_id
    with pytest.raises(WrongDevice, match=re.escape(f"is now serial '{serial_of(host, LUN2)}'")):
        host.service.resize(LUN1)


def test_a_device_that_never_shows_the_new_size_times_out_naming_it_and_both_sizes(host: Host):
    attachment, _ = host.service.attach(LUN1)
    device = block_name(host, attachment.device)
    host.initiator.frozen_capacity.add(device)  # READ CAPACITY keeps answering the old size
    grow_on_the_array(host, LUN1, 3 * GiB)
    with pytest.raises(WaitTimeout, match=f"/dev/{device}.*{2 * GiB}.*{3 * GiB}"):
        host.service.resize(LUN1)


class Finished(Unobserved):
    def __init__(self) -> None:
        self.operations: list[tuple[str, str | None]] = []

    def finished(self, operation: str, seconds: float, code: str | None) -> None:
        self.operations.append((operation, code))


def test_each_resize_is_timed_and_counted_by_its_outcome(host: Host, tmp_path: Path):
    host.observer = finished = Finished()
    with_multipath(host, tmp_path)
    attachment, _ = host.service.attach(LUN1)
    grow_on_the_array(host, LUN1, 3 * GiB)
    host.service.resize(LUN1)
    session = host.initiator.sessions[(attachment.target_iqn, str(attachment.portals[0]))]
    host.tree.session_attr(session.sid, "state").write_text("FAILED\n")
    with pytest.raises(PathDown):
        host.service.resize(LUN1)
    resizes = [(operation, code) for operation, code in finished.operations if operation == "resize"]
    assert resizes == [("resize", None), ("resize", "path_down")]


def test_an_array_that_refuses_the_size_read_leaves_every_device_as_it_was(host: Host):
    attachment, _ = host.service.attach(LUN1)
    grow_on_the_array(host, LUN1, 3 * GiB)
    host.sim.faults.inject(
        "lun-get-iter" if host.array.api == "zapi" else "GET /api/storage/luns",
        "errno",
        times=10,
        errno=13001,
        reason="busy",
    )
    host.initiator.rescanned.clear()
    with pytest.raises(ArrayError, match="busy"):
        host.service.resize(LUN1)
    host.sim.faults.clear()
    assert host.initiator.rescanned == [] and size_of(host, block_name(host, attachment.device)) == 2 * GiB
    assert host.service.attachment(LUN1) == attachment


def test_a_resize_cut_short_is_finished_by_asking_again(host: Host, tmp_path: Path):
    """Not journaled: a resize that stopped partway (here a path slow to show the size) leaves
    nothing to recover; the next one brings every path and the map to the LUN's size."""
    with_multipath(host, tmp_path)
    attachment, _ = host.service.attach(LUN1)
    dm = block_name(host, attachment.device)
    slow, fast = slaves(host, dm)
    host.initiator.frozen_capacity.add(slow)
    grow_on_the_array(host, LUN1, 3 * GiB)
    with pytest.raises(WaitTimeout):
        host.service.resize(LUN1)
    assert [size_of(host, name) for name in (slow, fast, dm)] == [2 * GiB, 3 * GiB, 2 * GiB]
    host.initiator.frozen_capacity.clear()
    assert host.service.resize(LUN1).size_bytes == 3 * GiB
    assert [size_of(host, name) for name in (slow, fast, dm)] == [3 * GiB] * 3
