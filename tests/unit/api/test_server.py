"""The socket API over a real Unix socket: the contract's answers, its errors as JSON, the peer check, shutdown."""

import os
import socket
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from iscsi_agent.api.listener import bind
from iscsi_agent.api.peer import PeerPolicy
from iscsi_agent.api.server import ApiServer
from iscsi_agent.array.errors import ArrayTimeout, ArrayUnreachable
from iscsi_agent.host.errors import DeviceInUse
from tests.unit.api.conftest import ME
from tests.unit.api.fakes import eventually, exchange, parse_response, read_all, request

LUN0 = "/v1/attachments/%2Fvol%2Fvol1%2Flun0"


def test_attach_answers_201_then_200_with_the_attachment(agent, service):
    first = request(agent, "POST", "/v1/attachments", {"volume": "/vol/vol1/lun0"})
    again = request(agent, "POST", "/v1/attachments", {"volume": "/vol/vol1/lun0"})
    assert (first.status, again.status) == (201, 200)
    assert first.body == again.body and first.body["device"].startswith("/dev/disk/by-id/wwn-0x600a0980")
    assert first.headers["Content-Type"] == "application/json" and first.headers["Connection"] == "close"


def test_an_attachment_is_shown_listed_and_detached_by_its_percent_encoded_path(agent, service):
    request(agent, "POST", "/v1/attachments", {"volume": "/vol/vol1/lun0"})
    assert request(agent, "GET", LUN0).body["volume"] == "/vol/vol1/lun0"
    assert [item["lun_id"] for item in request(agent, "GET", "/v1/attachments").body["attachments"]] == [1]
    detached = request(agent, "DELETE", LUN0)
    assert (detached.status, detached.body) == (200, {"volume": "/vol/vol1/lun0", "detached": True})
    assert request(agent, "GET", "/v1/attachments").body == {"attachments": []}


def test_detach_of_an_unknown_volume_is_404_unless_forced(agent, service):
    unknown = request(agent, "DELETE", LUN0)
    assert unknown.status == 404 and unknown.body["error"]["code"] == "not_attached"
    assert request(agent, "DELETE", LUN0 + "?force=true").status == 200


def test_detach_of_a_volume_in_use_is_409_naming_the_holder(agent, service):
    service.in_use["/vol/vol1/lun0"] = ("mounted on /mnt/data",)
    refused = request(agent, "DELETE", LUN0)
    assert refused.status == 409
    assert refused.body["error"]["code"] == "volume_in_use"
    assert refused.body["error"]["details"]["holders"] == ["mounted on /mnt/data"]
    assert "/mnt/data" in refused.body["error"]["message"]


def test_health_and_reconcile(agent, service):
    assert request(agent, "GET", "/v1/health").body["status"] == "ok"
    assert request(agent, "POST", "/v1/reconcile", {"dry_run": True}).body == {"actions": []}
    assert service.calls[-1] == ("reconcile", True)


@pytest.mark.parametrize(
    ("call", "status", "code"),
    [
        (("POST", "/v1/attachments", b"volume=/vol/vol1/lun0"), 400, "bad_request"),
        (("POST", "/v1/attachments", {"volume": "/vol/vol1/lun0", "extra": 1}), 400, "bad_request"),
        (("POST", "/v1/attachments", {"volume": ""}), 400, "bad_request"),
        (("POST", "/v1/attachments", {"volume": "/vol/vol1/nope"}), 404, "volume_not_found"),
        (("POST", "/v1/reconcile", {"dry_run": "yes"}), 400, "bad_request"),
        (("DELETE", LUN0 + "?force=maybe", None), 400, "bad_request"),
        (("GET", "/v1/attachments/%2Fvol%2Fvol1%2Flun9", None), 404, "not_attached"),
        (("GET", "/v1/nothing", None), 404, "not_found"),
        (("PATCH", "/v1/attachments", None), 405, "method_not_allowed"),
    ],
)
def test_every_refusal_is_a_json_error_with_a_stable_code(agent, call, status, code):
    answer = request(agent, *call)
    assert answer.status == status
    assert set(answer.body) == {"error"} and set(answer.body["error"]) == {"code", "message", "details"}
    assert answer.body["error"]["code"] == code and answer.body["error"]["message"]


def test_405_says_which_methods_are_allowed(agent):
    assert request(agent, "PUT", "/v1/attachments").headers["Allow"] == "GET, POST"


def test_a_get_with_a_body_is_refused(agent):
    answer = request(agent, "GET", "/v1/health", b"{}")
    assert answer.status == 400 and answer.body["error"]["message"] == "GET takes no body"


def test_a_body_over_the_limit_is_refused_before_it_is_sent(agent, service):
    answer = parse_response(
        exchange(agent, b"POST /v1/attachments HTTP/1.1\r\nContent-Length: 10000000\r\n\r\n")
    )
    assert answer.status == 413 and answer.body["error"]["details"] == {
        "content_length": 10000000,
        "limit": 65536,
    }
    assert service.calls == []


def test_a_chunked_body_is_refused_with_411(agent):
    data = b"POST /v1/attachments HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    assert parse_response(exchange(agent, data)).status == 411


def test_expect_100_continue_is_answered_once_the_body_is_acceptable(agent):
    body = b'{"volume": "/vol/vol1/lun1"}'
    head = f"POST /v1/attachments HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: {len(body)}\r\n\r\n"
    with socket.socket(socket.AF_UNIX) as client:
        client.settimeout(5)
        client.connect(str(agent))
        client.sendall(head.encode())
        assert client.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        client.sendall(body)
        assert parse_response(read_all(client)).status == 201


def test_expect_100_continue_with_a_body_over_the_limit_gets_413_and_no_continue(agent):
    head = b"POST /v1/attachments HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 70000\r\n\r\n"
    assert exchange(agent, head).startswith(b"HTTP/1.1 413 ")


def test_a_peer_not_allowed_gets_403_and_the_service_is_not_asked(serve, service):
    path = serve(peers=PeerPolicy(frozenset({os.getuid() + 1}), frozenset({os.getgid() + 1})))
    answer = request(path, "POST", "/v1/attachments", {"volume": "/vol/vol1/lun0"})
    assert answer.status == 403 and answer.body["error"]["code"] == "peer_not_allowed"
    assert answer.body["error"]["details"] == {"pid": os.getpid(), "uid": os.getuid(), "gid": os.getgid()}
    assert service.calls == []


def test_a_peer_is_let_in_by_its_group(serve):
    path = serve(peers=PeerPolicy(frozenset(), frozenset({os.getgid()})))
    assert request(path, "GET", "/v1/health").status == 200


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (ArrayUnreachable("connection refused"), 502, "array_unreachable"),
        (ArrayTimeout("no answer within 30s"), 504, "array_timeout"),
        (DeviceInUse("sdb is held by dm-3", device="sdb", holder="dm-3"), 409, "device_in_use"),
    ],
)
def test_the_services_typed_errors_map_through_the_one_table(agent, service, error, status, code):
    service.fail_with = error
    answer = request(agent, "GET", "/v1/health")
    assert (answer.status, answer.body["error"]["code"]) == (status, code)
    assert answer.body["error"]["details"] == error.details


def test_a_bug_in_the_service_is_500_without_internals(agent, service):
    service.fail_with = RuntimeError("secret internal state")
    answer = request(agent, "GET", "/v1/attachments")
    assert answer.status == 500 and answer.body["error"]["code"] == "internal_error"
    assert "secret" not in str(answer.body)
    service.fail_with = None
    assert request(agent, "GET", "/v1/attachments").status == 200


def test_attaches_run_concurrently(serve, service):
    service.hold = threading.Event()
    path = serve()
    with ThreadPoolExecutor(8) as pool:
        answers = [
            pool.submit(request, path, "POST", "/v1/attachments", {"volume": f"/vol/vol1/lun{n % 4}"})
            for n in range(8)
        ]
        for _ in range(8):
            assert service.entered.acquire(timeout=5), "attaches did not all run at once"
        service.hold.set()
        statuses = sorted(answer.result().status for answer in answers)
    assert statuses == [200] * 4 + [201] * 4


def test_stop_closes_the_socket_and_waits_for_requests_in_flight(socket_dir, service):
    path = socket_dir / "stop.sock"
    server = ApiServer(bind(path, 0o660, None), service, ME)
    server.start()
    assert server.alive()
    service.hold = threading.Event()
    with ThreadPoolExecutor(2) as pool:
        attach = pool.submit(request, path, "POST", "/v1/attachments", {"volume": "/vol/vol1/lun0"})
        assert service.entered.acquire(timeout=5)
        stopped = pool.submit(server.stop, 5)
        eventually(lambda: not path.exists())
        assert not stopped.done()
        with socket.socket(socket.AF_UNIX) as late, pytest.raises(OSError):
            late.connect(str(path))
        service.hold.set()
        assert attach.result().status == 201
        assert stopped.result() is True
    assert not server.alive()


def test_stop_gives_up_on_a_request_after_the_grace(socket_dir, service):
    server = ApiServer(bind(socket_dir / "grace.sock", 0o660, None), service, ME)
    server.start()
    service.hold = threading.Event()
    with ThreadPoolExecutor(1) as pool:
        attach = pool.submit(
            request, socket_dir / "grace.sock", "POST", "/v1/attachments", {"volume": "/vol/vol1/lun0"}
        )
        assert service.entered.acquire(timeout=5)
        assert server.stop(grace=0.05) is False
        service.hold.set()
        assert attach.result().status == 201
