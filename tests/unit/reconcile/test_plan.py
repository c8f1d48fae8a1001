"""The reconciler's planner: what a pass saw in, the actions it plans out.

Every state here is synthetic. By convention LUN ``n`` has path, UUID and serial numbered ``n`` and is
mapped at LUN id ``n``; session ``s`` runs on SCSI host ``s``, so a device is named by its session and
LUN id alone.
"""

from pathlib import Path

from iscsi_agent.host.sessions import ScsiAddress
from iscsi_agent.journal.model import Attachment, AttachmentState
from iscsi_agent.naa import multipath_wwid, netapp_wwid
from iscsi_agent.portal import Portal
from iscsi_agent.reconcile.observe import next_chunk
from iscsi_agent.reconcile.plan import Action, ActionKind, Policy, Reason, plan
from iscsi_agent.reconcile.state import (
    Capacity,
    DeviceState,
    IgroupState,
    MappedLun,
    MultipathState,
    Observed,
    SessionState,
)

TARGET = "iqn.1992-08.com.netapp:sn.4f1c2a:vs.7"
IGROUP = "openstack-compute-7-1a2b3c4d"
OTHER_IGROUP = "trident-compute-7"
PORTAL_A = Portal("192.0.2.10")
PORTAL_B = Portal("192.0.2.11")
PORTALS = (PORTAL_A, PORTAL_B, Portal("192.0.2.12"), Portal("192.0.2.13"))
NOW = 10_000.0
GRACE = Policy().session_grace

_OF_LUN = object()  # a device's serial: that of the LUN numbered like its LUN id


def serial(n: int) -> str:
    return f"80BQm{n:07d}"  # twelve characters, like ONTAP's


def lun_uuid(n: int) -> str:
    return f"6a3b0000-0000-4000-8000-{n:012d}"


def lun_path(n: int) -> str:
    return f"/vol/cinder/volume-{n}"


def lun(n: int, *, serial_known: bool = True, igroup: str = IGROUP) -> MappedLun:
    return MappedLun(lun_path(n), lun_uuid(n), igroup, serial(n) if serial_known else None)


def maps(*numbers: int, serial_known: bool = True) -> dict[int, MappedLun]:
    """LUN n mapped at id n for each number."""
    return {n: lun(n, serial_known=serial_known) for n in numbers}


def session(
    sid: int = 1, portal: Portal | None = PORTAL_A, state: str = "LOGGED_IN", down_for: float | None = None
) -> SessionState:
    down_since = None if down_for is None else NOW - down_for
    return SessionState(sid, TARGET, portal, state, down_since)


def down(sid: int = 1, portal: Portal | None = PORTAL_A, *, down_for: float) -> SessionState:
    return session(sid, portal, "FAILED", down_for)


def device(lun_id: int, sid: int = 1, *, serial_: object = _OF_LUN, name: str = "") -> DeviceState:
    found = serial(lun_id) if serial_ is _OF_LUN else serial_
    assert found is None or isinstance(found, str)
    return DeviceState(
        address=ScsiAddress(sid, 0, 0, lun_id),
        sid=sid,
        name=f"sd{sid}l{lun_id}" if name == "" else name,
        serial=found,
    )


def attachment(
    n: int,
    *portals: Portal,
    igroup: str = IGROUP,
    lun_id: int | None = None,
    multipath: bool = False,
    state: AttachmentState = AttachmentState.ATTACHED,
) -> Attachment:
    return Attachment(
        lun_uuid=lun_uuid(n),
        lun_path=lun_path(n),
        volume=f"volume-{n}",
        svm="svm-cinder",
        serial=serial(n),
        wwid=netapp_wwid(serial(n)),
        lun_id=n if lun_id is None else lun_id,
        igroup=igroup,
        map_created=True,
        target_iqn=TARGET,
        portals=portals or (PORTAL_A,),
        multipath=multipath,
        state=state,
    )


def mpath(name: str, wwid: str, *slaves: str) -> MultipathState:
    return MultipathState(name, f"dm-{len(name)}", wwid, slaves)


def observed(
    *,
    igroup_state: IgroupState = IgroupState.PRESENT,
    mapped: dict[int, MappedLun] | None = None,
    sessions: tuple[SessionState, ...] = (),
    devices: tuple[DeviceState, ...] = (),
    links: tuple[Path, ...] = (),
    multipath_maps: tuple[MultipathState, ...] = (),
    attachments: tuple[Attachment, ...] = (),
    capacities: dict[str, Capacity] | None = None,
) -> Observed:
    return Observed(
        igroup=IGROUP,
        igroup_state=igroup_state,
        maps=mapped or {},
        sessions=sessions,
        devices=devices,
        dangling_links=links,
        multipath_maps=multipath_maps,
        attachments=attachments,
        capacities=capacities or {},
        now=NOW,
    )


def summary(actions: list[Action]) -> list[tuple[ActionKind, Reason, str]]:
    return [(a.kind, a.reason, a.target) for a in actions]


def of_kind(actions: list[Action], *kinds: ActionKind) -> list[Action]:
    return [a for a in actions if a.kind in kinds]


REMOVE = ActionKind.REMOVE_DEVICE


# Stale devices


def test_a_device_whose_lun_id_is_no_longer_mapped_is_removed():
    kept, gone = device(1), device(2)
    actions = plan(
        observed(mapped=maps(1), sessions=(session(),), devices=(kept, gone), attachments=(attachment(1),)),
        Policy(),
    )
    assert summary(actions) == [(REMOVE, Reason.LUN_UNMAPPED, str(gone))]
    assert actions[0].device == gone
    assert actions[0].expected_serial is None


def test_with_stale_device_removal_off_a_device_at_an_unmapped_id_is_only_reported():
    gone = device(2)
    actions = plan(
        observed(
            mapped=maps(1), sessions=(session(),), devices=(device(1), gone), attachments=(attachment(1),)
        ),
        Policy(remove_stale_devices=False),
    )
    assert summary(actions) == [(ActionKind.REPORT_STALE_DEVICE, Reason.LUN_UNMAPPED, str(gone))]
    assert actions[0].device == gone


def test_a_device_whose_serial_is_not_the_mapped_luns_is_removed_as_an_identity_mismatch():
    wrong = device(1, serial_=serial(9))
    actions = plan(observed(mapped=maps(1), sessions=(session(),), devices=(wrong,)), Policy())
    [removal] = of_kind(actions, REMOVE)
    assert (removal.reason, removal.device, removal.expected_serial) == (
        Reason.IDENTITY_MISMATCH,
        wrong,
        serial(1),
    )


def test_the_expected_serial_may_come_from_the_journal_attachment_with_the_mapped_luns_uuid():
    wrong = device(1, serial_=serial(9))
    actions = plan(
        observed(
            mapped=maps(1, serial_known=False),
            sessions=(session(),),
            devices=(wrong,),
            attachments=(attachment(1),),
        ),
        Policy(),
    )
    [removal] = of_kind(actions, REMOVE)
    assert (removal.reason, removal.device, removal.expected_serial) == (
        Reason.IDENTITY_MISMATCH,
        wrong,
        serial(1),
    )


def test_with_removal_off_an_identity_mismatch_is_only_reported():
    wrong = device(1, serial_=serial(9))
    actions = plan(
        observed(mapped=maps(1), sessions=(session(),), devices=(wrong,)), Policy(remove_stale_devices=False)
    )
    assert of_kind(actions, REMOVE) == []
    [report] = of_kind(actions, ActionKind.REPORT_STALE_DEVICE)
    assert (report.reason, report.device, report.expected_serial) == (
        Reason.IDENTITY_MISMATCH,
        wrong,
        serial(1),
    )


def test_a_device_whose_serial_cannot_be_read_is_never_stale_on_identity():
    unreadable = device(1, serial_=None)
    actions = plan(
        observed(mapped=maps(1), sessions=(session(),), devices=(unreadable,), attachments=(attachment(1),)),
        Policy(),
    )
    assert actions == []


def test_a_device_at_a_mapped_id_whose_serial_is_unknown_on_both_sides_is_left_alone():
    unreadable, unverifiable = device(1, serial_=None), device(2, sid=2, serial_=serial(9))
    actions = plan(
        observed(
            mapped=maps(1, 2, serial_known=False),
            sessions=(session(1), session(2, PORTAL_B)),
            devices=(unreadable, unverifiable),
        ),
        Policy(),
    )
    assert summary(actions) == [
        (ActionKind.REPORT, Reason.UNREQUESTED_MAP, f"{lun_path(1)} (LUN 1)"),
        (ActionKind.REPORT, Reason.UNREQUESTED_MAP, f"{lun_path(2)} (LUN 2)"),
    ]


def test_a_device_of_an_attachment_made_through_another_igroup_is_kept():
    actions = plan(
        observed(
            mapped={**maps(1), 5: lun(5, igroup=OTHER_IGROUP)},
            sessions=(session(),),
            devices=(device(1), device(5)),
            attachments=(attachment(1), attachment(5, igroup=OTHER_IGROUP)),
        ),
        Policy(),
    )
    assert actions == []


def test_the_identity_of_a_device_of_another_igroups_attachment_is_still_checked():
    wrong = device(5, serial_=serial(9))
    actions = plan(
        observed(
            mapped={5: lun(5, serial_known=False, igroup=OTHER_IGROUP)},
            sessions=(session(),),
            devices=(wrong,),
            attachments=(attachment(5, igroup=OTHER_IGROUP),),
        ),
        Policy(),
    )
    [removal] = of_kind(actions, REMOVE)
    assert (removal.reason, removal.device, removal.expected_serial) == (
        Reason.IDENTITY_MISMATCH,
        wrong,
        serial(5),
    )


# The igroup


def test_a_missing_igroup_plans_only_its_repair_and_the_dangling_link_removals():
    link = Path("/dev/disk/by-path/ip-192.0.2.10:3260-iscsi-" + TARGET + "-lun-4")
    actions = plan(
        observed(
            igroup_state=IgroupState.MISSING,
            sessions=(session(1), down(2, PORTAL_B, down_for=GRACE * 10), session(3, PORTALS[2])),
            devices=(device(1), device(2, serial_=serial(9)), device(3, sid=2)),
            links=(link,),
            multipath_maps=(mpath("mpatha", netapp_wwid(serial(7))),),
            attachments=(attachment(1), attachment(6, PORTALS[3])),
        ),
        Policy(),
    )
    assert summary(actions) == [
        (ActionKind.REPAIR_IGROUP, Reason.IGROUP_MISSING, IGROUP),
        (ActionKind.REMOVE_LINK, Reason.DEVICE_GONE, str(link)),
    ]


def test_an_igroup_without_this_hosts_initiator_is_repaired_and_no_device_is_judged_unmapped_meanwhile():
    # the igroup's maps do not reach the initiator until the repair: the view of the maps is partial
    wrong = device(3, serial_=serial(9))
    actions = plan(
        observed(
            igroup_state=IgroupState.WITHOUT_INITIATOR,
            mapped={3: lun(3, igroup=OTHER_IGROUP)},
            sessions=(session(),),
            devices=(device(1), device(2), wrong),
            attachments=(attachment(1),),
        ),
        Policy(),
    )
    assert summary(actions) == [
        (ActionKind.REPAIR_IGROUP, Reason.INITIATOR_MISSING, IGROUP),
        (REMOVE, Reason.IDENTITY_MISMATCH, str(wrong)),  # a map seen is evidence on any view
    ]


def test_a_device_at_an_id_mapped_through_another_igroup_nobody_attached_is_kept_and_not_reported():
    actions = plan(
        observed(mapped={4: lun(4, igroup=OTHER_IGROUP)}, sessions=(session(),), devices=(device(4),)),
        Policy(),
    )
    assert actions == []


def test_an_attachment_through_another_igroup_whose_map_is_gone_is_reported_and_its_device_removed():
    actions = plan(
        observed(
            sessions=(session(),), devices=(device(5),), attachments=(attachment(5, igroup=OTHER_IGROUP),)
        ),
        Policy(),
    )
    assert summary(actions) == [
        (REMOVE, Reason.LUN_UNMAPPED, str(device(5))),
        (ActionKind.REPORT, Reason.ATTACHMENT_UNMAPPED, f"{lun_path(5)} (was LUN 5)"),
    ]


# Links


def test_dangling_links_are_removed():
    links = (Path("/dev/disk/by-id/scsi-3600a0980aaa"), Path("/dev/disk/by-path/ip-192.0.2.10:3260-lun-3"))
    actions = plan(observed(links=links), Policy())
    assert summary(actions) == [(ActionKind.REMOVE_LINK, Reason.DEVICE_GONE, str(link)) for link in links]
    assert [a.link for a in actions] == list(links)


# Multipath maps


def test_a_netapp_multipath_map_with_no_paths_is_flushed():
    empty = mpath("mpatha", netapp_wwid(serial(3)))
    actions = plan(observed(multipath_maps=(empty,)), Policy())
    assert summary(actions) == [(ActionKind.FLUSH_MULTIPATH, Reason.NO_PATHS, "mpatha")]
    assert actions[0].multipath_map == empty


def test_a_map_whose_every_path_is_a_stale_device_is_flushed_before_its_paths_are_removed():
    first, second = device(3, sid=1), device(3, sid=2)
    stale_map = mpath("mpathb", netapp_wwid(serial(3)), first.name or "", second.name or "")
    actions = plan(
        observed(
            mapped=maps(1),
            sessions=(session(1), session(2, PORTAL_B)),
            devices=(device(1), first, second),
            multipath_maps=(stale_map,),
            attachments=(attachment(1, PORTAL_A, PORTAL_B),),
        ),
        Policy(),
    )
    # LUN 1 has a device on session 1 only, so session 2 is scanned for it; that is not this test's subject.
    assert summary(of_kind(actions, ActionKind.FLUSH_MULTIPATH, REMOVE)) == [
        (ActionKind.FLUSH_MULTIPATH, Reason.LUN_UNMAPPED, "mpathb"),
        (REMOVE, Reason.LUN_UNMAPPED, str(first)),
        (REMOVE, Reason.LUN_UNMAPPED, str(second)),
    ]
    assert actions[0].multipath_map == stale_map


def test_a_map_with_one_live_path_is_left():
    live, wrong = device(3, sid=1), device(3, sid=2, serial_=serial(9))
    actions = plan(
        observed(
            mapped=maps(3),
            sessions=(session(1), session(2, PORTAL_B)),
            devices=(live, wrong),
            multipath_maps=(mpath("mpathc", netapp_wwid(serial(3)), live.name or "", wrong.name or ""),),
        ),
        Policy(),
    )
    assert of_kind(actions, ActionKind.FLUSH_MULTIPATH) == []
    assert [(a.reason, a.device) for a in of_kind(actions, REMOVE)] == [(Reason.IDENTITY_MISMATCH, wrong)]


def test_a_map_with_a_path_the_pass_does_not_know_is_left():
    gone = device(3)
    actions = plan(
        observed(
            sessions=(session(),),
            devices=(gone,),
            multipath_maps=(mpath("mpathd", netapp_wwid(serial(3)), gone.name or "", "sdzz"),),
        ),
        Policy(),
    )
    assert summary(actions) == [(REMOVE, Reason.LUN_UNMAPPED, str(gone))]


def test_a_map_whose_wwid_is_not_a_netapp_one_is_ignored():
    gone = device(3)
    actions = plan(
        observed(
            sessions=(session(),),
            devices=(gone,),
            multipath_maps=(
                mpath("mpathe", "3600508b1001c7e172160824d7b204c3c"),
                mpath("mpathf", "600508b1001c7e172160824d7b204c3d", gone.name or ""),
            ),
        ),
        Policy(),
    )
    assert summary(actions) == [(REMOVE, Reason.LUN_UNMAPPED, str(gone))]


# Sessions that are down


def test_a_session_down_for_less_than_the_grace_is_left_alone():
    actions = plan(
        observed(
            mapped=maps(1),
            sessions=(down(1, down_for=GRACE / 2), down(2, PORTAL_B, down_for=GRACE / 2)),
            devices=(device(1),),
            attachments=(attachment(1),),
        ),
        Policy(),
    )
    assert actions == []


def test_a_session_down_past_the_grace_that_attachments_need_is_logged_in_again_with_their_lun_ids():
    failed = down(down_for=GRACE * 2)
    actions = plan(
        observed(
            mapped=maps(1, 2),
            sessions=(failed,),
            devices=(device(2), device(1)),
            attachments=(attachment(2), attachment(1)),
        ),
        Policy(),
    )
    assert summary(actions) == [(ActionKind.RELOGIN, Reason.SESSION_DOWN, str(failed))]
    relogin = actions[0]
    assert (relogin.session, relogin.target_iqn, relogin.portal, relogin.lun_ids) == (
        failed,
        TARGET,
        PORTAL_A,
        (1, 2),
    )


def test_a_down_session_that_only_attachments_need_is_logged_in_again():
    failed = down(down_for=GRACE * 2)
    actions = plan(observed(mapped=maps(4), sessions=(failed,), attachments=(attachment(4),)), Policy())
    assert summary(actions) == [(ActionKind.RELOGIN, Reason.SESSION_DOWN, str(failed))]
    assert actions[0].lun_ids == (4,)


def test_a_down_session_carrying_a_device_nobody_attached_is_logged_in_again_with_no_lun_ids():
    failed = down(down_for=GRACE * 2)
    actions = plan(observed(mapped=maps(4), sessions=(failed,), devices=(device(4),)), Policy())
    assert summary(of_kind(actions, ActionKind.RELOGIN, ActionKind.LOGOUT)) == [
        (ActionKind.RELOGIN, Reason.SESSION_DOWN, str(failed))
    ]
    assert actions[0].lun_ids == ()


def test_an_idle_session_down_past_the_grace_is_logged_out():
    failed = down(down_for=GRACE * 2)
    actions = plan(observed(sessions=(failed,)), Policy())
    assert summary(actions) == [(ActionKind.LOGOUT, Reason.IDLE, str(failed))]
    assert (actions[0].session, actions[0].target_iqn, actions[0].portal) == (failed, TARGET, PORTAL_A)


def test_with_idle_logout_off_an_idle_down_session_is_left():
    actions = plan(observed(sessions=(down(down_for=GRACE * 2),)), Policy(logout_idle_sessions=False))
    assert actions == []


def test_the_grace_follows_the_policy():
    failed = down(down_for=30.0)
    assert plan(observed(sessions=(failed,)), Policy(session_grace=60.0)) == []
    assert summary(plan(observed(sessions=(failed,)), Policy(session_grace=10.0))) == [
        (ActionKind.LOGOUT, Reason.IDLE, str(failed))
    ]


# Logged-in sessions and logout


def test_a_logged_in_session_with_no_device_and_no_attachment_is_logged_out():
    idle = session(2, PORTAL_B)
    actions = plan(
        observed(
            mapped=maps(1), sessions=(session(1), idle), devices=(device(1),), attachments=(attachment(1),)
        ),
        Policy(),
    )
    assert summary(actions) == [(ActionKind.LOGOUT, Reason.IDLE, str(idle))]
    assert (actions[0].session, actions[0].portal) == (idle, PORTAL_B)


def test_with_idle_logout_off_an_idle_logged_in_session_is_left():
    assert plan(observed(sessions=(session(),)), Policy(logout_idle_sessions=False)) == []


def test_a_session_carrying_a_device_of_a_lun_nobody_attached_is_not_logged_out():
    actions = plan(observed(mapped=maps(4), sessions=(session(),), devices=(device(4),)), Policy())
    assert summary(actions) == [(ActionKind.REPORT, Reason.UNREQUESTED_MAP, f"{lun_path(4)} (LUN 4)")]


def test_a_session_whose_only_device_is_stale_is_not_logged_out_in_the_same_pass():
    gone = device(4)
    actions = plan(observed(sessions=(session(),), devices=(gone,)), Policy())
    assert summary(actions) == [(REMOVE, Reason.LUN_UNMAPPED, str(gone))]


def test_a_session_an_attached_attachment_names_is_not_logged_out_even_without_devices():
    named = session(2, PORTAL_B)
    actions = plan(
        observed(
            mapped=maps(1),
            sessions=(session(1), named),
            devices=(device(1),),
            attachments=(attachment(1, PORTAL_A, PORTAL_B),),
        ),
        Policy(),
    )
    assert of_kind(actions, ActionKind.LOGOUT) == []
    assert summary(actions) == [(ActionKind.SCAN, Reason.PATH_MISSING, f"{named} LUN 1")]


def test_a_session_to_another_target_than_the_attachments_is_not_held_by_them():
    other = SessionState(2, "iqn.1992-08.com.netapp:sn.4f1c2a:vs.8", PORTAL_A, "LOGGED_IN")
    actions = plan(
        observed(
            mapped=maps(1), sessions=(session(1), other), devices=(device(1),), attachments=(attachment(1),)
        ),
        Policy(),
    )
    assert summary(actions) == [(ActionKind.LOGOUT, Reason.IDLE, str(other))]


# Missing paths and sessions


def test_an_attached_lun_with_no_device_on_a_logged_in_session_to_one_of_its_portals_is_scanned_for():
    bare = session(2, PORTAL_B)
    actions = plan(
        observed(
            mapped=maps(1, 2),
            sessions=(session(1), bare),
            devices=(device(1), device(2), device(2, sid=2)),
            attachments=(attachment(1, PORTAL_A, PORTAL_B), attachment(2, PORTAL_A, PORTAL_B)),
        ),
        Policy(),
    )
    assert summary(actions) == [(ActionKind.SCAN, Reason.PATH_MISSING, f"{bare} LUN 1")]
    scan = actions[0]
    assert (scan.session, scan.target_iqn, scan.portal, scan.lun_ids) == (bare, TARGET, PORTAL_B, (1,))


def test_after_an_identity_mismatch_the_attached_lun_is_scanned_for_again():
    wrong = device(1, serial_=serial(9))
    actions = plan(
        observed(mapped=maps(1), sessions=(session(),), devices=(wrong,), attachments=(attachment(1),)),
        Policy(),
    )
    assert summary(actions) == [
        (REMOVE, Reason.IDENTITY_MISMATCH, str(wrong)),
        (ActionKind.SCAN, Reason.PATH_MISSING, f"{session()} LUN 1"),
    ]


def test_an_attachment_portal_with_no_session_at_all_is_logged_in_to():
    actions = plan(
        observed(
            mapped=maps(1),
            sessions=(session(1),),
            devices=(device(1),),
            attachments=(attachment(1, PORTAL_A, PORTAL_B),),
        ),
        Policy(),
    )
    assert summary(actions) == [
        (ActionKind.RELOGIN, Reason.SESSION_MISSING, f"{TARGET} via {PORTAL_B} (no session)")
    ]
    relogin = actions[0]
    assert (relogin.session, relogin.target_iqn, relogin.portal, relogin.lun_ids) == (
        None,
        TARGET,
        PORTAL_B,
        (1,),
    )


def test_an_attachment_whose_lun_id_now_maps_another_lun_is_not_scanned_for():
    actions = plan(
        observed(mapped={1: lun(7)}, sessions=(session(),), attachments=(attachment(1),)),
        Policy(),
    )
    assert of_kind(actions, ActionKind.SCAN) == []


def test_an_attachment_whose_lun_is_no_longer_mapped_is_not_scanned_for():
    actions = plan(
        observed(
            mapped=maps(1),
            sessions=(session(),),
            devices=(device(1),),
            attachments=(attachment(1), attachment(2)),
        ),
        Policy(),
    )
    assert summary(actions) == [(ActionKind.REPORT, Reason.ATTACHMENT_UNMAPPED, f"{lun_path(2)} (was LUN 2)")]


def test_a_relogin_asks_only_for_the_attachments_luns_still_mapped():
    failed = down(down_for=GRACE * 2)
    actions = plan(
        observed(
            mapped=maps(1),
            sessions=(failed,),
            devices=(device(1),),
            attachments=(attachment(1), attachment(2)),
        ),
        Policy(),
    )
    [relogin] = of_kind(actions, ActionKind.RELOGIN)
    assert relogin.lun_ids == (1,)


# Multipath paths


def test_a_device_of_a_multipath_attachment_missing_from_its_map_is_added_to_it():
    in_map, left_out = device(1, sid=1), device(1, sid=2)
    actions = plan(
        observed(
            mapped=maps(1),
            sessions=(session(1), session(2, PORTAL_B)),
            devices=(in_map, left_out),
            multipath_maps=(mpath("mpatha", netapp_wwid(serial(1)), in_map.name or ""),),
            attachments=(attachment(1, PORTAL_A, PORTAL_B, multipath=True),),
        ),
        Policy(),
    )
    assert summary(actions) == [(ActionKind.ADD_PATH, Reason.PATH_NOT_IN_MAP, f"{left_out} of {lun_path(1)}")]
    assert actions[0].device == left_out


def test_the_attachments_map_is_found_whatever_the_spelling_of_its_wwid():
    first, second = device(1, sid=1), device(1, sid=2)
    actions = plan(
        observed(
            mapped=maps(1),
            sessions=(session(1), session(2, PORTAL_B)),
            devices=(first, second),
            multipath_maps=(
                mpath("mpatha", multipath_wwid(serial(1)).upper(), first.name or "", second.name or ""),
            ),
            attachments=(attachment(1, PORTAL_A, PORTAL_B, multipath=True),),
        ),
        Policy(),
    )
    assert actions == []


def test_a_device_at_the_attachments_lun_id_with_another_or_no_serial_is_not_added_to_its_map():
    in_map = device(1, sid=1)
    actions = plan(
        observed(
            mapped=maps(1, serial_known=False),
            sessions=(session(1), session(2, PORTAL_B), session(3, PORTALS[2])),
            devices=(in_map, device(1, sid=2, serial_=None), device(1, sid=3, serial_=serial(9))),
            multipath_maps=(mpath("mpatha", netapp_wwid(serial(1)), in_map.name or ""),),
            attachments=(attachment(1, PORTAL_A, PORTAL_B, PORTALS[2], multipath=True),),
        ),
        Policy(),
    )
    assert of_kind(actions, ActionKind.ADD_PATH) == []


def test_a_single_path_attachments_device_is_not_added_to_any_map():
    actions = plan(
        observed(mapped=maps(1), sessions=(session(),), devices=(device(1),), attachments=(attachment(1),)),
        Policy(),
    )
    assert actions == []


# Drift on the array


def test_a_mapped_lun_nobody_attached_is_reported_and_its_device_kept():
    actions = plan(observed(mapped=maps(4), sessions=(session(),), devices=(device(4),)), Policy())
    assert summary(actions) == [(ActionKind.REPORT, Reason.UNREQUESTED_MAP, f"{lun_path(4)} (LUN 4)")]


def test_a_map_an_attach_in_progress_made_is_not_reported():
    actions = plan(
        observed(
            mapped=maps(4),
            sessions=(session(),),
            devices=(device(4),),
            attachments=(attachment(4, state=AttachmentState.ATTACHING),),
        ),
        Policy(),
    )
    assert actions == []


def test_an_attached_lun_no_longer_mapped_to_this_hosts_igroup_is_reported():
    actions = plan(
        observed(sessions=(session(),), devices=(device(1),), attachments=(attachment(1),)), Policy()
    )
    assert summary(of_kind(actions, ActionKind.REPORT)) == [
        (ActionKind.REPORT, Reason.ATTACHMENT_UNMAPPED, f"{lun_path(1)} (was LUN 1)")
    ]


def test_an_attachment_whose_lun_id_now_maps_another_lun_is_reported_as_unmapped():
    actions = plan(
        observed(mapped={1: lun(7)}, sessions=(session(),), attachments=(attachment(1),)), Policy()
    )
    assert summary(of_kind(actions, ActionKind.REPORT)) == [
        (ActionKind.REPORT, Reason.UNREQUESTED_MAP, f"{lun_path(7)} (LUN 1)"),
        (ActionKind.REPORT, Reason.ATTACHMENT_UNMAPPED, f"{lun_path(1)} (was LUN 1)"),
    ]


# Scale


def _large_host(unmapped: int) -> Observed:
    """2,000 devices over 4 sessions; all but the last ``unmapped`` LUN ids are attached and mapped."""
    count = 2000
    attached = range(count - unmapped)
    return observed(
        mapped=maps(*attached),
        sessions=tuple(session(sid, PORTALS[sid]) for sid in range(4)),
        devices=tuple(device(n, sid=n % 4) for n in range(count)),
        attachments=tuple(attachment(n, PORTALS[n % 4]) for n in attached),
    )


def test_among_2000_devices_only_the_10_at_unmapped_ids_are_removed():
    actions = plan(_large_host(unmapped=10), Policy())
    assert {(a.kind, a.reason) for a in actions} == {(REMOVE, Reason.LUN_UNMAPPED)}
    assert {a.device.address for a in actions if a.device is not None} == {
        ScsiAddress(n % 4, 0, 0, n) for n in range(1990, 2000)
    }
    assert len(actions) == 10


def test_2000_healthy_devices_plan_nothing():
    assert plan(_large_host(unmapped=0), Policy()) == []


# --- a LUN grown on the array and not yet on the host -------------------------------------------------
GiB = 1 << 30


def test_an_attached_lun_larger_on_the_array_than_its_device_is_reported_with_both_sizes():
    actions = plan(
        observed(
            mapped=maps(1, 2),
            sessions=(session(),),
            devices=(device(1), device(2)),
            attachments=(attachment(1), attachment(2)),
            capacities={
                lun_uuid(1): Capacity(3 * GiB, "/dev/sd1l1", 2 * GiB),
                lun_uuid(2): Capacity(2 * GiB, "/dev/sd1l2", 2 * GiB),
            },
        ),
        Policy(),
    )
    assert summary(of_kind(actions, ActionKind.REPORT)) == [
        (
            ActionKind.REPORT,
            Reason.LUN_GROWN,
            f"{lun_path(1)}: {3 * GiB} bytes on the array, /dev/sd1l1 {2 * GiB}",
        )
    ]


def test_a_lun_grown_under_a_detach_left_partway_or_of_unknown_size_is_not_reported():
    actions = plan(
        observed(
            mapped=maps(1),
            attachments=(attachment(1, state=AttachmentState.DETACHING), attachment(2)),
            capacities={lun_uuid(1): Capacity(3 * GiB, "/dev/sd1l1", 2 * GiB)},
        ),
        Policy(),
    )
    assert [a for a in actions if a.reason is Reason.LUN_GROWN] == []


def test_many_attachments_have_their_sizes_read_fifty_at_a_time_round_and_round():
    uuids = [lun_uuid(n) for n in range(120)]
    assert next_chunk(uuids, "") == uuids[:50]
    assert next_chunk(uuids, uuids[49]) == uuids[50:100]
    assert next_chunk(uuids, uuids[99]) == uuids[100:] + uuids[:30]
    assert next_chunk(uuids[:3], uuids[1]) == [uuids[2], uuids[0], uuids[1]]
