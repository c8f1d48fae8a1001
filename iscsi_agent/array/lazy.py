"""An ArrayClient that connects on first use, and again after a failed connect.

The daemon must start, serve detaches and health, and report "degraded" while the array is down
or unreachable at boot; connecting eagerly (``api = auto`` asks the array its version) would make
an array outage an agent outage on every host of the fleet.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from iscsi_agent.array.client import ArrayClient

log = logging.getLogger(__name__)


class LazyArrayClient:
    """Forwards every ArrayClient call to the client ``connect`` returns, made on the first call."""

    def __init__(self, connect: Callable[[], ArrayClient]) -> None:
        self._connect = connect
        self._lock = threading.Lock()
        self._client: ArrayClient | None = None

    @property
    def api(self) -> str:
        """ "zapi" or "rest" once connected, "" before."""
        return self._client.api if self._client is not None else ""

    def client(self) -> ArrayClient:
        with self._lock:
            if self._client is None:
                self._client = self._connect()
            return self._client

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client(), name)
