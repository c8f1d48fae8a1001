"""Reading a request off a connection with a deadline for the whole part and a byte budget for the head.

A socket timeout alone bounds each recv, so a client trickling one byte a second would hold a
connection thread for ever; here every recv gets only the time left until the part's deadline.
The head budget bounds the request line and headers together (http.client alone allows 100 lines
of 64 KiB each).
"""

from __future__ import annotations

import io
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from iscsi_agent.api.errors import ClientGone, HeadTooLarge, RequestTimeout

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer


class _DeadlineSocket(io.RawIOBase):
    def __init__(self, connection: socket.socket, clock: Callable[[], float]) -> None:
        self._connection = connection
        self._clock = clock
        self.deadline = 0.0
        self.part = "head"
        self.timeout = 0.0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        remaining = self.deadline - self._clock()
        if remaining <= 0:
            raise RequestTimeout(self.part, self.timeout)
        self._connection.settimeout(remaining)
        try:
            return self._connection.recv_into(buffer)
        except TimeoutError:
            raise RequestTimeout(self.part, self.timeout) from None
        except ConnectionResetError:
            raise ClientGone from None


class RequestReader:
    """What http.server's parser reads the head from (``readline``), and the body's source (``read``)."""

    def __init__(
        self, connection: socket.socket, head_limit: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._clock = clock
        self._raw = _DeadlineSocket(connection, clock)
        self._buffered = io.BufferedReader(self._raw)
        self._head_left = head_limit
        self._head_limit = head_limit
        self.ended = False  # the client closed its side within the head

    def expect(self, part: str, timeout: float) -> None:
        """Start reading ``part`` ("head" or "body"), which must arrive within ``timeout`` from now."""
        self._raw.part = part
        self._raw.timeout = timeout
        self._raw.deadline = self._clock() + timeout

    def readline(self, limit: int = -1) -> bytes:
        wanted = self._head_left if limit < 0 else min(limit, self._head_left)
        line = self._buffered.readline(wanted)
        self._head_left -= len(line)
        if not line.endswith(b"\n"):
            if len(line) < wanted:
                self.ended = True
            elif wanted == len(line) and self._head_left == 0:
                raise HeadTooLarge(
                    f"the request head is over {self._head_limit} bytes", limit=self._head_limit
                )
        return line

    def read(self, size: int) -> bytes:
        """Up to ``size`` bytes; fewer only when the client closed its side."""
        return self._buffered.read(size)
