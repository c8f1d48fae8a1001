"""Start-up recovery after the agent died at each fault point of an attach, a detach, and recovery itself.

Here a "kill" stops the thread that reaches the armed point for good (nothing after it runs: no
rollback, no ``finally``), and the restart builds a new agent over the same journal file, array and
host. The VM tier does the same with a real SIGKILL on a real kernel.
"""

from __future__ import annotations

import pytest

from iscsi_agent.faults import faults
from iscsi_agent.journal.model import Kind, Outcome
from iscsi_agent.service.recovery import Resolution
from tests.contract.helpers import array_igroups_named, array_maps
from tests.fault_points import ATTACH_POINTS, DETACH_POINTS, RECOVERY_POINTS
from tests.unit.service.conftest import (
    OWN_IGROUP,
    Host,
    assert_nothing_left,
    disks,
    leave_a_detach_open,
    refuse_unmaps,
    unmap_behind_the_agents_back,
)

LUN1, LUN2 = "/vol/vol1/lun1", "/vol/vol1/lun2"


def test_the_fault_points_are_every_journalled_step_of_an_attach_and_a_detach(
    host: Host, monkeypatch: pytest.MonkeyPatch
):
    reached: list[str] = []
    monkeypatch.setattr(faults, "hit", reached.append)
    host.service.attach(LUN1)
    host.service.detach(LUN1, force=False)
    assert reached == ATTACH_POINTS + DETACH_POINTS


@pytest.mark.parametrize("point", ATTACH_POINTS[:-1])
def test_an_attach_killed_before_it_handed_out_its_device_is_rolled_back_at_start_up(
    host: Host, crash, point: str
):
    crash(point, lambda: host.service.attach(LUN1))
    host.restart()
    recovered = host.services.recovery.run()
    assert [(r.kind, r.error) for r in recovered] == [(Kind.ATTACH, None)]
    assert_nothing_left(host)
    assert array_igroups_named(host.sim, OWN_IGROUP) <= 1
    _, created = host.service.attach(LUN1)  # and the volume attaches as if nothing happened
    assert created and len(disks(host)) == 1


def test_an_attach_killed_after_it_handed_out_its_device_stands(host: Host, crash):
    crash("attach.handed_out.done", lambda: host.service.attach(LUN1))
    host.restart()
    recovered = host.services.recovery.run()
    assert [r.resolution for r in recovered] == [Resolution.KEEP]
    assert [a.volume for a in host.service.attachments()] == [LUN1]
    assert disks(host) == ["sda"] and len(array_maps(host.sim, LUN1)) == 1
    assert host.journal.in_flight() == []


@pytest.mark.parametrize("point", DETACH_POINTS)
def test_a_detach_killed_anywhere_is_finished_at_start_up(host: Host, crash, point: str):
    host.service.attach(LUN1)
    crash(point, lambda: host.service.detach(LUN1, force=False))
    host.restart()
    recovered = host.services.recovery.run()
    assert [(r.kind, r.error) for r in recovered] == [(Kind.DETACH, None)]
    assert_nothing_left(host)


@pytest.mark.parametrize("point", RECOVERY_POINTS)
def test_a_recovery_killed_anywhere_is_carried_on_by_the_next_start(host: Host, crash, point: str):
    crash("attach.scan.done", lambda: host.service.attach(LUN1))
    host.restart()
    crash(point, host.services.recovery.run)
    host.restart()
    host.services.recovery.run()
    assert_nothing_left(host)


def test_an_attach_beside_a_kept_one_rolls_back_only_what_it_did(host: Host, crash):
    host.service.attach(LUN2)
    crash("attach.scan.done", lambda: host.service.attach(LUN1))
    host.restart()
    host.services.recovery.run()
    assert [a.volume for a in host.service.attachments()] == [LUN2]
    assert array_maps(host.sim, LUN1) == [] and len(array_maps(host.sim, LUN2)) == 1
    assert disks(host) == ["sda"] and len(host.initiator.sessions) == 1  # LUN2's session stays


def test_a_detach_whose_device_is_in_use_again_is_attached_again(host: Host, crash):
    host.service.attach(LUN1)
    crash("detach.begun", lambda: host.service.detach(LUN1, force=False))
    host.tree.mount("sda", "/srv/data")  # used again after the agent died
    host.restart()
    recovered = host.services.recovery.run()
    assert [r.error for r in recovered] == ["device_in_use"]
    assert [a.volume for a in host.service.attachments()] == [LUN1]
    assert disks(host) == ["sda"] and host.journal.in_flight() == []
    assert host.services.recovery.pending == frozenset()


def test_a_rollback_the_array_refuses_stays_open_and_is_retried(host: Host, crash):
    crash("attach.map.done", lambda: host.service.attach(LUN1))
    host.restart()
    refuse_unmaps(host)
    recovered = host.services.recovery.run()
    assert recovered[0].error is not None and host.services.recovery.pending
    assert len(array_maps(host.sim, LUN1)) == 1
    host.sim.faults.clear()
    host.services.recovery.retry()
    assert_nothing_left(host)


def test_recovery_writes_its_undo_into_the_interrupted_operation(host: Host, crash):
    crash("attach.scan.done", lambda: host.service.attach(LUN1))
    host.restart()
    [op] = host.journal.in_flight()
    host.services.recovery.run()
    assert host.journal.in_flight() == []
    finished = host.journal._db.execute("SELECT outcome FROM operation WHERE id = ?", (op.id,)).fetchone()
    assert finished[0] == Outcome.ROLLED_BACK.value
    steps = [
        row[0]
        for row in host.journal._db.execute(
            "SELECT name FROM step WHERE operation_id = ? ORDER BY seq", (op.id,)
        ).fetchall()
    ]
    assert steps == ["igroup", "map", "login", "scan", "remove_paths", "unmap", "logout"]


def test_a_detach_left_open_is_not_finished_over_a_newer_attach_of_the_volume(host: Host, crash):
    leave_a_detach_open(host, crash, LUN1)
    again, _ = host.service.attach(LUN1)  # the client wants the volume back meanwhile
    assert [r.resolution for r in host.services.recovery.retry()] == [Resolution.SUPERSEDED]
    assert host.service.attachments() == [again] and len(disks(host)) == 1
    assert host.journal.in_flight() == []


def test_a_reconciler_pass_killed_midway_is_closed_at_start_up_and_the_next_pass_finishes_it(
    host: Host, crash
):
    host.service.attach(LUN1)
    unmap_behind_the_agents_back(host, LUN1)
    crash("reconcile.remove_paths.intended", host.services.reconciler.run)
    host.restart()
    [recovered] = host.services.recovery.run()
    assert (recovered.kind, recovered.resolution) == (Kind.RECONCILE, Resolution.CLOSE)
    actions = host.services.reconciler.run()
    assert [(a.action, a.reason, a.done) for a in actions if a.action == "remove_device"] == [
        ("remove_device", "lun_unmapped", True)
    ]
    assert disks(host) == [] and host.journal.in_flight() == []
