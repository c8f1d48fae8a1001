"""REST wire mechanics: the error envelope, typed race codes, dotted fields and _links paging."""

import pytest

from iscsi_agent.array.errors import (
    ArrayAlreadyExists,
    ArrayAlreadyMapped,
    ArrayApiError,
    ArrayNotMapped,
    ArrayResponseError,
)
from iscsi_agent.array.rest import RestConnection, field, int_field, optional_field, parse_reply
from iscsi_agent.array.transport import HttpReply
from tests.unit.array.fakes import ScriptedTransport, json_reply


@pytest.mark.parametrize(
    ("code", "error"),
    [
        ("5374023", ArrayAlreadyExists),
        ("5374035", ArrayAlreadyExists),
        ("1254207", ArrayAlreadyMapped),
        ("5374922", ArrayNotMapped),
        ("1254201", ArrayApiError),
    ],
)
def test_an_error_body_raises_its_code_as_a_typed_error(code, error):
    reply = json_reply(
        {"error": {"message": "The LUN is already mapped", "code": code, "target": "lun"}}, 409
    )
    with pytest.raises(error) as caught:
        parse_reply(reply, "POST /api/protocols/san/lun-maps")
    assert type(caught.value) is error
    assert (caught.value.array_code, caught.value.http_status) == (code, 409)


def test_an_integer_code_is_compared_as_a_string():
    with pytest.raises(ArrayAlreadyMapped):
        parse_reply(json_reply({"error": {"code": 1254207, "message": "m"}}, 400), "POST x")


def test_an_error_object_fails_the_call_even_with_a_200_status():
    with pytest.raises(ArrayApiError) as caught:
        parse_reply(json_reply({"error": {"code": "4", "message": "entry doesn't exist"}}), "GET x")
    assert caught.value.array_message == "entry doesn't exist"


def test_an_error_status_without_a_json_body_keeps_the_status():
    with pytest.raises(ArrayApiError) as caught:
        parse_reply(HttpReply(404, "Not Found", {}, b"<html>no api here</html>"), "GET /api/cluster")
    assert (caught.value.array_code, caught.value.http_status) == ("HTTP 404", 404)


def test_a_success_that_is_not_json_is_a_response_error():
    with pytest.raises(ArrayResponseError):
        parse_reply(HttpReply(200, "OK", {}, b"<html/>"), "GET x")


def test_an_empty_success_body_is_an_empty_object():
    assert parse_reply(HttpReply(200, "OK", {}, b""), "DELETE x") == {}


def test_dotted_fields_are_read_and_missing_ones_named():
    record = {"space": {"size": 1024}, "status": {"mapped": False}, "count": "7"}
    assert field(record, "space.size", "api") == 1024
    assert field(record, "status.mapped", "api") is False
    assert int_field(record, "count", "api") == 7
    assert optional_field(record, "location.node.name", "none") == "none"
    with pytest.raises(ArrayResponseError) as caught:
        field(record, "serial_number", "GET /api/storage/luns")
    assert caught.value.details["missing"] == "serial_number"
    with pytest.raises(ArrayResponseError):
        int_field({"size": True}, "size", "api")


def test_collect_follows_next_links_without_resending_the_query():
    transport = ScriptedTransport(
        json_reply(
            {
                "records": [{"name": "/vol/vol1/lun0"}, {"name": "/vol/vol1/lun1"}],
                "num_records": 2,
                "_links": {"next": {"href": "/api/storage/luns?start.uuid=abc&fields=name&max_records=2"}},
            }
        ),
        json_reply(
            {"records": [{"name": "/vol/vol1/lun2"}], "num_records": 1, "_links": {"self": {"href": "x"}}}
        ),
    )
    rest = RestConnection(transport, "svm1", page_size=2)
    records = rest.collect("/api/storage/luns", {"name": "/vol/vol1/*"}, "name")
    assert [r["name"] for r in records] == ["/vol/vol1/lun0", "/vol/vol1/lun1", "/vol/vol1/lun2"]
    first, second = transport.requests
    assert first.params == {"svm.name": "svm1", "name": "/vol/vol1/*", "fields": "name", "max_records": "2"}
    assert (
        second.path == "/api/storage/luns?start.uuid=abc&fields=name&max_records=2" and second.params is None
    )


def test_a_short_page_with_a_next_link_is_not_the_end():
    transport = ScriptedTransport(
        json_reply({"records": [], "num_records": 0, "_links": {"next": {"href": "/api/x?start=1"}}}),
        json_reply({"records": [{"name": "a"}], "num_records": 1}),
    )
    assert RestConnection(transport).collect("/api/x", {}, "name") == [{"name": "a"}]


def test_a_next_link_to_another_host_is_refused():
    transport = ScriptedTransport(
        json_reply({"records": [], "_links": {"next": {"href": "https://elsewhere/api/x"}}})
    )
    with pytest.raises(ArrayResponseError):
        RestConnection(transport).collect("/api/x", {}, "name")


def test_a_repeating_next_link_stops_with_an_error():
    looping = {"records": [{"name": "a"}], "_links": {"next": {"href": "/api/x?start=1"}}}
    transport = ScriptedTransport(json_reply(looping), json_reply(looping))
    with pytest.raises(ArrayResponseError):
        RestConnection(transport).collect("/api/x", {}, "name")


def test_writes_name_the_svm_in_the_body_and_only_reads_are_idempotent():
    transport = ScriptedTransport(json_reply({"num_records": 1, "records": [{}]}, 201))
    rest = RestConnection(transport, "svm1")
    rest.post(
        "/api/protocols/san/lun-maps", {**rest.svm_body(), "lun": {"name": "/vol/v/l"}}, idempotent=False
    )
    (sent,) = transport.requests
    assert sent.json["svm"] == {"name": "svm1"} and sent.idempotent is False
    assert RestConnection(ScriptedTransport(), "").svm_body() == {}
