"""What the primitive calls put on the wire: one-LUN queries, SVM scoping, writes never marked retryable."""

import pytest
from lxml import etree

from iscsi_agent.array.errors import ArrayNotFound, ArrayNotMapped
from iscsi_agent.array.ops import LunKey
from iscsi_agent.array.rest import RestConnection
from iscsi_agent.array.rest_ops import RestOps
from iscsi_agent.array.zapi import NAMESPACE, ZapiConnection
from iscsi_agent.array.zapi_ops import ZapiOps
from tests.unit.array.fakes import ScriptedTransport, json_reply, xml_reply, zapi_failure

NS = {"n": NAMESPACE}


def sent_xml(transport: ScriptedTransport, index: int = 0) -> etree._Element:
    return etree.fromstring(transport.requests[index].data)


def test_a_zapi_lun_lookup_queries_that_one_path_in_the_svm():
    transport = ScriptedTransport(xml_reply("<num-records>0</num-records>"))
    assert ZapiOps(ZapiConnection(transport, "svm1")).find_luns(LunKey.PATH, "/vol/vol1/lun0") == []
    root = sent_xml(transport)
    assert root.get("vfiler") == "svm1"
    assert root.findtext("n:lun-get-iter/n:query/n:lun-info/n:path", namespaces=NS) == "/vol/vol1/lun0"
    assert (
        root.find("n:lun-get-iter/n:desired-attributes/n:lun-info/n:serial-number", namespaces=NS) is not None
    )


def test_a_zapi_name_lookup_matches_the_last_path_component_in_any_volume():
    transport = ScriptedTransport(xml_reply("<num-records>0</num-records>"))
    ZapiOps(ZapiConnection(transport, "svm1")).find_luns(LunKey.NAME, "lun0")
    assert (
        sent_xml(transport).findtext("n:lun-get-iter/n:query/n:lun-info/n:path", namespaces=NS)
        == "/vol/*/lun0"
    )


def test_a_zapi_map_is_sent_once_and_not_marked_retryable():
    transport = ScriptedTransport(xml_reply("<lun-id-assigned>2</lun-id-assigned>"))
    assert ZapiOps(ZapiConnection(transport, "svm1")).map_lun("/vol/vol1/lun0", "ig", None).lun_id == 2
    (sent,) = transport.requests
    assert sent.idempotent is False
    assert sent_xml(transport).find("n:lun-map/n:lun-id", namespaces=NS) is None


def test_a_rest_lun_lookup_filters_by_name_and_asks_for_the_mapped_state():
    transport = ScriptedTransport(json_reply({"records": [], "num_records": 0}))
    connection = RestConnection(transport, "svm1")
    connection.svm_confirmed = True  # (see the next test for the first empty answer)
    RestOps(connection).find_luns(LunKey.PATH, "/vol/vol1/lun0")
    (sent,) = transport.requests
    assert sent.params["name"] == "/vol/vol1/lun0" and sent.params["svm.name"] == "svm1"
    assert "status.mapped" in sent.params["fields"].split(",")


def test_a_first_empty_rest_answer_asks_once_whether_the_svm_exists():
    """``svm.name=typo`` matches nothing where ZAPI's tunnel fails: an empty answer is checked once."""
    empty = {"records": [], "num_records": 0}
    transport = ScriptedTransport(
        json_reply(empty), json_reply({"records": [{"name": "svm1", "uuid": "U"}]}), json_reply(empty)
    )
    ops = RestOps(RestConnection(transport, "svm1"))
    assert ops.find_luns(LunKey.PATH, "/vol/vol1/lun0") == []
    assert ops.igroup_by_name("ig") is None
    assert [(r.method, r.path) for r in transport.requests] == [
        ("GET", "/api/storage/luns"),
        ("GET", "/api/svm/svms"),
        ("GET", "/api/protocols/san/igroups"),
    ]
    assert transport.requests[1].params["name"] == "svm1"


def test_an_empty_rest_answer_from_an_svm_the_array_lacks_is_svm_not_found():
    empty = {"records": [], "num_records": 0}
    transport = ScriptedTransport(json_reply(empty), json_reply(empty))
    with pytest.raises(ArrayNotFound) as caught:
        RestOps(RestConnection(transport, "svm-typo")).portals()
    assert (caught.value.kind, caught.value.name) == ("svm", "svm-typo")


def test_a_rest_write_naming_an_svm_the_array_lacks_is_svm_not_found():
    refused = {"error": {"code": "2621462", "message": 'The specified SVM "svm-typo" does not exist.'}}
    transport = ScriptedTransport(json_reply(refused, 404, "Not Found"))
    with pytest.raises(ArrayNotFound) as caught:
        RestOps(RestConnection(transport, "svm-typo")).create_igroup("ig", "linux", ())
    assert (caught.value.kind, caught.value.name) == ("svm", "svm-typo")


@pytest.mark.parametrize(
    ("code", "kind", "name"),
    [("1254201", "lun", "/vol/vol1/nosuch"), ("5374852", "igroup", "ig"), ("5374878", "igroup", "ig")],
)
def test_a_rest_map_of_a_missing_lun_or_igroup_is_not_found(code, kind, name):
    refused = {"error": {"code": code, "message": "does not exist"}}
    transport = ScriptedTransport(json_reply(refused, 404, "Not Found"))
    connection = RestConnection(transport, "svm1")
    connection.svm_confirmed = True
    with pytest.raises(ArrayNotFound) as caught:
        RestOps(connection).map_lun("/vol/vol1/nosuch", "ig", None)
    assert (caught.value.kind, caught.value.name, caught.value.details["array_code"]) == (kind, name, code)


@pytest.mark.parametrize(
    ("errno", "kind", "name"),
    [("15661", "lun", "/vol/vol1/nosuch"), ("9017", "lun", "/vol/vol1/nosuch"), ("9003", "igroup", "ig")],
)
def test_a_zapi_map_of_a_missing_lun_or_igroup_is_not_found(errno, kind, name):
    transport = ScriptedTransport(zapi_failure(errno, "does not exist"))
    with pytest.raises(ArrayNotFound) as caught:
        ZapiOps(ZapiConnection(transport, "svm1")).map_lun("/vol/vol1/nosuch", "ig", None)
    assert (caught.value.kind, caught.value.name, caught.value.details["array_code"]) == (kind, name, errno)


@pytest.mark.parametrize("errno", ["15661", "9003", "9016"])
def test_a_zapi_unmap_of_a_missing_lun_igroup_or_map_is_not_mapped(errno):
    transport = ScriptedTransport(zapi_failure(errno, "does not exist"))
    with pytest.raises(ArrayNotMapped):
        ZapiOps(ZapiConnection(transport, "svm1")).unmap_lun("/vol/vol1/lun0", "ig")


def test_a_rest_map_names_the_svm_lun_and_igroup_and_reads_the_echoed_id():
    transport = ScriptedTransport(
        json_reply(
            {"num_records": 1, "records": [{"logical_unit_number": 4, "lun": {"name": "/vol/vol1/lun0"}}]},
            201,
        )
    )
    assert RestOps(RestConnection(transport, "svm1")).map_lun("/vol/vol1/lun0", "ig", 4).lun_id == 4
    (sent,) = transport.requests
    assert sent.json == {
        "svm": {"name": "svm1"},
        "lun": {"name": "/vol/vol1/lun0"},
        "igroup": {"name": "ig"},
        "logical_unit_number": 4,
    }
    assert sent.params == {"return_records": "true"} and sent.idempotent is False


def test_a_rest_unmap_deletes_by_the_two_uuids():
    transport = ScriptedTransport(
        json_reply(
            {
                "records": [
                    {
                        "lun": {"name": "/vol/vol1/lun0", "uuid": "L"},
                        "igroup": {"name": "ig", "uuid": "G"},
                        "logical_unit_number": 0,
                    }
                ]
            }
        ),
        json_reply({}),
    )
    RestOps(RestConnection(transport, "svm1")).unmap_lun("/vol/vol1/lun0", "ig")
    assert (transport.requests[1].method, transport.requests[1].path) == (
        "DELETE",
        "/api/protocols/san/lun-maps/L/G",
    )
