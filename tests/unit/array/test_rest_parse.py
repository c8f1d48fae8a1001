"""REST records become the same model values as ZAPI's; extra fields are ignored, missing essentials named."""

import json

import pytest

from iscsi_agent.array.errors import ArrayResponseError
from iscsi_agent.array.model import ChapAuth, Igroup, IscsiService, Lif, Lun, LunMap, Version
from iscsi_agent.array.rest_parse import (
    parse_chap,
    parse_igroup,
    parse_iscsi_service,
    parse_lun,
    parse_lun_map,
    parse_map_reply,
    parse_portal,
    parse_version,
)
from iscsi_agent.portal import Portal

LUN_RECORD = json.loads(
    """{
  "uuid": "bd6b3c2e-6f4e-4f55-b1a4-5d0f63b7e1a1", "name": "/vol/vol1/lun1",
  "svm": {"name": "svm1", "uuid": "fcb8bd8a-6ad5-11ee-9b61-005056b4e7fd"},
  "location": {"logical_unit": "lun1", "volume": {"name": "vol1", "uuid": "4b7c"},
               "qtree": {"name": "", "id": 0}, "node": {"name": "node-01", "uuid": "9a3e"}},
  "os_type": "linux", "class": "regular", "enabled": true,
  "serial_number": "ZlAFA?QMnBdX",
  "space": {"size": 10737418240, "used": 3474366464,
            "scsi_thin_provisioning_support_enabled": false,
            "guarantee": {"requested": false, "reserved": false}},
  "status": {"state": "online", "container_state": "online", "mapped": true, "read_only": false},
  "_links": {"self": {"href": "/api/storage/luns/bd6b3c2e-6f4e-4f55-b1a4-5d0f63b7e1a1"}}
}"""
)


def test_a_lun_record_gives_identity_size_os_type_and_mapped_state():
    lun = parse_lun(LUN_RECORD)
    assert lun == Lun(
        "/vol/vol1/lun1",
        "bd6b3c2e-6f4e-4f55-b1a4-5d0f63b7e1a1",
        "ZlAFA?QMnBdX",
        10737418240,
        "linux",
        True,
        True,
        "svm1",
    )
    assert lun.name == "lun1" and lun.naa_id == "600a09805a6c4146413f514d6e426458"


def test_a_lun_record_with_its_lun_maps_says_to_which_igroups_it_is_mapped():
    maps = [
        {"igroup": {"name": "host1", "uuid": "4ea7"}, "logical_unit_number": 0},
        {"igroup": {"name": "cluster", "uuid": "5fb8"}, "logical_unit_number": 3},
    ]
    assert parse_lun({**LUN_RECORD, "lun_maps": maps}).mapped_to == {"host1", "cluster"}
    unmapped = {**LUN_RECORD, "status": {"state": "online", "mapped": False}, "lun_maps": []}
    assert parse_lun(unmapped).mapped_to == frozenset()


def test_a_lun_record_names_the_node_hosting_it():
    assert parse_lun(LUN_RECORD).node == "node-01"
    assert parse_lun({k: v for k, v in LUN_RECORD.items() if k != "location"}).node == ""


def test_a_mapped_lun_record_without_its_lun_maps_does_not_say_to_which_igroups():
    assert parse_lun(LUN_RECORD).mapped_to is None


def test_a_map_reply_gives_the_lun_id_and_what_else_it_carries():
    echoed = {
        "svm": {"name": "svm1", "uuid": "fcb8"},
        "lun": {"name": "/vol/vol1/lun1", "uuid": "bd6b"},
        "igroup": {"name": "host1", "uuid": "4ea7"},
        "logical_unit_number": 2,
        "reporting_nodes": [{"name": "node-01", "uuid": "9a3e"}, {"name": "node-02", "uuid": "9a3f"}],
    }
    mapped = parse_map_reply(echoed)
    assert (mapped.lun_id, mapped.igroup_uuid, mapped.reporting_nodes) == (2, "4ea7", ("node-01", "node-02"))
    bare = parse_map_reply({"logical_unit_number": 2})
    assert (bare.lun_id, bare.igroup_uuid, bare.reporting_nodes) == (2, None, None)


def test_an_offline_lun_is_not_online():
    offline = {**LUN_RECORD, "status": {"state": "offline", "mapped": False}}
    assert parse_lun(offline).online is False


@pytest.mark.parametrize("missing", ["serial_number", "uuid", "os_type", "name"])
def test_a_lun_record_without_an_essential_field_names_it(missing):
    broken = {k: v for k, v in LUN_RECORD.items() if k != missing}
    with pytest.raises(ArrayResponseError) as caught:
        parse_lun(broken)
    assert caught.value.details["missing"] == missing


def test_status_mapped_is_required_because_it_comes_only_when_asked_for():
    with pytest.raises(ArrayResponseError) as caught:
        parse_lun({**LUN_RECORD, "status": {"state": "online"}})
    assert caught.value.details["missing"] == "status.mapped"


def test_an_igroup_record_lists_initiators_as_objects():
    record = {
        "uuid": "f8aa707a-57fa-11e4-ad08-123478563412",
        "name": "openstack-host1",
        "svm": {"name": "svm1"},
        "protocol": "iscsi",
        "os_type": "linux",
        "initiators": [{"name": "iqn.1994-05.com.redhat:abc", "comment": ""}],
    }
    assert parse_igroup(record) == Igroup(
        "openstack-host1",
        "iscsi",
        "linux",
        frozenset({"iqn.1994-05.com.redhat:abc"}),
        "f8aa707a-57fa-11e4-ad08-123478563412",
    )


def test_a_lun_map_record_carries_uuids_and_reporting_nodes():
    record = {
        "svm": {"name": "svm1", "uuid": "s"},
        "lun": {"name": "/vol/vol1/lun1", "uuid": "l-uuid", "node": {"name": "node-01", "uuid": "n"}},
        "igroup": {
            "name": "openstack-host1",
            "uuid": "ig-uuid",
            "os_type": "linux",
            "protocol": "iscsi",
            "initiators": ["iqn.1994-05.com.redhat:abc"],
        },
        "logical_unit_number": 0,
        "reporting_nodes": [{"name": "node-01", "uuid": "n1"}, {"name": "node-02", "uuid": "n2"}],
    }
    assert parse_lun_map(record) == LunMap(
        "/vol/vol1/lun1", "openstack-host1", 0, "l-uuid", "ig-uuid", ("node-01", "node-02")
    )


def test_a_lun_map_without_a_lun_number_is_a_response_error():
    with pytest.raises(ArrayResponseError):
        parse_lun_map({"lun": {"name": "/vol/v/l"}, "igroup": {"name": "ig"}})


INTERFACE = {
    "uuid": "1b3c",
    "name": "iscsi_lif1",
    "ip": {"address": "10.0.0.11", "netmask": "24", "family": "ipv4"},
    "enabled": True,
    "state": "up",
    "services": ["data_core", "data_iscsi"],
    "location": {
        "node": {"name": "node-02", "uuid": "n2"},
        "home_node": {"name": "node-01", "uuid": "n1"},
        "port": {"name": "e0d"},
    },
    "svm": {"name": "svm1", "uuid": "s"},
    "scope": "svm",
}


def test_an_interface_is_a_portal_on_3260_without_a_group_tag():
    assert parse_portal(INTERFACE) == Lif(Portal("10.0.0.11", 3260), None, "node-02", "node-01", "iscsi_lif1")


@pytest.mark.parametrize("change", [{"enabled": False}, {"state": "down"}])
def test_a_disabled_or_down_interface_is_no_portal(change):
    assert parse_portal({**INTERFACE, **change}) is None


def test_an_ipv6_portal_target_is_bracketed():
    assert str(parse_portal({**INTERFACE, "ip": {"address": "fd00::11"}}).portal) == "[fd00::11]:3260"


def test_the_iscsi_service_target_name_is_the_iqn():
    record = {
        "svm": {"name": "svm1"},
        "enabled": True,
        "target": {
            "name": "iqn.1992-08.com.netapp:sn.574caf71890911e8a6b7005056b4ea79:vs.2",
            "alias": "svm1",
        },
    }
    assert parse_iscsi_service(record) == IscsiService(
        "iqn.1992-08.com.netapp:sn.574caf71890911e8a6b7005056b4ea79:vs.2", "svm1", True
    )


def test_the_cluster_version_is_integers():
    cluster = {
        "name": "cluster1",
        "uuid": "c",
        "version": {
            "full": "NetApp Release 9.11.1: Wed Jun 01 2022",
            "generation": 9,
            "major": 11,
            "minor": 1,
        },
    }
    assert parse_version(cluster) == Version(9, 11, 1, "NetApp Release 9.11.1: Wed Jun 01 2022")
    with pytest.raises(ArrayResponseError):
        parse_version({"name": "cluster1"})


@pytest.mark.parametrize("spelling", ["chap", "CHAP"])
def test_credentials_accept_either_case_and_carry_no_secret(spelling):
    record = {
        "svm": {"name": "svm1", "uuid": "s"},
        "initiator": "iqn.1994-05.com.redhat:abc",
        "authentication_type": spelling,
        "chap": {"inbound": {"user": "inuser"}},
    }
    credentials = parse_chap(record)
    assert credentials.auth is ChapAuth.CHAP and credentials.inbound_user == "inuser"
    assert not credentials.mutual and credentials.inbound_secret is None


def test_initiators_in_another_shape_are_an_error_not_an_empty_igroup():
    squashed = {"name": "ig", "initiators": {"name": ["iqn.1994-05.com.redhat:abc"]}}
    with pytest.raises(ArrayResponseError) as caught:
        parse_igroup(squashed)
    assert caught.value.details["missing"] == "initiators"
