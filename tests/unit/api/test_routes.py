"""The socket API's paths and methods, resolved from the request line and answered by the service."""

import json
from http import HTTPStatus

import pytest

from iscsi_agent.api.errors import BadRequest, MethodNotAllowed, RouteNotFound
from iscsi_agent.api.routes import Call, resolve
from iscsi_agent.service_api import NotAttached, ReconcileAction, VolumeInUse, VolumeNotFound
from tests.unit.api.fakes import FakeService


def answer(service, method, target, body=None):
    route = resolve(method, target)
    raw = b"" if body is None else json.dumps(body).encode()
    return route.handler(service, Call(route.volume, route.query, raw))


def test_attach_answers_201_when_it_attached_and_200_when_it_already_was():
    service = FakeService()
    first = answer(service, "POST", "/v1/attachments", {"volume": "/vol/vol1/lun0"})
    again = answer(service, "POST", "/v1/attachments", {"volume": "/vol/vol1/lun0"})
    assert (first.status, again.status) == (HTTPStatus.CREATED, HTTPStatus.OK)
    assert first.payload == again.payload and first.payload["volume"] == "/vol/vol1/lun0"


def test_attach_passes_the_service_error_of_an_unknown_volume():
    with pytest.raises(VolumeNotFound):
        answer(FakeService(), "POST", "/v1/attachments", {"volume": "/vol/vol1/nope"})


def test_a_volume_in_the_path_is_one_percent_decoded_segment():
    service = FakeService()
    answer(service, "POST", "/v1/attachments", {"volume": "/vol/vol1/lun0"})
    shown = answer(service, "GET", "/v1/attachments/%2Fvol%2Fvol1%2Flun0")
    assert shown.status == HTTPStatus.OK and shown.payload["volume"] == "/vol/vol1/lun0"
    assert service.calls[-1] == ("attachment", "/vol/vol1/lun0")


def test_an_attachment_not_held_is_not_attached():
    with pytest.raises(NotAttached):
        answer(FakeService(), "GET", "/v1/attachments/lun0")


def test_list_answers_every_attachment():
    service = FakeService()
    assert answer(service, "GET", "/v1/attachments").payload == {"attachments": []}
    answer(service, "POST", "/v1/attachments", {"volume": "/vol/vol1/lun1"})
    assert [item["volume"] for item in answer(service, "GET", "/v1/attachments").payload["attachments"]] == [
        "/vol/vol1/lun1"
    ]


def test_detach_answers_detached_and_takes_force_from_the_query():
    service = FakeService()
    answer(service, "POST", "/v1/attachments", {"volume": "/vol/vol1/lun0"})
    detached = answer(service, "DELETE", "/v1/attachments/%2Fvol%2Fvol1%2Flun0")
    assert (detached.status, detached.payload) == (
        HTTPStatus.OK,
        {"volume": "/vol/vol1/lun0", "detached": True},
    )
    with pytest.raises(NotAttached):
        answer(service, "DELETE", "/v1/attachments/%2Fvol%2Fvol1%2Flun0")
    forced = answer(service, "DELETE", "/v1/attachments/%2Fvol%2Fvol1%2Flun0?force=true")
    assert forced.payload == {"volume": "/vol/vol1/lun0", "detached": True}
    assert service.calls[-1] == ("detach", "/vol/vol1/lun0", True)


def test_detach_of_a_volume_in_use_passes_the_holders():
    service = FakeService(in_use={"lun0": ("/mnt/data",)})
    with pytest.raises(VolumeInUse) as caught:
        answer(service, "DELETE", "/v1/attachments/lun0?force=false")
    assert caught.value.details["holders"] == ["/mnt/data"]


def test_detach_refuses_a_force_that_is_not_true_or_false():
    with pytest.raises(BadRequest, match="force: must be true or false, not 'maybe'"):
        answer(FakeService(), "DELETE", "/v1/attachments/lun0?force=maybe")


def test_resize_answers_the_volume_its_device_and_its_size():
    service = FakeService(sizes={"/vol/vol1/lun0": 3 << 30})
    attached = answer(service, "POST", "/v1/attachments", {"volume": "/vol/vol1/lun0"})
    resized = answer(service, "POST", "/v1/attachments/%2Fvol%2Fvol1%2Flun0/resize")
    assert (resized.status, resized.payload) == (
        HTTPStatus.OK,
        {"volume": "/vol/vol1/lun0", "device": attached.payload["device"], "size_bytes": 3 << 30},
    )
    assert service.calls[-1] == ("resize", "/vol/vol1/lun0")


def test_resize_takes_no_body_or_an_empty_object_and_refuses_anything_in_it():
    service = FakeService()
    answer(service, "POST", "/v1/attachments", {"volume": "/vol/vol1/lun0"})
    target = "/v1/attachments/%2Fvol%2Fvol1%2Flun0/resize"
    assert answer(service, "POST", target, {}).status == HTTPStatus.OK
    with pytest.raises(BadRequest, match="unknown key 'size'"):
        answer(service, "POST", target, {"size": 5})


def test_resize_of_a_volume_not_attached_is_not_attached():
    with pytest.raises(NotAttached):
        answer(FakeService(), "POST", "/v1/attachments/lun0/resize")


def test_health_and_reconcile():
    service = FakeService(actions=[ReconcileAction("remove_stale_device", "/dev/sdc", "WWID changed", False)])
    assert answer(service, "GET", "/v1/health").payload["status"] == "ok"
    dry = answer(service, "POST", "/v1/reconcile", {"dry_run": True})
    assert dry.payload == {
        "actions": [
            {"action": "remove_stale_device", "target": "/dev/sdc", "reason": "WWID changed", "done": False}
        ]
    }
    assert service.calls[-1] == ("reconcile", True)


@pytest.mark.parametrize(
    "target", ["/", "/v1", "/v2/health", "/v1/health/x", "/v1//attachments", "/v1/attachments/a/b"]
)
def test_an_unknown_path_is_not_found(target):
    with pytest.raises(RouteNotFound):
        resolve("GET", target)


@pytest.mark.parametrize(
    ("method", "target", "allow"),
    [
        ("DELETE", "/v1/attachments", ("GET", "POST")),
        ("POST", "/v1/attachments/lun0", ("DELETE", "GET")),
        ("PUT", "/v1/health", ("GET",)),
        ("GET", "/v1/reconcile", ("POST",)),
        ("GET", "/v1/attachments/lun0/resize", ("POST",)),
        ("BREW", "/v1/health", ("GET",)),
    ],
)
def test_a_wrong_method_names_the_allowed_ones(method, target, allow):
    with pytest.raises(MethodNotAllowed) as caught:
        resolve(method, target)
    assert caught.value.allow == allow and caught.value.headers() == {"Allow": ", ".join(allow)}


def test_only_posts_take_a_body():
    assert resolve("POST", "/v1/attachments").takes_body and resolve("POST", "/v1/reconcile").takes_body
    assert not resolve("GET", "/v1/attachments").takes_body
    assert not resolve("DELETE", "/v1/attachments/x").takes_body


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("/v1/attachments/", "volume: must not be empty"),
        ("/v1/attachments/%ff%fe", "volume: its percent-encoding is not UTF-8"),
        ("/v1/attachments/lun0%0A", "volume: contains control characters"),
        ("http://localhost/v1/health", "the request target must be a path such as /v1/health"),
        ("*", "the request target must be a path"),
    ],
)
def test_a_bad_volume_or_target_in_the_request_line_is_a_bad_request(target, message):
    with pytest.raises(BadRequest, match=message):
        resolve("GET", target)


def test_paths_that_take_no_query_refuse_one():
    with pytest.raises(BadRequest, match="query: unknown parameter 'force'; this path takes no parameters"):
        answer(FakeService(), "GET", "/v1/attachments?force=true")
