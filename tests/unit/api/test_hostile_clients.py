"""Whatever a local client sends, or fails to send, the server answers it or drops it and keeps serving others.

Raw sockets, not an HTTP client: these clients are broken or hostile on purpose. Timeouts here
are real (a server waiting on a socket), kept to fractions of a second.
"""

import contextlib
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from iscsi_agent.api.server import Limits
from tests.unit.api.fakes import eventually, exchange, parse_response, read_all, request

QUICK = Limits(head_timeout=0.3, body_timeout=0.3, write_timeout=0.3, refusal_timeout=0.3, linger=0.2)


def still_serving(path):
    assert request(path, "GET", "/v1/health").status == 200


def connect(path):
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.settimeout(10)
    client.connect(str(path))
    return client


@pytest.mark.parametrize(
    "data",
    [
        b"\x00\x01\x02\xff" * 256 + b"\r\n\r\n",
        b"GET\r\n\r\n",
        b"GET / HTTP/1.1\r\n: no name\r\n\r\n",
        b"GET /v1/health HTTP/9.9\r\n\r\n",
        b"\r\n" * 100,
        b"POST /v1/attachments HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
        b"POST /v1/attachments HTTP/1.1\r\nContent-Length: 4\r\n\r\n\x80\x81\x82\x83",
        b"POST /v1/attachments HTTP/1.1\r\nContent-Length: 4000\r\n\r\n" + b"[" * 4000,
    ],
)
def test_garbage_gets_a_400_json_error_and_others_are_still_served(agent, data):
    answer = parse_response(exchange(agent, data))
    assert answer.status == 400 and answer.body["error"]["code"] in ("bad_request", "malformed_request")
    still_serving(agent)


@pytest.mark.parametrize(
    "data",
    [
        b"GET /v1/health HTTP/1.1\r\n" + b"X-Big: " + b"x" * 100_000 + b"\r\n\r\n",
        b"GET /v1/health HTTP/1.1\r\n" + b"X-Many: y\r\n" * 2000 + b"\r\n",
        b"GET /" + b"v" * 100_000 + b" HTTP/1.1\r\n\r\n",
    ],
)
def test_huge_heads_get_431_without_being_read_to_the_end(agent, data):
    with connect(agent) as client:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            client.sendall(data)  # the server may answer and stop reading before all of it is sent
        answer = parse_response(read_all(client))
    assert answer.status == 431 and answer.body["error"]["code"] == "head_too_large"
    still_serving(agent)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"GET /v1/hea",
        b"GET /v1/health HTTP/1.1\r\nHost: x\r\n",
        b'POST /v1/attachments HTTP/1.1\r\nContent-Length: 30\r\n\r\n{"volume"',
    ],
)
def test_a_client_hanging_up_early_is_dropped_and_others_are_served(agent, service, data):
    with connect(agent) as client:
        client.sendall(data)
    with connect(agent) as client:
        client.sendall(data)
        client.shutdown(socket.SHUT_WR)
        assert read_all(client) == b""  # nobody to answer: the request never ended
    still_serving(agent)
    assert service.calls == [("health",)]


def test_a_client_that_never_reads_its_answer_is_dropped_after_the_write_timeout(serve, service):
    service.attached.update(
        {f"/vol/vol{n}/lun0": service.attach(f"/vol/vol1/lun{n % 4}")[0] for n in range(3000)}
    )
    path = serve(Limits(connections=1, refusals=1, write_timeout=0.2))
    with connect(path) as lazy:
        lazy.sendall(b"GET /v1/attachments HTTP/1.1\r\n\r\n")
        first = lazy.recv(1)  # the server is sending now
        time.sleep(0.5)  # longer than the write timeout, not reading
        with contextlib.suppress(ConnectionResetError):
            first += read_all(lazy)
    assert first.startswith(b"HTTP/1.1 200 OK") and len(first) < 2_000_000  # the answer (2.7 MB) was cut off
    still_serving(path)


def test_a_trickling_head_times_out_with_408(serve):
    path = serve(QUICK)
    with connect(path) as client:
        started = time.monotonic()
        client.sendall(b"GET /v1/health HTTP/1.1\r\n")
        answer = None
        for _ in range(50):  # a byte every 50 ms: each recv succeeds, the deadline still holds
            try:
                client.sendall(b"X")
            except (BrokenPipeError, ConnectionResetError):
                break
            time.sleep(0.05)
        answer = parse_response(read_all(client))
    assert answer.status == 408 and answer.body["error"]["details"] == {"part": "head", "timeout": 0.3}
    assert time.monotonic() - started < 2
    still_serving(path)


def test_a_body_that_stops_coming_times_out_with_408(serve, service):
    path = serve(QUICK)
    with connect(path) as client:
        client.sendall(b'POST /v1/attachments HTTP/1.1\r\nContent-Length: 40\r\n\r\n{"volume": ')
        answer = parse_response(read_all(client))
    assert answer.status == 408 and answer.body["error"]["details"]["part"] == "body"
    assert service.calls == []


def test_connections_beyond_the_slots_get_503_and_beyond_the_refusals_are_closed(serve, service):
    service.hold = threading.Event()
    path = serve(Limits(connections=2, refusals=1, refusal_timeout=5))

    def answered_503():
        try:
            return parse_response(exchange(path, b"GET /v1/health HTTP/1.1\r\n\r\n"))
        except (OSError, KeyError):
            return None  # closed unanswered: the refusal slot was still being given back

    with ThreadPoolExecutor(2) as pool:
        held = [
            pool.submit(request, path, "POST", "/v1/attachments", {"volume": f"/vol/vol1/lun{n}"})
            for n in range(2)
        ]
        for _ in range(2):
            assert service.entered.acquire(timeout=5)
        with connect(path) as silent:  # takes the one refusal slot and says nothing
            with connect(path) as beyond:
                assert read_all(beyond) == b""
            silent.shutdown(socket.SHUT_WR)
        busy = eventually(answered_503)
        assert busy.status == 503 and busy.headers["Retry-After"] == "1"
        assert busy.body["error"]["code"] == "overloaded"
        service.hold.set()
        assert [answer.result().status for answer in held] == [201, 201]
    still_serving(path)


def test_a_flood_of_connections_leaves_the_server_serving(serve):
    path = serve(Limits(connections=4, refusals=2, head_timeout=0.5, refusal_timeout=0.2))
    clients = []
    for _ in range(50):
        try:
            clients.append(connect(path))
        except OSError:
            break  # the backlog is full: the kernel refuses, the server does not grow
    for client in clients:
        client.close()

    def healthy():
        try:
            return request(path, "GET", "/v1/health").status == 200
        except (OSError, KeyError):
            return False  # refused or closed unanswered while the flood drains

    eventually(healthy)


def test_a_connection_the_process_has_no_thread_for_is_closed_and_the_server_goes_on(agent, monkeypatch):
    class NoThread(threading.Thread):
        def start(self):
            raise RuntimeError("can't start new thread")

    monkeypatch.setattr(threading, "Thread", NoThread)
    received = b""
    with connect(agent) as client, contextlib.suppress(BrokenPipeError, ConnectionResetError):
        client.sendall(b"GET /v1/health HTTP/1.1\r\n\r\n")
        received = read_all(client)
    assert received == b""
    monkeypatch.undo()
    still_serving(agent)
