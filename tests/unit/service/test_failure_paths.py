"""What an attach leaves when it fails, and what start-up recovery undoes: only what the agent did, and
nothing forgotten (a rollback the array refuses, a journal write that fails, a re-attach after a reboot,
a map an operator made, a device scanned in by hand, a clock that stepped back)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from iscsi_agent.errors import AgentError
from iscsi_agent.journal.errors import JournalIoError
from iscsi_agent.journal.model import Kind, Step, StepId
from iscsi_agent.journal.store import Journal
from iscsi_agent.service.recovery import Resolution
from tests.contract.helpers import array_map, array_maps
from tests.unit.service.conftest import (
    OWN_IGROUP,
    Host,
    assert_nothing_left,
    config_for,
    disks,
    host_layer,
    leave_a_detach_open,
    refuse_unmaps,
    serial_of,
)

LUN1, LUN2 = "/vol/vol1/lun1", "/vol/vol1/lun2"


def never_appears(host: Host, path: str) -> None:
    """The target never offers the LUN: the attach maps and logs in, then waits for a device in vain."""
    host.initiator.hidden.add(serial_of(host, path))


def reboot(host: Host) -> None:
    """The host restarts: node records are manual-startup, so no session (and no disk) comes back."""
    for (_, _), session in list(host.initiator.sessions.items()):
        host.tree.remove_session(session.sid, session.host)
    host.initiator.sessions.clear()


# --- case 1: a rollback the array refuses -----------------------------------------------------------
def test_an_attach_whose_rollback_could_not_unmap_stays_open_for_recovery(host: Host):
    never_appears(host, LUN1)
    refuse_unmaps(host)
    with pytest.raises(AgentError, match="device"):
        host.service.attach(LUN1)
    assert len(array_maps(host.sim, LUN1)) == 1  # the array refused the unmap
    [open_op] = host.journal.in_flight()
    assert open_op.kind is Kind.ATTACH
    assert host.services.recovery.pending == {open_op.id}
    assert any("not yet recovered" in problem for problem in host.services.reconciler.degraded)
    host.sim.faults.clear()
    host.services.reconciler.run()  # a pass retries what recovery holds open
    assert array_maps(host.sim, LUN1) == []
    assert host.journal.in_flight() == [] and host.services.recovery.pending == frozenset()


def test_an_attach_whose_rollback_could_not_unmap_is_finished_by_the_next_start(host: Host):
    never_appears(host, LUN1)
    refuse_unmaps(host)
    with pytest.raises(AgentError, match="device"):
        host.service.attach(LUN1)
    host.sim.faults.clear()
    host.restart()  # before any reconciler pass: the open operation is in the journal only
    host.services.recovery.run()
    assert array_maps(host.sim, LUN1) == []
    assert host.journal.in_flight() == [] and host.services.recovery.pending == frozenset()
    assert_nothing_left(host)


def test_an_attach_whose_rollback_succeeded_is_closed_and_leaves_nothing(host: Host):
    never_appears(host, LUN1)
    with pytest.raises(AgentError, match="device"):
        host.service.attach(LUN1)
    assert_nothing_left(host)
    assert host.services.recovery.pending == frozenset()


# --- case 12: a journal write that fails after the step was taken -----------------------------------
class FailingJournal(Journal):
    """The journal file whose writes start failing (disk full) once a chosen step has been taken."""

    fail_after: Step | None = None
    failing = False

    def intend(self, op, step, **params):  # type: ignore[no-untyped-def]
        if self.failing:
            raise JournalIoError(self.path, "database or disk is full")
        step_id = super().intend(op, step, **params)
        if step is self.fail_after:
            self.failing = True
        return step_id

    def _settle(self, step: StepId, *args, **kwargs):  # type: ignore[no-untyped-def]
        if self.failing:
            raise JournalIoError(self.path, "database or disk is full")
        return super()._settle(step, *args, **kwargs)

    def finish(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        if self.failing:
            raise JournalIoError(self.path, "database or disk is full")
        return super().finish(*args, **kwargs)


def failing_journal(host: Host, after: Step) -> FailingJournal:
    host.journal.close()
    journal = FailingJournal.open(host.config.agent.state_dir / "journal.sqlite3")
    assert isinstance(journal, FailingJournal)
    journal.fail_after = after
    host.journal = journal
    host.services = host._build()
    return journal


def test_a_journal_write_that_fails_after_the_map_gives_the_client_the_journal_error(host: Host):
    journal = failing_journal(host, Step.MAP)
    with pytest.raises(JournalIoError, match="disk is full"):
        host.service.attach(LUN1)
    assert len(array_maps(host.sim, LUN1)) == 1  # taken, but its outcome could not be written
    journal.failing = False  # space is freed
    [open_op] = host.journal.in_flight()
    assert host.services.recovery.pending == {open_op.id}
    host.services.reconciler.run()
    assert_nothing_left(host)


# --- case 2: a re-attach after a reboot keeps knowing the agent made the map ------------------------
def test_a_volume_attached_again_after_a_reboot_is_unmapped_by_its_detach(host: Host):
    host.service.attach(LUN1)
    reboot(host)
    host.restart()
    host.service.attach(LUN1)  # the recorded device is gone: attached again over the same map
    host.service.detach(LUN1, force=False)
    assert array_maps(host.sim, LUN1) == []
    assert_nothing_left(host)


def test_a_map_an_operator_made_stays_after_attach_and_detach(host: Host):
    lun_id = array_map(host.sim, LUN1, host.services.volumes._view.igroup().name)
    host.service.attach(LUN1)
    host.service.detach(LUN1, force=False)
    assert array_maps(host.sim, LUN1) == [(OWN_IGROUP, lun_id)]


# --- case 6: recovery never unmaps a map that was there before the attach ---------------------------
@pytest.mark.parametrize("point", ["attach.map.intended", "attach.login.intended", "attach.scan.done"])
def test_recovery_leaves_a_map_an_operator_made_before_the_attach(host: Host, crash, point: str):
    lun_id = array_map(host.sim, LUN1, host.services.volumes._view.igroup().name)
    crash(point, lambda: host.service.attach(LUN1))
    host.restart()
    host.services.recovery.run()
    assert array_maps(host.sim, LUN1) == [(OWN_IGROUP, lun_id)]
    assert host.journal.in_flight() == []


def test_recovery_undoes_a_map_of_unknown_outcome_the_attach_may_have_made(host: Host, crash):
    crash("attach.map.intended", lambda: host.service.attach(LUN1))
    array_map(host.sim, LUN1, OWN_IGROUP)  # the request went out and the array made the map
    host.restart()
    host.services.recovery.run()
    assert array_maps(host.sim, LUN1) == []


# --- case 5: recovery never removes a device the attach only found ----------------------------------
def test_recovery_leaves_a_device_the_interrupted_attach_found_scanned_in_by_hand(host: Host, crash):
    lun_id = array_map(host.sim, LUN1, host.services.volumes._view.igroup().name)
    host.service.attach(LUN2)  # a session to the target
    session = next(iter(host.initiator.sessions.values()))
    host.layer.sessions.scan_lun(session.host, lun_id)  # an operator scans LUN1 in by hand
    by_hand = host.initiator.disk_at(session.host, lun_id)
    assert by_hand is not None
    crash("attach.scan.done", lambda: host.service.attach(LUN1))
    host.restart()
    host.services.recovery.run()
    assert by_hand in disks(host)
    assert array_maps(host.sim, LUN1) == [(OWN_IGROUP, lun_id)]


# --- case 7: "attached again since" does not depend on the wall clock -------------------------------
def test_a_detach_left_open_is_not_finished_over_a_newer_attach_after_the_clock_stepped_back(
    host: Host,
    crash,
    monkeypatch: pytest.MonkeyPatch,
):
    leave_a_detach_open(host, crash, LUN1)
    stepped_back = datetime(2020, 1, 1, tzinfo=UTC).timestamp()
    monkeypatch.setattr(host.journal._clock, "time", lambda: stepped_back)  # an RTC that was wrong
    again, _ = host.service.attach(LUN1)
    assert [r.resolution for r in host.services.recovery.retry()] == [Resolution.SUPERSEDED]
    assert host.service.attachments() == [again] and len(disks(host)) == 1
    assert len(array_maps(host.sim, LUN1)) == 1


# --- case 11: a scan that fails after scanning removes what it scanned --------------------------------
def test_a_device_that_stays_at_zero_bytes_is_removed_before_the_unmap(
    host: Host, monkeypatch: pytest.MonkeyPatch
):
    serial = serial_of(host, LUN1)
    add_disk = host.tree.add_disk

    def at_zero_bytes(address, name, disk_serial, **spec):  # type: ignore[no-untyped-def]
        if disk_serial == serial:
            spec["size_bytes"] = 0  # READ CAPACITY keeps failing (tgtd's piled-up unit attentions)
            host.initiator.frozen_capacity.add(name)  # ... on every rescan too
        return add_disk(address, name, disk_serial, **spec)

    monkeypatch.setattr(host.tree, "add_disk", at_zero_bytes)
    with pytest.raises(AgentError, match="0 bytes"):
        host.service.attach(LUN1)
    assert disks(host) == []
    assert array_maps(host.sim, LUN1) == []
    assert host.initiator.sessions == {}


# --- a login whose session never shows in sysfs leaves no session or node record ----------------------
def test_a_login_whose_session_never_shows_leaves_no_record(host: Host, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(host.layer.sessions, "find", lambda target_iqn, portal: None)
    with pytest.raises(AgentError, match="session"):
        host.service.attach(LUN1)
    monkeypatch.undo()
    assert host.initiator.sessions == {} and host.initiator.records == {}
    assert array_maps(host.sim, LUN1) == []


# --- case 10: a multipath map that never comes up whole is rolled back before the unmap -------------
@pytest.fixture
def multipath_host(host: Host) -> Host:
    host.config = config_for(host.sim, host.tree.root, host.config.agent.state_dir, multipath=True)
    host.layer = host_layer(host.config, host.initiator, host.clock, host.block)
    host.services = host._build()
    return host


def test_a_multipath_map_that_never_comes_up_whole_is_flushed_and_its_paths_removed(multipath_host: Host):
    host = multipath_host
    host.initiator.multipath_whole = False  # the map takes its first path and never the second
    with pytest.raises(AgentError, match="multipath map"):
        host.service.attach(LUN1)
    assert host.initiator.multipath_maps() == {} and list((host.tree.root / "dev/mapper").iterdir()) == []
    assert disks(host) == []
    assert array_maps(host.sim, LUN1) == []
    assert host.initiator.sessions == {} and host.journal.in_flight() == []


def test_a_rolled_back_multipath_path_is_let_go_by_multipathd_before_it_is_removed(multipath_host: Host):
    host = multipath_host
    host.initiator.multipath_whole = False
    with pytest.raises(AgentError):
        host.service.attach(LUN1)
    calls = host.initiator.calls
    for name in ("sda", "sdb"):
        let_go = calls.index(("multipathd", "del", "path", name))
        deleted = next(i for i, call in enumerate(calls) if call[:2] == ("multipath", "-f"))
        assert let_go > deleted  # the map goes first, then each path is let go and deleted


def test_a_multipath_attach_and_detach_leave_nothing(multipath_host: Host):
    host = multipath_host
    attachment, _ = host.service.attach(LUN1)
    assert str(attachment.device).startswith("/dev/mapper/3600a0980")
    assert len(host.initiator.multipath_maps()) == 1
    host.service.detach(LUN1, force=False)
    assert host.initiator.multipath_maps() == {} and disks(host) == []
    assert_nothing_left(host)


def test_a_journal_write_that_fails_during_recovery_leaves_the_operation_for_the_next_try(host: Host, crash):
    crash("attach.scan.done", lambda: host.service.attach(LUN1))
    host.restart()
    journal = failing_journal(host, Step.MAP)
    journal.failing = True  # the disk filled while the agent was down
    host.services.recovery.run()
    [open_op] = host.journal.in_flight()
    assert host.services.recovery.pending == {open_op.id}
    journal.failing = False  # space is freed
    host.services.reconciler.run()
    assert host.journal.in_flight() == [] and host.services.recovery.pending == frozenset()
    assert_nothing_left(host)
