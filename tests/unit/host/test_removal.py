"""Removal refuses a device anyone uses (naming who), else flushes, deletes it and waits until it is gone."""

import errno

import pytest

from iscsi_agent.host.devices import Devices
from iscsi_agent.host.errors import DeviceInUse, SysfsError
from iscsi_agent.host.removal import (
    DeviceRemover,
    DeviceUsage,
    Mount,
    Opener,
    parse_mountinfo,
    removal_blocker,
)
from iscsi_agent.host.sessions import ScsiAddress
from iscsi_agent.host.watch import polling
from tests.fakes import FakeBlockOps

ADDRESS = ScsiAddress(6, 0, 0, 1)
MOUNTINFO = """\
22 1 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
36 35 98:0 /mnt1 /mnt1 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
41 22 8:16 / /srv/with\\040space rw,relatime shared:1 - xfs /dev/sdb rw,attr2
"""


@pytest.fixture
def block():
    return FakeBlockOps()


@pytest.fixture
def devices(paths, clock):
    return Devices(paths, clock, watch=polling)


@pytest.fixture
def remover(paths, devices, block):
    return DeviceRemover(paths, devices, block)


@pytest.fixture
def sda(tree, devices):
    tree.add_disk(ADDRESS, "sda", "serial000001")
    return devices.read(ADDRESS)


def test_mountinfo_is_parsed_with_escapes_undone():
    assert parse_mountinfo(MOUNTINFO) == (
        Mount("0:21", "/proc", "proc"),
        Mount("98:0", "/mnt1", "/dev/root"),
        Mount("8:16", "/srv/with space", "/dev/sdb"),
    )


def test_mountinfo_with_optional_fields_and_junk_lines():
    text = "50 22 8:0 / /data rw shared:1 master:2 propagate_from:3 - ext4 /dev/sda rw\ngarbage\n"
    assert parse_mountinfo(text) == (Mount("8:0", "/data", "/dev/sda"),)


@pytest.mark.parametrize(
    ("usage", "blocker"),
    [
        (DeviceUsage("/dev/sda"), None),
        (DeviceUsage("/dev/sda", mounts=(Mount("8:0", "/data", "/dev/sda"),)), "mounted at /data"),
        (DeviceUsage("/dev/sda", holders=("dm-3 (3600a0980)",)), "held by dm-3 (3600a0980)"),
        (
            DeviceUsage("/dev/sda", openers=(Opener(4242, "qemu-system-x86"),)),
            "open by pid 4242 (qemu-system-x86)",
        ),
        (
            DeviceUsage("/dev/sda", claimed=True),
            "claimed exclusively by another user (the kernel answered EBUSY)",
        ),
    ],
)
def test_the_decision_names_what_holds_the_device(usage, blocker):
    assert removal_blocker(usage) == blocker


def test_a_mount_outranks_the_exclusive_claim_it_causes():
    usage = DeviceUsage("/dev/sda", mounts=(Mount("8:0", "/data", "/dev/sda"),), claimed=True)
    assert removal_blocker(usage) == "mounted at /data"


def test_an_unused_device_is_flushed_deleted_and_waited_for(sda, remover, block, devices):
    remover.remove(sda, timeout=5)
    assert block.flushed == ["sda"]
    assert devices.leftovers(sda) == []
    assert devices.read(ADDRESS) is None


def test_a_mounted_device_is_refused_naming_the_mount_point(tree, sda, remover, block):
    tree.mount("sda", "/var/lib/nova/mnt")
    with pytest.raises(
        DeviceInUse, match=r"/dev/sda \(6:0:0:1\) is in use: mounted at /var/lib/nova/mnt"
    ) as caught:
        remover.remove(sda, timeout=5)
    assert caught.value.details["holder"] == "mounted at /var/lib/nova/mnt"
    assert block.flushed == [] and (tree.root / "dev/sda").exists()


def test_a_mounted_partition_keeps_the_disk(tree, sda, remover):
    part = tree.add_partition("sda", 1)
    tree.mount(part, "/boot/efi")
    assert removal_blocker(remover.usage("sda")) == "mounted at /boot/efi"


def test_a_device_under_a_multipath_map_is_refused_naming_the_map(tree, sda, remover):
    tree.hold("sda", "dm-0", dm_name="3600a098073657269616c303030303031")
    with pytest.raises(DeviceInUse, match=r"held by dm-0 \(3600a098073657269616c303030303031\)"):
        remover.remove(sda, timeout=5)


def test_a_device_open_in_a_process_is_refused_naming_the_process(tree, sda, remover):
    tree.open_by(4242, "qemu-system-x86", "sda")
    tree.open_by(77, "bash", "sdz")
    assert remover.usage("sda").openers == (Opener(4242, "qemu-system-x86"),)
    with pytest.raises(DeviceInUse, match=r"open by pid 4242 \(qemu-system-x86\)"):
        remover.remove(sda, timeout=5)


def test_udev_probing_the_device_is_not_a_user(tree, sda, remover, devices):
    tree.open_by(613, "(udev-worker)", "sda")
    assert remover.usage("sda").openers == (Opener(613, "(udev-worker)"),)
    remover.remove(sda, timeout=5)
    assert devices.read(ADDRESS) is None


def test_an_exclusive_claim_is_refused(sda, remover, block):
    block.claimed.add("sda")
    with pytest.raises(DeviceInUse, match="claimed exclusively"):
        remover.remove(sda, timeout=5)


def test_a_failed_flush_stops_removal(sda, remover, block, devices):
    block.flush_error = OSError(errno.EIO, "Input/output error")
    with pytest.raises(SysfsError, match="flushing /dev/sda failed"):
        remover.remove(sda, timeout=5)
    assert devices.read(ADDRESS) is not None


def test_a_failed_flush_is_tolerated_when_forced_for_a_lun_already_gone(sda, remover, block, devices):
    block.flush_error = OSError(errno.EIO, "Input/output error")
    remover.remove(sda, timeout=5, force_flush=True)
    assert devices.read(ADDRESS) is None


def test_deleting_a_device_already_gone_is_nothing_to_do(remover, devices):
    remover.delete(ADDRESS)
    assert devices.read(ADDRESS) is None
