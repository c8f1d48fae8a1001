"""Scheduled misbehaviour: the next N matching requests are slowed, refused, dropped or failed.

A match is a ZAPI API name (``"lun-map"``, exact), a REST ``"METHOD /api/path-prefix"``
(``"POST /api/protocols/san/lun-maps"``), or ``"*"`` for every request.

Three faults leave the client not knowing what happened although the array acted: ``lost_reply``,
``broken_reply``, and ``http_status`` with ``applied=True`` (a gateway's 502/504 after the array
answered it).
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any


class FaultKind(enum.Enum):
    LATENCY = "latency"  # seconds: answer normally, late
    HTTP_STATUS = "http_status"  # status[, applied, location]: a bare HTTP status (a redirect with location)
    RESET = "reset"  # drop the TCP connection (RST) without a reply
    TIMEOUT = "timeout"  # seconds: hold the request, then drop it without a reply
    ERRNO = "errno"  # ZAPI errno+reason / REST code+message+status as an API failure
    LOST_REPLY = "lost_reply"  # carry the request out, then drop the connection before the reply
    BROKEN_REPLY = "broken_reply"  # carry the request out, then break the chunked reply off mid-body


REQUIRED_PARAMS = {
    FaultKind.LATENCY: ("seconds",),
    FaultKind.HTTP_STATUS: ("status",),
    FaultKind.RESET: (),
    FaultKind.TIMEOUT: ("seconds",),
    FaultKind.ERRNO: (),
    FaultKind.LOST_REPLY: (),
    FaultKind.BROKEN_REPLY: (),
}


@dataclass(frozen=True)
class Fault:
    match: str
    kind: FaultKind
    params: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def carries_out(self) -> bool:
        """The array does the work and only the reply goes wrong."""
        if self.kind is FaultKind.HTTP_STATUS:
            return bool(self.params.get("applied", False))
        return self.kind in (FaultKind.LOST_REPLY, FaultKind.BROKEN_REPLY)

    def matches(self, keys: Iterable[str]) -> bool:
        if self.match == "*":
            return True
        if " " in self.match:  # REST: method and path prefix
            return any(key.startswith(self.match.rstrip("/")) for key in keys)
        return self.match in keys


class Faults:
    """Pending faults in injection order; each fires ``times`` times (None: for ever)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: list[list[Any]] = []  # [Fault, remaining or None]

    def inject(self, match: str, kind: str | FaultKind, times: int | None = 1, **params: Any) -> Fault:
        kind = FaultKind(kind)
        missing = [name for name in REQUIRED_PARAMS[kind] if name not in params]
        if missing:
            raise ValueError(f"fault {kind.value} needs {', '.join(missing)}")
        if times is not None and times < 1:
            raise ValueError("times must be at least 1, or None for every request")
        fault = Fault(match, kind, MappingProxyType(dict(params)))
        with self._lock:
            self._pending.append([fault, times])
        return fault

    def clear(self) -> None:
        with self._lock:
            self._pending.clear()

    def take(self, keys: Iterable[str]) -> Fault | None:
        """The first pending fault for a request known by ``keys``, counting one firing."""
        keys = tuple(keys)
        with self._lock:
            for entry in self._pending:
                fault, remaining = entry
                if fault.matches(keys):
                    if remaining is not None:
                        entry[1] = remaining - 1
                        if entry[1] == 0:
                            self._pending.remove(entry)
                    return fault
        return None
