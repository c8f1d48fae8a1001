"""The simulator speaks ONTAP REST the way real clients (cinder, trident) expect it."""

from __future__ import annotations

from typing import Any, ClassVar

import requests

from ontap_sim import Simulator

IQN_A = "iqn.1994-05.com.redhat:host-a"
IQN_B = "iqn.1994-05.com.redhat:host-b"
SVM = {"X-Dot-SVM-Name": "svm1"}


def make_igroup(rest, name: str = "host1", *initiators: str) -> dict:
    body = {
        "svm": {"name": "svm1"},
        "name": name,
        "protocol": "iscsi",
        "os_type": "linux",
        "initiators": [{"name": i} for i in initiators],
    }
    reply = rest("POST", "/api/protocols/san/igroups?return_records=true", json=body)
    assert reply.status_code == 201, reply.text
    return reply.json()["records"][0]


def map_lun(rest, path: str, igroup: str = "host1", lun_id: int | None = None) -> requests.Response:
    body = {"svm": {"name": "svm1"}, "lun": {"name": path}, "igroup": {"name": igroup}}
    if lun_id is not None:
        body["logical_unit_number"] = lun_id
    return rest("POST", "/api/protocols/san/lun-maps?return_records=true", json=body)


def error_code(reply: requests.Response) -> str:
    return reply.json()["error"]["code"]


class TestConventions:
    def test_cluster_version_with_trailing_slash_and_max_records(self, rest) -> None:
        reply = rest("GET", "/api/cluster/?fields=version&max_records=10000")
        assert reply.json()["version"] == {
            "full": reply.json()["version"]["full"],
            "generation": 9,
            "major": 13,
            "minor": 1,
        }

    def test_collections_return_name_and_uuid_by_default(self, rest) -> None:
        record = rest("GET", "/api/storage/luns?svm.name=svm1").json()["records"][0]
        assert set(record) == {"uuid", "name"}

    def test_expensive_fields_only_when_named(self, rest) -> None:
        everything = rest("GET", "/api/storage/luns?fields=*").json()["records"][0]
        named = rest("GET", "/api/storage/luns?fields=status.mapped,lun_maps").json()["records"][0]
        assert "lun_maps" not in everything and "mapped" not in everything["status"]
        assert named["status"] == {"mapped": False} and named["lun_maps"] == []
        assert "lun_maps" in rest("GET", "/api/storage/luns?fields=**").json()["records"][0]

    def test_unencoded_slashes_and_wildcards_in_filters(self, rest) -> None:
        exact = rest("GET", "/api/storage/luns?name=/vol/vol1/lun2&fields=serial_number").json()
        assert [r["serial_number"] for r in exact["records"]] == ["8dK?mN2$vB4c"]
        wildcard = rest("GET", "/api/storage/luns?name=/vol/vol1/lun*&svm.name=svm1").json()
        assert wildcard["num_records"] == 4
        either = rest("GET", "/api/storage/luns?name=/vol/vol1/lun0|/vol/vol1/lun3").json()
        assert [r["name"] for r in either["records"]] == ["/vol/vol1/lun0", "/vol/vol1/lun3"]

    def test_paging_follows_next_links_that_keep_the_query(self, rest) -> None:
        names, href = [], "/api/storage/luns?svm.name=svm1&fields=name&max_records=3"
        while href:
            page = rest("GET", href).json()
            assert page["num_records"] == len(page["records"])
            names += [r["name"] for r in page["records"]]
            href = page["_links"].get("next", {}).get("href")
            assert href is None or href.startswith("/api/")
        assert names == [f"/vol/vol1/lun{i}" for i in range(4)]

    def test_failures_carry_an_error_object_with_a_string_code(self, rest) -> None:
        reply = rest("GET", "/api/storage/luns/00000000-0000-0000-0000-000000000000")
        assert reply.status_code == 404 and error_code(reply) == "5374875"

    def test_bad_credentials_are_401(self, ontap_sim: Simulator) -> None:
        reply = requests.get(ontap_sim.base_url + "/api/cluster", auth=("admin", "nope"), timeout=5)
        assert reply.status_code == 401 and "error" in reply.json()

    def test_unknown_svm_header_is_2621462(self, rest) -> None:
        reply = rest("GET", "/api/storage/luns", headers={"X-Dot-SVM-Name": "other"})
        assert error_code(reply) == "2621462"

    def test_unknown_endpoint_is_an_error(self, rest) -> None:
        reply = rest("GET", "/api/storage/qtrees")
        assert reply.status_code == 404 and "error" in reply.json()


class TestIgroups:
    def test_create_echoes_the_record_and_duplicates_are_5374023(self, rest) -> None:
        record = make_igroup(rest, "host1", IQN_A)
        assert record["name"] == "host1" and record["initiators"] == [{"name": IQN_A}] and record["uuid"]
        body = {"name": "host1", "protocol": "iscsi", "os_type": "linux"}
        reply = rest("POST", "/api/protocols/san/igroups", json=body, headers=SVM)
        assert reply.status_code == 409 and error_code(reply) == "5374023"

    def test_create_without_any_svm_is_2621707(self, rest) -> None:
        reply = rest(
            "POST", "/api/protocols/san/igroups", json={"name": "x", "protocol": "iscsi", "os_type": "linux"}
        )
        assert error_code(reply) == "2621707"

    def test_filter_by_initiator(self, rest) -> None:
        make_igroup(rest, "host1", IQN_A)
        make_igroup(rest, "host2", IQN_B)
        found = rest(
            "GET", f"/api/protocols/san/igroups?svm.name=svm1&initiators.name={IQN_B}&fields=initiators.name"
        ).json()
        assert [r["name"] for r in found["records"]] == ["host2"]
        assert found["records"][0]["initiators"] == [{"name": IQN_B}]

    def test_add_and_remove_initiators(self, rest) -> None:
        uuid = make_igroup(rest, "host1")["uuid"]
        added = rest("POST", f"/api/protocols/san/igroups/{uuid}/initiators", json={"name": IQN_A})
        again = rest(
            "POST", f"/api/protocols/san/igroups/{uuid}/initiators", json={"records": [{"name": IQN_A}]}
        )
        assert added.status_code == 201 and error_code(again) == "5374035"
        assert rest("DELETE", f"/api/protocols/san/igroups/{uuid}/initiators/{IQN_A}").status_code == 200
        assert (
            error_code(rest("DELETE", f"/api/protocols/san/igroups/{uuid}/initiators/{IQN_A}")) == "5374034"
        )

    def test_deleting_a_mapped_igroup_needs_allow_delete_while_mapped(
        self, rest, ontap_sim: Simulator
    ) -> None:
        uuid = make_igroup(rest, "host1", IQN_A)["uuid"]
        map_lun(rest, "/vol/vol1/lun0")
        assert error_code(rest("DELETE", f"/api/protocols/san/igroups/{uuid}")) == "1254213"
        assert (
            rest("DELETE", f"/api/protocols/san/igroups/{uuid}?allow_delete_while_mapped=true").status_code
            == 200
        )
        assert ontap_sim.state.maps == []


class TestLunMaps:
    def test_map_assigns_lowest_free_id_and_reuses_freed_ones(self, rest, ontap_sim: Simulator) -> None:
        make_igroup(rest, "host1", IQN_A)
        ids = [
            map_lun(rest, f"/vol/vol1/lun{i}").json()["records"][0]["logical_unit_number"] for i in range(3)
        ]
        lun1, igroup = (
            ontap_sim.state.lun("svm1", path="/vol/vol1/lun1"),
            ontap_sim.state.igroup("svm1", name="host1"),
        )
        assert rest("DELETE", f"/api/protocols/san/lun-maps/{lun1.uuid}/{igroup.uuid}").status_code == 200
        assert ids == [0, 1, 2]
        assert map_lun(rest, "/vol/vol1/lun3").json()["records"][0]["logical_unit_number"] == 1

    def test_dotted_keys_and_the_svm_header_as_cinder_sends_them(self, rest) -> None:
        make_igroup(rest, "host1", IQN_A)
        body = {"lun.name": "/vol/vol1/lun2", "igroup.name": "host1", "logical_unit_number": 9}
        reply = rest("POST", "/api/protocols/san/lun-maps?return_records=true", json=body, headers=SVM)
        assert reply.status_code == 201 and reply.json()["records"][0]["logical_unit_number"] == 9

    def test_mapping_twice_is_1254207_and_a_taken_id_conflicts(self, rest) -> None:
        make_igroup(rest, "host1", IQN_A)
        map_lun(rest, "/vol/vol1/lun0", lun_id=3)
        twice = map_lun(rest, "/vol/vol1/lun0")
        taken = map_lun(rest, "/vol/vol1/lun1", lun_id=3)
        assert error_code(twice) == "1254207" and "already mapped" in twice.json()["error"]["message"]
        assert taken.status_code == 409 and "error" in taken.json()

    def test_listing_maps_by_lun_name_with_reporting_nodes(self, rest) -> None:
        make_igroup(rest, "host1", IQN_A)
        map_lun(rest, "/vol/vol1/lun1", lun_id=4)
        fields = "igroup.name,igroup.uuid,igroup.initiators,lun.uuid,logical_unit_number,reporting_nodes"
        listed = rest("GET", f"/api/protocols/san/lun-maps?lun.name=/vol/vol1/lun1&fields={fields}").json()
        record = listed["records"][0]
        assert record["logical_unit_number"] == 4 and record["igroup"]["initiators"] == [IQN_A]
        assert [n["name"] for n in record["reporting_nodes"]] == ["node-01", "node-02"]
        by_default = rest("GET", "/api/protocols/san/lun-maps").json()["records"][0]
        assert "logical_unit_number" not in by_default and by_default["lun"]["name"] == "/vol/vol1/lun1"

    def test_listing_maps_by_an_initiator_of_their_igroup(self, rest) -> None:
        make_igroup(rest, "host1", IQN_A)
        make_igroup(rest, "host2", IQN_B)
        map_lun(rest, "/vol/vol1/lun0", igroup="host1")
        map_lun(rest, "/vol/vol1/lun1", igroup="host2")
        query = f"igroup.initiators={IQN_A}&fields=igroup.name,igroup.initiators,logical_unit_number"
        listed = rest("GET", f"/api/protocols/san/lun-maps?{query}").json()
        assert [(r["lun"]["name"], r["igroup"]["name"]) for r in listed["records"]] == [
            ("/vol/vol1/lun0", "host1")
        ]

    def test_unmapping_a_missing_map_is_5374922(self, rest, ontap_sim: Simulator) -> None:
        igroup_uuid = make_igroup(rest, "host1", IQN_A)["uuid"]
        lun_uuid = ontap_sim.state.lun("svm1", path="/vol/vol1/lun0").uuid
        reply = rest("DELETE", f"/api/protocols/san/lun-maps/{lun_uuid}/{igroup_uuid}")
        assert reply.status_code == 404 and error_code(reply) == "5374922"

    def test_mapping_a_missing_lun_fails(self, rest) -> None:
        make_igroup(rest, "host1", IQN_A)
        assert error_code(map_lun(rest, "/vol/vol1/nope")) == "1254201"


class TestTarget:
    def test_iscsi_data_lifs(self, rest) -> None:
        reply = rest(
            "GET",
            "/api/network/ip/interfaces?services=data_iscsi&svm.name=svm1&fields=ip.address,enabled,state,location.node.name",
        )
        records = reply.json()["records"]
        assert [(r["ip"]["address"], r["state"], r["location"]["node"]["name"]) for r in records] == [
            ("127.0.0.1", "up", "node-01"),
            ("127.0.0.2", "up", "node-02"),
        ]

    def test_service_gives_the_target_name(self, rest, ontap_sim: Simulator) -> None:
        listed = rest(
            "GET", "/api/protocols/san/iscsi/services?svm.name=svm1&fields=target.name,target.alias,enabled"
        ).json()
        svm_uuid = ontap_sim.state.svms["svm1"].uuid
        single = rest("GET", f"/api/protocols/san/iscsi/services/{svm_uuid}?fields=target.name").json()
        assert (
            listed["records"][0]["target"]["name"]
            == single["target"]["name"]
            == ontap_sim.state.svms["svm1"].iscsi.target_iqn
        )
        assert listed["records"][0]["enabled"] is True

    def test_svm_without_service_is_5374078(self, start_sim) -> None:
        sim = start_sim(seed={"svms": [{"name": "svm9", "iscsi": None}]})
        uuid = sim.state.svms["svm9"].uuid
        reply = requests.get(
            f"{sim.base_url}/api/protocols/san/iscsi/services/{uuid}", auth=("admin", "netapp1!"), timeout=5
        )
        assert error_code(reply) == "5374078"


class TestCredentials:
    def test_create_read_patch_delete_never_shows_passwords(self, rest, ontap_sim: Simulator) -> None:
        body = {
            "svm": {"name": "svm1"},
            "initiator": IQN_A,
            "authentication_type": "CHAP",
            "chap": {"inbound": {"user": "in", "password": "insecret1234"}},
        }
        assert rest("POST", "/api/protocols/san/iscsi/credentials", json=body).status_code == 201
        assert error_code(rest("POST", "/api/protocols/san/iscsi/credentials", json=body)) == "5374142"
        uuid = ontap_sim.state.svms["svm1"].uuid
        patch = {"chap": {"outbound": {"user": "out", "password": "outsecret1234"}}}
        assert (
            rest("PATCH", f"/api/protocols/san/iscsi/credentials/{uuid}/{IQN_A}", json=patch).status_code
            == 200
        )
        fields = "authentication_type,chap.inbound.user,chap.outbound.user,initiator"
        listed = rest(
            "GET", f"/api/protocols/san/iscsi/credentials?svm.name=svm1&initiator={IQN_A}&fields={fields}"
        )
        record = listed.json()["records"][0]
        assert record["authentication_type"] == "chap"
        assert record["chap"] == {"inbound": {"user": "in"}, "outbound": {"user": "out"}}
        assert "secret" not in listed.text
        assert rest("DELETE", f"/api/protocols/san/iscsi/credentials/{uuid}/{IQN_A}").status_code == 200
        assert error_code(rest("DELETE", f"/api/protocols/san/iscsi/credentials/{uuid}/{IQN_A}")) == "5374895"

    def test_chap_rules(self, rest) -> None:
        base = {"svm": {"name": "svm1"}, "initiator": IQN_A, "authentication_type": "chap"}
        same = dict(
            base,
            chap={
                "inbound": {"user": "a", "password": "samesecret12"},
                "outbound": {"user": "b", "password": "samesecret12"},
            },
        )
        assert error_code(rest("POST", "/api/protocols/san/iscsi/credentials", json=same)) == "5374147"
        assert error_code(rest("POST", "/api/protocols/san/iscsi/credentials", json=base)) == "5374149"

    def test_default_entry_exists_and_cannot_be_deleted(self, rest, ontap_sim: Simulator) -> None:
        listed = rest(
            "GET", "/api/protocols/san/iscsi/credentials?initiator=default&fields=authentication_type"
        ).json()
        assert listed["records"][0]["authentication_type"] == "none"
        uuid = ontap_sim.state.svms["svm1"].uuid
        assert error_code(rest("DELETE", f"/api/protocols/san/iscsi/credentials/{uuid}/default")) == "5374148"


class TestSvmScoping:
    SEED: ClassVar[dict[str, Any]] = {
        "svms": [
            {"name": "svm1", "volumes": [{"name": "vol1", "luns": [{"name": "a"}]}]},
            {"name": "svm2", "volumes": [{"name": "vol1", "luns": [{"name": "b"}]}]},
        ]
    }

    def get(self, sim: Simulator, path: str, **headers: str) -> dict:
        return requests.get(
            sim.base_url + path, headers=headers, auth=("admin", "netapp1!"), timeout=5
        ).json()

    def test_header_by_name_or_uuid_and_query_filters_agree(self, start_sim) -> None:
        sim = start_sim(seed=self.SEED)
        uuid2 = sim.state.svms["svm2"].uuid
        by_name = self.get(sim, "/api/storage/luns", **{"X-Dot-SVM-Name": "svm2"})
        by_uuid = self.get(sim, "/api/storage/luns", **{"X-Dot-SVM-UUID": uuid2})
        by_query = self.get(sim, f"/api/storage/luns?svm.uuid={uuid2}")
        assert (
            [r["name"] for r in by_name["records"]]
            == [r["name"] for r in by_uuid["records"]]
            == [r["name"] for r in by_query["records"]]
            == ["/vol/vol1/b"]
        )
        assert self.get(sim, "/api/storage/luns")["num_records"] == 2

    def test_singletons_outside_the_scoped_svm_are_not_found(self, start_sim) -> None:
        sim = start_sim(seed=self.SEED)
        lun_a = sim.state.lun("svm1", path="/vol/vol1/a").uuid
        reply = self.get(sim, f"/api/storage/luns/{lun_a}", **{"X-Dot-SVM-Name": "svm2"})
        assert reply["error"]["code"] == "5374875"

    def test_return_records_false_gives_only_the_count(self, start_sim) -> None:
        sim = start_sim(seed=self.SEED)
        assert self.get(sim, "/api/storage/luns?return_records=false") == {
            "num_records": 2,
            "_links": {"self": {"href": "/api/storage/luns?return_records=false"}},
        }
