"""What a refused map or unmap means, the same over ZAPI and REST.

A LUN or igroup that does not exist is ArrayNotFound naming which; unmapping from an igroup or
a LUN that does not exist is "there was no map" (False); a LUN this host already sees through
another igroup is ArrayMappedElsewhere naming that igroup and LUN id, so the attach can use it.
"""

import pytest

from iscsi_agent.array.errors import ArrayAlreadyExists, ArrayMappedElsewhere, ArrayNotFound
from tests.contract.helpers import IGROUP, IQN, LUN0, LUN1, array_igroup, array_map, array_maps

OTHER = "iqn.1994-05.com.redhat:other-host"


def test_mapping_a_lun_that_does_not_exist_is_lun_not_found(client, ontap_sim):
    array_igroup(ontap_sim, IGROUP, IQN)
    with pytest.raises(ArrayNotFound) as caught:
        client.map_lun("/vol/vol1/nosuch", IGROUP)
    assert (caught.value.kind, caught.value.name) == ("lun", "/vol/vol1/nosuch")
    assert caught.value.details["array_code"]


def test_mapping_to_an_igroup_that_does_not_exist_is_igroup_not_found(client):
    with pytest.raises(ArrayNotFound) as caught:
        client.map_lun(LUN0, "openstack-nosuch")
    assert (caught.value.kind, caught.value.name) == ("igroup", "openstack-nosuch")
    assert caught.value.details["array_code"]


def test_a_lun_that_disappeared_is_not_served_from_the_cache_after_a_failed_map(client, ontap_sim):
    array_igroup(ontap_sim, IGROUP, IQN)
    client.lun_by_path(LUN0)
    with ontap_sim.state.lock:
        del ontap_sim.state.luns[ontap_sim.state.lun("svm1", path=LUN0).uuid]
    with pytest.raises(ArrayNotFound):
        client.map_lun(LUN0, IGROUP)
    with pytest.raises(ArrayNotFound):
        client.lun_by_path(LUN0)


def test_unmapping_from_an_igroup_that_does_not_exist_is_no_map(client, ontap_sim):
    assert client.unmap_lun(LUN0, "openstack-nosuch") is False


def test_unmapping_a_lun_that_does_not_exist_is_no_map(client, ontap_sim):
    array_igroup(ontap_sim, IGROUP, IQN)
    assert client.unmap_lun("/vol/vol1/nosuch", IGROUP) is False


def test_a_lun_the_host_sees_through_another_igroup_names_that_igroup_and_lun_id(client, ontap_sim):
    array_igroup(ontap_sim, "cluster-wide", IQN, OTHER)
    array_map(ontap_sim, LUN0, "cluster-wide", 4)
    client.create_igroup(IGROUP, "linux", (IQN,))
    with pytest.raises(ArrayMappedElsewhere) as caught:
        client.map_lun(LUN0, IGROUP)
    error = caught.value
    assert not isinstance(error, ArrayAlreadyExists)  # it is not mapped to the igroup we asked for
    assert (error.path, error.igroup, error.lun_id, error.requested_igroup) == (
        LUN0,
        "cluster-wide",
        4,
        IGROUP,
    )
    assert error.initiators == (IQN,)
    assert error.code == "array_mapped_elsewhere" and error.array_code
    assert array_maps(ontap_sim, LUN0) == [("cluster-wide", 4)]


def test_a_map_of_the_lun_to_hosts_other_than_ours_does_not_block_ours(client, ontap_sim):
    array_igroup(ontap_sim, "theirs", OTHER)
    array_map(ontap_sim, LUN0, "theirs", 0)
    client.create_igroup(IGROUP, "linux", (IQN,))
    assert client.map_lun(LUN0, IGROUP) == 0
    assert client.map_lun(LUN0, IGROUP) == 0
    assert sorted(array_maps(ontap_sim, LUN0)) == [(IGROUP, 0), ("theirs", 0)]
    assert client.map_lun(LUN1, IGROUP) == 1
