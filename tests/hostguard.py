"""Fails any host-side test that reaches the real host by accident.

Unit, contract and simulator tests run against synthetic trees, fakes and loopback servers.
An audit hook (PEP 578) watches the whole process while such a test runs and turns these into
a HostAccessError: opening anything under /sys, /dev (but the harmless character devices),
/run, /etc/iscsi or the mount table; starting a program; opening a netlink socket (routes,
links, udev events); connecting anywhere but loopback or a Unix socket. Tests in the VM tier run as root in the guest, where touching the host is the point.
A test that really must start a program says so with @pytest.mark.allow_subprocess.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import sys
from collections.abc import Iterator

import pytest

GUARDED_PREFIXES = ("/sys/", "/dev/", "/run/", "/etc/iscsi/", "/proc/self/mountinfo", "/proc/mounts")
HARMLESS_DEVICES = frozenset({"/dev/null", "/dev/zero", "/dev/urandom", "/dev/random", "/dev/tty"})
PROGRAM_EVENTS = frozenset(
    {"subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork"}
)


class HostAccessError(AssertionError):
    """A test touched the real host; use a synthetic tree, a fake runner or a loopback server."""


class _Guard:
    active = False
    allow_programs = False


def _is_guarded_path(path: object) -> bool:
    if not isinstance(path, (str, bytes, os.PathLike)):
        return False
    text = os.path.abspath(os.fsdecode(path))
    return text not in HARMLESS_DEVICES and any(
        text.startswith(prefix) or text == prefix.rstrip("/") for prefix in GUARDED_PREFIXES
    )


def _is_loopback(address: object) -> bool:
    if isinstance(address, (str, bytes)):
        return True  # a Unix socket path
    if not isinstance(address, tuple) or not address:
        return True
    host = address[0]
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _audit(event: str, args: tuple) -> None:
    if not _Guard.active:
        return
    if event == "open" and args and _is_guarded_path(args[0]):
        raise HostAccessError(f"test opened {args[0]!r} on the real host")
    if event in PROGRAM_EVENTS and not _Guard.allow_programs:
        raise HostAccessError(f"test started a program on the real host ({event}: {args[:2]!r})")
    if event == "socket.__new__" and len(args) > 1 and args[1] == socket.AF_NETLINK:
        raise HostAccessError("test opened a netlink socket to the real host's kernel")
    if event == "socket.connect" and len(args) > 1 and not _is_loopback(args[1]):
        raise HostAccessError(f"test connected to {args[1]!r}, which is not loopback")


sys.addaudithook(_audit)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "allow_subprocess: the test may start programs on the host")


@pytest.fixture(autouse=True)
def host_guard(request: pytest.FixtureRequest) -> Iterator[None]:
    if request.node.get_closest_marker("vm") is not None:
        yield
        return
    _Guard.allow_programs = request.node.get_closest_marker("allow_subprocess") is not None
    _Guard.active = True
    try:
        yield
    finally:
        _Guard.active = False
        _Guard.allow_programs = False
