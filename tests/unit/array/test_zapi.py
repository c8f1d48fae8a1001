"""ZAPI wire mechanics: the envelope, result status and errnos, and iterator paging."""

import pytest
from lxml import etree

from iscsi_agent.array.errors import (
    ArrayAlreadyExists,
    ArrayAlreadyMapped,
    ArrayApiError,
    ArrayNotFound,
    ArrayNotMapped,
    ArrayResponseError,
)
from iscsi_agent.array.transport import HttpReply
from iscsi_agent.array.zapi import NAMESPACE, ZAPI_PATH, ZapiConnection, build_request, parse_results
from tests.unit.array.fakes import NS, ScriptedTransport, xml_reply, zapi_failure


def test_the_envelope_is_namespaced_versioned_and_tunnelled_to_the_svm():
    root = etree.fromstring(build_request("lun-map", {"path": "/vol/vol1/lun0", "lun-id": 3}, vfiler="svm1"))
    assert root.tag == f"{{{NAMESPACE}}}netapp"
    assert root.get("vfiler") == "svm1" and root.get("version") == "1.21"
    (api,) = root
    assert api.tag == f"{{{NAMESPACE}}}lun-map"
    assert [(etree.QName(c).localname, c.text) for c in api] == [("path", "/vol/vol1/lun0"), ("lun-id", "3")]


def test_an_untunnelled_call_has_no_vfiler():
    assert etree.fromstring(build_request("system-get-ontapi-version")).get("vfiler") is None


def test_lists_nest_and_none_makes_an_empty_element_for_desired_attributes():
    args = {
        "query": {"initiator-group-info": {"initiators": [{"initiator-info": {"initiator-name": "iqn.a"}}]}},
        "desired-attributes": {"lun-info": {"path": None, "mapped": None}},
        "force": True,
    }
    text = build_request("igroup-get-iter", args).decode()
    assert (
        "<query><initiator-group-info><initiators><initiator-info><initiator-name>iqn.a</initiator-name>"
        "</initiator-info></initiators></initiator-group-info></query>"
    ) in text
    assert "<desired-attributes><lun-info><path/><mapped/></lun-info></desired-attributes>" in text
    assert "<force>true</force>" in text


def test_a_passed_reply_gives_its_results_with_namespaces_dropped():
    results = parse_results(xml_reply("<lun-id-assigned>3</lun-id-assigned>").body, "lun-map")
    assert results.findtext("lun-id-assigned") == "3"


@pytest.mark.parametrize(
    ("errno", "error"),
    [
        ("9023", ArrayAlreadyMapped),
        ("9004", ArrayAlreadyExists),
        ("13130", ArrayAlreadyExists),
        ("9008", ArrayAlreadyExists),
        ("9016", ArrayNotMapped),
        ("9024", ArrayApiError),
    ],
)
def test_a_failed_reply_raises_its_errno_as_a_typed_error(errno, error):
    with pytest.raises(error) as caught:
        parse_results(zapi_failure(errno, "LUN already mapped to this group").body, "lun-map")
    assert type(caught.value) is error
    assert caught.value.array_code == errno and caught.value.api == "lun-map"
    assert caught.value.array_message == "LUN already mapped to this group"


def test_errno_and_reason_may_come_as_child_elements():
    body = f"<netapp xmlns='{NS}'><results status='failed'><errorno>13005</errorno><reason>Unable to find API</reason></results></netapp>"
    with pytest.raises(ArrayApiError) as caught:
        parse_results(body.encode(), "lun-frob")
    assert (caught.value.array_code, caught.value.array_message) == ("13005", "Unable to find API")


@pytest.mark.parametrize(
    "body",
    [b"<html>Service Unavailable</html>", b"not xml at all", f"<netapp xmlns='{NS}'/>".encode()],
)
def test_a_reply_without_results_is_a_response_error(body):
    with pytest.raises(ArrayResponseError):
        parse_results(body, "lun-get-iter")


def test_entities_are_not_expanded():
    body = (
        b"<?xml version='1.0'?><!DOCTYPE netapp [<!ENTITY x 'expanded'>]>"
        b"<netapp><results status='passed'><path>&x;</path></results></netapp>"
    )
    assert parse_results(body, "lun-get-iter").findtext("path") in ("", None)


def page(records: str, num: int, next_tag: str | None = None):
    tag = f"<next-tag>{next_tag}</next-tag>" if next_tag else ""
    listing = f"<attributes-list>{records}</attributes-list>" if records else ""
    return xml_reply(f"{listing}{tag}<num-records>{num}</num-records>")


TAG = "&lt;lun-get-iter-key-td&gt;&lt;key-0&gt;svm1&lt;/key-0&gt;&lt;/lun-get-iter-key-td&gt;"


def test_iterate_follows_next_tag_and_sends_it_back_unchanged():
    transport = ScriptedTransport(
        page(
            "<lun-info><path>/vol/vol1/lun0</path></lun-info><lun-info><path>/vol/vol1/lun1</path></lun-info>",
            2,
            TAG,
        ),
        page("<lun-info><path>/vol/vol1/lun2</path></lun-info>", 1),
    )
    zapi = ZapiConnection(transport, "svm1", page_size=2)
    records = zapi.iterate("lun-get-iter", query={"lun-info": {"volume": "vol1"}})
    assert [r.findtext("path") for r in records] == ["/vol/vol1/lun0", "/vol/vol1/lun1", "/vol/vol1/lun2"]
    first, second = (etree.fromstring(r.data) for r in transport.requests)
    ns = {"n": NAMESPACE}
    assert first.findtext("n:lun-get-iter/n:max-records", namespaces=ns) == "2"
    assert first.find("n:lun-get-iter/n:tag", namespaces=ns) is None
    assert (
        second.findtext("n:lun-get-iter/n:tag", namespaces=ns)
        == "<lun-get-iter-key-td><key-0>svm1</key-0></lun-get-iter-key-td>"
    )
    assert all(r.idempotent and r.path == ZAPI_PATH for r in transport.requests)


def test_an_empty_result_is_not_an_error():
    zapi = ZapiConnection(ScriptedTransport(page("", 0)), "svm1")
    assert zapi.iterate("lun-get-iter") == []


def test_a_page_with_next_tag_but_no_records_list_is_a_response_error():
    zapi = ZapiConnection(ScriptedTransport(page("", 0, "t1")), "svm1")
    with pytest.raises(ArrayResponseError):
        zapi.iterate("lun-get-iter")


def test_a_repeating_next_tag_stops_paging_with_an_error():
    rec = "<lun-info><path>/vol/v/l</path></lun-info>"
    zapi = ZapiConnection(ScriptedTransport(page(rec, 1, "t1"), page(rec, 1, "t1")), "svm1")
    with pytest.raises(ArrayResponseError):
        zapi.iterate("lun-get-iter")


def test_an_unknown_svm_is_not_found():
    zapi = ZapiConnection(ScriptedTransport(zapi_failure("15698", "Specified vserver not found")), "nosuch")
    with pytest.raises(ArrayNotFound) as caught:
        zapi.invoke("lun-get-iter", idempotent=True)
    assert (caught.value.kind, caught.value.name) == ("svm", "nosuch")


def test_a_non_200_status_is_an_api_error_with_the_status():
    zapi = ZapiConnection(ScriptedTransport(HttpReply(500, "Internal Server Error", {}, b"")), "svm1")
    with pytest.raises(ArrayApiError) as caught:
        zapi.invoke("lun-map", idempotent=False)
    assert caught.value.http_status == 500
