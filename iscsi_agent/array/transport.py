"""The one HTTP boundary both ONTAP APIs share: a keep-alive session, timeouts, bounded retries.

Only requests the caller marks idempotent are retried, and only after transient failures
(connection refused or reset, timeouts, 429/502/503/504). A lun-map or igroup-create is never
resent blindly: the client re-reads the array's state instead (``iscsi_agent.array.recovery``).
Sleep and the random source for jitter are injected so tests run without real waiting.
Request bodies and the Authorization header are never logged; they carry passwords and CHAP secrets.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import requests

from iscsi_agent.array.errors import (
    ArrayAuthFailed,
    ArrayError,
    ArrayTimeout,
    ArrayTlsError,
    ArrayUnreachable,
)
from iscsi_agent.array.settings import ArraySettings

log = logging.getLogger(__name__)

TRANSIENT_STATUSES = frozenset({429, 502, 503, 504})
USER_AGENT = "iscsi-agent"


@dataclass(frozen=True)
class HttpReply:
    status: int
    reason: str
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter: retry n waits ``uniform(0, min(max, base * 2**n))``."""

    attempts: int = 3
    base_delay: float = 0.5
    max_delay: float = 8.0

    def delay(self, retry_number: int, rand: float) -> float:
        return rand * min(self.max_delay, self.base_delay * 2**retry_number)


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
        session: Session,
        timeout: tuple[float, float],
        verify: bool | str = True,
        cert: tuple[str, str] | None = None,
        retry: RetryPolicy = RetryPolicy(),
        sleep: Callable[[float], None] = time.sleep,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._session = session
        self._timeout = timeout
        self._verify = verify
        self._cert = cert
        self._retry = retry
        self._sleep = sleep
        self._rand = rand

    @classmethod
    def from_settings(cls, settings: ArraySettings, **overrides: Any) -> HttpTransport:
        """A transport with a real keep-alive session configured for TLS and authentication."""
        session = requests.Session()
        session.headers["User-Agent"] = USER_AGENT
        if settings.username and not settings.cert:  # a client certificate replaces the password
            session.auth = (settings.username, settings.password)
        overrides.setdefault("retry", RetryPolicy(attempts=max(1, settings.attempts)))
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
        """Send once, or up to ``attempts`` times when idempotent and the failure was transient."""
        attempts = self._retry.attempts if idempotent else 1
        for attempt in range(attempts):
            last_try = attempt == attempts - 1
            try:
                reply = self._send(method, path, params=params, json=json, data=data, headers=headers)
            except (ArrayUnreachable, ArrayTimeout) as exc:
                if last_try or isinstance(exc, ArrayTlsError):
                    raise
                self._back_off(method, path, str(exc), attempt, attempts)
                continue
            if reply.status in TRANSIENT_STATUSES and not last_try:
                self._back_off(method, path, f"HTTP {reply.status}", attempt, attempts)
                continue
            return reply
        raise AssertionError("unreachable: the last attempt returns or raises")

    def close(self) -> None:
        self._session.close()

    def _back_off(self, method: str, path: str, why: str, attempt: int, attempts: int) -> None:
        delay = self._retry.delay(attempt, self._rand())
        log.warning(
            "%s %s failed (%s); retry %d of %d in %.2fs", method, path, why, attempt + 1, attempts - 1, delay
        )
        self._sleep(delay)

    def _send(self, method: str, path: str, **kwargs: Any) -> HttpReply:
        url = self.base_url + path
        try:
            # verify and cert go with each request: on the session, REQUESTS_CA_BUNDLE would override them
            response = self._session.request(
                method, url, timeout=self._timeout, verify=self._verify, cert=self._cert, **kwargs
            )
        except requests.exceptions.SSLError as exc:
            raise ArrayTlsError(f"TLS with {self.base_url} failed: {exc}", url=self.base_url) from exc
        except requests.exceptions.Timeout as exc:
            raise ArrayTimeout(
                f"{method} {path} got no answer from {self.base_url} in time", url=self.base_url
            ) from exc
        except requests.exceptions.ConnectionError as exc:
            raise ArrayUnreachable(f"{self.base_url} unreachable: {exc}", url=self.base_url) from exc
        except requests.exceptions.RequestException as exc:
            raise ArrayError(f"{method} {path} could not be sent: {exc}", url=self.base_url) from exc
        log.debug("%s %s -> %s", method, path, response.status_code)
        if response.status_code == 401:
            raise ArrayAuthFailed(f"{self.base_url} refused the credentials (HTTP 401)", url=self.base_url)
        return HttpReply(response.status_code, response.reason or "", response.headers, response.content)
