"""Finding a LUN's block device, reading its identity and links, and waiting for it with a deadline."""

import pytest

from iscsi_agent.host.devices import DeviceIdentity, Devices, parse_udev_links, parse_vpd_pg80
from iscsi_agent.host.errors import DeviceTimeout
from iscsi_agent.host.sessions import ScsiAddress
from iscsi_agent.host.sysfs import read_attr, read_attr_if_present
from tests.fakes import polling, vpd_pg80

IQN = "iqn.1992-08.com.netapp:sn.abc:vs.3"
ADDRESS = ScsiAddress(6, 0, 0, 1)
# Captured from the test VM: tgtd staging ONTAP's identity for serial "ab?$/Cd3fGh1".
CAPTURED_PG80 = bytes([0x00, 0x80, 0x00, 0x24]) + b" " * 24 + b"ab?$/Cd3fGh1"


@pytest.fixture
def devices(paths, clock):
    return Devices(paths, clock, watch=polling)


def test_vpd_page_0x80_gives_the_serial_without_its_padding():
    assert parse_vpd_pg80(CAPTURED_PG80) == "ab?$/Cd3fGh1"


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"\x00\x80", "shorter than its header"),
        (bytes([0, 0x83, 0, 4]) + b"abcd", "not 0x80"),
        (bytes([0, 0x80, 0, 40]) + b"short", "says 40 serial bytes but carries 5"),
    ],
)
def test_malformed_vpd_pages_are_refused(data, why):
    with pytest.raises(ValueError, match=why):
        parse_vpd_pg80(data)


def test_a_probed_lun_reads_as_a_block_device_with_identity_and_links(tree, paths, devices):
    tree.add_disk(ADDRESS, "sda", "ab?$/Cd3fGh1", iqn=IQN, size_bytes=64 << 20)
    device = devices.read(ADDRESS)
    assert device.name == "sda"
    assert device.node == paths.dev("sda")
    assert device.size_bytes == 64 << 20
    assert device.state == "running"
    assert device.identity == DeviceIdentity(
        vendor="NETAPP",
        model="LUN C-Mode",
        revision="9800",
        serial="ab?$/Cd3fGh1",
        wwid="naa.600a098061623f242f43643366476831",
    )
    assert [link.name for link in device.by_path] == [f"ip-127.0.0.1:3260-iscsi-{IQN}-lun-1"]
    assert [link.name for link in device.by_id] == [
        "scsi-3600a098061623f242f43643366476831",
        "wwn-0x600a098061623f242f43643366476831",
    ]


def test_udev_database_links_are_parsed():
    text = "S:disk/by-path/ip-127.0.0.1:3260-iscsi-iqn.x-lun-1\nL:0\nE:ID_BUS=scsi\nS:disk/by-id/wwn-0x600a\n"
    assert parse_udev_links(text) == (
        "disk/by-path/ip-127.0.0.1:3260-iscsi-iqn.x-lun-1",
        "disk/by-id/wwn-0x600a",
    )


def test_a_leftover_link_of_an_earlier_disk_with_the_same_name_is_not_this_disks(tree, devices):
    tree.add_disk(ADDRESS, "sda", "serial000001", iqn=IQN)
    leftover = tree.root / f"dev/disk/by-id/scsi-3600a0980{b'oldserial999'.hex()}"
    leftover.symlink_to("../../sda")
    _, by_id = devices.links("sda")
    assert leftover not in by_id and len(by_id) == 2
    assert devices.stray_links("sda") == (leftover,)


def test_without_a_udev_entry_the_link_folders_are_scanned(tree, devices):
    tree.add_disk(ADDRESS, "sda", "serial000001", iqn=IQN)
    tree.udev_db("sda").unlink()
    by_path, by_id = devices.links("sda")
    assert len(by_path) == 1 and len(by_id) == 2
    assert devices.stray_links("sda") == ()


def test_links_of_other_disks_and_partitions_are_not_counted(tree, devices):
    tree.add_disk(ADDRESS, "sda", "serial000001", iqn=IQN)
    tree.add_disk(ScsiAddress(6, 0, 0, 2), "sdb", "serial000002", iqn=IQN)
    tree.add_partition("sda", 1)
    (tree.root / "dev/disk/by-path/ip-127.0.0.1:3260-iscsi-x-lun-1-part1").symlink_to("../../sda1")
    by_path, _ = devices.links("sda")
    assert [link.name for link in by_path] == [f"ip-127.0.0.1:3260-iscsi-{IQN}-lun-1"]


def test_an_unprobed_lun_has_no_device(devices):
    assert devices.read(ADDRESS) is None
    assert devices.block_name(ADDRESS) is None


def test_a_missing_serial_page_reads_as_no_serial(tree, devices):
    tree.add_disk(ADDRESS, "sda", "serial000001", pg80=b"")
    assert devices.identity(ADDRESS).serial is None
    assert devices.identity(ADDRESS).unreadable == ()


def test_a_serial_page_the_kernel_does_not_show_reads_as_no_serial(tree, devices):
    tree.add_disk(ADDRESS, "sda", "serial000001")
    tree.remove_attr(ADDRESS, "vpd_pg80")  # a device without page 0x80 has no such attribute
    identity = devices.identity(ADDRESS)
    assert (identity.serial, identity.unreadable) == (None, ())


def test_a_serial_page_that_cannot_be_read_is_unreadable_not_absent(tree, devices):
    tree.add_disk(ADDRESS, "sda", "serial000001")
    tree.break_attr(ADDRESS, "vpd_pg80")
    identity = devices.identity(ADDRESS)
    assert identity.serial is None
    [why] = identity.unreadable
    assert why.startswith("vpd_pg80: [Errno 21]")  # EISDIR stands for the kernel's EIO


def test_a_wwid_that_cannot_be_read_is_unreadable_not_absent(tree, devices):
    tree.add_disk(ADDRESS, "sda", "serial000001")
    tree.break_attr(ADDRESS, "wwid")
    identity = devices.identity(ADDRESS)
    assert identity.serial == "serial000001" and identity.wwid is None
    assert [why.split(":")[0] for why in identity.unreadable] == ["wwid"]


def test_a_malformed_serial_page_is_unreadable(tree, devices):
    tree.add_disk(ADDRESS, "sda", "serial000001", pg80=bytes([0, 0x80, 0, 40]) + b"short")
    [why] = devices.identity(ADDRESS).unreadable
    assert "says 40 serial bytes but carries 5" in why


def test_read_attr_if_present_tells_absent_from_unreadable(tmp_path):
    (tmp_path / "wwid").write_text("naa.600a0980\n")
    (tmp_path / "broken").mkdir()
    assert read_attr_if_present(tmp_path / "wwid") == "naa.600a0980"
    assert read_attr_if_present(tmp_path / "absent") is None
    with pytest.raises(IsADirectoryError):
        read_attr_if_present(tmp_path / "broken")
    assert read_attr(tmp_path / "broken") == ""  # the lenient reader, for values no decision rests on


def test_all_scsi_addresses_are_listed(tree, devices):
    tree.add_disk(ScsiAddress(7, 0, 0, 3), "sdb", "serial000003")
    tree.add_disk(ADDRESS, "sda", "serial000001")
    assert devices.addresses() == (ADDRESS, ScsiAddress(7, 0, 0, 3))


def test_the_fresh_identity_rescans_before_reading(tree, devices):
    tree.add_disk(ADDRESS, "sda", "oldserial001")
    tree.set_identity(ADDRESS, "newserial002")  # what the rescan would make sysfs say
    identity = devices.fresh_identity(ADDRESS)
    assert (devices.sysfs_dir(ADDRESS) / "rescan").read_text() == "1"
    assert identity.serial == "newserial002"


def test_a_fresh_identity_without_a_rescan_is_marked_unreadable(tree, devices):
    tree.add_disk(ADDRESS, "sda", "oldserial001")
    tree.break_attr(ADDRESS, "rescan")
    identity = devices.fresh_identity(ADDRESS)
    assert identity.serial == "oldserial001"  # what sysfs holds, but not fresh: no verdict may rest on it
    [why] = identity.unreadable
    assert why.startswith("rescan: rescan of 6:0:0:1 failed")


def test_waiting_returns_once_the_scanned_lun_has_node_and_by_path_link(tree, paths, clock, devices):
    tree.add_session(1, 6, IQN)
    tree.map_lun(6, 1, "sda", "serial000001", sid=1, iqn=IQN)
    (paths.scsi_host(6) / "scan").write_text("0 0 1")
    device = devices.wait_for(ADDRESS, timeout=10)
    assert device.name == "sda" and device.identity.serial == "serial000001"
    assert clock.sleeps  # it had to wait for the "kernel", and did so on the injected clock


def test_a_lun_that_never_appears_times_out_naming_the_scsi_step(tree, clock, devices):
    tree.add_session(1, 6, IQN)
    with pytest.raises(DeviceTimeout) as caught:
        devices.wait_for(ADDRESS, timeout=5, context="session 1 to 127.0.0.1:3260")
    error = caught.value
    assert str(error).startswith("LUN 1 on host6 (session 1 to 127.0.0.1:3260): no usable device within 5s")
    assert "no SCSI device" in str(error)
    assert error.details["step"] == "scsi_device" and error.details["lun"] == 1
    assert sum(clock.sleeps) == pytest.approx(5)


def test_a_lun_without_udev_links_times_out_naming_the_link_step_and_what_was_seen(tree, clock, devices):
    tree.udev = False
    tree.add_session(1, 6, IQN)
    tree.map_lun(6, 1, "sda", "serial000001", sid=1)
    (tree.root / "sys/class/scsi_host/host6/scan").write_text("0 0 1")
    with pytest.raises(DeviceTimeout, match="by-path link") as caught:
        devices.wait_for(ADDRESS, timeout=3)
    assert caught.value.details["seen"]["block"] == "sda"
    assert caught.value.details["step"] == "by_path_link"


def test_a_block_device_without_a_node_times_out_at_the_node_step(tree, devices):
    tree.add_disk(ADDRESS, "sda", "serial000001", node=False, links=False)
    with pytest.raises(DeviceTimeout, match="no node in /dev") as caught:
        devices.wait_for(ADDRESS, timeout=1)
    assert caught.value.details["step"] == "device_node"


def test_a_linked_device_udev_has_not_finished_with_times_out_at_the_udev_step(tree, devices):
    tree.add_disk(ADDRESS, "sda", "serial000001")
    tree.udev_db("sda").unlink()
    with pytest.raises(DeviceTimeout, match="udev has not finished") as caught:
        devices.wait_for(ADDRESS, timeout=1)
    assert caught.value.details["step"] == "udev_done"


def test_waiting_for_removal_ends_when_sysfs_node_and_links_are_gone(tree, devices):
    tree.add_disk(ADDRESS, "sda", "serial000001")
    device = devices.read(ADDRESS)
    (devices.sysfs_dir(ADDRESS) / "delete").write_text("1")
    devices.wait_gone(device, timeout=5)
    assert devices.leftovers(device) == []


def test_a_device_the_kernel_keeps_times_out_listing_what_is_left(tree, devices):
    tree.add_disk(ADDRESS, "sda", "serial000001", iqn=IQN)
    device = devices.read(ADDRESS)
    with pytest.raises(DeviceTimeout) as caught:
        devices.wait_gone(device, timeout=2)
    message = str(caught.value)
    assert "still present after 2s" in message
    assert "sysfs block/sda" in message and "node /dev/sda" in message
    assert f"link /dev/disk/by-path/ip-127.0.0.1:3260-iscsi-{IQN}-lun-1" in message


def test_links_udev_leaves_dangling_are_removed_after_a_grace_period(tree, clock, devices, caplog):
    tree.udev_removes_links = False
    tree.add_disk(ADDRESS, "sda", "serial000001", iqn=IQN)
    device = devices.read(ADDRESS)
    (devices.sysfs_dir(ADDRESS) / "delete").write_text("1")
    started = clock.now
    devices.wait_gone(device, timeout=30, link_grace=4)
    assert devices.leftovers(device) == []
    assert not any(link.is_symlink() for link in device.by_path + device.by_id)
    assert clock.now - started == pytest.approx(4.5)  # one poll for the kernel, then the grace period
    assert f"udev left /dev/disk/by-path/ip-127.0.0.1:3260-iscsi-{IQN}-lun-1 dangling" in caplog.text


def test_a_dangling_link_is_kept_once_a_new_disk_took_the_name(tree, devices):
    tree.udev_removes_links = False
    tree.add_disk(ADDRESS, "sda", "serial000001", iqn=IQN)
    device = devices.read(ADDRESS)
    tree.remove_disk(ADDRESS)
    (tree.root / "dev/sda").write_text("")  # the name is in use again (the sysfs entry is not back yet)
    with pytest.raises(DeviceTimeout):
        devices.wait_gone(device, timeout=1, link_grace=1)
    assert all(link.is_symlink() for link in device.by_path)


def test_a_reused_link_name_pointing_elsewhere_is_not_a_leftover(tree, devices):
    tree.add_disk(ADDRESS, "sda", "serial000001", iqn=IQN)
    device = devices.read(ADDRESS)
    tree.remove_disk(ADDRESS)
    tree.add_disk(ADDRESS, "sdb", "serial000009", iqn=IQN)
    assert devices.leftovers(device) == []


def test_identity_of_a_padded_page_built_by_the_fake_matches_the_captured_one():
    assert vpd_pg80("ab?$/Cd3fGh1") == CAPTURED_PG80


def test_the_disks_of_a_sessions_scsi_host_are_found_with_their_cached_serials_in_address_order(
    tree, devices
):
    tree.add_disk(ScsiAddress(6, 0, 0, 2), "sdc", "serial2", sid=1)
    tree.add_disk(ScsiAddress(6, 0, 0, 1), "sdb", "serial1", sid=1)
    tree.add_disk(ScsiAddress(7, 0, 0, 1), "sdd", "other", sid=2)  # another session's host
    tree.add_multipath("dm-0", "3600a0980", "mpath-3600a0980", ["sdb"])
    assert devices.disks({6}) == [
        (ScsiAddress(6, 0, 0, 1), "sdb", "serial1", True),
        (ScsiAddress(6, 0, 0, 2), "sdc", "serial2", True),
    ]


def test_a_disk_whose_serial_page_cannot_be_parsed_is_found_with_its_serial_unreadable(tree, devices):
    tree.add_disk(ADDRESS, "sdb", "serial1", sid=1, pg80=b"\x00\x80")
    assert devices.disks({ADDRESS.host}) == [(ADDRESS, "sdb", None, False)]


def test_a_disk_without_a_serial_page_is_found_without_a_serial(tree, devices):
    tree.add_disk(ADDRESS, "sdb", "serial1", sid=1)
    (tree.root / f"sys/class/scsi_device/{ADDRESS}/device/vpd_pg80").unlink()
    assert devices.disks({ADDRESS.host}) == [(ADDRESS, "sdb", None, True)]
