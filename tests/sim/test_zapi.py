"""The simulator speaks ZAPI the way ONTAP does, over real HTTP on loopback."""

from __future__ import annotations

import requests
from lxml import etree

from ontap_sim import Simulator
from tests.sim.wire import NS, ZAPI_PATH, field, records, results_of, texts, zapi_body

IQN_A = "iqn.1994-05.com.redhat:host-a"
IQN_B = "iqn.1994-05.com.redhat:host-b"


def failed(results: etree._Element, errno: int) -> bool:
    return results.get("status") == "failed" and results.get("errno") == str(errno)


def make_igroup(zapi, name: str = "host1", *initiators: str) -> None:
    results = zapi(
        "igroup-create",
        f"<initiator-group-name>{name}</initiator-group-name>"
        "<initiator-group-type>iscsi</initiator-group-type><os-type>linux</os-type>",
    )
    assert results.get("status") == "passed"
    for initiator in initiators:
        added = zapi(
            "igroup-add",
            f"<initiator-group-name>{name}</initiator-group-name><initiator>{initiator}</initiator>",
        )
        assert added.get("status") == "passed"


def map_lun(zapi, path: str, igroup: str = "host1", lun_id: int | None = None) -> etree._Element:
    wanted = "" if lun_id is None else f"<lun-id>{lun_id}</lun-id>"
    return zapi("lun-map", f"<path>{path}</path><initiator-group>{igroup}</initiator-group>{wanted}")


class TestEnvelope:
    def test_version_calls_report_the_seeded_release(self, zapi) -> None:
        ontapi = zapi("system-get-ontapi-version", vfiler=None)
        version = zapi("system-get-version")
        assert (field(ontapi, "major-version"), field(ontapi, "minor-version")) == ("1", "231")
        assert field(version, "version-tuple/system-version-tuple/major") == "13"
        assert field(version, "version").startswith("NetApp Release 9.13.1")

    def test_unknown_svm_in_vfiler_is_15698(self, zapi) -> None:
        assert failed(zapi("lun-get-iter", vfiler="nosuchsvm"), 15698)

    def test_unknown_api_is_13005(self, zapi) -> None:
        assert failed(zapi("lun-teleport"), 13005)

    def test_svm_only_api_without_tunnel_is_not_found(self, zapi) -> None:
        assert failed(
            zapi("lun-map", "<path>/vol/vol1/lun0</path><initiator-group>x</initiator-group>", vfiler=None),
            13005,
        )

    def test_children_without_namespace_are_accepted(
        self, ontap_sim: Simulator, http: requests.Session
    ) -> None:
        body = b'<netapp version="1.170" vfiler="svm1"><lun-get-serial-number><path>/vol/vol1/lun1</path></lun-get-serial-number></netapp>'
        reply = http.post(ontap_sim.base_url + ZAPI_PATH, data=body, timeout=5)
        assert field(results_of(reply.content), "serial-number") == "Zp$3Rt7/xY?b"

    def test_bad_credentials_are_http_401(self, ontap_sim: Simulator) -> None:
        reply = requests.post(
            ontap_sim.base_url + ZAPI_PATH,
            data=zapi_body("system-get-version"),
            auth=("admin", "wrong"),
            timeout=5,
        )
        assert reply.status_code == 401

    def test_get_is_refused_inside_results(self, ontap_sim: Simulator, http: requests.Session) -> None:
        reply = http.get(ontap_sim.base_url + ZAPI_PATH, timeout=5)
        results = results_of(reply.content)
        assert (reply.status_code, results.get("status"), results.get("errno")) == (
            200,
            "failed",
            "Not_Allowed",
        )

    def test_vserver_get_iter_finds_the_tunnelled_svm(self, zapi, ontap_sim: Simulator) -> None:
        results = zapi("vserver-get-iter")
        assert texts(results, "vserver-name") == ["svm1"]
        assert texts(results, "uuid") == [ontap_sim.state.svms["svm1"].uuid]


class TestIterators:
    def test_pages_follow_next_tag_until_it_disappears(self, zapi) -> None:
        first = zapi("lun-get-iter", "<max-records>3</max-records>")
        tag = field(first, "next-tag")
        assert field(first, "num-records") == "3" and tag.startswith("<lun-get-iter-key-td>")
        second = zapi("lun-get-iter", f"<max-records>3</max-records><tag>{etree_escape(tag)}</tag>")
        assert field(second, "num-records") == "1" and field(second, "next-tag") is None
        assert texts(first, "path") + texts(second, "path") == [f"/vol/vol1/lun{i}" for i in range(4)]

    def test_empty_result_passes_with_zero_records(self, zapi) -> None:
        results = zapi("lun-get-iter", "<query><lun-info><path>/vol/vol9/*</path></lun-info></query>")
        assert (
            results.get("status") == "passed"
            and field(results, "num-records") == "0"
            and records(results) == []
        )

    def test_only_star_is_a_wildcard_so_serials_with_question_marks_match_exactly(self, zapi) -> None:
        results = zapi(
            "lun-get-iter", "<query><lun-info><serial-number>8dK?mN2$vB4?</serial-number></lun-info></query>"
        )
        assert texts(results, "path") == []
        results = zapi(
            "lun-get-iter", "<query><lun-info><serial-number>8dK?mN2$vB4c</serial-number></lun-info></query>"
        )
        assert texts(results, "path") == ["/vol/vol1/lun2"]
        results = zapi(
            "lun-get-iter",
            "<query><lun-info><path>/vol/vol1/*</path><vserver>svm1</vserver></lun-info></query>",
        )
        assert len(records(results)) == 4

    def test_desired_attributes_select_by_presence(self, zapi) -> None:
        results = zapi(
            "lun-get-iter",
            "<desired-attributes><lun-info><path>ignored</path><size/></lun-info></desired-attributes>",
        )
        first = records(results)[0]
        assert [etree.QName(c).localname for c in first] == ["path", "size"]

    def test_igroup_query_by_initiator_returns_every_igroup_holding_it(self, zapi) -> None:
        make_igroup(zapi, "host1", IQN_A)
        make_igroup(zapi, "host2", IQN_A, IQN_B)
        make_igroup(zapi, "host3", IQN_B)
        query = f"<query><initiator-group-info><initiators><initiator-info><initiator-name>{IQN_A}</initiator-name></initiator-info></initiators></initiator-group-info></query>"
        results = zapi("igroup-get-iter", query)
        assert texts(results, "initiator-group-name") == ["host1", "host2"]
        assert texts(results, "initiators/initiator-info/initiator-name") == [IQN_A, IQN_A]


class TestIgroups:
    def test_duplicate_igroup_is_9004(self, zapi) -> None:
        make_igroup(zapi, "host1")
        assert failed(zapi("igroup-create", "<initiator-group-name>host1</initiator-group-name>"), 9004)

    def test_adding_a_present_initiator_is_9008_and_to_a_missing_igroup_9003(self, zapi) -> None:
        make_igroup(zapi, "host1", IQN_A)
        assert failed(
            zapi(
                "igroup-add",
                f"<initiator-group-name>host1</initiator-group-name><initiator>{IQN_A}</initiator>",
            ),
            9008,
        )
        assert failed(
            zapi(
                "igroup-add",
                f"<initiator-group-name>nope</initiator-group-name><initiator>{IQN_A}</initiator>",
            ),
            9003,
        )

    def test_remove_and_destroy(self, zapi, ontap_sim: Simulator) -> None:
        make_igroup(zapi, "host1", IQN_A)
        assert (
            zapi(
                "igroup-remove",
                f"<initiator-group-name>host1</initiator-group-name><initiator>{IQN_A}</initiator>",
            ).get("status")
            == "passed"
        )
        assert failed(
            zapi(
                "igroup-remove",
                f"<initiator-group-name>host1</initiator-group-name><initiator>{IQN_A}</initiator>",
            ),
            9007,
        )
        assert (
            zapi("igroup-destroy", "<initiator-group-name>host1</initiator-group-name>").get("status")
            == "passed"
        )
        assert ontap_sim.state.igroups == {}

    def test_destroying_a_mapped_igroup_is_9029(self, zapi) -> None:
        make_igroup(zapi, "host1", IQN_A)
        map_lun(zapi, "/vol/vol1/lun0")
        assert failed(zapi("igroup-destroy", "<initiator-group-name>host1</initiator-group-name>"), 9029)


class TestMaps:
    def test_ids_are_lowest_free_per_igroup_and_reused_after_unmap(self, zapi) -> None:
        make_igroup(zapi, "host1", IQN_A)
        assigned = [field(map_lun(zapi, f"/vol/vol1/lun{i}"), "lun-id-assigned") for i in range(3)]
        assert assigned == ["0", "1", "2"]
        assert (
            zapi("lun-unmap", "<path>/vol/vol1/lun1</path><initiator-group>host1</initiator-group>").get(
                "status"
            )
            == "passed"
        )
        assert field(map_lun(zapi, "/vol/vol1/lun3"), "lun-id-assigned") == "1"

    def test_mapping_twice_is_9023_and_a_taken_id_9024(self, zapi) -> None:
        make_igroup(zapi, "host1", IQN_A)
        map_lun(zapi, "/vol/vol1/lun0", lun_id=5)
        assert failed(map_lun(zapi, "/vol/vol1/lun0"), 9023)
        assert failed(map_lun(zapi, "/vol/vol1/lun1", lun_id=5), 9024)

    def test_a_missing_lun_is_15661_and_a_missing_igroup_9003_on_map_and_unmap(self, zapi) -> None:
        """EOBJECTNOTFOUND is what C-mode answers for a LUN that is not there (nDVP's live test)."""
        make_igroup(zapi, "host1", IQN_A)
        assert failed(map_lun(zapi, "/vol/vol1/nosuch"), 15661)
        assert failed(map_lun(zapi, "/vol/vol1/lun0", "nosuch"), 9003)
        unmap = "<path>{}</path><initiator-group>{}</initiator-group>"
        assert failed(zapi("lun-unmap", unmap.format("/vol/vol1/nosuch", "host1")), 15661)
        assert failed(zapi("lun-unmap", unmap.format("/vol/vol1/lun0", "nosuch")), 9003)

    def test_unmapping_what_is_not_mapped_is_9016(self, zapi) -> None:
        make_igroup(zapi, "host1", IQN_A)
        assert failed(
            zapi("lun-unmap", "<path>/vol/vol1/lun0</path><initiator-group>host1</initiator-group>"), 9016
        )

    def test_map_listings_show_id_igroup_and_reporting_nodes(self, zapi) -> None:
        make_igroup(zapi, "host1", IQN_A)
        map_lun(zapi, "/vol/vol1/lun2", lun_id=7)
        listed = zapi(
            "lun-map-get-iter", "<query><lun-map-info><path>/vol/vol1/lun2</path></lun-map-info></query>"
        )
        record = records(listed)[0]
        assert (field(record, "lun-id"), field(record, "initiator-group")) == ("7", "host1")
        assert [n.text for n in record.find(f"{{{NS}}}reporting-nodes")] == ["node-01", "node-02"]
        info = zapi("lun-map-list-info", "<path>/vol/vol1/lun2</path>")
        assert field(info, "initiator-groups/initiator-group-info/lun-id") == "7"
        by_initiator = zapi("lun-initiator-list-map-info", f"<initiator>{IQN_A}</initiator>")
        assert field(by_initiator, "lun-maps/lun-map-info/path") == "/vol/vol1/lun2"

    def test_lun_info_reports_mapped(self, zapi) -> None:
        make_igroup(zapi, "host1", IQN_A)
        map_lun(zapi, "/vol/vol1/lun0")
        results = zapi("lun-get-iter", "<query><lun-info><mapped>true</mapped></lun-info></query>")
        assert texts(results, "path") == ["/vol/vol1/lun0"]

    def test_lun_create_by_size_adds_a_lun_with_a_fresh_serial(self, zapi, ontap_sim: Simulator) -> None:
        created = zapi(
            "lun-create-by-size", "<path>/vol/vol1/demo</path><size>1048576</size><ostype>linux</ostype>"
        )
        assert field(created, "actual-size") == "1048576"
        serial = field(zapi("lun-get-serial-number", "<path>/vol/vol1/demo</path>"), "serial-number")
        assert len(serial) == 12 and serial not in {
            lun.serial for lun in ontap_sim.state.luns.values() if lun.name != "demo"
        }


class TestTarget:
    def test_portals_carry_address_port_tag_and_state(self, zapi) -> None:
        results = zapi("iscsi-interface-get-iter")
        assert texts(results, "ip-address") == ["127.0.0.1", "127.0.0.2"]
        assert texts(results, "ip-port") == ["3260", "3260"]
        assert texts(results, "tpgroup-tag") == ["1027", "1028"]
        assert texts(results, "is-interface-enabled") == ["true", "true"]

    def test_service_and_node_name_give_the_target_iqn(self, zapi) -> None:
        iqn = texts(zapi("iscsi-service-get-iter"), "node-name")[0]
        assert iqn.startswith("iqn.1992-08.com.netapp:sn.") and iqn.endswith(":vs.2")
        assert field(zapi("iscsi-node-get-name"), "node-name") == iqn


class TestChap:
    def test_get_auth_without_entry_is_13112(self, zapi) -> None:
        assert failed(zapi("iscsi-initiator-get-auth", f"<initiator>{IQN_A}</initiator>"), 13112)

    def test_add_modify_read_delete(self, zapi, ontap_sim: Simulator) -> None:
        added = zapi(
            "iscsi-initiator-add-auth",
            f"<initiator>{IQN_A}</initiator><auth-type>CHAP</auth-type>"
            "<user-name>in</user-name><passphrase>insecret1234</passphrase>",
        )
        assert added.get("status") == "passed"
        zapi(
            "iscsi-initiator-modify-chap-params",
            f"<initiator>{IQN_A}</initiator><outbound-user-name>out</outbound-user-name>"
            "<outbound-passphrase>outsecret1234</outbound-passphrase>",
        )
        auth = zapi("iscsi-initiator-get-auth", f"<initiator>{IQN_A}</initiator>")
        assert (field(auth, "auth-type"), field(auth, "user-name"), field(auth, "outbound-user-name")) == (
            "CHAP",
            "in",
            "out",
        )
        assert b"secret" not in etree.tostring(auth)
        assert ontap_sim.state.chap[("svm1", IQN_A)].outbound_password == "outsecret1234"
        listed = zapi("iscsi-initiator-auth-get-iter")
        assert sorted(texts(listed, "initiator")) == sorted(["default", IQN_A])
        assert (
            zapi("iscsi-initiator-delete-auth", f"<initiator>{IQN_A}</initiator>").get("status") == "passed"
        )
        assert failed(zapi("iscsi-initiator-get-auth", f"<initiator>{IQN_A}</initiator>"), 13112)

    def test_default_auth_is_none_until_set(self, zapi) -> None:
        assert field(zapi("iscsi-initiator-get-default-auth"), "auth-type") == "none"
        zapi(
            "iscsi-initiator-set-default-auth",
            "<auth-type>CHAP</auth-type><user-name>d</user-name><passphrase>defaultsecret1</passphrase>",
        )
        assert field(zapi("iscsi-initiator-get-default-auth"), "auth-type") == "CHAP"


def etree_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
