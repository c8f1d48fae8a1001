"""Igroups and maps: idempotent writes, races with other writers, and one-request listings."""

import pytest

from iscsi_agent.array.errors import ArrayApiError
from tests.contract.conftest import make_client
from tests.contract.helpers import (
    IGROUP,
    IQN,
    LUN0,
    LUN1,
    LUN2,
    LUN3,
    array_igroup,
    array_igroups_named,
    array_map,
    array_maps,
)

OTHER = "iqn.1994-05.com.redhat:other-host"


def test_a_created_igroup_is_found_by_its_initiator(client):
    created = client.create_igroup(IGROUP, "linux", (IQN,))
    assert (created.name, created.protocol, created.os_type, created.initiators) == (
        IGROUP,
        "iscsi",
        "linux",
        {IQN},
    )
    (found,) = client.igroups_with_initiator(IQN)
    assert found.name == IGROUP and found.has_exactly({IQN}) and found.uuid
    assert client.igroup_by_name(IGROUP) == found
    assert client.igroup_by_name("nosuch") is None


def test_every_igroup_holding_the_initiator_is_listed_and_exactness_is_checkable(client, ontap_sim):
    array_igroup(ontap_sim, "shared", IQN, OTHER)
    array_igroup(ontap_sim, "mine", IQN)
    array_igroup(ontap_sim, "theirs", OTHER)
    found = {ig.name: ig for ig in client.igroups_with_initiator(IQN)}
    assert set(found) == {"shared", "mine"}
    assert [name for name, ig in found.items() if ig.has_exactly({IQN})] == ["mine"]


def test_creating_an_igroup_another_host_just_created_uses_it(client, ontap_sim):
    array_igroup(ontap_sim, IGROUP)  # created between our lookup and our create
    igroup = client.create_igroup(IGROUP, "linux", (IQN,))
    assert igroup.initiators == {IQN}
    assert array_igroups_named(ontap_sim, IGROUP) == 1
    assert client.igroup_by_name(IGROUP).initiators == {IQN}


def test_adding_an_initiator_already_present_is_fine(client, ontap_sim):
    array_igroup(ontap_sim, IGROUP, IQN)
    client.add_initiator(IGROUP, IQN)
    client.add_initiator(IGROUP, OTHER)
    assert client.igroup_by_name(IGROUP).initiators == {IQN, OTHER}


def test_map_assigns_the_lowest_free_id_and_honours_a_requested_one(client):
    client.create_igroup(IGROUP, "linux", (IQN,))
    assert client.map_lun(LUN0, IGROUP) == 0
    assert client.map_lun(LUN1, IGROUP, lun_id=7) == 7
    assert client.map_lun(LUN2, IGROUP) == 1


def test_mapping_an_already_mapped_lun_returns_its_id_without_a_second_map(client, ontap_sim):
    array_igroup(ontap_sim, IGROUP, IQN)
    array_map(ontap_sim, LUN0, IGROUP, 5)
    assert client.map_lun(LUN0, IGROUP) == 5
    assert array_maps(ontap_sim, LUN0) == [(IGROUP, 5)]


def test_a_lun_id_taken_in_the_igroup_is_an_api_error_with_the_arrays_code(client, ontap_sim):
    array_igroup(ontap_sim, IGROUP, IQN)
    array_map(ontap_sim, LUN0, IGROUP, 3)
    with pytest.raises(ArrayApiError) as caught:
        client.map_lun(LUN1, IGROUP, lun_id=3)
    assert caught.value.array_code and caught.value.array_message
    assert caught.value.code == "array_api_error"


def test_unmap_is_true_once_then_false(client, ontap_sim):
    array_igroup(ontap_sim, IGROUP, IQN)
    array_map(ontap_sim, LUN0, IGROUP)
    assert client.unmap_lun(LUN0, IGROUP) is True
    assert client.unmap_lun(LUN0, IGROUP) is False
    assert array_maps(ontap_sim, LUN0) == []


def uuids(ontap_sim, path: str, igroup: str) -> dict[str, str]:
    with ontap_sim.state.lock:
        state = ontap_sim.state
        return {
            "lun_uuid": state.lun("svm1", path=path).uuid,
            "igroup_uuid": state.igroup("svm1", name=igroup).uuid,
        }


def test_an_unmap_named_by_uuids_is_one_request(client, ontap_sim, wire):
    array_igroup(ontap_sim, IGROUP, IQN)
    array_map(ontap_sim, LUN0, IGROUP)
    ontap_sim.reset_counts()
    assert client.unmap_lun(LUN0, IGROUP, **uuids(ontap_sim, LUN0, IGROUP)) is True
    assert ontap_sim.total(wire.api.value) == 1
    assert array_maps(ontap_sim, LUN0) == []


def test_an_unmap_by_uuids_leaves_the_map_of_an_igroup_made_again_under_the_same_name(
    client, ontap_sim, wire
):
    if wire.api.value != "rest":
        pytest.skip("ZAPI's lun-unmap names a map by path and igroup name only")
    array_igroup(ontap_sim, IGROUP, IQN)
    array_map(ontap_sim, LUN0, IGROUP)
    old = uuids(ontap_sim, LUN0, IGROUP)
    with ontap_sim.state.lock:
        state = ontap_sim.state
        state.destroy_igroup(state.igroup("svm1", name=IGROUP), allow_mapped=True)
    array_igroup(ontap_sim, IGROUP, IQN)
    array_map(ontap_sim, LUN0, IGROUP, 3)  # someone else's map, to the new igroup of that name
    assert client.unmap_lun(LUN0, IGROUP, **old) is False
    assert array_maps(ontap_sim, LUN0) == [(IGROUP, 3)]


def test_a_map_reports_its_selective_lun_map_nodes(client, ontap_sim):
    array_igroup(ontap_sim, IGROUP, IQN)
    array_map(ontap_sim, LUN0, IGROUP, 2)
    lun_map = client.lun_map(LUN0, IGROUP)
    assert (lun_map.lun_path, lun_map.igroup, lun_map.lun_id) == (LUN0, IGROUP, 2)
    assert lun_map.reporting_nodes == ("node-01", "node-02")
    assert lun_map.lun_uuid == ontap_sim.state.lun("svm1", path=LUN0).uuid
    assert client.lun_map(LUN1, IGROUP) is None


def test_maps_of_a_lun_span_igroups(client, ontap_sim):
    array_igroup(ontap_sim, IGROUP, IQN)
    array_igroup(ontap_sim, "other", OTHER)
    array_map(ontap_sim, LUN0, IGROUP)
    array_map(ontap_sim, LUN0, "other")
    assert sorted(m.igroup for m in client.maps_of_lun(LUN0)) == [IGROUP, "other"]


def test_all_maps_of_an_igroup_come_in_one_request(client, ontap_sim, wire):
    array_igroup(ontap_sim, IGROUP, IQN)
    array_igroup(ontap_sim, "other", OTHER)
    for path in (LUN0, LUN1, LUN2):
        array_map(ontap_sim, path, IGROUP)
    array_map(ontap_sim, LUN3, "other")
    ontap_sim.reset_counts()
    maps = client.maps_of_igroup(IGROUP)
    assert sorted((m.lun_path, m.lun_id) for m in maps) == [(LUN0, 0), (LUN1, 1), (LUN2, 2)]
    assert ontap_sim.total(wire.api.value) == 1


def test_every_map_that_reaches_an_initiator_comes_in_one_request_through_any_igroup(ontap_sim, wire, sleeps):
    """The reconciler's view: the host's own igroup, a cluster igroup it shares, not others' igroups."""
    array_igroup(ontap_sim, IGROUP, IQN)
    array_igroup(ontap_sim, "cluster", IQN, OTHER)
    array_igroup(ontap_sim, "other", OTHER)
    array_map(ontap_sim, LUN0, IGROUP)
    array_map(ontap_sim, LUN1, "cluster")
    array_map(ontap_sim, LUN2, "other")
    client = make_client(ontap_sim, wire.api, sleeps, page_size=1)
    ontap_sim.reset_counts()
    maps = client.maps_of_initiator(IQN)
    assert sorted((m.lun_path, m.igroup, m.lun_id) for m in maps) == [(LUN0, IGROUP, 0), (LUN1, "cluster", 1)]
    assert ontap_sim.total(wire.api.value) == 1
    assert client.maps_of_initiator("iqn.1994-05.com.redhat:nobody") == ()


def test_listings_page_through_small_pages_until_done(ontap_sim, wire, sleeps):
    for n in range(4):
        array_igroup(ontap_sim, f"{IGROUP}-{n}", IQN)
    client = make_client(ontap_sim, wire.api, sleeps, page_size=1)
    ontap_sim.reset_counts()
    igroups = client.igroups_with_initiator(IQN)
    assert sorted(i.name for i in igroups) == [f"{IGROUP}-{n}" for n in range(4)]
    assert ontap_sim.counts[wire.key(wire.igroups)] == 4


def test_the_maps_of_an_igroup_come_in_one_request_whatever_the_page_size(ontap_sim, wire, sleeps):
    """An igroup has at most 4,096 LUN ids: the reconciler's one request per pass holds them all."""
    array_igroup(ontap_sim, IGROUP, IQN)
    for path in (LUN0, LUN1, LUN2, LUN3):
        array_map(ontap_sim, path, IGROUP)
    client = make_client(ontap_sim, wire.api, sleeps, page_size=1)
    ontap_sim.reset_counts()
    maps = client.maps_of_igroup(IGROUP)
    assert sorted(m.lun_path for m in maps) == [LUN0, LUN1, LUN2, LUN3]
    assert ontap_sim.counts[wire.key(wire.lun_maps)] == 1


def test_every_lun_of_a_name_is_found_across_pages(ontap_sim, wire, sleeps):
    client = make_client(ontap_sim, wire.api, sleeps, page_size=1)
    assert client.lun_by_name("lun3").path == LUN3
