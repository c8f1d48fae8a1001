"""Attach and detach, end to end over the simulated array and a synthetic host (both APIs).

The VM tier proves the same flows on a real kernel; here they are specified quickly and with the
array's request counts, which the simulator counts exactly.
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest

from iscsi_agent.array.errors import ArrayNotFound
from iscsi_agent.host.sessions import ScsiAddress
from iscsi_agent.naa import netapp_wwid
from iscsi_agent.service.errors import WrongDevice
from iscsi_agent.service_api import NotAttached, VolumeInUse, VolumeNotFound
from tests.contract.helpers import array_igroup, array_map, array_maps
from tests.unit.service.conftest import INITIATOR, OWN_IGROUP, Host, config_for, serial_of

LUN1, LUN2 = "/vol/vol1/lun1", "/vol/vol1/lun2"


def disks(host: Host) -> list[str]:
    return sorted(entry.name for entry in (host.tree.root / "sys/block").iterdir())


def test_an_attach_maps_logs_in_scans_and_hands_out_the_verified_device(host: Host):
    attachment, created = host.service.attach(LUN1)
    serial = serial_of(host, LUN1)
    assert created
    assert attachment.device == Path(f"/dev/disk/by-id/wwn-0x{netapp_wwid(serial)}")
    assert attachment.wwid == "3" + netapp_wwid(serial) and attachment.volume == LUN1
    assert attachment.target_iqn == host.initiator.target_iqn
    assert array_maps(host.sim, LUN1) == [(OWN_IGROUP, attachment.lun_id)]
    assert disks(host) == ["sda"]
    assert len(host.initiator.sessions) == 1
    record = next(iter(host.initiator.records.values()))
    assert record["node.session.scan"] == "manual" and record["node.startup"] == "manual"


def test_attaching_again_answers_from_the_record_without_asking_the_array(host: Host):
    first, _ = host.service.attach(LUN1)
    before = host.array_requests()
    for volume in (LUN1, first.lun_uuid):  # identities; a bare name is the array's to resolve
        again, created = host.service.attach(volume)
        assert (again, created) == (first, False)
    assert host.array_requests() == before


def test_a_second_lun_on_a_live_session_needs_no_iscsiadm_call(host: Host):
    host.service.attach(LUN1)
    calls = len(host.initiator.iscsiadm_calls)
    host.service.attach(LUN2)
    assert len(host.initiator.iscsiadm_calls) == calls
    assert disks(host) == ["sda", "sdb"]


def test_a_steady_attach_costs_one_array_request(host: Host):
    host.service.attach(LUN1)
    host.service.attach(LUN2)
    host.service.detach(LUN2, force=False)
    before = host.array_requests()
    host.service.attach(LUN2)
    assert host.array_requests() - before == 1


def test_a_detach_removes_the_device_unmaps_and_logs_out_of_an_empty_session(host: Host):
    host.service.attach(LUN1)
    detached = host.service.detach("lun1", force=False)
    assert detached.volume == LUN1
    assert disks(host) == []
    assert array_maps(host.sim, LUN1) == []
    assert host.initiator.sessions == {} and host.initiator.records == {}
    assert host.service.attachments() == []


def test_a_session_that_still_carries_a_lun_stays_logged_in(host: Host):
    host.service.attach(LUN1)
    host.service.attach(LUN2)
    host.service.detach(LUN1, force=False)
    assert len(host.initiator.sessions) == 1 and disks(host) == ["sdb"]


def test_detaching_an_unknown_volume_is_not_found_unless_forced(host: Host):
    with pytest.raises(NotAttached):
        host.service.detach(LUN1, force=False)
    assert host.service.detach(LUN1, force=True).volume == LUN1


def test_detaching_twice_is_fine_with_force(host: Host):
    host.service.attach(LUN1)
    host.service.detach(LUN1, force=False)
    assert host.service.detach(LUN1, force=True).volume == LUN1


def test_a_mounted_device_is_not_detached_and_nothing_changes(host: Host):
    attachment, _ = host.service.attach(LUN1)
    host.tree.mount("sda", "/srv/data")
    with pytest.raises(VolumeInUse, match="mounted at /srv/data"):
        host.service.detach(LUN1, force=False)
    assert disks(host) == ["sda"] and array_maps(host.sim, LUN1) == [(OWN_IGROUP, attachment.lun_id)]
    assert [a.volume for a in host.service.attachments()] == [LUN1]


def test_force_does_not_remove_a_device_in_use(host: Host):
    host.service.attach(LUN1)
    host.tree.mount("sda", "/srv/data")
    with pytest.raises(VolumeInUse, match="mounted at /srv/data"):
        host.service.detach(LUN1, force=True)
    assert disks(host) == ["sda"] and [a.volume for a in host.service.attachments()] == [LUN1]


def test_a_forced_detach_of_a_volume_the_agent_does_not_know_removes_its_devices(host: Host):
    host.service.attach(LUN1)
    host.restart()
    host.journal.remove_attachment(host.service.attachments()[0].lun_uuid)  # the record was lost
    host.service.detach(LUN1, force=True)
    assert disks(host) == [] and host.initiator.sessions == {}


def test_a_udev_probe_holding_a_path_for_a_moment_does_not_refuse_the_detach(host: Host):
    host.service.attach(LUN1)
    host.tree.open_by(4242, "multipath", "sda")  # udev's `multipath -u`, run on a change event
    host.initiator.on_step.append(lambda: shutil.rmtree(host.tree.root / "proc/4242", ignore_errors=True))
    host.service.detach(LUN1, force=False)
    assert disks(host) == []


def test_a_process_holding_the_device_refuses_the_detach_naming_it(host: Host):
    host.service.attach(LUN1)
    host.tree.open_by(4242, "qemu-system-x86", "sda")
    with pytest.raises(VolumeInUse, match=r"pid 4242 \(qemu-system-x86\)"):
        host.service.detach(LUN1, force=False)
    assert disks(host) == ["sda"]


def test_with_chap_the_array_and_the_node_record_get_the_same_user_and_the_secret_no_command_line(
    host: Host, tmp_path: Path
):
    secret = tmp_path / "chap.secret"
    secret.write_text("s3cret-of-16chars\n")
    secret.chmod(0o600)
    service = host.with_config(
        config_for(host.sim, host.tree.root, tmp_path / "state", chap_secret_file=secret)
    )
    service.attach(LUN1)
    with host.sim.state.lock:
        entry = host.sim.state.chap[("svm1", INITIATOR)]
    assert (entry.auth_type.lower(), entry.inbound_user, entry.inbound_password) == (
        "chap",
        "compute-7",
        "s3cret-of-16chars",
    )
    record = next(iter(host.initiator.records.values()))
    assert (
        record["node.session.auth.authmethod"] == "CHAP"
        and record["node.session.auth.username"] == "compute-7"
    )
    # no command line carries the secret (any local user reads them in /proc); the record files do
    assert not any("s3cret" in " ".join(call) for call in host.initiator.calls)
    holding = [
        name for name, text in host.initiator.record_files().items() if "= s3cret-of-16chars\n" in text
    ]
    iqn = host.initiator.target_iqn
    assert holding == [f"nodes/{iqn}/127.0.0.1,3260,1/default", "send_targets/127.0.0.1,3260/st_config"]


def test_an_unknown_volume_is_named(host: Host):
    with pytest.raises(VolumeNotFound, match="no-such-lun"):
        host.service.attach("no-such-lun")


def test_a_map_to_another_hosts_igroup_stays_and_ours_goes_on_detach(host: Host):
    array_igroup(host.sim, "other-host", "iqn.1994-05.com.redhat:compute-8")
    array_map(host.sim, LUN1, "other-host")
    host.service.attach(LUN1)
    assert sorted(igroup for igroup, _ in array_maps(host.sim, LUN1)) == sorted(["other-host", OWN_IGROUP])
    host.service.detach(LUN1, force=False)
    assert [igroup for igroup, _ in array_maps(host.sim, LUN1)] == ["other-host"]


def test_a_lun_this_host_sees_through_another_igroup_is_used_through_that_map(host: Host):
    array_igroup(host.sim, "shared-cluster", INITIATOR, "iqn.1994-05.com.redhat:compute-8")
    lun_id = array_map(host.sim, LUN1, "shared-cluster", 7)
    attachment, _ = host.service.attach(LUN1)
    assert attachment.lun_id == lun_id
    assert array_maps(host.sim, LUN1) == [("shared-cluster", 7)]
    host.service.detach(LUN1, force=False)
    assert array_maps(host.sim, LUN1) == [("shared-cluster", 7)]  # not ours: left alone
    assert disks(host) == []


def plant_stale_disk(host: Host, lun_id: int, name: str = "sdx") -> None:
    """A disk left at ``lun_id`` by a LUN unmapped behind the host's back (the hazard of a reused id)."""
    session = next(iter(host.initiator.sessions.values()))
    host.tree.add_disk(ScsiAddress(session.host, 0, 0, lun_id), name, "OLDSERIAL001", sid=session.sid)


def test_a_stale_device_at_the_lun_id_is_replaced_by_the_right_one(host: Host):
    first, _ = host.service.attach("lun3")
    plant_stale_disk(host, first.lun_id + 1)
    attachment, _ = host.service.attach(LUN1)
    assert attachment.lun_id == first.lun_id + 1
    assert "sdx" not in disks(host)
    assert "sdx" not in host.block.flushed  # its pages belong to a volume this id no longer leads to
    assert attachment.device.name == f"wwn-0x{netapp_wwid(serial_of(host, LUN1))}"


def test_a_held_stale_device_stops_the_attach_and_leaves_no_map(host: Host):
    first, _ = host.service.attach("lun3")
    plant_stale_disk(host, first.lun_id + 1)
    host.tree.mount("sdx", "/old")
    with pytest.raises(WrongDevice, match="in use"):
        host.service.attach(LUN1)
    assert array_maps(host.sim, LUN1) == []
    assert "sdx" in disks(host)


def test_a_device_that_never_appears_rolls_back_the_map_and_the_login(host: Host):
    host.initiator.hidden.add(serial_of(host, LUN1))
    with pytest.raises(Exception, match="at scan") as failed:
        host.service.attach(LUN1)
    assert failed.value.details["at_step"] == "scan"
    assert array_maps(host.sim, LUN1) == []
    assert host.initiator.sessions == {} and disks(host) == []
    assert host.journal.in_flight() == []  # the failed attach was closed, its rollback recorded


def test_an_array_fault_mid_attach_leaves_nothing_behind(host: Host):
    host.sim.faults.inject(
        "lun-map" if host.array.api == "zapi" else "POST /api/protocols/san/lun-maps",
        "errno",
        times=10,
        errno=13001,
        reason="busy",
    )
    with pytest.raises(Exception, match="at map"):
        host.service.attach(LUN1)
    assert array_maps(host.sim, LUN1) == [] and host.initiator.sessions == {}


def test_attachments_survive_a_restart(host: Host):
    host.service.attach(LUN1)
    service = host.restart()
    assert [a.volume for a in service.attachments()] == [LUN1]
    assert service.attach(LUN1)[1] is False


def test_parallel_attaches_of_different_volumes_share_one_login(host: Host):
    volumes = ["lun0", "lun1", "lun2", "lun3"]
    errors = []

    def attach(volume):
        try:
            host.service.attach(volume)
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=attach, args=(v,)) for v in volumes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert len(host.service.attachments()) == 4
    logins = [call for call in host.initiator.iscsiadm_calls if "--login" in call]
    assert len(logins) == 1


def test_an_igroup_deleted_behind_the_agents_back_is_made_again_by_the_next_attach(host: Host):
    host.service.attach(LUN1)
    host.service.detach(LUN1, force=False)
    with host.sim.state.lock:
        host.sim.state.destroy_igroup(host.sim.state.igroup("svm1", name=OWN_IGROUP))
    with pytest.raises(ArrayNotFound, match=OWN_IGROUP):
        host.service.attach(LUN2)  # the cached igroup is proved wrong, and forgotten
    attachment, _ = host.service.attach(LUN2)
    assert array_maps(host.sim, LUN2) == [(OWN_IGROUP, attachment.lun_id)]
