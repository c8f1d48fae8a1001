"""The shared client: LUN cache, idempotent writes, and recovery when a reply is lost."""

import pytest

from iscsi_agent.array.budget import Budgets, RetryPolicy
from iscsi_agent.array.cache import LunCache
from iscsi_agent.array.client import find_lun
from iscsi_agent.array.errors import (
    ArrayAlreadyMapped,
    ArrayMappedElsewhere,
    ArrayNotFound,
    ArrayUnreachable,
)
from iscsi_agent.array.model import Igroup, Lun
from iscsi_agent.array.ontap import OntapClient
from tests.unit.array.fakes import FakeOps

IQN = "iqn.1994-05.com.redhat:host1"
LUN0 = Lun("/vol/vol1/lun0", "8c1b7a52-0c8e-4a53-9d7a-1f5c1e2d3a40", "ab?$/Cd3fGh1", 1 << 30, "linux", False)
LUN1 = Lun("/vol/vol1/lun1", "8c1b7a52-0c8e-4a53-9d7a-1f5c1e2d3a41", "ZlAFA?QMnBdX", 1 << 30, "linux", False)
TWIN = Lun("/vol/vol2/lun1", "8c1b7a52-0c8e-4a53-9d7a-1f5c1e2d3a42", "2FfGI$APyN68", 1 << 30, "linux", False)


@pytest.fixture
def ops():
    return FakeOps([LUN0, LUN1, TWIN])


@pytest.fixture
def sleeps():
    return []


@pytest.fixture
def client(ops, sleeps):
    return OntapClient(ops, cache=LunCache(8), budgets=Budgets(sleep=sleeps.append, rand=lambda: 1.0))


def test_a_lun_is_read_once_then_served_from_the_cache_by_path_and_uuid(client, ops):
    assert client.lun_by_path("/vol/vol1/lun0") == LUN0
    assert client.lun_by_uuid(LUN0.uuid) == LUN0
    assert ops.calls == ["find_luns"]


def test_a_name_is_served_from_the_cache_only_after_the_array_said_it_is_unique(client, ops):
    client.lun_by_path("/vol/vol1/lun0")
    assert client.lun_by_name("lun0") == LUN0  # a cached path says nothing about other volumes
    assert client.lun_by_name("lun0") == LUN0
    assert ops.calls == ["find_luns", "find_luns"]


def test_a_name_two_volumes_share_is_never_answered_from_the_cache(client, ops):
    assert client.lun_by_path("/vol/vol1/lun1") == LUN1
    with pytest.raises(ArrayNotFound) as caught:
        client.lun_by_name("lun1")
    assert sorted(caught.value.details["candidates"]) == ["/vol/vol1/lun1", "/vol/vol2/lun1"]
    assert ops.calls == ["find_luns", "find_luns"]


def test_a_name_known_unique_stops_being_so_when_another_lun_of_that_name_is_read(client, ops):
    assert client.lun_by_name("lun0") == LUN0
    twin = Lun(
        "/vol/vol2/lun0", "8c1b7a52-0c8e-4a53-9d7a-1f5c1e2d3a43", "Qw3$rT/y?u1i", 1 << 30, "linux", False
    )
    ops.luns[twin.path] = twin  # created on the array since
    assert client.lun_by_path(twin.path) == twin
    with pytest.raises(ArrayNotFound) as caught:
        client.lun_by_name("lun0")
    assert sorted(caught.value.details["candidates"]) == ["/vol/vol1/lun0", "/vol/vol2/lun0"]


def test_fresh_bypasses_the_cache(client, ops):
    client.lun_by_path("/vol/vol1/lun0")
    client.lun_by_path("/vol/vol1/lun0", fresh=True)
    assert ops.calls == ["find_luns", "find_luns"]


def test_a_missing_lun_is_not_found(client):
    with pytest.raises(ArrayNotFound) as caught:
        client.lun_by_path("/vol/vol1/nosuch")
    assert (caught.value.code, caught.value.kind) == ("array_not_found", "lun")


def test_a_name_two_luns_share_is_not_found_and_lists_the_candidates(client):
    with pytest.raises(ArrayNotFound) as caught:
        client.lun_by_name("lun1")
    assert sorted(caught.value.details["candidates"]) == ["/vol/vol1/lun1", "/vol/vol2/lun1"]


def test_find_lun_takes_a_path_a_uuid_or_a_name(client):
    assert find_lun(client, "/vol/vol1/lun0") == LUN0
    assert find_lun(client, LUN0.uuid) == LUN0
    assert find_lun(client, "lun0") == LUN0


def test_map_returns_the_assigned_id_and_marks_the_cached_lun_mapped(client):
    client.lun_by_path("/vol/vol1/lun0")
    client.create_igroup("openstack-host1", "linux", (IQN,))
    assert client.map_lun("/vol/vol1/lun0", "openstack-host1") == 0
    assert client.lun_by_path("/vol/vol1/lun0").mapped is True


def test_mapping_an_already_mapped_lun_returns_the_existing_id(client, ops):
    ops.maps_[("/vol/vol1/lun0", "ig")] = 7
    assert client.map_lun("/vol/vol1/lun0", "ig") == 7
    assert ops.calls == ["map_lun", "maps"]


def refuse_as_already_mapped(ops):
    def refuse(path, igroup, lun_id):
        ops.calls.append("map_lun")
        raise ArrayAlreadyMapped("lun-map", "9023", "LUN already mapped to this group")

    ops.map_lun = refuse


def test_a_lun_the_initiator_sees_through_another_igroup_is_mapped_elsewhere_not_already_mapped(client, ops):
    ops.igroups["ig"] = Igroup("ig", "iscsi", "linux", frozenset({IQN}))
    ops.igroups["shared"] = Igroup("shared", "iscsi", "linux", frozenset({IQN, "iqn.1994-05.com.redhat:h2"}))
    ops.maps_[("/vol/vol1/lun0", "shared")] = 3
    refuse_as_already_mapped(ops)
    with pytest.raises(ArrayMappedElsewhere) as caught:
        client.map_lun("/vol/vol1/lun0", "ig")
    assert not isinstance(caught.value, ArrayAlreadyMapped)
    assert (caught.value.igroup, caught.value.lun_id, caught.value.initiators) == ("shared", 3, (IQN,))
    assert caught.value.details["igroup"] == "shared" and caught.value.array_code == "9023"
    assert ops.calls == ["map_lun", "maps", "igroup_by_name", "igroups_with_initiator"]


def test_a_refusal_that_no_map_explains_stands(client, ops):
    ops.igroups["ig"] = Igroup("ig", "iscsi", "linux", frozenset({IQN}))
    ops.igroups["theirs"] = Igroup("theirs", "iscsi", "linux", frozenset({"iqn.1994-05.com.redhat:h2"}))
    ops.maps_[("/vol/vol1/lun0", "theirs")] = 0
    refuse_as_already_mapped(ops)
    with pytest.raises(ArrayAlreadyMapped) as caught:
        client.map_lun("/vol/vol1/lun0", "ig")
    assert type(caught.value) is ArrayAlreadyMapped


def test_a_failed_map_of_a_lun_that_is_gone_forgets_the_cached_lun(client, ops):
    client.lun_by_path("/vol/vol1/lun0")
    del ops.luns["/vol/vol1/lun0"]

    def gone(path, igroup, lun_id):
        raise ArrayNotFound("lun", path, array_code="15661")

    ops.map_lun = gone
    with pytest.raises(ArrayNotFound):
        client.map_lun("/vol/vol1/lun0", "ig")
    with pytest.raises(ArrayNotFound):
        client.lun_by_path("/vol/vol1/lun0")


def test_a_reset_after_the_array_applied_the_map_is_resolved_by_reading_without_a_second_map(client, ops):
    ops.lose_reply_of.add("map_lun")
    assert client.map_lun("/vol/vol1/lun0", "ig") == 0
    assert ops.calls == ["map_lun", "maps"]
    assert list(ops.maps_) == [("/vol/vol1/lun0", "ig")]


def test_a_map_that_never_reached_the_array_is_sent_again_after_a_backoff(client, ops, sleeps):
    ops.fail_before.add("map_lun")
    assert client.map_lun("/vol/vol1/lun0", "ig", lun_id=5) == 5
    assert ops.calls == ["map_lun", "maps", "map_lun"]
    assert sleeps == [0.5]


def always_refuse_maps(ops):
    def refuse(path, igroup, lun_id):
        ops.calls.append("map_lun")
        raise ArrayUnreachable("connection refused")

    ops.map_lun = refuse


def test_recovery_is_bounded(ops, sleeps):
    client = OntapClient(ops, budgets=Budgets(RetryPolicy(attempts=2), sleep=sleeps.append))
    always_refuse_maps(ops)
    with pytest.raises(ArrayUnreachable):
        client.map_lun("/vol/vol1/lun0", "ig")
    assert ops.calls == ["map_lun", "maps", "map_lun", "maps"]
    assert len(sleeps) == 1


def test_a_resend_that_would_start_after_the_deadline_is_not_sent(ops, sleeps):
    policy = RetryPolicy(attempts=10, base_delay=1.0, deadline=2.5)
    budgets = Budgets(policy, sleep=sleeps.append, rand=lambda: 1.0, clock=lambda: sum(sleeps))
    client = OntapClient(ops, budgets=budgets)
    always_refuse_maps(ops)
    with pytest.raises(ArrayUnreachable):
        client.map_lun("/vol/vol1/lun0", "ig")
    assert sleeps == [1.0]  # the next backoff, 2 s, would end after the deadline
    assert ops.calls.count("map_lun") == 2


def test_a_call_made_within_another_spends_the_outer_calls_budget(ops, sleeps):
    client = OntapClient(ops, budgets=Budgets(RetryPolicy(attempts=3), sleep=sleeps.append))

    def create_on_the_second_try_without_initiators(name, os_type, initiators):
        ops.calls.append("create_igroup")
        if ops.calls.count("create_igroup") == 1:
            raise ArrayUnreachable("connection refused")
        ops.igroups[name] = Igroup(name, "iscsi", os_type, frozenset())
        return ops.igroups[name]

    def refuse(igroup, initiator):
        ops.calls.append("add_initiator")
        raise ArrayUnreachable("connection refused")

    ops.create_igroup = create_on_the_second_try_without_initiators
    ops.add_initiator = refuse
    with pytest.raises(ArrayUnreachable):
        client.create_igroup("ig", "linux", (IQN,))
    assert ops.calls.count("create_igroup") == 2
    assert ops.calls.count("add_initiator") == 2  # one retry was left for the nested add, not three
    assert len(sleeps) == 2


def test_unmap_reports_whether_a_map_was_removed_and_keeps_the_cached_lun(client, ops):
    client.lun_by_path("/vol/vol1/lun0")
    ops.maps_[("/vol/vol1/lun0", "ig")] = 0
    assert client.unmap_lun("/vol/vol1/lun0", "ig") is True
    assert client.unmap_lun("/vol/vol1/lun0", "ig") is False
    ops.calls.clear()
    client.lun_by_path("/vol/vol1/lun0")  # the LUN's identity did not change: a re-attach costs only the map
    assert ops.calls == []


def test_creating_an_igroup_that_exists_returns_it_with_the_initiator_added(client, ops):
    ops.igroups["openstack-host1"] = Igroup("openstack-host1", "iscsi", "linux", frozenset())
    igroup = client.create_igroup("openstack-host1", "linux", (IQN,))
    assert igroup.initiators == frozenset({IQN})
    assert ops.igroups["openstack-host1"].initiators == frozenset({IQN})


def test_a_reset_after_the_array_created_the_igroup_creates_no_second_one(client, ops):
    ops.lose_reply_of.add("create_igroup")
    igroup = client.create_igroup("openstack-host1", "linux", (IQN,))
    assert igroup.name == "openstack-host1" and IQN in igroup.initiators
    assert ops.calls.count("create_igroup") == 1


def test_adding_an_initiator_twice_is_fine(client, ops):
    ops.igroups["ig"] = Igroup("ig", "iscsi", "linux", frozenset({IQN}))
    client.add_initiator("ig", IQN)
    assert ops.igroups["ig"].initiators == frozenset({IQN})


def test_a_reset_after_the_initiator_was_added_is_resolved_by_reading(client, ops):
    ops.igroups["ig"] = Igroup("ig", "iscsi", "linux", frozenset())
    ops.lose_reply_of.add("add_initiator")
    client.add_initiator("ig", IQN)
    assert ops.calls == ["add_initiator", "igroup_by_name"]


def test_lun_map_gives_the_reporting_nodes_or_none(client, ops):
    ops.maps_[("/vol/vol1/lun0", "ig")] = 2
    assert client.lun_map("/vol/vol1/lun0", "ig").reporting_nodes == ("node-01", "node-02")
    assert client.lun_map("/vol/vol1/lun1", "ig") is None


def test_maps_of_an_igroup_is_one_call(client, ops):
    ops.maps_.update(
        {("/vol/vol1/lun0", "ig"): 0, ("/vol/vol1/lun1", "ig"): 1, ("/vol/vol1/lun1", "other"): 0}
    )
    ops.calls.clear()
    assert [m.lun_id for m in client.maps_of_igroup("ig")] == [0, 1]
    assert ops.calls == ["maps"]
