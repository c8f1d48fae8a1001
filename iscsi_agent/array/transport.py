"""The one HTTP boundary both ONTAP APIs share: a keep-alive session, timeouts, bounded retries.

Only requests the caller marks idempotent are resent, and only after transient failures
(connection refused or reset, timeouts, a reply cut off mid-body, 429/502/503/504), while the
client call's retry budget allows (``iscsi_agent.array.budget``). A lun-map or igroup-create is
never resent blindly: the client re-reads the array's state instead (``iscsi_agent.array.recovery``).
A 502/503/504 comes from a gateway or an array too busy to say what it did, and a reply cut off
mid-body was most likely begun after the array acted, so when they are the last answer they are
raised as transport failures (outcome unknown), never reported as a definite refusal.

Redirects are never followed: ONTAP answers its APIs itself, so a 3xx comes from something in
between, and following it would resend the body (a 307/308 keeps it: passwords, CHAP secrets) to
an address the configuration never named. A 3xx is an ``ArrayRedirected`` naming the location.

The environment has no say (``trust_env`` off): ``HTTPS_PROXY``, ``.netrc`` and
``REQUESTS_CA_BUNDLE`` would change where a daemon connects, with what credentials, and whom it
trusts. The array's certificate is checked against ``ArraySettings.trust_store`` (the system's
store unless ``ca_bundle`` is set), never against the certifi bundle requests ships. Request bodies and the Authorization header are never logged; they carry passwords and
CHAP secrets.

requests (with urllib3, http.client and ssl) is imported by the first transport made or request
sent, not with this module: the daemon is READY before it talks to the array.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from iscsi_agent.array.budget import DEFAULT_POLICY, Budgets, RetryPolicy
from iscsi_agent.array.errors import (
    ArrayAuthFailed,
    ArrayError,
    ArrayRedirected,
    ArrayTimeout,
    ArrayTlsError,
    ArrayUnreachable,
)
from iscsi_agent.array.settings import ArraySettings

if TYPE_CHECKING:
    import requests

__all__ = ["HttpReply", "HttpTransport", "RetryPolicy", "Session"]

log = logging.getLogger(__name__)

TRANSIENT_STATUSES = frozenset({429, 502, 503, 504})
UNKNOWN_OUTCOME_STATUSES = frozenset({502, 503, 504})  # 429 says "not done": the caller gets the refusal
USER_AGENT = "iscsi-agent"
MAX_LOCATION = 512  # characters of a redirect's Location quoted in the error


@dataclass(frozen=True)
class HttpReply:
    status: int
    reason: str
    headers: Mapping[str, str]
    body: bytes


class Session(Protocol):
    """The slice of ``requests.Session`` the transport uses; tests hand in a fake."""

    def request(self, method: str, url: str, **kwargs: Any) -> requests.Response: ...

    def close(self) -> None: ...


class HttpTransport:
    """Sends requests to one array and turns transport failures into typed errors."""

    def __init__(
        self,
        base_url: str,
        *,
        session: Session | requests.Session,
        timeout: tuple[float, float],
        verify: bool | str = True,
        cert: tuple[str, str] | None = None,
        retry: RetryPolicy = DEFAULT_POLICY,
        sleep: Callable[[float], None] = time.sleep,
        rand: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._session = session
        self._timeout = timeout
        self._verify = verify
        self._cert = cert
        self.budgets = Budgets(retry, clock=clock, sleep=sleep, rand=rand)
        self._clock = clock
        self.observe: Callable[[str, float], None] | None = None
        """Told every request's result ("ok", "http_<status>" or an error code) and duration (metrics)."""

    @classmethod
    def from_settings(cls, settings: ArraySettings, **overrides: Any) -> HttpTransport:
        """A transport with a real keep-alive session configured for TLS and authentication."""
        import requests

        session = requests.Session()
        session.trust_env = False  # no proxy, .netrc or CA bundle from the environment
        session.headers["User-Agent"] = USER_AGENT
        if settings.username and not settings.cert:  # a client certificate replaces the password
            session.auth = (settings.username, settings.password)
        for risk in settings.security_risks():
            log.warning("array %s: %s", settings.base_url, risk)
        overrides.setdefault(
            "retry", RetryPolicy(attempts=max(1, settings.attempts), deadline=settings.call_deadline)
        )
        return cls(
            settings.base_url,
            session=session,
            timeout=(settings.connect_timeout, settings.timeout),
            verify=settings.verify,
            cert=settings.cert,
            **overrides,
        )

    def request(
        self,
        method: str,
        path: str,
        *,
        idempotent: bool,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> HttpReply:
        """Send once; resend when idempotent, the failure transient and the call's budget not spent."""
        budget = self.budgets.current()
        what = f"{method} {path}"
        while True:
            timeout = budget.timeouts(*self._timeout, what)
            try:
                reply = self._send(
                    method, path, timeout, params=params, json=json, data=data, headers=headers
                )
            except (ArrayUnreachable, ArrayTimeout) as exc:
                if isinstance(exc, ArrayTlsError) or not idempotent or not budget.retry(what, str(exc)):
                    raise
                continue
            if reply.status not in TRANSIENT_STATUSES:
                return reply
            if idempotent and budget.retry(what, f"HTTP {reply.status}"):
                continue
            if reply.status in UNKNOWN_OUTCOME_STATUSES:
                raise self._outcome_unknown(what, reply)
            return reply

    def close(self) -> None:
        self._session.close()

    def _outcome_unknown(self, what: str, reply: HttpReply) -> ArrayError:
        """A gateway's or busy array's 502/503/504: whether the array acted is not known."""
        message = (
            f"{what} answered HTTP {reply.status} {reply.reason} by {self.base_url}: "
            "the array may or may not have carried it out"
        )
        if reply.status == 504:
            return ArrayTimeout(message, url=self.base_url, http_status=reply.status)
        return ArrayUnreachable(message, url=self.base_url, http_status=reply.status)

    def _redirected(self, method: str, path: str, response: requests.Response) -> ArrayRedirected:
        location = response.headers.get("Location", "")[:MAX_LOCATION]
        return ArrayRedirected(
            f"{method} {path}: {self.base_url} answered HTTP {response.status_code} redirecting to "
            f"{location!r}; redirects are not followed (configure the array's own address)",
            url=self.base_url,
            http_status=response.status_code,
            location=location,
        )

    def _send(self, method: str, path: str, timeout: tuple[float, float], **kwargs: Any) -> HttpReply:
        if self.observe is None:
            return self._send_once(method, path, timeout, **kwargs)
        started = self._clock()
        try:
            reply = self._send_once(method, path, timeout, **kwargs)
        except ArrayError as exc:
            self.observe(exc.code, self._clock() - started)
            raise
        self.observe("ok" if reply.status < 400 else f"http_{reply.status}", self._clock() - started)
        return reply

    def _send_once(self, method: str, path: str, timeout: tuple[float, float], **kwargs: Any) -> HttpReply:
        import requests  # its exceptions; a transport built on a fake session has not imported it yet

        url = self.base_url + path
        try:
            # verify, cert and redirects go with each request, so nothing set on the session can change them
            response = self._session.request(
                method,
                url,
                timeout=timeout,
                verify=self._verify,
                cert=self._cert,
                allow_redirects=False,
                **kwargs,
            )
        except requests.exceptions.SSLError as exc:
            raise ArrayTlsError(f"TLS with {self.base_url} failed: {exc}", url=self.base_url) from exc
        except requests.exceptions.Timeout as exc:
            raise ArrayTimeout(
                f"{method} {path} got no answer from {self.base_url} in time", url=self.base_url
            ) from exc
        except requests.exceptions.ConnectionError as exc:
            raise ArrayUnreachable(f"{self.base_url} unreachable: {exc}", url=self.base_url) from exc
        except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError) as exc:
            # the array had begun its answer, so it may well have done the work: only a re-read can tell
            raise ArrayUnreachable(
                f"{method} {path}: the reply from {self.base_url} broke off: {exc}", url=self.base_url
            ) from exc
        except requests.exceptions.RequestException as exc:
            raise ArrayError(f"{method} {path} could not be sent: {exc}", url=self.base_url) from exc
        except OSError as exc:  # requests' own check of the CA bundle and client certificate files
            raise ArrayTlsError(f"TLS with {self.base_url} cannot start: {exc}", url=self.base_url) from exc
        log.debug("%s %s -> %s", method, path, response.status_code)
        if response.status_code == 401:
            raise ArrayAuthFailed(f"{self.base_url} refused the credentials (HTTP 401)", url=self.base_url)
        if 300 <= response.status_code < 400:
            raise self._redirected(method, path, response)
        return HttpReply(response.status_code, response.reason or "", response.headers, response.content)
