"""Reading one request: the head by http.server's parser within a byte budget and a deadline, then the body."""

import socket

import pytest

from iscsi_agent.api.errors import (
    BodyTooLarge,
    ClientGone,
    HeadTooLarge,
    LengthRequired,
    MalformedRequest,
    RequestTimeout,
)
from iscsi_agent.api.reader import RequestReader
from iscsi_agent.api.request import body_length, read_body, read_head


class SteppingClock:
    """Time moves only when the test says so."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def pair():
    server, client = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with server, client:
        yield server, client


def reader_for(server, head_limit=16384, clock=None, timeout=5.0):
    reader = RequestReader(server, head_limit, clock or SteppingClock())
    reader.expect("head", timeout)
    return reader


def head_of(pair, data: bytes, **kwargs):
    server, client = pair
    client.sendall(data)
    return read_head(reader_for(server, **kwargs))


def test_a_request_head_is_read_with_its_headers(pair):
    head = head_of(pair, b"POST /v1/attachments HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
    assert (head.method, head.target, head.headers["content-length"]) == ("POST", "/v1/attachments", "2")
    assert not head.expects_continue


def test_a_client_that_hangs_up_before_the_blank_line_is_gone_not_answered(pair):
    server, client = pair
    client.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n")
    client.shutdown(socket.SHUT_WR)
    with pytest.raises(ClientGone):
        read_head(reader_for(server))


def test_a_client_that_sends_nothing_is_gone(pair):
    server, client = pair
    client.shutdown(socket.SHUT_WR)
    with pytest.raises(ClientGone):
        read_head(reader_for(server))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x00\xff\x13garbage\r\n\r\n", "Bad request syntax"),
        (b"\x00\xff garbage\r\n\r\n", "Bad HTTP/0.9 request type"),
        (b"GET /v1/health HTTP/2.0\r\n\r\n", "Invalid HTTP version"),
        (b"GET /v1/health HTTP/1.1 extra\r\n\r\n", "Bad request version"),
        (b"GET /v1/health\r\n\r\n", "HTTP/0.9 requests are not served"),
        (b"\r\n\r\n", "the request line is empty"),
        (b"GET /v1/health HTTP/1.1\r\nno colon here\r\n\r\n", "malformed header lines"),
    ],
)
def test_what_is_not_http_1_is_malformed(pair, data, message):
    with pytest.raises(MalformedRequest, match=message):
        head_of(pair, data)


def test_the_head_is_bounded_in_bytes_whatever_its_lines(pair):
    big = b"GET /v1/health HTTP/1.1\r\n" + b"X-Filler: " + b"a" * 3000 + b"\r\n"
    with pytest.raises(HeadTooLarge, match="the request head is over 2048 bytes"):
        head_of(pair, big + b"\r\n", head_limit=2048)


def test_a_request_line_without_end_is_bounded(pair):
    server, client = pair
    client.sendall(b"GET /" + b"a" * 9000)
    with pytest.raises(HeadTooLarge):
        read_head(reader_for(server))


def test_more_than_a_hundred_header_lines_are_too_large(pair):
    with pytest.raises(HeadTooLarge, match="Too many headers"):
        head_of(pair, b"GET /v1/health HTTP/1.1\r\n" + b"a: b\r\n" * 101 + b"\r\n")


def test_the_head_deadline_holds_however_steadily_bytes_trickle_in(pair):
    server, client = pair
    clock = SteppingClock()
    reader = reader_for(server, clock=clock, timeout=10)
    client.sendall(b"GET /v1/health HTTP/1.1\r\n")
    assert reader.readline(8193) == b"GET /v1/health HTTP/1.1\r\n"
    clock.now += 9.5
    client.sendall(b"X")  # progress, but the deadline does not move
    clock.now += 1
    with pytest.raises(RequestTimeout) as caught:
        reader.readline(8193)
    assert caught.value.details == {"part": "head", "timeout": 10}


def test_a_silent_client_times_out_in_real_time(pair):
    server, _ = pair
    reader = RequestReader(server, 16384)
    reader.expect("head", 0.05)
    with pytest.raises(RequestTimeout, match=r"the request head did not arrive within 0\.05s"):
        read_head(reader)


def test_the_body_has_its_own_deadline_from_when_the_head_was_read(pair):
    server, client = pair
    clock = SteppingClock()
    reader = reader_for(server, clock=clock)
    client.sendall(b'POST /v1/reconcile HTTP/1.1\r\nContent-Length: 20\r\n\r\n{"dry_')
    head = read_head(reader)
    reader.expect("body", 10)
    clock.now += 11
    with pytest.raises(RequestTimeout, match="the request body did not arrive within 10s"):
        read_body(reader, body_length(head, 65536))


def test_a_body_cut_short_by_a_hang_up_is_gone(pair):
    server, client = pair
    reader = reader_for(server)
    client.sendall(b"POST /v1/reconcile HTTP/1.1\r\nContent-Length: 20\r\n\r\n{}")
    head = read_head(reader)
    client.shutdown(socket.SHUT_WR)
    reader.expect("body", 5)
    with pytest.raises(ClientGone):
        read_body(reader, body_length(head, 65536))


def test_the_body_is_exactly_content_length_bytes(pair):
    server, client = pair
    reader = reader_for(server)
    client.sendall(b'POST /v1/reconcile HTTP/1.1\r\nContent-Length: 17\r\n\r\n{"dry_run": true}')
    head = read_head(reader)
    reader.expect("body", 5)
    assert read_body(reader, body_length(head, 65536)) == b'{"dry_run": true}'


def test_the_body_limit_is_decided_from_content_length_alone(pair):
    head = head_of(pair, b"POST /v1/attachments HTTP/1.1\r\nContent-Length: 65537\r\n\r\n")
    with pytest.raises(BodyTooLarge) as caught:
        body_length(head, 65536)
    assert caught.value.details == {"content_length": 65537, "limit": 65536}


@pytest.mark.parametrize(
    ("headers", "error", "message"),
    [
        (b"Transfer-Encoding: chunked\r\n", LengthRequired, "chunked or encoded bodies are not accepted"),
        (b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", LengthRequired, "chunked"),
        (b"", LengthRequired, "a POST needs a Content-Length"),
        (b"Content-Length: -1\r\n", MalformedRequest, "is not one number of bytes"),
        (b"Content-Length: 12abc\r\n", MalformedRequest, "is not one number of bytes"),
        (b"Content-Length: \xb2\r\n", MalformedRequest, "is not one number of bytes"),
        (b"Content-Length: 2\r\nContent-Length: 2\r\n", MalformedRequest, "is not one number of bytes"),
        (b"Content-Length: " + b"9" * 40 + b"\r\n", MalformedRequest, "is not one number of bytes"),
    ],
)
def test_bodies_without_one_plain_length_are_refused(pair, headers, error, message):
    head = head_of(pair, b"POST /v1/attachments HTTP/1.1\r\n" + headers + b"\r\n")
    with pytest.raises(error, match=message):
        body_length(head, 65536)


def test_requests_without_a_body_have_length_zero(pair):
    assert body_length(head_of(pair, b"GET /v1/health HTTP/1.1\r\n\r\n"), 65536) == 0


def test_expect_100_continue_is_left_for_the_server_to_answer_after_the_checks(pair):
    server, client = pair
    client.sendall(b"POST /v1/attachments HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n")
    head = read_head(reader_for(server))
    assert head.expects_continue
    client.setblocking(False)
    with pytest.raises(BlockingIOError):
        client.recv(100)  # nothing was sent back
