"""ZAPI records become model values; extra elements are ignored, missing essentials are named."""

import re

import pytest

from iscsi_agent.array.errors import ArrayResponseError
from iscsi_agent.array.model import ChapAuth, Igroup, IscsiService, Lif, Lun, LunMap, Svm, Version
from iscsi_agent.array.zapi import parse_results
from iscsi_agent.array.zapi_parse import (
    parse_assigned_lun_id,
    parse_chap,
    parse_igroup,
    parse_iscsi_service,
    parse_lun,
    parse_lun_map,
    parse_ontapi_version,
    parse_portal,
    parse_svm,
    parse_version,
)
from iscsi_agent.portal import Portal
from tests.unit.array.fakes import xml_reply


def results(inner: str):
    return parse_results(xml_reply(inner).body, "test")


def record(inner: str):
    return results(f"<attributes-list>{inner}</attributes-list><num-records>1</num-records>").find(
        "attributes-list"
    )[0]


LUN_INFO = """<lun-info>
  <alignment>indeterminate</alignment><block-size>512</block-size><class>regular</class>
  <is-space-reservation-enabled>false</is-space-reservation-enabled>
  <mapped>true</mapped><multiprotocol-type>linux</multiprotocol-type><node>node-01</node>
  <online>true</online><path>/vol/vol1/lun1</path><qtree></qtree><read-only>false</read-only>
  <serial-number>2FfGI$APyN68</serial-number><size>10737418240</size><size-used>3474366464</size-used>
  <state>online</state><uuid>bd6b3c2e-6f4e-4f55-b1a4-5d0f63b7e1a1</uuid>
  <volume>vol1</volume><vserver>svm1</vserver><some-future-field>x</some-future-field>
</lun-info>"""


def test_a_lun_info_record_gives_identity_size_os_type_and_mapped_state():
    assert parse_lun(record(LUN_INFO)) == Lun(
        path="/vol/vol1/lun1",
        uuid="bd6b3c2e-6f4e-4f55-b1a4-5d0f63b7e1a1",
        serial="2FfGI$APyN68",
        size=10737418240,
        os_type="linux",
        mapped=True,
        online=True,
        svm="svm1",
    )


def test_a_lun_info_names_the_node_hosting_it():
    assert parse_lun(record(LUN_INFO)).node == "node-01"


def test_a_lun_info_says_to_which_igroups_only_of_an_unmapped_lun():
    assert parse_lun(record(LUN_INFO)).mapped_to is None  # mapped, but lun-info names no igroup
    unmapped = LUN_INFO.replace("<mapped>true</mapped>", "<mapped>false</mapped>")
    assert parse_lun(record(unmapped)).mapped_to == frozenset()


@pytest.mark.parametrize("missing", ["serial-number", "uuid", "size", "path", "mapped"])
def test_a_lun_info_without_an_essential_field_names_it(missing):
    broken = re.sub(rf"<{missing}>[^<]*</{missing}>", "", LUN_INFO)
    with pytest.raises(ArrayResponseError) as caught:
        parse_lun(record(broken))
    assert caught.value.details["missing"] == missing and "lun-get-iter" in str(caught.value)


def test_a_size_that_is_not_a_number_is_a_response_error():
    with pytest.raises(ArrayResponseError):
        parse_lun(record(LUN_INFO.replace("<size>10737418240</size>", "<size>lots</size>")))


def test_an_igroup_record_gives_its_initiators():
    igroup = parse_igroup(
        record(
            """<initiator-group-info>
              <initiator-group-alua-enabled>true</initiator-group-alua-enabled>
              <initiator-group-name>openstack-host1</initiator-group-name>
              <initiator-group-os-type>linux</initiator-group-os-type>
              <initiator-group-type>iscsi</initiator-group-type>
              <initiator-group-uuid>f8aa707a-57fa-11e4-ad08-123478563412</initiator-group-uuid>
              <initiators>
                <initiator-info><initiator-name>iqn.1994-05.com.redhat:abc</initiator-name></initiator-info>
                <initiator-info><initiator-name>iqn.1994-05.com.redhat:def</initiator-name></initiator-info>
              </initiators>
              <vserver>svm1</vserver>
            </initiator-group-info>"""
        )
    )
    assert igroup == Igroup(
        "openstack-host1",
        "iscsi",
        "linux",
        frozenset({"iqn.1994-05.com.redhat:abc", "iqn.1994-05.com.redhat:def"}),
        "f8aa707a-57fa-11e4-ad08-123478563412",
    )
    assert not igroup.has_exactly({"iqn.1994-05.com.redhat:abc"})


def test_an_igroup_without_initiators_has_none():
    igroup = parse_igroup(
        record("<initiator-group-info><initiator-group-name>ig</initiator-group-name></initiator-group-info>")
    )
    assert igroup.initiators == frozenset() and igroup.uuid is None


def test_a_lun_map_record_carries_the_reporting_nodes():
    lun_map = parse_lun_map(
        record(
            """<lun-map-info>
              <initiator-group>openstack-host1</initiator-group>
              <initiator-group-uuid>f8aa707a-57fa-11e4-ad08-123478563412</initiator-group-uuid>
              <lun-id>4</lun-id><lun-uuid>bd6b3c2e-6f4e-4f55-b1a4-5d0f63b7e1a1</lun-uuid><node>node-01</node>
              <path>/vol/vol1/lun1</path>
              <reporting-nodes><node-name>node-01</node-name><node-name>node-02</node-name></reporting-nodes>
              <vserver>svm1</vserver>
            </lun-map-info>"""
        )
    )
    assert lun_map == LunMap(
        "/vol/vol1/lun1",
        "openstack-host1",
        4,
        "bd6b3c2e-6f4e-4f55-b1a4-5d0f63b7e1a1",
        "f8aa707a-57fa-11e4-ad08-123478563412",
        ("node-01", "node-02"),
    )


def test_lun_map_success_gives_the_assigned_id():
    assert parse_assigned_lun_id(results("<lun-id-assigned>3</lun-id-assigned>")) == 3
    with pytest.raises(ArrayResponseError):
        parse_assigned_lun_id(results(""))


PORTAL = """<iscsi-interface-list-entry-info>
  <current-node>node-01</current-node><current-port>e0d</current-port>
  <interface-name>iscsi_lif1</interface-name><ip-address>10.0.0.11</ip-address><ip-port>3260</ip-port>
  <is-interface-enabled>true</is-interface-enabled><relative-port-id>5</relative-port-id>
  <tpgroup-name>iscsi_lif1</tpgroup-name><tpgroup-tag>1038</tpgroup-tag><vserver>svm1</vserver>
</iscsi-interface-list-entry-info>"""


def test_an_enabled_iscsi_interface_is_a_portal_with_its_tag():
    assert parse_portal(record(PORTAL)) == Lif(Portal("10.0.0.11", 3260), 1038, "node-01", None, "iscsi_lif1")


def test_a_disabled_iscsi_interface_is_no_portal():
    disabled = PORTAL.replace("<is-interface-enabled>true", "<is-interface-enabled>false")
    assert parse_portal(record(disabled)) is None


def test_the_iscsi_service_node_name_is_the_target_iqn():
    service = parse_iscsi_service(
        record(
            """<iscsi-service-info><alias-name>svm1</alias-name><is-available>true</is-available>
            <login-timeout>15</login-timeout><node-name>iqn.1992-08.com.netapp:sn.fa9:vs.105</node-name>
            <vserver>svm1</vserver></iscsi-service-info>"""
        )
    )
    assert service == IscsiService("iqn.1992-08.com.netapp:sn.fa9:vs.105", "svm1", True)


def test_system_get_version_gives_the_release_tuple():
    reply = results(
        """<build-timestamp>1395426307</build-timestamp><is-clustered>true</is-clustered>
        <version>NetApp Release 9.6P2: Fri Jul 19 06:06:59 UTC 2019</version>
        <version-tuple><system-version-tuple><generation>9</generation><major>6</major><minor>0</minor>
        </system-version-tuple></version-tuple>"""
    )
    version = parse_version(reply, (1, 160))
    assert version == Version(9, 6, 0, "NetApp Release 9.6P2: Fri Jul 19 06:06:59 UTC 2019", (1, 160))
    assert str(version) == "9.6.0" and not version.at_least((9, 11, 1))


def test_an_old_release_without_the_tuple_is_read_from_the_text():
    assert parse_version(results("<version>NetApp Release 8.3.2P5: Tue Aug 23 2016</version>")).release == (
        8,
        3,
        2,
    )
    with pytest.raises(ArrayResponseError):
        parse_version(results("<version>unknown</version>"))


def test_the_ontapi_version_is_major_and_minor():
    assert parse_ontapi_version(
        results("<major-version>1</major-version><minor-version>170</minor-version>")
    ) == (1, 170)


def test_chap_auth_reads_users_and_never_secrets():
    credentials = parse_chap(
        results(
            "<auth-type>CHAP</auth-type><user-name>inuser</user-name><outbound-user-name>outuser</outbound-user-name>"
        ),
        "iqn.1994-05.com.redhat:abc",
    )
    assert credentials.auth is ChapAuth.CHAP and credentials.mutual
    assert (credentials.inbound_user, credentials.outbound_user) == ("inuser", "outuser")
    assert credentials.inbound_secret is None


def test_an_unknown_auth_type_is_a_response_error():
    with pytest.raises(ArrayResponseError):
        parse_chap(results("<auth-type>radius-ish</auth-type>"), "iqn.x")


def test_a_vserver_record_gives_the_svm_name_and_uuid():
    info = record(
        "<vserver-info><operational-state>running</operational-state><uuid>4d2b1c3e-0000-4000-8000-000000000001</uuid>"
        "<vserver-name>svm1</vserver-name><vserver-type>data</vserver-type></vserver-info>"
    )
    assert parse_svm(info) == Svm("svm1", "4d2b1c3e-0000-4000-8000-000000000001")
