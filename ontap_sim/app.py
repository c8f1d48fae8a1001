"""One HTTP request in, one outcome out: counting, faults, latency, auth, then ZAPI or REST.

Kept free of sockets so the HTTP server stays a thin shell; an outcome is either a reply
or an instruction to drop the connection (optionally after holding it).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from ontap_sim import rest, rest_apis, zapi, zapi_apis
from ontap_sim.errors import OntapError
from ontap_sim.faults import Fault, FaultKind, Faults
from ontap_sim.model import State

log = logging.getLogger(__name__)

ZAPI_PATH = "/servlets/netapp.servlets.admin.XMLrequest_filer"
JSON_TYPE = "application/hal+json"
XML_TYPE = "text/xml; charset=utf-8"


@dataclass(frozen=True)
class HttpRequest:
    method: str
    target: str  # path with query, as sent
    headers: Mapping[str, str]  # lower-case names
    body: bytes
    certificate_user: str | None = None  # common name of a client certificate TLS verified


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    content_type: str
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Drop:
    """Close the connection without replying: after ``hold`` seconds, with an RST if ``reset``."""

    hold: float
    reset: bool


@dataclass(frozen=True)
class Broken:
    """Start ``reply`` as a chunked body, then close the connection before its end."""

    reply: Reply


Outcome = Reply | Drop | Broken


class App:
    """The simulator's request pipeline; ``wait(seconds)`` is the only clock it uses."""

    def __init__(
        self, state: State, faults: Faults, username: str, password: str, wait: Callable[[float], None]
    ) -> None:
        self.state = state
        self.faults = faults
        self.latency = 0.0
        self.counts: Counter[tuple[str, str]] = Counter()
        self._counts_lock = threading.Lock()
        self._credentials = (username, password)
        self._wait = wait

    def handle(self, request: HttpRequest) -> Outcome:
        path, _, query = request.target.partition("?")
        path = path.rstrip("/") or "/"
        if path == ZAPI_PATH:
            return self._zapi(request)
        if path == "/api" or path.startswith("/api/"):
            return self._rest(request, path, query)
        return Reply(404, b"Not Found\n", "text/plain")

    # -- shared steps -------------------------------------------------------------------

    def snapshot_counts(self) -> Counter[tuple[str, str]]:
        with self._counts_lock:
            return Counter(self.counts)

    def reset_counts(self) -> None:
        with self._counts_lock:
            self.counts.clear()

    def _count(self, key: tuple[str, str]) -> None:
        with self._counts_lock:
            self.counts[key] += 1

    def _authorized(self, request: HttpRequest) -> bool:
        """HTTP Basic with the account's password, or a verified client certificate naming the account."""
        if request.certificate_user is not None and request.certificate_user == self._credentials[0]:
            return True
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(encoded, validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return (user, password) == self._credentials

    def _before(self, keys: tuple[str, ...]) -> Fault | Drop | None:
        """Apply latency and network faults; return an API-level fault for the caller to render."""
        fault = self.faults.take(keys)
        if self.latency:
            self._wait(self.latency)
        if fault is None:
            return None
        log.info("injecting %s into %s", fault.kind.value, keys[0])
        if fault.kind is FaultKind.LATENCY:
            self._wait(float(fault.params["seconds"]))
            return None
        if fault.kind is FaultKind.RESET:
            return Drop(0.0, reset=True)
        if fault.kind is FaultKind.TIMEOUT:
            return Drop(float(fault.params["seconds"]), reset=False)
        return fault

    @staticmethod
    def _deliver(fault: Fault | None, reply: Reply) -> Outcome:
        """The reply, unless a fault says the array acted and its answer was lost, broken or replaced."""
        if fault is None:
            return reply
        if fault.kind is FaultKind.LOST_REPLY:
            return Drop(0.0, reset=True)
        if fault.kind is FaultKind.BROKEN_REPLY:
            return Broken(reply)
        if fault.kind is FaultKind.HTTP_STATUS:
            return _status_reply(fault)
        return reply

    # -- ZAPI ----------------------------------------------------------------------------

    def _zapi(self, request: HttpRequest) -> Outcome:
        version = "{}.{}".format(*self.state.cluster.ontapi)
        if request.method != "POST":
            return self._xml(zapi.render_failure("Not_Allowed", "Not supported method type", version))
        api = zapi.peek_api(request.body) or "(malformed)"
        self._count(("zapi", api))
        early = self._before((api,))
        if isinstance(early, Drop):
            return early
        if not self._authorized(request):
            return Reply(
                401,
                b"<html><body><h1>401 Unauthorized</h1></body></html>\n",
                "text/html",
                {"WWW-Authenticate": 'Basic realm="Administrator"'},
            )
        if early is not None and not early.carries_out:
            return self._zapi_fault(early, version)
        return self._deliver(early, self._zapi_reply(request, api, version))

    def _zapi_reply(self, request: HttpRequest, api: str, version: str) -> Reply:
        try:
            parsed = zapi.parse_request(request.body)
            with self.state.lock:
                results = zapi_apis.handle(self.state, parsed)
                return self._xml(zapi.render(results, version))
        except zapi.EnvelopeError as exc:
            return self._xml(zapi.render_failure(13001, str(exc), version))
        except OntapError as exc:
            log.debug("ZAPI %s failed: %s %s", api, exc.condition.zapi_errno, exc.zapi_message)
            return self._xml(zapi.render_failure(exc.condition.zapi_errno, exc.zapi_message, version))

    def _zapi_fault(self, fault: Fault, version: str) -> Reply:
        if fault.kind is FaultKind.HTTP_STATUS:
            return _status_reply(fault)
        errno = fault.params.get("errno", 13001)
        return self._xml(
            zapi.render_failure(errno, str(fault.params.get("reason", "injected failure")), version)
        )

    @staticmethod
    def _xml(body: bytes) -> Reply:
        return Reply(200, body, XML_TYPE)

    # -- REST ----------------------------------------------------------------------------

    def _rest(self, request: HttpRequest, path: str, query: str) -> Outcome:
        template, _, _ = rest_apis.router.resolve(request.method, path)
        key = f"{request.method} {template or path}"
        self._count(("rest", key))
        early = self._before((f"{request.method} {path}", key))
        if isinstance(early, Drop):
            return early
        if not self._authorized(request):
            body = {"error": {"message": "User is not authorized", "code": "6"}}
            return self._json(401, body, {"WWW-Authenticate": 'Basic realm="ONTAP"'})
        if early is not None and not early.carries_out:
            return self._rest_fault(early)
        return self._deliver(early, self._rest_reply(request, path, query, key))

    def _rest_reply(self, request: HttpRequest, path: str, query: str, key: str) -> Reply:
        try:
            parsed = rest.RestRequest(
                request.method, path, rest.parse_query(query), request.headers, rest.parse_body(request.body)
            )
            with self.state.lock:
                _, response = rest_apis.handle(self.state, parsed)
        except OntapError as exc:
            log.debug("REST %s failed: %s %s", key, exc.condition.rest_code, exc.message)
            response = rest.error_response(exc)
        return self._json(response.status, response.body, response.headers)

    def _rest_fault(self, fault: Fault) -> Reply:
        if fault.kind is FaultKind.HTTP_STATUS:
            return _status_reply(fault)
        code = str(fault.params.get("code", fault.params.get("errno", "1")))
        message = str(fault.params.get("message", fault.params.get("reason", "injected failure")))
        return self._json(int(fault.params.get("status", 500)), {"error": {"message": message, "code": code}})

    @staticmethod
    def _json(status: int, body: Mapping[str, object], headers: Mapping[str, str] | None = None) -> Reply:
        return Reply(status, json.dumps(body).encode("utf-8"), JSON_TYPE, headers or {})


def _status_reply(fault: Fault) -> Reply:
    """A bare HTTP error, as a gateway in front of the array sends it."""
    status = int(fault.params["status"])
    headers = {"Location": str(fault.params["location"])} if "location" in fault.params else {}
    return Reply(status, f"injected HTTP {status}\n".encode(), "text/plain", headers)
