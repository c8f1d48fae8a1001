"""Version, SVM and LUN lookup, identical over ZAPI and REST; the LUN cache saves requests."""

import pytest

from iscsi_agent.array.client import find_lun
from iscsi_agent.array.errors import ArrayNotFound
from tests.array_admin import grow_lun_rest
from tests.contract.conftest import make_client
from tests.contract.helpers import IGROUP, IQN, LUN0, LUN1, LUN2, array_igroup, array_lun, array_map


def test_the_client_speaks_the_api_it_was_asked_for(client, wire):
    assert client.api == wire.api.value


def test_the_version_is_the_clusters_release(client, wire):
    version = client.version()
    assert version.release == (9, 13, 1)
    assert (version.ontapi is not None) == (wire.api.value == "zapi")


def test_the_configured_svm_exists_with_its_uuid(client, ontap_sim):
    svm = client.check_svm()
    assert svm.name == "svm1" and svm.uuid == ontap_sim.state.svm(name="svm1").uuid


def test_an_unknown_svm_is_not_found(ontap_sim, wire, sleeps):
    with pytest.raises(ArrayNotFound) as caught:
        make_client(ontap_sim, wire.api, sleeps, vserver="nosuch").check_svm()
    assert caught.value.kind == "svm"


def test_a_lun_found_by_path_has_the_arrays_identity(client, ontap_sim):
    lun = client.lun_by_path(LUN0)
    seeded = ontap_sim.state.lun("svm1", path=LUN0)
    assert (lun.path, lun.uuid, lun.serial, lun.size, lun.os_type) == (
        LUN0,
        seeded.uuid,
        "wH5?k2Lm/9Qa",
        1 << 30,
        "linux",
    )
    assert lun.mapped is False and lun.online is True


def test_path_name_and_uuid_find_the_same_lun(client):
    by_path = client.lun_by_path(LUN1, fresh=True)
    assert client.lun_by_name("lun1", fresh=True) == by_path
    assert client.lun_by_uuid(by_path.uuid, fresh=True) == by_path
    assert find_lun(client, by_path.uuid) == by_path


def test_a_missing_lun_is_not_found(client):
    with pytest.raises(ArrayNotFound) as caught:
        client.lun_by_path("/vol/vol1/nosuch")
    assert caught.value.kind == "lun"
    with pytest.raises(ArrayNotFound):
        client.lun_by_name("nosuch")


def test_a_cache_miss_costs_one_request_and_a_hit_none(client, ontap_sim, wire):
    client.lun_by_path(LUN0)
    assert ontap_sim.counts[wire.key(wire.luns)] == 1 and ontap_sim.total(wire.api.value) == 1
    ontap_sim.reset_counts()
    client.lun_by_path(LUN0)
    client.lun_by_uuid(client.lun_by_path(LUN0).uuid)
    assert ontap_sim.total(wire.api.value) == 0


def test_a_lookup_that_reads_the_array_says_whether_the_lun_is_mapped_and_a_cached_one_does_not(
    client, ontap_sim, wire
):
    array_igroup(ontap_sim, IGROUP, IQN)
    array_map(ontap_sim, LUN0, IGROUP)
    mapped, unmapped = client.lun_by_path(LUN0, fresh=True), client.lun_by_path(LUN1, fresh=True)
    assert unmapped.mapped_to == frozenset()
    # REST's lookup names the igroups; ZAPI's lun-info says only that there are some
    assert mapped.mapped_to == ({IGROUP} if wire.api.value == "rest" else None)
    assert client.lun_by_path(LUN1).mapped_to is None  # maps change behind the cache: it keeps none


def test_a_lookup_that_reads_the_array_names_the_node_hosting_the_lun_and_a_cached_one_does_not(
    client, ontap_sim
):
    with ontap_sim.state.lock:
        node = ontap_sim.state.lun("svm1", path=LUN0).node
    assert client.lun_by_path(LUN0, fresh=True).node == node
    assert client.lun_by_path(LUN0).node == ""  # a volume move changes it behind the cache


def test_a_name_costs_one_request_until_the_array_said_it_is_unique(client, ontap_sim, wire):
    client.lun_by_path(LUN0)
    ontap_sim.reset_counts()
    assert client.lun_by_name("lun0").path == LUN0  # the cached path cannot vouch for other volumes
    assert client.lun_by_name("lun0").path == LUN0
    assert ontap_sim.counts[wire.key(wire.luns)] == 1 and ontap_sim.total(wire.api.value) == 1


def test_a_name_two_volumes_share_fails_even_after_one_of_them_was_cached(client, ontap_sim):
    array_lun(ontap_sim, "/vol/vol2/lun1")
    with pytest.raises(ArrayNotFound) as cold:
        client.lun_by_name("lun1")
    assert client.lun_by_path(LUN1).path == LUN1
    with pytest.raises(ArrayNotFound) as warm:
        client.lun_by_name("lun1")
    for caught in (cold, warm):
        assert sorted(caught.value.details["candidates"]) == [LUN1, "/vol/vol2/lun1"]


def test_a_unique_name_turns_ambiguous_when_a_twin_is_read_by_path(client, ontap_sim):
    assert client.lun_by_name("lun2").path == LUN2
    array_lun(ontap_sim, "/vol/vol2/lun2")
    client.lun_by_path("/vol/vol2/lun2")
    with pytest.raises(ArrayNotFound) as caught:
        client.lun_by_name("lun2")
    assert sorted(caught.value.details["candidates"]) == [LUN2, "/vol/vol2/lun2"]


def test_mapped_state_is_read_afresh_when_asked(client, ontap_sim):
    from tests.contract.helpers import array_igroup, array_map

    assert client.lun_by_path(LUN0).mapped is False
    array_igroup(ontap_sim, "other-host", "iqn.1994-05.com.redhat:other")
    array_map(ontap_sim, LUN0, "other-host")
    assert client.lun_by_path(LUN0, fresh=True).mapped is True


def test_luns_by_uuid_reads_the_sizes_of_many_luns_fresh_in_one_request(client, ontap_sim, wire):
    uuids = [client.lun_by_path(path).uuid for path in (LUN0, LUN1, LUN2)]
    grow_lun_rest(ontap_sim, LUN1, 5 << 30)  # behind the cache's back (an extend on the array)
    before = ontap_sim.counts[wire.key(wire.luns)]
    found = client.luns_by_uuid([*uuids, "00000000-0000-4000-8000-000000000000"])  # one deleted since
    assert ontap_sim.counts[wire.key(wire.luns)] - before == 1
    assert {lun.uuid: lun.size for lun in found} == {uuids[0]: 1 << 30, uuids[1]: 5 << 30, uuids[2]: 1 << 30}


def test_luns_by_uuid_of_nothing_asks_nothing(client, ontap_sim, wire):
    before = ontap_sim.total(wire.api.value)
    assert client.luns_by_uuid([]) == ()
    assert ontap_sim.total(wire.api.value) == before
