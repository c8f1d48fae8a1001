"""/metrics over loopback TCP, on the socket API's bounded, timed-out connection handling.

prometheus-client's exposition (``choose_encoder``, as its own server) renders the page; its HTTP server is not used:
it starts a thread for every connection and waits on each for ever, so any local user could hold
all of the agent's descriptors with idle connections (TCP tells nothing of who connected, so no
peer check applies here). Here a few scrapes are served at once, each head must arrive within
``head_timeout``, and connections beyond the slots are answered 503 or closed.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from http import HTTPStatus
from urllib.parse import urlsplit

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from iscsi_agent.api.acceptor import AcceptingServer, Acceptor, Limits
from iscsi_agent.api.answer import deliver, encode, encode_json
from iscsi_agent.api.errors import ClientGone, MethodNotAllowed, Overloaded, RequestError, RouteNotFound
from iscsi_agent.api.listener import BACKLOG, ListenerError
from iscsi_agent.api.reader import RequestReader
from iscsi_agent.api.request import read_head
from iscsi_agent.api.status import error_body, status_for

# A scraper asks once every few seconds; nothing else has a reason to connect.
METRICS_LIMITS = Limits(
    max_head=8 * 1024,
    head_timeout=5.0,
    write_timeout=10.0,
    connections=4,
    refusals=4,
    refusal_timeout=1.0,
    linger=1.0,
    lingering=16,
)
PATH = "/metrics"


class MetricsServer(AcceptingServer):
    def __init__(
        self,
        sock: socket.socket,
        registry: CollectorRegistry,
        limits: Limits = METRICS_LIMITS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._registry = registry
        self._limits = limits
        self._clock = clock
        self._acceptor = Acceptor(sock, self._serve, limits, name="metrics")

    @classmethod
    def listen(cls, address: str, port: int, registry: CollectorRegistry) -> MetricsServer:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((address, port))
            sock.listen(BACKLOG)
        except OSError as exc:
            sock.close()
            raise ListenerError(
                f"cannot serve metrics on {address}:{port}: {exc.strerror}", address=address, port=port
            ) from exc
        return cls(sock, registry)

    def _serve(self, connection: socket.socket, overloaded: bool) -> None:
        reader = RequestReader(connection, self._limits.max_head, self._clock)
        reader.expect("head", self._limits.refusal_timeout if overloaded else self._limits.head_timeout)
        try:
            head = read_head(reader)
            if overloaded:
                raise Overloaded()
            if urlsplit(head.target).path != PATH:
                raise RouteNotFound(head.target)
            if head.method not in ("GET", "HEAD"):
                raise MethodNotAllowed(head.method, ("GET", "HEAD"))
            render, content_type = choose_encoder(head.headers.get("Accept", ""))
            page = render(self._registry)
            answer = encode(HTTPStatus.OK, page, content_type)
            if head.method == "HEAD":
                answer = answer[: len(answer) - len(page)]
        except RequestError as exc:
            answer = encode_json(status_for(exc), error_body(exc), exc.headers())
        except ClientGone:
            return
        deliver(connection, answer, self._limits.write_timeout, self._limits.linger, self._clock)
