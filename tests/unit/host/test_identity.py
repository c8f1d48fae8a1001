"""A device is an ONTAP LUN only when page 0x80 and the NAA WWID both carry its serial."""

import pytest

from iscsi_agent.host.devices import DeviceIdentity, Devices
from iscsi_agent.host.identity import (
    StaleReason,
    Verdict,
    is_lun,
    stale_reason,
    verify_lun,
)
from iscsi_agent.host.sessions import ScsiAddress
from iscsi_agent.naa import multipath_wwid, netapp_wwid, normalize_wwid
from tests.fakes import polling


def identity(serial, wwid):
    return DeviceIdentity("NETAPP", "LUN C-Mode", "9800", serial, wwid)


def test_the_wwid_is_the_netapp_prefix_and_the_serial_in_hex():
    # Worked examples from shared/ontap-api.md section 4.
    assert netapp_wwid("81DaR$Qq/1ii") == "600a098038314461522451712f316969"
    assert netapp_wwid("ZlAFA?QMnBdX") == "600a09805a6c4146413f514d6e426458"
    assert multipath_wwid("81DaR$Qq/1ii") == "3600a098038314461522451712f316969"


@pytest.mark.parametrize(
    "spelling",
    [
        "naa.600a098038314461522451712f316969",
        "3600a098038314461522451712f316969",
        "0x600A098038314461522451712F316969",
        "600a098038314461522451712f316969\n",
    ],
)
def test_every_spelling_of_a_wwid_normalizes_to_bare_hex(spelling):
    assert normalize_wwid(spelling) == "600a098038314461522451712f316969"


def test_a_matching_serial_and_wwid_is_the_lun():
    assert (
        is_lun(identity("81DaR$Qq/1ii", "naa.600a098038314461522451712f316969"), "81DaR$Qq/1ii")
        is Verdict.MATCH
    )


def test_a_different_serial_is_not_the_lun():
    found = identity("ZlAFA?QMnBdX", "naa.600a09805a6c4146413f514d6e426458")
    assert is_lun(found, "81DaR$Qq/1ii") is Verdict.SERIAL_MISMATCH


def test_a_matching_serial_with_a_foreign_wwid_is_not_the_lun():
    # Page 0x80 alone is not enough: another vendor's LUN could carry the same 12 characters.
    assert is_lun(identity("81DaR$Qq/1ii", "naa.5000c500a1b2c3d4"), "81DaR$Qq/1ii") is Verdict.WWID_MISMATCH


def test_a_t10_wwid_never_matches():
    assert (
        is_lun(identity("81DaR$Qq/1ii", "t10.NETAPP  LUN C-Mode  81DaR$Qq/1ii"), "81DaR$Qq/1ii")
        is Verdict.WWID_MISMATCH
    )


@pytest.mark.parametrize(("serial", "wwid"), [(None, "naa.600a0980"), ("81DaR$Qq/1ii", None), ("", "")])
def test_a_device_without_identity_is_not_the_lun(serial, wwid):
    assert is_lun(identity(serial, wwid), "81DaR$Qq/1ii") is Verdict.NO_IDENTITY


def test_a_device_at_an_unmapped_lun_id_is_stale():
    found = identity("81DaR$Qq/1ii", "naa." + netapp_wwid("81DaR$Qq/1ii"))
    assert stale_reason(3, found, {1: "81DaR$Qq/1ii"}) is StaleReason.LUN_GONE


def test_a_device_whose_lun_id_now_maps_another_lun_is_stale():
    found = identity("81DaR$Qq/1ii", "naa." + netapp_wwid("81DaR$Qq/1ii"))
    assert stale_reason(1, found, {1: "ZlAFA?QMnBdX"}) is StaleReason.IDENTITY_MISMATCH


def test_a_device_matching_its_map_is_not_stale():
    found = identity("81DaR$Qq/1ii", "naa." + netapp_wwid("81DaR$Qq/1ii"))
    assert stale_reason(1, found, {1: "81DaR$Qq/1ii", 2: "ZlAFA?QMnBdX"}) is None


def test_verification_uses_the_rescanned_identity_not_the_cached_one(tree, paths, clock):
    address = ScsiAddress(6, 0, 0, 1)
    tree.add_disk(address, "sda", "oldserial001")
    tree.set_identity(address, "newserial002")  # the LUN id was reused; a rescan shows the new LU
    verdict, fresh = verify_lun(Devices(paths, clock, watch=polling), address, "oldserial001")
    assert verdict is Verdict.SERIAL_MISMATCH
    assert fresh.serial == "newserial002"


# --- "could not read" is its own verdict, and never makes a device stale ------------------------------


def unreadable(serial, wwid, *why):
    return DeviceIdentity("NETAPP", "LUN C-Mode", "9800", serial, wwid, unreadable=why)


def test_an_identity_that_could_not_be_read_is_its_own_verdict():
    assert is_lun(unreadable(None, None, "vpd_pg80: [Errno 5] Input/output error"), "81DaR$Qq/1ii") is (
        Verdict.UNREADABLE
    )


def test_a_readable_part_that_disagrees_does_not_outweigh_an_unreadable_one():
    found = unreadable("ZlAFA?QMnBdX", None, "wwid: [Errno 5] Input/output error")
    assert is_lun(found, "81DaR$Qq/1ii") is Verdict.UNREADABLE


def test_a_device_whose_identity_could_not_be_read_is_not_stale():
    found = unreadable(None, None, "vpd_pg80: [Errno 5] Input/output error")
    assert stale_reason(1, found, {1: "81DaR$Qq/1ii"}) is None


def test_a_device_that_reports_no_identity_at_a_mapped_id_is_still_stale():
    # Absent is an answer (the device has no page 0x80), unlike a read that failed.
    assert stale_reason(1, identity(None, None), {1: "81DaR$Qq/1ii"}) is StaleReason.IDENTITY_MISMATCH


def test_an_unreadable_identity_at_an_unmapped_id_is_stale_by_the_map_alone():
    found = unreadable(None, None, "vpd_pg80: [Errno 5] Input/output error")
    assert stale_reason(3, found, {1: "81DaR$Qq/1ii"}) is StaleReason.LUN_GONE


def test_a_failed_vpd_read_on_a_live_idle_disk_does_not_make_it_stale(tree, paths, clock):
    address = ScsiAddress(6, 0, 0, 1)
    tree.add_disk(address, "sda", "oldserial001")
    tree.break_attr(address, "vpd_pg80")  # the read fails (EIO in the kernel; EISDIR here)
    devices = Devices(paths, clock, watch=polling)
    found = devices.identity(address)
    assert stale_reason(1, found, {1: "oldserial001"}) is None
    assert is_lun(found, "oldserial001") is Verdict.UNREADABLE


def test_a_rescan_that_cannot_be_written_gives_no_verdict_on_the_cached_identity(tree, paths, clock):
    address = ScsiAddress(6, 0, 0, 1)
    tree.add_disk(address, "sda", "oldserial001")
    tree.break_attr(address, "rescan")
    verdict, fresh = verify_lun(Devices(paths, clock, watch=polling), address, "oldserial001")
    assert verdict is Verdict.UNREADABLE
    assert [why.split(":")[0] for why in fresh.unreadable] == ["rescan"]
