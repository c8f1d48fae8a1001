"""A write whose outcome is unknown is settled by reading the array, never reported as a refusal.

A gateway's 502/503/504 and a reply cut off mid-body say nothing about whether the array did the
work. Reported as a failure, they would make the caller roll back while the map exists; so the
client treats them like a reset: it reads, uses what it finds, and resends only what is absent.
"""

import pytest

from iscsi_agent.array.model import ChapAuth, ChapCredentials
from tests.contract.helpers import IGROUP, IQN, LUN0, array_igroup, array_igroups_named, array_maps

CHAP_CREATE = {"zapi": "iscsi-initiator-add-auth", "rest": "POST /api/protocols/san/iscsi/credentials"}


@pytest.mark.parametrize("status", [502, 504])
def test_a_gateway_error_on_a_map_the_array_applied_is_read_and_that_map_used(
    client, ontap_sim, wire, status
):
    array_igroup(ontap_sim, IGROUP, IQN)
    ontap_sim.faults.inject(wire.lun_map, "http_status", status=status, applied=True)
    assert client.map_lun(LUN0, IGROUP) == 0
    assert ontap_sim.counts[wire.key(wire.lun_map)] == 1
    assert array_maps(ontap_sim, LUN0) == [(IGROUP, 0)]


@pytest.mark.parametrize("status", [502, 503, 504])
def test_a_gateway_error_on_a_map_that_did_not_land_is_read_then_sent_again(
    client, ontap_sim, wire, sleeps, status
):
    array_igroup(ontap_sim, IGROUP, IQN)
    ontap_sim.faults.inject(wire.lun_map, "http_status", status=status)
    assert client.map_lun(LUN0, IGROUP) == 0
    assert ontap_sim.counts[wire.key(wire.lun_map)] == 2 and sleeps == [0.25]
    assert array_maps(ontap_sim, LUN0) == [(IGROUP, 0)]


def test_a_map_whose_chunked_reply_broke_off_is_read_not_reported_as_failed(client, ontap_sim, wire):
    array_igroup(ontap_sim, IGROUP, IQN)
    ontap_sim.faults.inject(wire.lun_map, "broken_reply")
    assert client.map_lun(LUN0, IGROUP) == 0
    assert ontap_sim.counts[wire.key(wire.lun_map)] == 1
    assert array_maps(ontap_sim, LUN0) == [(IGROUP, 0)]


def test_an_igroup_create_answered_by_a_bad_gateway_leaves_one_igroup_holding_the_initiator(
    client, ontap_sim, wire
):
    ontap_sim.faults.inject(wire.igroup_create, "http_status", status=502, applied=True)
    assert client.create_igroup(IGROUP, "linux", (IQN,)).initiators == {IQN}
    assert array_igroups_named(ontap_sim, IGROUP) == 1
    assert ontap_sim.counts[wire.key(wire.igroup_create)] == 1


@pytest.mark.parametrize("fault", ["lost_reply", "broken_reply"])
def test_a_chap_entry_whose_create_reply_was_lost_is_found_not_reported_as_failed(
    client, ontap_sim, wire, fault
):
    initiator = "iqn.1994-05.com.redhat:unknown-outcome"
    ontap_sim.faults.inject(CHAP_CREATE[wire.api.value], fault)
    client.set_chap_credentials(ChapCredentials(initiator, ChapAuth.CHAP, "hostuser", "hostsecret12"))
    with ontap_sim.state.lock:
        entry = ontap_sim.state.chap[("svm1", initiator)]
    assert (entry.auth_type, entry.inbound_user, entry.inbound_password) == (
        "chap",
        "hostuser",
        "hostsecret12",
    )
    assert ontap_sim.counts[(wire.api.value, CHAP_CREATE[wire.api.value])] == 1
