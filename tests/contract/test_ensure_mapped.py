"""ensure_mapped: the map through which this host sees a LUN, and whether the call made it.

An attach rolls back, and a detach removes, only a map it made; a map that was there (to this
host's igroup, or to another igroup holding its initiator) is used as it is.
"""

from iscsi_agent.array.model import MapOutcome
from tests.contract.helpers import IGROUP, IQN, LUN0, array_igroup, array_map, array_maps

OTHER = "iqn.1994-05.com.redhat:other-host"


def test_a_new_map_is_made_and_says_so(client, ontap_sim):
    array_igroup(ontap_sim, IGROUP, IQN)
    outcome = client.ensure_mapped(LUN0, IGROUP)
    assert outcome == MapOutcome(array_maps(ontap_sim, LUN0)[0][1], IGROUP, created=True)


def test_a_map_that_was_there_is_answered_with_its_id_and_not_as_made(client, ontap_sim):
    array_igroup(ontap_sim, IGROUP, IQN)
    lun_id = array_map(ontap_sim, LUN0, IGROUP, 5)
    assert client.ensure_mapped(LUN0, IGROUP) == MapOutcome(5, IGROUP, created=False)
    assert array_maps(ontap_sim, LUN0) == [(IGROUP, lun_id)]


def test_a_lun_seen_through_another_igroup_is_answered_with_that_map(client, ontap_sim):
    array_igroup(ontap_sim, IGROUP, IQN)
    array_igroup(ontap_sim, "shared-cluster", IQN, OTHER)
    array_map(ontap_sim, LUN0, "shared-cluster", 9)
    assert client.ensure_mapped(LUN0, IGROUP) == MapOutcome(9, "shared-cluster", created=False)
    assert array_maps(ontap_sim, LUN0) == [("shared-cluster", 9)]


def test_a_map_to_another_hosts_igroup_does_not_stop_ours(client, ontap_sim):
    array_igroup(ontap_sim, IGROUP, IQN)
    array_igroup(ontap_sim, "other-host", OTHER)
    array_map(ontap_sim, LUN0, "other-host", 3)
    outcome = client.ensure_mapped(LUN0, IGROUP)
    assert outcome.igroup == IGROUP and outcome.created
    assert sorted(array_maps(ontap_sim, LUN0)) == sorted([("other-host", 3), (IGROUP, outcome.lun_id)])
