"""The socket API server: one accept loop, a bounded set of connection threads, one request per connection.

Built on the standard library, chosen over a PyPI server because what hostile local clients need
is small and testable here, and no dependency enters a root daemon for it. http.server's own
parser reads each request (``iscsi_agent.api.request``); its ThreadingHTTPServer is not used,
because it starts a thread for every connection without bound, lets each recv wait afresh (a
client trickling bytes holds a thread for ever), allows 6 MB of headers and answers in HTML. Here:

- at most ``connections`` connections are served at once; the next ``refusals`` are answered 503
  (after reading their head for at most ``refusal_timeout``, so the client reads the answer rather
  than a reset); any beyond those are closed at once. Threads are bounded by the two together.
- the head must arrive within ``head_timeout`` of the connection being taken, the body within
  ``body_timeout`` of the head, whatever the pace of its bytes; the answer must be taken within
  ``write_timeout``. The head is bounded in bytes, the body by Content-Length before it is read.
- each connection carries one request (``Connection: close``), so no idle keep-alive client holds
  a thread; after the answer the server reads what is left, for at most ``linger`` seconds and
  256 KiB, so the client sees the answer rather than a reset. Whatever a client sends ends in a
  JSON error on its own connection, never in the loop.

The lifecycle is start → serve → stop: ``start`` runs the accept loop in a thread until ``stop``,
which sets the stop event, wakes the loop, closes the listener and waits, with a bound, for the
requests in flight.
"""

from __future__ import annotations

import json
import logging
import selectors
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

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

log = logging.getLogger(__name__)

_ACCEPT_BACKOFF = 0.1  # after a failed accept (EMFILE): the listener stays readable, so do not spin
_LINGER_BYTES = 256 * 1024


@dataclass(frozen=True)
class Limits:
    max_head: int = 16 * 1024
    max_body: int = 64 * 1024
    head_timeout: float = 10.0
    body_timeout: float = 10.0
    write_timeout: float = 10.0
    connections: int = 64
    refusals: int = 8
    refusal_timeout: float = 1.0
    linger: float = 1.0


@dataclass(frozen=True)
class _Answer:
    status: HTTPStatus
    payload: dict[str, Any]
    headers: dict[str, str]


class ApiServer:
    def __init__(
        self,
        listener: Listener,
        service: AttachService,
        peers: PeerPolicy,
        limits: Limits | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``clock`` measures the read deadlines; socket waits themselves are real time."""
        self._listener = listener
        self._service = service
        self._peers = peers
        self._limits = limits or Limits()
        self._clock = clock
        self._serving = threading.BoundedSemaphore(self._limits.connections)
        self._refusing = threading.BoundedSemaphore(self._limits.refusals)
        self._threads: set[threading.Thread] = set()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._loop: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self) -> None:
        self._loop = threading.Thread(target=self._accept_loop, name="api-accept", daemon=True)
        self._loop.start()

    def _accept_loop(self) -> None:
        self._listener.sock.setblocking(False)
        with selectors.DefaultSelector() as selector:
            selector.register(self._listener.sock, selectors.EVENT_READ)
            selector.register(self._wake_reader, selectors.EVENT_READ)
            while not self._stopping.is_set():
                for key, _ in selector.select():
                    if key.fileobj is self._listener.sock:
                        self._accept()

    def alive(self) -> bool:
        """Whether the accept loop is running (the daemon's watchdog asks)."""
        return self._loop is not None and self._loop.is_alive() and not self._stopping.is_set()

    def stop(self, grace: float) -> bool:
        """Stop taking connections and wait up to ``grace`` seconds for those in flight; True if all ended."""
        if self._stopping.is_set():
            return True
        self._stopping.set()
        self._wake_writer.send(b"x")
        if self._loop is not None:
            self._loop.join()
        self._listener.close()
        self._wake_reader.close()
        self._wake_writer.close()
        deadline = time.monotonic() + grace
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        unfinished = sum(thread.is_alive() for thread in threads)
        if unfinished:
            log.warning("stopped with %d requests still in flight after %gs", unfinished, grace)
        return not unfinished

    # -- connections ------------------------------------------------------------------------------

    def _accept(self) -> None:
        try:
            connection, _ = self._listener.sock.accept()
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            log.warning("cannot accept a connection: %s", exc)
            self._stopping.wait(_ACCEPT_BACKOFF)
            return
        if self._serving.acquire(blocking=False):
            slots, overloaded = self._serving, False
        elif self._refusing.acquire(blocking=False):
            slots, overloaded = self._refusing, True
        else:
            log.warning("closing a connection unanswered: every serving and refusing slot is busy")
            connection.close()
            return
        thread = threading.Thread(
            target=self._run, args=(connection, slots, overloaded), name="api-connection", daemon=True
        )
        with self._lock:
            self._threads.add(thread)
        try:
            thread.start()
        except RuntimeError as exc:  # the process is out of threads: refuse this one, keep accepting
            log.warning("closing a connection unanswered: %s", exc)
            with self._lock:
                self._threads.discard(thread)
            slots.release()
            connection.close()

    def _run(self, connection: socket.socket, slots: threading.BoundedSemaphore, overloaded: bool) -> None:
        try:
            with connection:
                self._serve(connection, overloaded)
        except Exception:
            log.exception("a connection failed")
        finally:
            slots.release()
            with self._lock:
                self._threads.discard(threading.current_thread())

    def _serve(self, connection: socket.socket, overloaded: bool) -> None:
        peer = peer_of(connection)
        reader = RequestReader(connection, self._limits.max_head, self._clock)
        reader.expect("head", self._limits.refusal_timeout if overloaded else self._limits.head_timeout)
        try:
            answer = self._answer(connection, reader, peer, overloaded)
        except ClientGone:
            log.debug("pid %d hung up before its request was complete", peer.pid)
            return
        try:
            connection.settimeout(self._limits.write_timeout)
            connection.sendall(_encode(answer))
            self._linger(connection)
        except OSError as exc:
            log.debug("answer to pid %d not delivered: %s", peer.pid, exc)

    def _linger(self, connection: socket.socket) -> None:
        """Read what the client still sends until it closes, briefly: closing on unread bytes would
        reset the connection, and the client could lose the answer (a refusal before the body)."""
        deadline = self._clock() + self._limits.linger
        left = _LINGER_BYTES
        try:
            connection.shutdown(socket.SHUT_WR)
            while left > 0 and (remaining := deadline - self._clock()) > 0:
                connection.settimeout(remaining)
                chunk = connection.recv(min(left, 65536))
                if not chunk:
                    return
                left -= len(chunk)
        except OSError:
            return  # the answer is out; how the client leaves is its business

    def _answer(
        self, connection: socket.socket, reader: RequestReader, peer: Peer, overloaded: bool
    ) -> _Answer:
        head: Head | None = None
        try:
            head = read_head(reader)
            if not self._peers.allows(peer):
                raise PeerNotAllowed(peer.pid, peer.uid, peer.gid)
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
            status = status_for(exc)
            _log_refusal(head, peer, status, exc)
            headers = exc.headers() if isinstance(exc, RequestError) else {}
            return _Answer(status, error_body(exc), headers)
        except ClientGone:
            raise
        except Exception:
            log.exception("%s from pid %d failed", _request_line(head), peer.pid)
            return _Answer(HTTPStatus.INTERNAL_SERVER_ERROR, internal_error_body(), {})
        log.debug("%s from pid %d uid %d: %d", _request_line(head), peer.pid, peer.uid, reply.status)
        return _Answer(reply.status, reply.payload, {})


def _send_continue(connection: socket.socket, timeout: float) -> None:
    try:
        connection.settimeout(timeout)
        connection.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
    except OSError:
        raise ClientGone from None


def _encode(answer: _Answer) -> bytes:
    body = (json.dumps(answer.payload, default=str) + "\n").encode()
    lines = [
        f"HTTP/1.1 {answer.status.value} {answer.status.phrase}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        "Connection: close",
        *(f"{name}: {value}" for name, value in answer.headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + body


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
