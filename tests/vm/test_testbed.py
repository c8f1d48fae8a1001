"""The testbed itself: the guest has a SCSI-capable kernel and an ONTAP-looking target on two portals."""

from pathlib import Path

from ontap_sim.tgt import naa_id


def test_guest_kernel_has_iscsi_transport():
    assert Path("/sys/module/iscsi_tcp").is_dir()
    assert Path("/sys/class/iscsi_transport/tcp").exists()


def test_target_offers_an_ontap_identity_lun_on_both_portals(target):
    serial = target.add_lun(1, serial="ab?$/Cd3fGh1")
    shown = target.show()
    print(shown)
    assert target.iqn in shown
    assert f"SCSI SN: {serial}" in shown
    assert f"SCSI ID: {naa_id(serial)}" in shown
