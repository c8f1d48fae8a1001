"""The root of every error the agent raises on purpose.

Each layer (array/, host/, and later the service and API) hangs a shallow tree of its
own under AgentError. Every error carries a stable snake_case ``code`` (what the socket
API puts in ``{"error": {"code": ...}}``) and a ``details`` dict of the facts that
explain it, so the edges can report it without parsing the message.
"""

from __future__ import annotations

from typing import Any


class AgentError(Exception):
    """Base of all deliberate agent errors."""

    code = "agent_error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def __str__(self) -> str:
        return self.message
