"""A recorded device is the LUN only while every disk behind it reads, afresh, as that LUN."""

from __future__ import annotations

from pathlib import Path

import pytest

from iscsi_agent.host.devices import Devices
from iscsi_agent.host.errors import IdentityUnreadable
from iscsi_agent.host.identity import Verdict
from iscsi_agent.host.multipath import Multipath
from iscsi_agent.host.paths import HostPaths
from iscsi_agent.host.sessions import ScsiAddress
from iscsi_agent.journal.model import Attachment, AttachmentState
from iscsi_agent.naa import multipath_wwid, netapp_wwid
from iscsi_agent.service.errors import WrongDevice
from iscsi_agent.service.handed_out import HandedOutDevices
from tests.fakes import FakeClock, FakeRunner, HostTree

SERIAL, OTHER = "wH5?k2Lm/9Qa", "Zp$3Rt7/xY?b"
PATH_A, PATH_B = ScsiAddress(2, 0, 0, 1), ScsiAddress(3, 0, 0, 1)


def recorded(device: str, *, multipath: bool = False) -> Attachment:
    return Attachment(
        lun_uuid="u-1",
        lun_path="/vol/vol1/lun0",
        volume="/vol/vol1/lun0",
        svm="svm1",
        serial=SERIAL,
        wwid=multipath_wwid(SERIAL),
        lun_id=1,
        igroup="ig",
        map_created=True,
        target_iqn="iqn.1992-08.com.netapp:sn.abc:vs.3",
        portals=(),
        multipath=multipath,
        state=AttachmentState.ATTACHED,
        device=device,
    )


@pytest.fixture
def tree(tmp_path: Path) -> HostTree:
    return HostTree(tmp_path)


def checker(tree: HostTree, *, multipath: bool = False) -> HandedOutDevices:
    paths, clock = HostPaths(tree.root), FakeClock()
    devices = Devices(paths, clock)
    return HandedOutDevices(
        paths, devices, Multipath(paths, FakeRunner(), clock) if multipath else None, timeout=5
    )


def with_map(tree: HostTree) -> str:
    tree.add_disk(PATH_A, "sda", SERIAL)
    tree.add_disk(PATH_B, "sdb", SERIAL)
    name = multipath_wwid(SERIAL)
    tree.add_multipath("dm-0", name, f"mpath-{name}", ["sda", "sdb"])
    return f"/dev/mapper/{name}"


def test_a_by_id_link_to_the_lun_is_verified(tree: HostTree):
    tree.add_disk(PATH_A, "sda", SERIAL)
    assert checker(tree).check(recorded(f"/dev/disk/by-id/wwn-0x{netapp_wwid(SERIAL)}")).verified


def test_a_bare_node_now_another_luns_disk_is_named_with_what_it_reads_as(tree: HostTree):
    tree.add_disk(PATH_A, "sda", OTHER)
    finding = checker(tree).check(recorded("/dev/sda"))
    assert finding.verdict is Verdict.SERIAL_MISMATCH
    refusal = finding.refusal()
    assert isinstance(refusal, WrongDevice)
    assert (refusal.details["device"], refusal.details["found_serial"]) == ("/dev/sda", OTHER)


def test_a_device_that_is_gone_is_not_verified(tree: HostTree):
    finding = checker(tree).check(recorded("/dev/sda"))
    assert finding.verdict is None and finding.refusal().details["verdict"] == "gone"


def test_an_unreadable_identity_is_its_own_refusal(tree: HostTree):
    tree.add_disk(PATH_A, "sda", SERIAL)
    tree.break_attr(PATH_A, "vpd_pg80")
    finding = checker(tree).check(recorded("/dev/sda"))
    assert finding.unreadable and isinstance(finding.refusal(), IdentityUnreadable)


def test_a_multipath_map_whose_every_path_is_the_lun_is_verified(tree: HostTree):
    device = with_map(tree)
    assert checker(tree, multipath=True).check(recorded(device, multipath=True)).verified


def test_a_multipath_map_with_one_path_now_another_lun_is_not_verified(tree: HostTree):
    device = with_map(tree)
    tree.set_identity(PATH_B, OTHER)  # the id was reused behind the map: a fresh read shows it
    finding = checker(tree, multipath=True).check(recorded(device, multipath=True))
    assert (finding.verdict, finding.disk) == (Verdict.SERIAL_MISMATCH, "sdb")


def test_a_multipath_map_that_is_gone_is_not_verified(tree: HostTree):
    tree.add_disk(PATH_A, "sda", SERIAL)
    device = f"/dev/mapper/{multipath_wwid(SERIAL)}"
    assert checker(tree, multipath=True).check(recorded(device, multipath=True)).verdict is None
