"""One HTTP/1.x request read off a connection: the head by http.server's own parser, the body by its framing.

The standard library parses the request line and headers (``BaseHTTPRequestHandler.parse_request``
and ``http.client.parse_headers``); what it would answer itself (an HTML error page, an early
"100 Continue") is turned into typed errors instead. The body is taken only with a Content-Length
within the limit, decided before a byte of it is read; chunked bodies are refused (411), which also
leaves no room for a request with two disagreeing lengths.
"""

from __future__ import annotations

import email.message
import re
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler

from iscsi_agent.api.errors import (
    BodyTooLarge,
    ClientGone,
    HeadTooLarge,
    LengthRequired,
    MalformedRequest,
    RequestError,
)
from iscsi_agent.api.reader import RequestReader

_REQUEST_LINE_MAX = 8192


@dataclass(frozen=True)
class Head:
    method: str
    target: str
    headers: email.message.Message

    @property
    def expects_continue(self) -> bool:
        return self.headers.get("Expect", "").lower() == "100-continue"


class _HeadParser(BaseHTTPRequestHandler):
    """http.server's parser used alone: no socket of its own, and refusals kept, not sent."""

    protocol_version = "HTTP/1.1"
    raw_requestline: bytes

    def __init__(self, reader: RequestReader) -> None:  # no super().__init__: it would serve a socket
        self.rfile = reader  # type: ignore[assignment]
        self.refusal: RequestError | None = None

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        text = (f"{message}: {explain}" if explain else message or "bad request")[
            :200
        ]  # it quotes the request
        if code == HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE:
            self.refusal = HeadTooLarge(text)
        else:
            self.refusal = MalformedRequest(text)

    def handle_expect_100(self) -> bool:
        return True  # "100 Continue" only once the body is known to be acceptable (read_body)


def read_head(reader: RequestReader) -> Head:
    """The request line and headers; raises ClientGone when the client hung up before finishing them."""
    parser = _HeadParser(reader)
    parser.raw_requestline = reader.readline(_REQUEST_LINE_MAX + 1)
    if not parser.raw_requestline:
        raise ClientGone
    if len(parser.raw_requestline) > _REQUEST_LINE_MAX:
        raise HeadTooLarge(f"the request line is over {_REQUEST_LINE_MAX} bytes", limit=_REQUEST_LINE_MAX)
    if not parser.parse_request():
        raise parser.refusal or MalformedRequest("the request line is empty")
    if reader.ended:
        raise ClientGone  # the head stopped before its blank line
    if parser.request_version == "HTTP/0.9":
        raise MalformedRequest("HTTP/0.9 requests are not served; send HTTP/1.1")
    if parser.headers.defects:
        raise MalformedRequest(f"malformed header lines: {parser.headers.defects[0]}")
    return Head(parser.command, parser.path, parser.headers)


def body_length(head: Head, limit: int) -> int:
    """The body's length from Content-Length (0 without a body), refusing what the limit or framing rules out."""
    if head.headers.get("Transfer-Encoding") is not None:
        raise LengthRequired("chunked or encoded bodies are not accepted; send Content-Length")
    lengths = head.headers.get_all("Content-Length") or []
    if not lengths:
        if head.method == "POST":
            raise LengthRequired("a POST needs a Content-Length")
        return 0
    if len(lengths) > 1 or not re.fullmatch(r"[0-9]{1,19}", lengths[0].strip()):
        raise MalformedRequest(f"Content-Length {', '.join(lengths)!r} is not one number of bytes")
    length = int(lengths[0])
    if length > limit:
        raise BodyTooLarge(length, limit)
    return length


def read_body(reader: RequestReader, length: int) -> bytes:
    body = reader.read(length)
    if len(body) < length:
        raise ClientGone
    return body
