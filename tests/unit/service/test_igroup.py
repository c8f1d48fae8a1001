"""This host's igroup: a name every agent on the host derives alike, and the design's choice rule."""

import hashlib

import pytest

from iscsi_agent.array.model import Igroup
from iscsi_agent.service.igroup import (
    IGROUP_NAME_MAX,
    IgroupConflict,
    Passed,
    check_created,
    choose_igroup,
    igroup_name,
)

IQN = "iqn.1994-05.com.redhat:compute-7"
OTHER = "iqn.1994-05.com.redhat:compute-8"
OWN = igroup_name("openstack-", "compute-7.example.net", IQN)


def group(name, *initiators, protocol="iscsi", os_type="linux"):
    return Igroup(name, protocol, os_type, frozenset(initiators))


def test_the_name_is_prefix_short_hostname_and_the_iqn_hash():
    digest = hashlib.sha256(IQN.encode()).hexdigest()[:8]
    assert f"openstack-compute-7-{digest}" == OWN


def test_the_name_ignores_the_case_of_the_iqn():
    assert igroup_name("p-", "h", IQN.upper()) == igroup_name("p-", "h", IQN)


def test_a_long_hostname_is_cut_so_the_name_fits_ontaps_limit():
    name = igroup_name("openstack-", "h" * 200, IQN)
    assert len(name) == IGROUP_NAME_MAX
    assert name.startswith("openstack-hhh") and name.endswith(OWN[-9:])


def test_characters_ontap_refuses_in_a_name_are_replaced():
    assert igroup_name("p-", "bad host+name.example", IQN).startswith("p-bad-host-name-")


def test_a_prefix_that_leaves_no_room_is_refused():
    with pytest.raises(ValueError, match="no room"):
        igroup_name("x" * 90, "host", IQN)


def test_the_agents_own_igroup_wins_over_other_igroups_of_this_host():
    choice = choose_igroup([group("aaa", IQN), group(OWN, IQN)], IQN, "linux", OWN)
    assert choice.igroup.name == OWN and choice.create is None
    assert [(g.name, why) for g, why in choice.passed_over] == [("aaa", Passed.NOT_FIRST)]


def test_without_its_own_the_first_igroup_holding_only_this_host_by_name_is_used():
    choice = choose_igroup([group("zeta", IQN), group("alpha", IQN.upper())], IQN, "linux", OWN)
    assert choice.igroup.name == "alpha"


def test_an_igroup_shared_with_other_hosts_is_never_used_and_the_agents_is_created():
    choice = choose_igroup([group("cluster", IQN, OTHER)], IQN, "linux", OWN)
    assert choice.igroup is None and choice.create == OWN
    assert [(g.name, why) for g, why in choice.passed_over] == [("cluster", Passed.SHARED)]


def test_fc_igroups_and_other_os_types_are_passed_over():
    choice = choose_igroup(
        [
            group("fc", IQN, protocol="fcp"),
            group("win", IQN, os_type="windows"),
            group("mix", IQN, protocol="mixed"),
        ],
        IQN,
        "linux",
        OWN,
    )
    assert choice.igroup.name == "mix"
    assert {g.name: why for g, why in choice.passed_over} == {"fc": Passed.PROTOCOL, "win": Passed.OS_TYPE}


def test_no_igroup_at_all_means_create_the_agents():
    assert choose_igroup([], IQN, "linux", OWN).create == OWN


def test_the_agents_name_on_an_igroup_it_may_not_use_is_a_conflict_naming_it():
    with pytest.raises(IgroupConflict, match=f"igroup {OWN} .*other hosts' initiators"):
        choose_igroup([group(OWN, IQN, OTHER)], IQN, "linux", OWN)


def test_an_igroup_the_create_found_already_there_must_be_usable():
    assert check_created(group(OWN, IQN), IQN, "linux").name == OWN
    with pytest.raises(IgroupConflict, match="another os_type"):
        check_created(group(OWN, IQN, os_type="vmware"), IQN, "linux")
