"""The real daemon in the guest as a client sees it: exec it as systemd would, talk HTTP/JSON on its
socket, read its size from /proc. Shared by the bench, the chaos soak and the VM tests, so each
drives the daemon through the same contract and nothing else.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import iscsi_agent

BIN = Path(sys.executable).parent
TREE = Path(iscsi_agent.__file__).resolve().parent.parent
START_TIMEOUT = 300.0  # an exec under software emulation on a loaded machine is slow
REQUEST_TIMEOUT = 300.0


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__("agent", timeout=timeout)
        self._path = str(path)

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


def request_raw(
    sock: Path, method: str, path: str, body: Any = None, timeout: float = REQUEST_TIMEOUT
) -> tuple[int, bytes]:
    """One request on a fresh connection, as a hypervisor hook makes it: the status and the body as sent."""
    connection = UnixConnection(sock, timeout)
    try:
        payload = None if body is None else json.dumps(body)
        headers = {} if payload is None else {"Content-Type": "application/json"}
        connection.request(method, path, body=payload, headers=headers)
        reply = connection.getresponse()
        return reply.status, reply.read()
    finally:
        connection.close()


def request(
    sock: Path, method: str, path: str, body: Any = None, timeout: float = REQUEST_TIMEOUT
) -> tuple[int, Any]:
    """``request_raw`` with the body parsed as JSON (None when empty)."""
    status, data = request_raw(sock, method, path, body, timeout)
    return status, json.loads(data) if data else None


def tree_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """An environment whose agent commands import the tree under test: the venv's console scripts alone
    import the package it was installed from (an editable install of one checkout, not this one)."""
    made = dict(os.environ if env is None else env)
    made["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TREE), made.get("PYTHONPATH", "")]))
    return made


def rss_kib(pid: int) -> int:
    return proc_status(pid)["VmRSS"]


def proc_status(pid: int) -> dict[str, int]:
    """The numeric fields of /proc/PID/status (kB values without their unit): VmRSS, Threads, ..."""
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        words = value.split()
        if words and words[0].isdigit():
            fields[name] = int(words[0])
    return fields


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def start(
    conf: Path,
    workdir: Path,
    env: dict[str, str] | None = None,
    log_name: str = "agent.log",
    timeout: float = START_TIMEOUT,
) -> tuple[subprocess.Popen[bytes], dict[str, float]]:
    """Exec the daemon; time READY=1 on our notify socket and the first answer on its API socket.

    ``workdir`` holds the notify socket and the log; the API socket is ``workdir/agent.sock``.
    """
    notify_path = workdir / "notify.sock"
    notify_path.unlink(missing_ok=True)
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(notify_path))
    api = workdir / "agent.sock"
    log = (workdir / log_name).open("a")
    began = time.monotonic()
    process = subprocess.Popen(
        [str(BIN / "iscsi-agent"), "--config", str(conf)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=dict(tree_env(env), NOTIFY_SOCKET=str(notify_path)),
    )
    log.close()
    figures: dict[str, float] = {}
    deadline = began + timeout
    notify.settimeout(0.01)
    try:
        while "ready_s" not in figures or "answering_s" not in figures:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                process.wait(30)
                raise RuntimeError(
                    f"the daemon did not come up within {time.monotonic() - began:.0f} s (exit code "
                    f"{process.poll()}): {figures}; log: {(workdir / log_name).read_text()[-2000:]!r}"
                )
            try:
                if b"READY=1" in notify.recv(4096):
                    figures.setdefault("ready_s", time.monotonic() - began)
            except TimeoutError:
                pass
            if "answering_s" not in figures and api.exists():
                try:
                    if request(api, "GET", "/v1/health", timeout=10.0)[0] == 200:
                        figures["answering_s"] = time.monotonic() - began
                except OSError:
                    pass
    finally:
        notify.close()
    return process, figures
