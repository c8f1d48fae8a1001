"""Reconciler passes over the simulated array and a synthetic host (both APIs): what they heal, what
they leave, what they report, and what they cost the array. The VM tier shows the same on a real
kernel; the planner's rules one by one are in tests/unit/reconcile."""

from __future__ import annotations

import dataclasses
import threading

import pytest

from iscsi_agent.errors import AgentError
from iscsi_agent.reconcile.observe import IGROUP_CHECK_EVERY, SIZE_CHECK_EVERY, SIZE_CHECK_PASS
from iscsi_agent.service_api import ReconcileAction, ReconcileBusy
from tests.contract.helpers import SVM, array_igroup, array_igroups_named, array_map, array_maps
from tests.unit.service.conftest import (
    INITIATOR,
    OWN_IGROUP,
    Host,
    grow_on_the_array,
    unmap_behind_the_agents_back,
)

LUN1, LUN2, LUN3 = "/vol/vol1/lun1", "/vol/vol1/lun2", "/vol/vol1/lun3"


def disks(host: Host) -> list[str]:
    return sorted(entry.name for entry in (host.tree.root / "sys/block").iterdir())


def taken(actions: list[ReconcileAction]) -> list[tuple[str, str, bool]]:
    return [(a.action, a.reason, a.done) for a in actions]


def reconcile(host: Host, *, dry_run: bool = False) -> list[ReconcileAction]:
    return host.services.reconciler.run(dry_run=dry_run)


def by_path_links(host: Host) -> list[str]:
    return sorted(entry.name for entry in (host.tree.root / "dev/disk/by-path").iterdir())


def test_a_steady_host_costs_one_array_request_and_changes_nothing(host: Host):
    host.service.attach(LUN1)
    reconcile(host)  # the first pass also reads the igroup itself
    before = host.array_requests()
    assert reconcile(host) == []
    assert host.array_requests() - before == 1
    assert disks(host) == ["sda"]


def test_a_device_whose_lun_was_unmapped_behind_the_agents_back_is_removed_with_its_links(host: Host):
    host.service.attach(LUN1)
    assert by_path_links(host)
    unmap_behind_the_agents_back(host, LUN1)
    actions = reconcile(host)
    assert ("remove_device", "lun_unmapped", True) in taken(actions)
    assert ("report", "attachment_unmapped", False) in taken(actions)
    assert disks(host) == [] and by_path_links(host) == []
    assert host.services.reconciler.degraded == []


def test_a_held_stale_device_is_reported_left_alone_and_degrades_health(host: Host):
    host.service.attach(LUN1)
    host.tree.mount("sda", "/srv/data")
    unmap_behind_the_agents_back(host, LUN1)
    actions = reconcile(host)
    assert ("remove_device", "lun_unmapped", False) in taken(actions)
    removal = next(a for a in actions if a.action == "remove_device")
    assert "mounted at /srv/data" in removal.target
    assert disks(host) == ["sda"]
    [problem] = host.services.reconciler.degraded
    assert "sda" in problem and "/srv/data" in problem


def test_with_removal_off_a_stale_device_is_only_reported(host: Host):
    config = dataclasses.replace(
        host.config, reconciler=dataclasses.replace(host.config.reconciler, remove_stale_devices=False)
    )
    host.with_config(config)
    host.service.attach(LUN1)
    unmap_behind_the_agents_back(host, LUN1)
    assert ("report_stale_device", "lun_unmapped", False) in taken(reconcile(host))
    assert disks(host) == ["sda"]


def test_a_dry_run_plans_without_changing_anything(host: Host):
    host.service.attach(LUN1)
    unmap_behind_the_agents_back(host, LUN1)
    actions = reconcile(host, dry_run=True)
    assert ("remove_device", "lun_unmapped", False) in taken(actions)
    assert disks(host) == ["sda"] and host.services.reconciler.last is None
    assert ("remove_device", "lun_unmapped", True) in taken(reconcile(host))


def test_a_lun_id_reused_while_a_stale_device_sits_there_removes_the_stale_device(host: Host):
    first, _ = host.service.attach(LUN3)
    lun_id = first.lun_id
    host.service.attach(LUN2)  # keeps the session
    host.journal.remove_attachment(first.lun_uuid)  # a device the agent no longer tracks
    unmap_behind_the_agents_back(host, LUN3)
    array_map(host.sim, LUN1, OWN_IGROUP, lun_id)  # another LUN at the same id, not asked for
    stale = host.initiator.disk_at(next(iter(host.initiator.sessions.values())).host, lun_id)
    actions = reconcile(host)
    assert ("remove_device", "identity_mismatch", True) in taken(actions)
    assert ("report", "unrequested_map", False) in taken(actions)
    assert stale not in disks(host)
    assert stale not in host.block.flushed  # its pages belong to a volume the id no longer leads to
    assert array_maps(host.sim, LUN1) == [(OWN_IGROUP, lun_id)]  # someone else's map: left alone


def test_a_map_the_host_did_not_ask_for_is_reported_and_never_scanned(host: Host):
    host.service.attach(LUN1)
    array_map(host.sim, LUN2, OWN_IGROUP)
    assert taken(reconcile(host)) == [("report", "unrequested_map", False)]
    assert disks(host) == ["sda"] and len(array_maps(host.sim, LUN2)) == 1


def test_a_session_logged_out_behind_the_agents_back_is_logged_in_again_and_its_lun_scanned(host: Host):
    host.service.attach(LUN1)
    (key, session), *_ = host.initiator.sessions.items()
    host.tree.remove_session(session.sid, session.host)
    del host.initiator.sessions[key]
    assert disks(host) == []
    actions = reconcile(host)
    assert ("relogin", "session_missing", True) in taken(actions)
    host.clock.sleep(1)  # the kernel acts on the scan
    assert len(disks(host)) == 1 and len(host.initiator.sessions) == 1


def test_a_session_nothing_uses_is_logged_out_only_when_the_config_says_so(host: Host):
    attachment, _ = host.service.attach(LUN1)
    host.journal.remove_attachment(attachment.lun_uuid)
    unmap_behind_the_agents_back(host, LUN1)
    assert ("remove_device", "lun_unmapped", True) in taken(reconcile(host))
    assert taken(reconcile(host)) == [("logout", "idle", True)]
    assert host.initiator.sessions == {}


def test_a_session_that_carries_a_device_is_never_logged_out(host: Host):
    attachment, _ = host.service.attach(LUN1)
    host.journal.remove_attachment(attachment.lun_uuid)  # a device nobody tracks, still mapped
    actions = reconcile(host)
    assert all(a.action != "logout" for a in actions)
    assert len(host.initiator.sessions) == 1 and disks(host) == ["sda"]


def test_a_dangling_by_path_link_is_removed(host: Host):
    link = host.tree.root / "dev/disk/by-path/ip-127.0.0.1:3260-iscsi-iqn.x:vs.3-lun-9"
    link.symlink_to("../../sdzz")
    other = host.tree.root / "dev/disk/by-path/pci-0000:00:1f.2-ata-1"  # not an iSCSI link: not ours
    other.symlink_to("../../sdyy")
    assert ("remove_link", "device_gone", True) in taken(reconcile(host))
    assert not link.is_symlink() and other.is_symlink()


def test_an_igroup_deleted_on_the_array_is_made_again(host: Host):
    host.service.attach(LUN1)
    host.service.detach(LUN1, force=False)
    with host.sim.state.lock:
        state = host.sim.state
        state.destroy_igroup(state.igroup(SVM, name=OWN_IGROUP))
    assert taken(reconcile(host)) == [("repair_igroup", "igroup_missing", True)]
    assert array_igroups_named(host.sim, OWN_IGROUP) == 1


def test_the_initiator_taken_out_of_an_unused_igroup_is_put_back_when_the_igroup_is_next_read(host: Host):
    host.service.attach(LUN1)
    host.service.detach(LUN1, force=False)  # nothing on the host hangs on the igroup's maps
    assert reconcile(host) == []  # the first pass reads the igroup, then every IGROUP_CHECK_EVERY-th
    with host.sim.state.lock:
        state = host.sim.state
        state.remove_initiator(state.igroup(SVM, name=OWN_IGROUP), INITIATOR)
    for _ in range(IGROUP_CHECK_EVERY - 1):
        assert reconcile(host) == []
    assert taken(reconcile(host)) == [("repair_igroup", "initiator_missing", True)]
    with host.sim.state.lock:
        assert INITIATOR in host.sim.state.igroup(SVM, name=OWN_IGROUP).initiators


def test_a_pass_waits_for_an_attach_in_flight_and_gives_up_when_kept_busy(host: Host):
    gate = host.services.reconciler._gate
    with gate.operation():
        host.services.reconciler._busy_timeout = 0.05
        with pytest.raises(ReconcileBusy):
            reconcile(host)
    assert reconcile(host) == []


def test_passes_never_overlap(host: Host):
    host.service.attach(LUN1)
    inside = threading.Event()
    release = threading.Event()
    reader = host.services.reconciler._reader
    original = reader.read

    def slow_read():
        inside.set()
        release.wait(10)
        return original()

    reader.read = slow_read  # type: ignore[method-assign]
    first = threading.Thread(target=reconcile, args=(host,))
    first.start()
    assert inside.wait(10)
    inside.clear()
    second = threading.Thread(target=reconcile, args=(host,))
    second.start()
    assert not inside.wait(0.2)  # the second pass waits for the first to end
    release.set()
    first.join(10)
    second.join(10)
    assert inside.is_set()


def test_every_action_is_counted_by_action_reason_and_result(host: Host):
    counted: list[tuple[str, str, str]] = []

    class Counting:
        def __getattr__(self, name):
            return lambda *args: counted.append(args) if name == "reconcile_action" else None

    host.services.reconciler._observer = Counting()  # type: ignore[assignment]
    host.service.attach(LUN1)
    unmap_behind_the_agents_back(host, LUN1)
    reconcile(host)
    assert ("remove_device", "lun_unmapped", "done") in counted
    assert ("report", "attachment_unmapped", "reported") in counted


def test_the_pass_is_journalled_as_one_operation(host: Host):
    host.service.attach(LUN1)
    unmap_behind_the_agents_back(host, LUN1)
    reconcile(host)
    row = host.journal._db.execute("SELECT kind, outcome FROM operation ORDER BY id DESC LIMIT 1").fetchone()
    assert tuple(row) == ("reconcile", "succeeded")


def test_drift_is_logged_as_a_warning_once_not_every_pass(host: Host, caplog: pytest.LogCaptureFixture):
    host.service.attach(LUN1)
    array_map(host.sim, LUN2, OWN_IGROUP)
    with caplog.at_level("WARNING", logger="iscsi_agent.reconcile"):
        for _ in range(3):
            assert taken(reconcile(host)) == [("report", "unrequested_map", False)]
    warned = [r.getMessage() for r in caplog.records if "unrequested_map" in r.getMessage()]
    assert warned == [f"reconcile: unrequested_map: {LUN2} (LUN {array_maps(host.sim, LUN2)[0][1]})"]


# Maps that reach this host through another igroup (a cluster's igroup holding this host's initiator)

CLUSTER_IGROUP = "cluster-rack-4"
NEIGHBOUR = "iqn.1994-05.com.redhat:compute-8"


def map_through_a_cluster_igroup(host: Host, path: str) -> None:
    array_igroup(host.sim, CLUSTER_IGROUP, INITIATOR, NEIGHBOUR)
    array_map(host.sim, path, CLUSTER_IGROUP)


def test_a_device_the_journal_does_not_know_at_a_lun_mapped_through_another_igroup_stays(host: Host):
    map_through_a_cluster_igroup(host, LUN2)
    host.service.attach(LUN1)
    attachment, _ = host.service.attach(LUN2)
    recorded = host.journal.attachment(attachment.lun_uuid)
    assert recorded is not None and recorded.attachment.igroup == CLUSTER_IGROUP
    host.journal.remove_attachment(attachment.lun_uuid)  # still on the host, e.g. scanned in by hand
    before = disks(host)
    actions = reconcile(host)
    assert [a for a in actions if a.action == "remove_device"] == []
    assert disks(host) == before and len(before) == 2
    assert taken(actions) == []  # the cluster's map is someone else's: not reported as unrequested


def test_an_attached_lun_mapped_through_another_igroup_costs_one_array_request_per_steady_pass(host: Host):
    map_through_a_cluster_igroup(host, LUN2)
    host.service.attach(LUN1)
    host.service.attach(LUN2)
    reconcile(host)  # the first pass also reads the igroup itself
    before = host.array_requests()
    assert reconcile(host) == []
    assert host.array_requests() - before == 1
    assert len(disks(host)) == 2


def test_a_device_at_an_id_the_cluster_igroup_no_longer_maps_is_removed(host: Host):
    map_through_a_cluster_igroup(host, LUN2)
    attachment, _ = host.service.attach(LUN2)
    host.journal.remove_attachment(attachment.lun_uuid)
    with host.sim.state.lock:
        state = host.sim.state
        state.unmap_lun(state.lun(SVM, path=LUN2), state.igroup(SVM, name=CLUSTER_IGROUP))
    assert ("remove_device", "lun_unmapped", True) in taken(reconcile(host))
    assert disks(host) == []


def test_when_the_maps_cannot_be_read_the_pass_changes_nothing(host: Host):
    map_through_a_cluster_igroup(host, LUN2)
    attachment, _ = host.service.attach(LUN2)
    host.journal.remove_attachment(attachment.lun_uuid)
    reconcile(host)
    before = disks(host)
    for match in ("lun-initiator-list-map-info", "GET /api/protocols/san/lun-maps"):
        host.sim.faults.inject(match, "http_status", times=None, status=500)
    with pytest.raises(AgentError):
        reconcile(host)
    assert disks(host) == before and len(before) == 1


def test_a_device_the_journal_does_not_know_stays_while_this_hosts_initiator_is_out_of_its_igroup(
    host: Host,
):
    attachment, _ = host.service.attach(LUN1)
    host.journal.remove_attachment(attachment.lun_uuid)
    reconcile(host)
    with host.sim.state.lock:
        state = host.sim.state
        state.remove_initiator(state.igroup(SVM, name=OWN_IGROUP), INITIATOR)
    # the LUN reaches the host again once the igroup is repaired: not stale on this pass's view
    actions = reconcile(host)
    assert ("repair_igroup", "initiator_missing", True) in taken(actions)
    assert [a for a in actions if a.action == "remove_device"] == []
    assert disks(host) == ["sda"]


# --- a LUN grown on the array, not yet resized on the host ---------------------------------------------
def passes(host: Host, count: int) -> list[list[ReconcileAction]]:
    return [reconcile(host) for _ in range(count)]


def test_an_attached_lun_grown_on_the_array_is_reported_degrades_health_until_resized(host: Host):
    attachment, _ = host.service.attach(LUN1)
    # passes 0 .. SIZE_CHECK_PASS: the last one reads the sizes, nothing grown
    assert all(actions == [] for actions in passes(host, SIZE_CHECK_PASS + 1))
    grow_on_the_array(host, LUN1, 3 << 30)
    *before, actions = passes(host, SIZE_CHECK_EVERY)  # up to the next pass that reads them
    assert all(earlier == [] for earlier in before)  # the size as last read until then
    grown = f"/vol/vol1/lun1: {3 << 30} bytes on the array, /dev/sda {2 << 30}"
    assert [(a.action, a.target, a.reason, a.done) for a in actions] == [
        ("report", f"{grown}: reported", "lun_grown", False)
    ]
    [problem] = host.services.reconciler.degraded
    assert problem == f"{grown}; resize it (POST /v1/attachments/{{volume}}/resize)"
    assert reconcile(host)[0].reason == "lun_grown"  # every pass while it lasts, the host read again
    host.service.resize(LUN1)
    assert reconcile(host) == [] and host.services.reconciler.degraded == []
    assert host.service.attachment(LUN1) == attachment


def test_the_sizes_cost_one_request_every_tenth_pass_halfway_between_igroup_checks(host: Host):
    host.service.attach(LUN1)
    host.service.attach(LUN2)
    counts = []
    for _ in range(2 * SIZE_CHECK_EVERY):
        before = host.array_requests()
        reconcile(host)
        counts.append(host.array_requests() - before)
    with_igroup, with_sizes = [0, SIZE_CHECK_EVERY], [SIZE_CHECK_PASS, SIZE_CHECK_PASS + SIZE_CHECK_EVERY]
    assert counts == [2 if n in with_igroup + with_sizes else 1 for n in range(2 * SIZE_CHECK_EVERY)]
