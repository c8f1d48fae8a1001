"""A client of the socket API: http.client over AF_UNIX, one connection per request, as the server serves them.

Answers come back as the server's JSON, parsed; an error answer becomes an AgentRefused carrying the
server's stable code, so callers branch on codes, not on HTTP statuses. Before a byte is sent, the
kernel's record of who serves the socket (SO_PEERCRED) must say root: anyone who got to the socket's
path first would otherwise read the request.
"""

from __future__ import annotations

import http.client
import json
import socket
import urllib.parse
from dataclasses import dataclass
from typing import Any

from iscsi_agent.api.peer import peer_of
from iscsi_agent.errors import AgentError
from iscsi_agent.safe_paths import trusted_owners

DEFAULT_TIMEOUT = 300.0  # an attach waits for the array, a login and a device; the agent bounds each


class AgentUnreachable(AgentError):
    code = "agent_unreachable"


class AgentBadAnswer(AgentError):
    code = "agent_bad_answer"


class AgentNotRoot(AgentError):
    """The socket is served by a process that is not root, so not the agent; nothing was sent to it."""

    code = "agent_not_root"


class AgentRefused(AgentError):
    """The agent answered with an error; ``code`` is the agent's own."""

    def __init__(self, status: int, code: str, message: str, details: dict[str, Any], text: str) -> None:
        super().__init__(message, **details)
        self.status = status
        self.code = code
        self.text = text  # the error body as the agent sent it


@dataclass(frozen=True)
class Answer:
    status: int
    text: str  # the body as the agent sent it
    payload: dict[str, Any]


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self._path)
            _check_server(sock, self._path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


def _check_server(sock: socket.socket, path: str) -> None:
    server = peer_of(sock)
    if server.uid not in trusted_owners():
        raise AgentNotRoot(
            f"the process serving {path} runs as uid {server.uid}, not root (not the agent); "
            "nothing was sent to it",
            socket=path,
            uid=server.uid,
            pid=server.pid,
        )


class AgentClient:
    def __init__(self, socket_path: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        self._path = socket_path
        self._timeout = timeout

    def attach(self, volume: str) -> Answer:
        return self.request("POST", "/v1/attachments", {"volume": volume})

    def detach(self, volume: str, *, force: bool) -> Answer:
        query = "?force=true" if force else ""
        return self.request("DELETE", f"/v1/attachments/{urllib.parse.quote(volume, safe='')}{query}")

    def resize(self, volume: str) -> Answer:
        return self.request("POST", f"/v1/attachments/{urllib.parse.quote(volume, safe='')}/resize")

    def attachments(self) -> Answer:
        return self.request("GET", "/v1/attachments")

    def health(self) -> Answer:
        return self.request("GET", "/v1/health")

    def reconcile(self, *, dry_run: bool) -> Answer:
        return self.request("POST", "/v1/reconcile", {"dry_run": dry_run})

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Answer:
        connection = _UnixConnection(self._path, self._timeout)
        headers = {"Content-Type": "application/json"} if body is not None else {}
        try:
            connection.request(method, path, json.dumps(body) if body is not None else None, headers)
            response = connection.getresponse()
            status, raw = response.status, response.read()
        except (OSError, http.client.HTTPException) as exc:
            raise AgentUnreachable(
                f"no answer from the agent at {self._path}: {exc}", socket=self._path
            ) from exc
        finally:
            connection.close()
        text = raw.decode("utf-8", errors="replace")
        try:
            payload = json.loads(text)
        except ValueError:
            raise AgentBadAnswer(f"the agent answered {status} with no JSON: {text[:200]!r}") from None
        if not isinstance(payload, dict):
            raise AgentBadAnswer(f"the agent answered {status} with {text[:200]!r}")
        if status >= 400:
            error = payload.get("error")
            if not isinstance(error, dict):
                raise AgentBadAnswer(f"the agent answered {status} without an error object: {text[:200]!r}")
            details = error.get("details")
            raise AgentRefused(
                status,
                str(error.get("code")),
                str(error.get("message")),
                details if isinstance(details, dict) else {},
                text,
            )
        return Answer(status, text, payload)
