"""Transport failures: bounded retries for reads, re-reading instead of blind resends for writes."""

import pytest

from iscsi_agent.array.errors import ArrayApiError, ArrayTimeout, ArrayUnreachable
from tests.contract.conftest import make_client
from tests.contract.helpers import IGROUP, IQN, LUN0, array_igroup, array_igroups_named, array_maps


def test_a_read_is_retried_after_resets_with_backoff(client, ontap_sim, wire, sleeps):
    ontap_sim.faults.inject(wire.luns, "reset", times=2)
    assert client.lun_by_path(LUN0).path == LUN0
    assert ontap_sim.counts[wire.key(wire.luns)] == 3
    assert sleeps == [0.25, 0.5]  # jitter 0.5 of 0.5 s, then of 1 s


def test_read_retries_are_bounded_and_end_in_a_clear_error(client, ontap_sim, wire, sleeps):
    ontap_sim.faults.inject(wire.luns, "reset", times=None)
    with pytest.raises(ArrayUnreachable) as caught:
        client.lun_by_path(LUN0)
    assert caught.value.code == "array_unreachable"
    assert ontap_sim.counts[wire.key(wire.luns)] == 3 and len(sleeps) == 2


def test_a_busy_array_is_retried(client, ontap_sim, wire):
    ontap_sim.faults.inject(wire.luns, "http_status", status=503)
    assert client.lun_by_path(LUN0).path == LUN0
    assert ontap_sim.counts[wire.key(wire.luns)] == 2


def test_a_map_the_array_applied_but_whose_reply_was_lost_is_found_by_reading_not_sent_again(
    client, ontap_sim, wire
):
    array_igroup(ontap_sim, IGROUP, IQN)
    ontap_sim.faults.inject(wire.lun_map, "lost_reply")
    assert client.map_lun(LUN0, IGROUP) == 0
    assert ontap_sim.counts[wire.key(wire.lun_map)] == 1
    assert array_maps(ontap_sim, LUN0) == [(IGROUP, 0)]


def test_an_igroup_create_whose_reply_was_lost_leaves_one_igroup_holding_the_initiator(
    client, ontap_sim, wire
):
    ontap_sim.faults.inject(wire.igroup_create, "lost_reply")
    igroup = client.create_igroup(IGROUP, "linux", (IQN,))
    assert igroup.initiators == {IQN}
    assert array_igroups_named(ontap_sim, IGROUP) == 1
    assert ontap_sim.counts[wire.key(wire.igroup_create)] == 1


def test_a_reset_map_that_never_landed_is_sent_again_once(client, ontap_sim, wire):
    array_igroup(ontap_sim, IGROUP, IQN)
    ontap_sim.faults.inject(wire.lun_map, "reset")
    assert client.map_lun(LUN0, IGROUP) == 0
    assert ontap_sim.counts[wire.key(wire.lun_map)] == 2
    assert array_maps(ontap_sim, LUN0) == [(IGROUP, 0)]


def test_a_timed_out_map_ends_with_exactly_one_map(ontap_sim, wire, sleeps):
    client = make_client(ontap_sim, wire.api, sleeps, timeout=0.3)
    array_igroup(ontap_sim, IGROUP, IQN)
    ontap_sim.faults.inject(wire.lun_map, "timeout", seconds=2.0)
    assert client.map_lun(LUN0, IGROUP) == 0
    assert array_maps(ontap_sim, LUN0) == [(IGROUP, 0)]


def test_a_read_that_keeps_timing_out_is_an_array_timeout(ontap_sim, wire, sleeps):
    client = make_client(ontap_sim, wire.api, sleeps, timeout=0.2, attempts=2)
    ontap_sim.faults.inject(wire.luns, "timeout", times=None, seconds=2.0)
    with pytest.raises(ArrayTimeout) as caught:
        client.lun_by_path(LUN0)
    assert caught.value.code == "array_timeout"
    assert ontap_sim.counts[wire.key(wire.luns)] == 2


def test_a_reset_igroup_create_leaves_one_igroup_holding_the_initiator(client, ontap_sim, wire):
    ontap_sim.faults.inject(wire.igroup_create, "reset")
    igroup = client.create_igroup(IGROUP, "linux", (IQN,))
    assert igroup.initiators == {IQN}
    assert array_igroups_named(ontap_sim, IGROUP) == 1
    assert client.igroup_by_name(IGROUP).initiators == {IQN}


RACE = {
    "zapi": {"errno": 13130, "reason": "duplicate entry"},
    "rest": {"code": "1", "message": "duplicate entry", "status": 409},
}


def test_a_duplicate_entry_answer_to_igroup_create_is_resolved_by_reading(client, ontap_sim, wire):
    array_igroup(ontap_sim, IGROUP)
    ontap_sim.faults.inject(wire.igroup_create, "errno", **RACE[wire.api.value])
    assert client.create_igroup(IGROUP, "linux", (IQN,)).initiators == {IQN}
    assert array_igroups_named(ontap_sim, IGROUP) == 1


FAILURE = {
    "zapi": {"errno": 9036, "reason": "volume vol1 does not exist"},
    # (1254201 "LUN does not exist" is ArrayNotFound now: tests/contract/test_map_errors.py)
    "rest": {"code": "5374573", "message": "The node has no iSCSI LIF for the SVM", "status": 400},
}


def test_an_api_failure_carries_the_arrays_code_and_message(client, ontap_sim, wire):
    array_igroup(ontap_sim, IGROUP, IQN)
    ontap_sim.faults.inject(wire.lun_map, "errno", **FAILURE[wire.api.value])
    with pytest.raises(ArrayApiError) as caught:
        client.map_lun(LUN0, IGROUP)
    expected = FAILURE[wire.api.value]
    assert caught.value.array_code == str(expected.get("errno", expected.get("code")))
    assert caught.value.array_message == expected.get("reason", expected.get("message"))
    assert ontap_sim.counts[wire.key(wire.lun_map)] == 1
