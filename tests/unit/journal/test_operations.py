"""Every step of an attach or detach is written before it is taken, then settled once; an operation
that was never finished (the agent died) is in flight, with its last step's outcome unknown."""

from __future__ import annotations

import shutil
from datetime import timedelta

import pytest

from iscsi_agent.journal.errors import JournalMisuse
from iscsi_agent.journal.model import STEP_PARAMS, Kind, OperationId, Outcome, Step, StepId, StepStatus
from iscsi_agent.journal.store import Journal
from tests.unit.journal.fakes import START

IQN = "iqn.1992-08.com.netapp:sn.0123456789abcdef:vs.3"
MAP = {"lun_path": "/vol/vol1/lun0", "igroup": "openstack-compute1-1a2b3c4d"}


def test_a_step_is_on_record_as_intended_before_its_outcome(journal, clock):
    op = journal.begin(Kind.ATTACH, "/vol/vol1/lun0")
    clock.advance(1)
    step = journal.intend(op, Step.MAP, mapped_before=False, **MAP)

    [intended] = journal.in_flight()[0].steps
    assert intended.id == step == StepId(op, 1)
    assert intended.step is Step.MAP
    assert intended.params == {**MAP, "mapped_before": False}
    assert intended.status is StepStatus.INTENDED
    assert intended.intended_at == START + timedelta(seconds=1)
    assert intended.settled_at is None and intended.result is None

    clock.advance(2)
    journal.record_done(step, lun_id=3, created=True)

    [done] = journal.in_flight()[0].steps
    assert done.status is StepStatus.DONE
    assert done.result == {"lun_id": 3, "created": True}
    assert done.settled_at == START + timedelta(seconds=3)
    assert done.params == intended.params


def test_a_failed_step_keeps_the_error_code_and_message(journal):
    op = journal.begin(Kind.ATTACH, "lun0")
    step = journal.intend(op, Step.LOGIN, target_iqn=IQN, portal="127.0.0.1:3260", session_existed=False)
    journal.record_failed(step, "iscsi_auth_failed", "iscsiadm: login failed (exit 24)")

    [failed] = journal.in_flight()[0].steps
    assert failed.status is StepStatus.FAILED
    assert (failed.error_code, failed.error_message) == (
        "iscsi_auth_failed",
        "iscsiadm: login failed (exit 24)",
    )
    assert failed.result is None


def test_an_outcome_for_a_step_never_intended_is_refused(journal):
    op = journal.begin(Kind.ATTACH, "lun0")
    with pytest.raises(JournalMisuse, match=rf"step {op}\.1 was never intended"):
        journal.record_done(StepId(op, 1))


def test_a_step_is_settled_only_once(journal):
    op = journal.begin(Kind.DETACH, "lun0")
    step = journal.intend(op, Step.FLUSH, device="/dev/sdc")
    journal.record_done(step)
    with pytest.raises(JournalMisuse, match="already settled"):
        journal.record_done(step)
    with pytest.raises(JournalMisuse, match="already settled"):
        journal.record_failed(step, "device_in_use", "mounted at /mnt")
    assert journal.in_flight()[0].steps[0].status is StepStatus.DONE


def test_an_intent_must_carry_what_recovery_needs_to_find_the_step(journal, path):
    op = journal.begin(Kind.ATTACH, "lun0")
    with pytest.raises(JournalMisuse, match="map intent lacks lun_path") as caught:
        journal.intend(op, Step.MAP, igroup="openstack-compute1-1a2b3c4d")
    assert caught.value.details["path"] == str(path)
    assert journal.in_flight()[0].steps == ()


def test_every_step_declares_the_parameters_its_intent_needs():
    assert set(STEP_PARAMS) == set(Step)
    assert STEP_PARAMS[Step.MAP] == STEP_PARAMS[Step.UNMAP] == {"lun_path", "igroup"}
    assert STEP_PARAMS[Step.LOGIN] == STEP_PARAMS[Step.LOGOUT] == {"target_iqn", "portal"}


@pytest.mark.parametrize("name", ["chap_secret", "password", "mutual_chap_Secret", "passwd"])
def test_a_value_named_like_a_secret_is_never_written(journal, name):
    op = journal.begin(Kind.ATTACH, "lun0")
    with pytest.raises(JournalMisuse, match="looks like a secret"):
        journal.intend(op, Step.LOGIN, target_iqn=IQN, portal="127.0.0.1:3260", **{name: "s3cret!"})
    step = journal.intend(op, Step.LOGIN, target_iqn=IQN, portal="127.0.0.1:3260", chap_username="u")
    with pytest.raises(JournalMisuse, match="looks like a secret"):
        journal.record_done(step, **{name: "s3cret!"})
    assert b"s3cret!" not in b"".join(p.read_bytes() for p in journal.path.parent.iterdir())


def test_steps_are_numbered_in_the_order_they_were_intended_and_settle_in_any_order(journal):
    """With multipath the logins to two portals run at once, in one operation."""
    op = journal.begin(Kind.ATTACH, "lun0")
    first = journal.intend(op, Step.LOGIN, target_iqn=IQN, portal="127.0.0.1:3260")
    second = journal.intend(op, Step.LOGIN, target_iqn=IQN, portal="127.0.0.2:3260")
    journal.record_done(second, session_existed=False)

    steps = journal.in_flight()[0].steps
    assert [step.id.seq for step in steps] == [1, 2]
    assert [(step.params["portal"], step.status) for step in steps] == [
        ("127.0.0.1:3260", StepStatus.INTENDED),
        ("127.0.0.2:3260", StepStatus.DONE),
    ]
    assert journal.in_flight()[0].unsettled == (steps[0],)
    assert first < second


def test_values_come_back_as_they_were_written(journal):
    op = journal.begin(Kind.ATTACH, "lun0")
    params = {
        "wwid": "600a0980",
        "lun_id": 0,
        "portals": ("127.0.0.1:3260", "[fd00::11]:3260"),
        "existed": False,
        "holder": None,
        "waited": 1.5,
    }
    step = journal.intend(op, Step.WAIT_DEVICE, **params)
    journal.record_done(step, device="/dev/sdc", links=("wwn-0x600a0980",))

    [record] = journal.in_flight()[0].steps
    assert record.params == params
    assert record.result == {"device": "/dev/sdc", "links": ("wwn-0x600a0980",)}


def test_a_finished_operation_is_no_longer_in_flight(journal):
    op = journal.begin(Kind.ATTACH, "lun0")
    journal.record_done(journal.intend(op, Step.LOOKUP), lun_uuid="u-1")
    journal.finish(op, Outcome.SUCCEEDED)
    assert journal.in_flight() == []


def test_an_operation_cannot_finish_while_a_step_is_open(journal):
    op = journal.begin(Kind.ATTACH, "lun0")
    journal.intend(op, Step.MAP, **MAP)
    with pytest.raises(JournalMisuse, match=rf"step {op}\.1 \(map\) is open"):
        journal.finish(op, Outcome.SUCCEEDED)
    assert [o.id for o in journal.in_flight()] == [op]


def test_an_error_code_goes_with_a_failed_operation_and_only_with_one(journal):
    op = journal.begin(Kind.ATTACH, "lun0")
    with pytest.raises(JournalMisuse, match="error code"):
        journal.finish(op, Outcome.FAILED)
    with pytest.raises(JournalMisuse, match="error code"):
        journal.finish(op, Outcome.SUCCEEDED, error_code="array_timeout")
    journal.finish(op, Outcome.FAILED, error_code="array_timeout")
    assert journal.in_flight() == []


def test_a_finished_operation_takes_no_more_steps_and_no_second_finish(journal):
    op = journal.begin(Kind.DETACH, "lun0")
    journal.finish(op, Outcome.CANCELLED)
    with pytest.raises(JournalMisuse, match=f"operation {op} has finished"):
        journal.intend(op, Step.FLUSH, device="/dev/sdc")
    with pytest.raises(JournalMisuse, match=f"operation {op} has finished"):
        journal.finish(op, Outcome.SUCCEEDED)
    with pytest.raises(JournalMisuse, match="no operation 99"):
        journal.identify(OperationId(99), "u-0")


def test_in_flight_operations_are_listed_oldest_first_with_the_lun_they_concern(journal, clock):
    attach = journal.begin(Kind.ATTACH, "lun0")
    clock.advance(5)
    detach = journal.begin(Kind.DETACH, "/vol/vol1/lun1", lun_uuid="u-1")
    journal.identify(attach, "u-0")

    operations = journal.in_flight()
    assert [(o.id, o.kind, o.volume, o.lun_uuid) for o in operations] == [
        (attach, Kind.ATTACH, "lun0", "u-0"),
        (detach, Kind.DETACH, "/vol/vol1/lun1", "u-1"),
    ]
    assert operations[1].started_at == START + timedelta(seconds=5)


def test_an_agent_that_dies_mid_step_leaves_the_operation_in_flight_with_that_step_unknown(path, clock):
    """What start-up recovery reads: the map was intended, and nobody knows whether the array made it."""
    journal = Journal.open(path, clock)
    op = journal.begin(Kind.ATTACH, "lun0")
    journal.record_done(journal.intend(op, Step.LOOKUP), lun_uuid="u-0", serial="wH5?k2Lm/9Qa")
    journal.record_done(journal.intend(op, Step.IGROUP, igroup=MAP["igroup"]), created=False)
    journal.intend(op, Step.MAP, mapped_before=False, **MAP)
    journal.close()  # the process dies: no outcome, no finish

    with Journal.open(path, clock) as after_restart:
        [interrupted] = after_restart.in_flight()
        assert interrupted.id == op
        assert [(s.step, s.status) for s in interrupted.steps] == [
            (Step.LOOKUP, StepStatus.DONE),
            (Step.IGROUP, StepStatus.DONE),
            (Step.MAP, StepStatus.INTENDED),
        ]
        [unknown] = interrupted.unsettled
        assert unknown.params == {**MAP, "mapped_before": False}

        # recovery looks at the array, settles the step, undoes it and closes the operation
        after_restart.record_done(unknown.id, lun_id=1, created=True)
        undo = after_restart.intend(op, Step.UNMAP, **MAP)
        after_restart.record_done(undo)
        after_restart.finish(op, Outcome.ROLLED_BACK)
        assert after_restart.in_flight() == []


def test_what_a_killed_agent_leaves_on_disk_is_the_record_up_to_its_last_intent(path, clock, tmp_path):
    """SIGKILL: no close, no checkpoint; the committed records live in the WAL, and they are enough."""
    journal = Journal.open(path, clock)
    op = journal.begin(Kind.DETACH, "lun0", lun_uuid="u-0")
    journal.record_done(journal.intend(op, Step.FLUSH, device="/dev/sdc"))
    journal.intend(op, Step.LOGOUT, target_iqn=IQN, portal="127.0.0.1:3260", delete_record=True)
    left_behind = tmp_path / "after-kill"
    left_behind.mkdir(mode=0o700)
    for name in (
        path.name,
        path.name + "-wal",
    ):  # what is on disk at this moment, as a power cut would find it
        shutil.copyfile(path.parent / name, left_behind / name)

    with Journal.open(left_behind / path.name, clock) as after_restart:
        [interrupted] = after_restart.in_flight()
        assert (interrupted.kind, interrupted.lun_uuid) == (Kind.DETACH, "u-0")
        assert [(s.step, s.status) for s in interrupted.steps] == [
            (Step.FLUSH, StepStatus.DONE),
            (Step.LOGOUT, StepStatus.INTENDED),
        ]
    journal.close()


def test_pruning_forgets_old_finished_operations_but_never_one_in_flight(journal, clock):
    old = journal.begin(Kind.ATTACH, "lun0")
    journal.record_done(journal.intend(old, Step.LOOKUP))
    journal.finish(old, Outcome.SUCCEEDED)
    stuck = journal.begin(Kind.ATTACH, "lun1")
    clock.advance(3600)
    recent = journal.begin(Kind.DETACH, "lun0")
    journal.finish(recent, Outcome.SUCCEEDED)

    assert journal.prune(finished_before=START + timedelta(minutes=30)) == 1
    assert journal.prune(finished_before=START + timedelta(minutes=30)) == 0
    assert [o.id for o in journal.in_flight()] == [stuck]

    journal.finish(stuck, Outcome.CANCELLED)
    assert journal.prune(finished_before=START + timedelta(days=1)) == 2
    assert journal.begin(Kind.ATTACH, "lun2") > recent  # an id is never reused, even once forgotten
