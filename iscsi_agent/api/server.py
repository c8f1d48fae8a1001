"""The socket API server: one request per connection, on the bounded connection handling of ``acceptor``.

Built on the standard library, chosen over a PyPI server because what hostile local clients need
is small and testable here, and no dependency enters a root daemon for it. http.server's own
parser reads each request (``iscsi_agent.api.request``); its ThreadingHTTPServer is not used,
because it starts a thread for every connection without bound, lets each recv wait afresh (a
client trickling bytes holds a thread for ever), allows 6 MB of headers and answers in HTML. Here:

- the peer (SO_PEERCRED) is checked at accept: one that ``[agent] allowed_uids``/``allowed_gids``
  do not name is answered 403 at once and takes no slot or thread; one uid holds at most
  ``per_peer`` slots, and is answered 503 at once beyond them (``iscsi_agent.api.acceptor``).
- the head must arrive within ``head_timeout`` of the connection being taken, the body within
  ``body_timeout`` of the head, whatever the pace of its bytes; the answer must be taken within
  ``write_timeout``. The head is bounded in bytes, the body by Content-Length before it is read.
- each connection carries one request (``Connection: close``), so no idle keep-alive client holds
  a thread; after the answer the server reads what is left, for at most ``linger`` seconds, so the
  client sees the answer rather than a reset. Whatever a client sends ends in a JSON error on its
  own connection, never in the loop.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from iscsi_agent.api.acceptor import AcceptingServer, Acceptor, Admission, Limits
from iscsi_agent.api.answer import deliver, encode_json
from iscsi_agent.api.errors import (
    BadRequest,
    ClientGone,
    Overloaded,
    PeerNotAllowed,
    RequestError,
)
from iscsi_agent.api.listener import Listener
from iscsi_agent.api.peer import Peer, PeerPolicy, peer_of
from iscsi_agent.api.reader import RequestReader
from iscsi_agent.api.request import Head, body_length, read_body, read_head
from iscsi_agent.api.routes import Call, resolve
from iscsi_agent.api.status import error_body, internal_error_body, status_for
from iscsi_agent.errors import AgentError
from iscsi_agent.service_api import AttachService

__all__ = ["ApiServer", "Limits"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Answer:
    status: HTTPStatus
    payload: dict[str, Any]
    headers: dict[str, str]


class ApiServer(AcceptingServer):
    def __init__(
        self,
        listener: Listener,
        service: AttachService,
        peers: PeerPolicy,
        limits: Limits | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``clock`` measures the read deadlines; socket waits themselves are real time."""
        self._service = service
        self._peers = peers
        self._limits = limits or Limits()
        self._clock = clock
        self._acceptor = Acceptor(
            listener.sock,
            self._serve,
            self._limits,
            name="api",
            admit=self._admit,
            busy=_encode(_refusal(None, None, Overloaded())),
            close=listener.close,
        )

    def _admit(self, connection: socket.socket) -> Admission:
        """Decided before the request is read: a peer not let in holds no slot while it sends."""
        peer = peer_of(connection)
        if self._peers.allows(peer):
            return Admission(peer=peer.uid)
        refused = PeerNotAllowed(peer.pid, peer.uid, peer.gid)
        return Admission(refusal=_encode(_refusal(None, None, refused)), reason=f"pid {peer.pid}: {refused}")

    def _serve(self, connection: socket.socket, overloaded: bool) -> None:
        peer = peer_of(connection)
        reader = RequestReader(connection, self._limits.max_head, self._clock)
        reader.expect("head", self._limits.refusal_timeout if overloaded else self._limits.head_timeout)
        try:
            answer = self._answer(connection, reader, peer, overloaded)
        except ClientGone:
            log.debug("pid %d hung up before its request was complete", peer.pid)
            return
        deliver(connection, _encode(answer), self._limits.write_timeout, self._limits.linger, self._clock)

    def _answer(
        self, connection: socket.socket, reader: RequestReader, peer: Peer, overloaded: bool
    ) -> _Answer:
        head: Head | None = None
        try:
            head = read_head(reader)
            if overloaded:
                raise Overloaded()
            route = resolve(head.method, head.target)
            length = body_length(head, self._limits.max_body)
            if length and not route.takes_body:
                raise BadRequest(f"{head.method} takes no body", field="body")
            body = b""
            if length:
                if head.expects_continue:
                    _send_continue(connection, self._limits.write_timeout)
                reader.expect("body", self._limits.body_timeout)
                body = read_body(reader, length)
            reply = route.handler(self._service, Call(route.volume, route.query, body))
        except AgentError as exc:
            return _refusal(head, peer, exc)
        except ClientGone:
            raise
        except Exception:
            log.exception("%s from pid %d failed", _request_line(head), peer.pid)
            return _Answer(HTTPStatus.INTERNAL_SERVER_ERROR, internal_error_body(), {})
        log.debug("%s from pid %d uid %d: %d", _request_line(head), peer.pid, peer.uid, reply.status)
        return _Answer(reply.status, reply.payload, {})


def _refusal(head: Head | None, peer: Peer | None, error: AgentError) -> _Answer:
    status = status_for(error)
    if peer is not None:
        _log_refusal(head, peer, status, error)
    headers = error.headers() if isinstance(error, RequestError) else {}
    return _Answer(status, error_body(error), headers)


def _send_continue(connection: socket.socket, timeout: float) -> None:
    try:
        connection.settimeout(timeout)
        connection.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
    except OSError:
        raise ClientGone from None


def _encode(answer: _Answer) -> bytes:
    return encode_json(answer.status, answer.payload, answer.headers)


def _request_line(head: Head | None) -> str:
    return f"{head.method[:20]} {head.target[:200]}" if head else "a request"


def _log_refusal(head: Head | None, peer: Peer, status: HTTPStatus, error: AgentError) -> None:
    """403 and 503 concern the operator, 5xx are failures; other 4xx are the client's business."""
    level = logging.DEBUG
    if status in (HTTPStatus.FORBIDDEN, HTTPStatus.SERVICE_UNAVAILABLE):
        level = logging.WARNING
    elif status >= HTTPStatus.INTERNAL_SERVER_ERROR:
        level = logging.ERROR
    log.log(
        level,
        "%s from pid %d uid %d gid %d: %d %s: %s",
        _request_line(head),
        peer.pid,
        peer.uid,
        peer.gid,
        status,
        error.code,
        error,
    )
