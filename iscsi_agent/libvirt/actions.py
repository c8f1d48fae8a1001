"""What the libvirt hook does on the two calls it acts on: attach a domain's volumes, or detach them.

``prepare begin`` (before QEMU opens any disk): attach every volume the domain declares, all or
none; each answer's device must be a source path of one of the domain's block disks. On a failure
it detaches what this call attached and exits 1 with one line, which libvirt shows the user.
``release end`` (QEMU is gone): detach the declared volumes no other running domain here declares.
A detach refused as in use is tried again for a few seconds: udev probes the disk as QEMU closes it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TextIO

from iscsi_agent.api.client import AgentClient, AgentRefused
from iscsi_agent.ctl import DEFAULT_SOCKET
from iscsi_agent.errors import AgentError
from iscsi_agent.libvirt.domain import MAX_XML_BYTES, Domain, parse
from iscsi_agent.libvirt.hook import EXIT_ERROR, EXIT_OK, PREPARE, PROG
from iscsi_agent.libvirt.running import STATUS_DIR, declared_elsewhere

DETACH_TRIES = 6
DETACH_RETRY_SECONDS = 1.0  # six tries span five seconds: enough for udev's probe of a closed disk


class HookRefused(AgentError):
    code = "hook_refused"


@dataclass(frozen=True)
class Host:
    """Where the hook reaches the agent and libvirt's status files, and how it waits (tests swap them)."""

    client: AgentClient
    status_dir: Path = STATUS_DIR
    sleep: Callable[[float], None] = time.sleep


def act(name: str, operation: tuple[str, str], stdin: BinaryIO, err: TextIO, host: Host | None) -> int:
    """Run ``prepare`` or ``release`` for the domain XML on ``stdin``; libvirt's exit status."""
    xml = stdin.read(MAX_XML_BYTES + 1)  # one byte past the bound tells
    host = host or Host(AgentClient(DEFAULT_SOCKET))
    try:
        domain = parse(xml)
        if operation == PREPARE:
            prepare(domain, host)
        else:
            release(domain, host)
    except AgentError as exc:
        print(f"{PROG}: {name}: {_one_line(str(exc))}", file=err)
        return EXIT_ERROR
    return EXIT_OK


def prepare(domain: Domain, host: Host) -> None:
    """Attach every declared volume, or none: what this call attached is detached again on a failure."""
    attached: list[str] = []
    try:
        for volume in domain.volumes:
            answer = host.client.attach(volume)
            if answer.status == 201:  # 200: attached before this call, not this call's to undo
                attached.append(volume)
            device = str(answer.payload.get("device", ""))
            if device not in domain.block_sources:
                raise HookRefused(
                    f"volume {volume} is at {device}, which no <disk type='block'> source of the domain names",
                    volume=volume,
                    device=device,
                )
    except AgentError as exc:
        raise HookRefused(_reason(exc) + _undo(domain, attached, host), cause=exc.code) from exc


def release(domain: Domain, host: Host) -> None:
    """Detach the declared volumes that no other running domain declares; never attached is fine."""
    kept = declared_elsewhere(domain, host.status_dir)
    failures = [
        f"{volume}: {_reason(exc)}"
        for volume in domain.volumes
        if volume not in kept
        if (exc := _detach(volume, host)) is not None
    ]
    if failures:
        raise HookRefused("could not detach " + "; ".join(failures), failed=failures)


def _undo(domain: Domain, attached: list[str], host: Host) -> str:
    """Detach what ``prepare`` attached, newest first; what became of each, said in a few words."""
    if not attached:
        return ""
    kept = declared_elsewhere(domain, host.status_dir)  # another domain started on it meanwhile
    said = []
    for volume in reversed(attached):
        if volume in kept:
            said.append(f"{volume} kept for domain {kept[volume]}")
        elif (exc := _detach(volume, host)) is None:
            said.append(f"{volume} detached again")
        else:
            said.append(f"{volume} left attached ({_reason(exc)})")
    return "; " + ", ".join(said)


def _detach(volume: str, host: Host) -> AgentError | None:
    """Detach ``volume``, waiting out a short-lived holder; the error that stopped it, if any."""
    tries = 1
    while True:
        try:
            host.client.detach(volume, force=False)
            return None
        except AgentRefused as exc:
            if exc.code == "not_attached":
                return None
            if exc.code != "volume_in_use" or tries == DETACH_TRIES:
                return exc
        except AgentError as exc:
            return exc
        tries += 1
        host.sleep(DETACH_RETRY_SECONDS)


def _reason(exc: AgentError) -> str:
    """The agent's code and message for a refusal (what an operator greps for), else the message."""
    return f"{exc.code}: {exc}" if isinstance(exc, AgentRefused) else str(exc)


def _one_line(text: str) -> str:
    return " ".join(text.split())
