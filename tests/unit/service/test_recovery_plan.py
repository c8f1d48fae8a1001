"""What recovery decides from the journal alone: keep, roll back (and what), finish, or close."""

from __future__ import annotations

from datetime import UTC, datetime

from iscsi_agent.journal.model import (
    Attachment,
    AttachmentState,
    Kind,
    Operation,
    OperationId,
    Outcome,
    ParamValue,
    Step,
    StepId,
    StepRecord,
    StepStatus,
)
from iscsi_agent.naa import multipath_wwid, netapp_wwid
from iscsi_agent.portal import Portal
from iscsi_agent.service.recovery import Resolution, plan_recovery

OWN = "openstack-compute-7-36d47c79"
SERIAL = "80AbC?d$/x-1"
WHEN = datetime(2026, 12, 1, tzinfo=UTC)


def step(
    seq: int,
    name: Step,
    status: StepStatus = StepStatus.DONE,
    result: dict[str, ParamValue] | None = None,
    **params: ParamValue,
) -> StepRecord:
    return StepRecord(StepId(OperationId(7), seq), name, params, status, WHEN, result=result)


def attach(*steps: StepRecord, kind: Kind = Kind.ATTACH) -> Operation:
    return Operation(OperationId(7), kind, "lun1", "uuid-1", WHEN, steps)


def recorded(state: AttachmentState) -> Attachment:
    return Attachment(
        "uuid-1", "/vol/vol1/lun1", "lun1", "svm1", SERIAL, multipath_wwid(SERIAL), 3, OWN, True,
        "iqn.t", (Portal("127.0.0.1"),), False, state, "/dev/disk/by-id/wwn-0x" + netapp_wwid(SERIAL),
    )  # fmt: skip


def mapped(status: StepStatus = StepStatus.DONE, igroup: str = OWN, created: bool = True) -> StepRecord:
    result: dict[str, ParamValue] | None = (
        {"lun_id": 0, "created": created, "igroup": igroup} if status is StepStatus.DONE else None
    )
    return step(2, Step.MAP, status, result, lun_path="/vol/vol1/lun1", igroup=igroup)


def scanned() -> StepRecord:
    return step(
        4, Step.SCAN, StepStatus.INTENDED, target_iqn="iqn.t", lun_id=0, portal="127.0.0.1:3260",
        wwid=netapp_wwid(SERIAL),
    )  # fmt: skip


def test_an_attach_that_handed_out_its_device_stands():
    plan = plan_recovery(attach(mapped(), scanned()), recorded(AttachmentState.ATTACHED), OWN)
    assert (plan.resolution, plan.outcome) == (Resolution.KEEP, Outcome.SUCCEEDED)


def test_an_attach_that_changed_nothing_is_closed():
    plan = plan_recovery(attach(step(1, Step.IGROUP, igroup=OWN)), None, OWN)
    assert (plan.resolution, plan.undo) == (Resolution.CLOSE, None)


def test_an_attach_stopped_after_its_scan_rolls_back_its_map_paths_and_session():
    plan = plan_recovery(attach(mapped(), scanned()), None, OWN)
    assert (plan.resolution, plan.outcome) == (Resolution.ROLL_BACK, Outcome.ROLLED_BACK)
    undo = plan.undo
    assert undo is not None and undo.state is AttachmentState.DETACHING
    assert (undo.lun_path, undo.igroup, undo.map_created, undo.lun_id) == ("/vol/vol1/lun1", OWN, True, 0)
    assert (undo.serial, undo.wwid) == (SERIAL, multipath_wwid(SERIAL))
    assert (undo.target_iqn, undo.portals) == ("iqn.t", (Portal("127.0.0.1"),))


def test_a_map_that_was_there_before_the_attach_is_never_undone():
    plan = plan_recovery(attach(mapped(created=False)), None, OWN)
    assert plan.undo is not None and plan.undo.map_created is False


def test_a_map_of_unknown_outcome_is_undone_in_the_hosts_own_igroup_only():
    own = plan_recovery(attach(mapped(StepStatus.INTENDED)), None, OWN)
    elsewhere = plan_recovery(attach(mapped(StepStatus.INTENDED, igroup="shared-hosts")), None, OWN)
    assert own.undo is not None and own.undo.map_created is True
    assert elsewhere.undo is not None and elsewhere.undo.map_created is False


def test_a_detach_is_finished_from_its_attachment_record():
    plan = plan_recovery(attach(kind=Kind.DETACH), recorded(AttachmentState.DETACHING), OWN)
    assert (plan.resolution, plan.outcome) == (Resolution.FINISH_DETACH, Outcome.SUCCEEDED)
    assert plan.undo == recorded(AttachmentState.DETACHING)


def test_a_detach_whose_record_is_gone_had_done_its_work():
    assert plan_recovery(attach(kind=Kind.DETACH), None, OWN).resolution is Resolution.CLOSE


def test_an_interrupted_reconciler_pass_is_closed_for_the_next_pass_to_see_again():
    plan = plan_recovery(attach(step(1, Step.REMOVE_PATHS, wwid="x"), kind=Kind.RECONCILE), None, OWN)
    assert (plan.resolution, plan.outcome) == (Resolution.CLOSE, Outcome.SUCCEEDED)


def test_a_detach_whose_volume_a_client_attached_again_since_is_left_to_the_newer_attach():
    plan = plan_recovery(attach(kind=Kind.DETACH), recorded(AttachmentState.ATTACHED), OWN, reattached=True)
    assert (plan.resolution, plan.undo, plan.outcome) == (Resolution.SUPERSEDED, None, Outcome.CANCELLED)
