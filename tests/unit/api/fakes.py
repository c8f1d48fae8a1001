"""A fake attach service that keeps attachments in a dict, and a raw HTTP exchange over a Unix socket."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from iscsi_agent.portal import Portal
from iscsi_agent.service_api import (
    ArrayHealth,
    Attachment,
    Detachment,
    Health,
    HealthStatus,
    NotAttached,
    ReconcileAction,
    Resized,
    VolumeInUse,
    VolumeNotFound,
)

T = TypeVar("T")

TARGET = "iqn.1992-08.com.netapp:sn.0123456789abcdef0123456789abcdef:vs.3"


def attachment(
    volume: str = "/vol/vol1/lun0", lun_id: int = 1, auth_username: str | None = None
) -> Attachment:
    serial = f"80Fxk?BxX{lun_id:03d}"
    wwid = "600a0980" + serial.encode().hex()
    return Attachment(
        volume=volume,
        lun_uuid=f"00000000-0000-4000-8000-{lun_id:012d}",
        device=Path(f"/dev/disk/by-id/wwn-0x{wwid}"),
        wwid=wwid,
        lun_id=lun_id,
        target_iqn=TARGET,
        portals=(Portal("127.0.0.1"), Portal("fe80::1", 3261)),
        multipath=False,
        auth_username=auth_username,
    )


@dataclass
class FakeService:
    """Knows ``luns``; attaches them in ``attached``; ``in_use`` volumes refuse detach without force;
    ``problems`` degrade health.

    ``fail_with`` is raised by every call. With ``hold`` set, attach waits for it after counting
    itself in ``entered`` (concurrency tests).
    """

    luns: set[str] = field(default_factory=lambda: {f"/vol/vol1/lun{n}" for n in range(4)})
    attached: dict[str, Attachment] = field(default_factory=dict)
    in_use: dict[str, tuple[str, ...]] = field(default_factory=dict)
    actions: list[ReconcileAction] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # health is degraded while any
    sizes: dict[str, int] = field(default_factory=dict)  # the LUN sizes a resize answers (else 1 GiB)
    fail_with: BaseException | None = None
    hold: threading.Event | None = None
    calls: list[tuple[Any, ...]] = field(default_factory=list)
    entered: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(0))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _call(self, *call: Any) -> None:
        with self._lock:
            self.calls.append(call)
        if self.fail_with is not None:
            raise self.fail_with

    def attach(self, volume: str) -> tuple[Attachment, bool]:
        self._call("attach", volume)
        if volume not in self.luns:
            raise VolumeNotFound(volume)
        if self.hold is not None:
            self.entered.release()
            self.hold.wait(10)
        with self._lock:
            if volume in self.attached:
                return self.attached[volume], False
            self.attached[volume] = attachment(volume, lun_id=len(self.attached) + 1)
            return self.attached[volume], True

    def detach(self, volume: str, *, force: bool) -> Detachment:
        self._call("detach", volume, force)
        if volume in self.in_use and not force:
            raise VolumeInUse(volume, self.in_use[volume])
        with self._lock:
            if self.attached.pop(volume, None) is None and not force:
                raise NotAttached(volume)
        return Detachment(volume)

    def resize(self, volume: str) -> Resized:
        self._call("resize", volume)
        if volume not in self.attached:
            raise NotAttached(volume)
        return Resized(volume, self.attached[volume].device, self.sizes.get(volume, 1 << 30))

    def attachments(self) -> list[Attachment]:
        self._call("attachments")
        return list(self.attached.values())

    def attachment(self, volume: str) -> Attachment:
        self._call("attachment", volume)
        if volume not in self.attached:
            raise NotAttached(volume)
        return self.attached[volume]

    def health(self) -> Health:
        self._call("health")
        return Health(
            status=HealthStatus.DEGRADED if self.problems else HealthStatus.OK,
            array=ArrayHealth(reachable=True, api="rest"),
            sessions=2,
            attachments=len(self.attached),
            last_reconcile=datetime(2026, 12, 1, 23, 0, tzinfo=UTC),
            problems=tuple(self.problems),
        )

    def reconcile(self, *, dry_run: bool) -> list[ReconcileAction]:
        self._call("reconcile", dry_run)
        return [
            ReconcileAction(action.action, action.target, action.reason, done=not dry_run)
            for action in self.actions
        ]


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    body: Any  # the parsed JSON


def parse_response(raw: bytes) -> Response:
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines)
    assert int(headers["Content-Length"]) == len(body)
    return Response(int(status_line.split()[1]), headers, json.loads(body))


def exchange(path: Path, data: bytes, *, timeout: float = 10.0) -> bytes:
    """Send raw bytes as one client and read until the server closes."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(timeout)
        client.connect(str(path))
        client.sendall(data)
        return read_all(client)


def read_all(client: socket.socket) -> bytes:
    chunks = []
    while chunk := client.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def request(
    path: Path, method: str, target: str, body: Any = None, headers: dict[str, str] | None = None
) -> Response:
    payload = b"" if body is None else body if isinstance(body, bytes) else json.dumps(body).encode()
    lines = [f"{method} {target} HTTP/1.1", "Host: localhost"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if payload or method == "POST":
        lines.append(f"Content-Length: {len(payload)}")
    return parse_response(exchange(path, ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload))


def eventually(predicate: Callable[[], T], timeout: float = 5.0) -> T:
    """Wait for something the server does on its own threads, with no event to wait on; its first truthy value."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, "it did not happen in time"
        time.sleep(0.01)
    return value
