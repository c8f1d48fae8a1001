"""The soak's side of the socket API, as a client that knows only design.md: every answer is kept
with what the contract allows of it, so a 500 or a body that is not the documented JSON is a finding."""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from tests.vmtier.daemon import request_raw

# design.md's statuses; 503 is reconcile_busy (and overload), 405/408/411/431 the HTTP layer's own
DOCUMENTED = frozenset({200, 201, 400, 403, 404, 405, 408, 409, 411, 413, 431, 502, 503, 504})
ERROR_CODE = re.compile(r"^[a-z][a-z0-9_]*$")
TIMEOUT = 600.0


@dataclass(frozen=True)
class Answer:
    """One call's outcome: ``status`` 0 when no answer came (``cut`` names why)."""

    method: str
    path: str
    status: int
    body: Any
    cut: str = ""
    problem: str = ""  # what the contract does not allow in this answer

    @property
    def code(self) -> str:
        if isinstance(self.body, dict) and isinstance(self.body.get("error"), dict):
            return str(self.body["error"].get("code"))
        return ""

    def __str__(self) -> str:
        said = self.cut or f"{self.status} {self.code}".strip()
        return f"{self.method} {self.path} -> {said}"


def contract_problem(status: int, data: bytes) -> str:
    """Why an answer breaks the contract, or "": a documented status and a JSON body of the right shape."""
    try:
        body = json.loads(data)
    except ValueError:
        return f"status {status} with a body that is not JSON: {data[:200]!r}"
    if status == 500:
        return f"500 (a bug by the contract): {json.dumps(body)[:400]}"
    if status not in DOCUMENTED:
        return f"undocumented status {status}: {json.dumps(body)[:400]}"
    if status >= 400:
        error = body.get("error") if isinstance(body, dict) else None
        if not (
            isinstance(error, dict)
            and isinstance(error.get("code"), str)
            and ERROR_CODE.match(error["code"])
            and isinstance(error.get("message"), str)
            and isinstance(error.get("details", {}), dict)
        ):
            return f"status {status} without the documented error body: {json.dumps(body)[:400]}"
    elif not isinstance(body, dict):
        return f"status {status} with a body that is not an object: {json.dumps(body)[:200]}"
    return ""


class Client:
    """Calls the daemon on a fresh connection each time and keeps every answer (thread-safe)."""

    def __init__(self, socket: Path) -> None:
        self.socket = socket
        self.answers: list[Answer] = []
        self.statuses: Counter[str] = Counter()
        self._lock = threading.Lock()

    def call(self, method: str, path: str, body: Any = None) -> Answer:
        try:
            status, data = request_raw(self.socket, method, path, body, timeout=TIMEOUT)
        except (OSError, ValueError) as exc:  # refused, reset, closed mid-answer (http.client's errors)
            answer = Answer(method, path, 0, None, cut=f"{type(exc).__name__}: {exc}"[:200])
        else:
            problem = contract_problem(status, data)
            try:
                parsed = json.loads(data)
            except ValueError:
                parsed = data.decode(errors="replace")
            answer = Answer(method, path, status, parsed, problem=problem)
        with self._lock:
            self.answers.append(answer)
            self.statuses[f"{method} {answer.status or 'no answer'} {answer.code}".strip()] += 1
        return answer

    def take(self) -> list[Answer]:
        with self._lock:
            answers, self.answers = self.answers, []
        return answers

    def attach(self, volume: str) -> Answer:
        return self.call("POST", "/v1/attachments", {"volume": volume})

    def detach(self, volume: str, force: bool = False) -> Answer:
        return self.call(
            "DELETE", f"/v1/attachments/{quote(volume, safe='')}" + ("?force=true" if force else "")
        )

    def attachments(self) -> Answer:
        return self.call("GET", "/v1/attachments")

    def reconcile(self, dry_run: bool = False) -> Answer:
        return self.call("POST", "/v1/reconcile", {"dry_run": dry_run})
