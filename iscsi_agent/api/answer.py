"""An HTTP answer on a one-request connection: its bytes, and delivering them without a reset.

Shared by the socket API (JSON) and /metrics (Prometheus text).
"""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Callable, Mapping
from http import HTTPStatus
from typing import Any

log = logging.getLogger(__name__)

JSON = "application/json"
_LINGER_BYTES = 256 * 1024


def encode(
    status: HTTPStatus, body: bytes, content_type: str = JSON, headers: Mapping[str, str] | None = None
) -> bytes:
    lines = [
        f"HTTP/1.1 {status.value} {status.phrase}",
        f"Content-Type: {content_type}",
        f"Content-Length: {len(body)}",
        "Connection: close",
        *(f"{name}: {value}" for name, value in (headers or {}).items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + body


def encode_json(status: HTTPStatus, payload: Any, headers: Mapping[str, str] | None = None) -> bytes:
    return encode(status, (json.dumps(payload, default=str) + "\n").encode(), JSON, headers)


def deliver(
    connection: socket.socket, data: bytes, write_timeout: float, linger: float, clock: Callable[[], float]
) -> None:
    """Send the answer within ``write_timeout``, then read what the client still sends until it
    closes, for at most ``linger`` seconds: closing on unread bytes would reset the connection, and
    the client could lose the answer (a refusal before the body)."""
    try:
        connection.settimeout(write_timeout)
        connection.sendall(data)
        connection.shutdown(socket.SHUT_WR)
        deadline = clock() + linger
        left = _LINGER_BYTES
        while left > 0 and (remaining := deadline - clock()) > 0:
            connection.settimeout(remaining)
            chunk = connection.recv(min(left, 65536))
            if not chunk:
                return
            left -= len(chunk)
    except OSError as exc:
        log.debug("answer not delivered in full: %s", exc)  # how the client leaves is its business
