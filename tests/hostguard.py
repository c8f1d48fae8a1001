"""Fails any host-side test that reaches the real host by accident.

Unit, contract and simulator tests run against synthetic trees, fakes and loopback servers. While
such a test runs, an audit hook (PEP 578) and wrappers around the few `os` functions that raise no
audit event watch the whole process and turn these into a HostAccessError:

- touching a host path: opening, listing, walking, globbing, creating, removing, renaming,
  linking, chmod/chown/utime/truncate, xattrs, chdir, shutil copy/move/rmtree, and `os.stat`,
  `os.lstat`, `os.readlink`, `os.access`, `os.statvfs`, `os.mknod`, `os.mkfifo` (so `Path.exists`,
  `is_dir`, `is_symlink`, `resolve` and `readlink` too). A path is judged after symlinks are
  resolved (the last component only when the call follows it), so /tmp/x -> /sys/class is caught.
  Host paths: /sys, /dev (but a few harmless character devices), /run, /etc/iscsi,
  /etc/iscsi-agent, /etc/multipath(.conf), /var/lib/iscsi-agent, and /proc itself, /proc/<pid>,
  /proc/self, /proc/thread-self (so /proc/mounts and /proc/net), /proc/partitions, /proc/scsi
  and /proc/sys;
- starting a program, or signalling a process other than this one;
- opening a netlink socket (routes, links, udev events);
- connecting anywhere but loopback, or to, from or at a Unix socket that is a host path.

HostAccessError derives from BaseException, so `except Exception` in the code under test cannot
swallow it; one raised in another thread (a simulator's server thread) also fails the test at
teardown. Tests in the VM tier run as root in the guest, where touching the host is the point.
A test that really must start a program says so with @pytest.mark.allow_subprocess.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import re
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import pytest

GUARDED_TREES = (
    "/sys",
    "/dev",
    "/run",
    "/etc/iscsi",
    "/etc/iscsi-agent",
    "/etc/multipath",
    "/etc/multipath.conf",
    "/var/lib/iscsi-agent",
    "/proc/self",
    "/proc/thread-self",
    "/proc/mounts",
    "/proc/partitions",
    "/proc/scsi",
    "/proc/sys",
)
PROCESS_TREE = re.compile(r"/proc(/\d+(/.*)?)?")  # /proc itself lists the host's processes
HARMLESS_DEVICES = frozenset({"/dev/null", "/dev/zero", "/dev/urandom", "/dev/random", "/dev/tty"})
PROGRAM_EVENTS = frozenset(
    {"subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty"}
)
# Audit event -> ((index of a path argument, index of its dir_fd argument or None), ...) and
# whether the call follows a symlink in the last component. An fd (an int path) is not judged: it
# came from an "open" event that was. The "open" event carries no dir_fd; a relative path opened
# with one is judged against the working folder.
PATH_EVENTS: dict[str, tuple[tuple[tuple[int, int | None], ...], bool]] = {
    "open": (((0, None),), True),
    "os.listdir": (((0, None),), True),
    "os.scandir": (((0, None),), True),
    "os.walk": (((0, None),), True),
    "os.fwalk": (((0, 4),), True),
    "os.chdir": (((0, None),), True),
    "os.mkdir": (((0, 2),), False),
    "os.rmdir": (((0, 1),), False),
    "os.remove": (((0, 1),), False),  # os.unlink too
    "os.rename": (((0, 2), (1, 3)), False),  # os.replace too
    "os.link": (((0, 2), (1, 3)), False),
    "os.symlink": (((1, 2),), False),  # where the link is made; its target is only a string
    "os.chmod": (((0, 2),), True),
    "os.chown": (((0, 3),), True),
    "os.utime": (((0, 3),), True),
    "os.truncate": (((0, None),), True),
    "os.getxattr": (((0, None),), True),
    "os.setxattr": (((0, None),), True),
    "os.removexattr": (((0, None),), True),
    "os.listxattr": (((0, None),), True),
    "glob.glob": (((0, None),), True),
    "glob.glob/2": (((0, 3),), True),
    "pathlib.Path.glob": (((0, None),), True),
    "pathlib.Path.rglob": (((0, None),), True),
    "shutil.copyfile": (((0, None), (1, None)), True),
    "shutil.copymode": (((0, None), (1, None)), True),
    "shutil.copystat": (((0, None), (1, None)), True),
    "shutil.copytree": (((0, None), (1, None)), True),
    "shutil.move": (((0, None), (1, None)), False),
    "shutil.rmtree": (((0, 1),), False),
    "shutil.make_archive": (((0, None), (2, None)), True),
    "shutil.unpack_archive": (((0, None), (1, None)), True),
    "sqlite3.connect": (((0, None),), True),  # SQLite opens its files in C, without an "open" event
}
# os functions that raise no audit event (Python 3.11), wrapped while the guard is active:
# name -> whether the call follows a symlink in the last component.
UNAUDITED = {
    "stat": True,
    "lstat": False,
    "readlink": False,
    "access": True,
    "statvfs": True,
    "mknod": False,
    "mkfifo": False,
}
_ORIGINAL: dict[str, Callable[..., Any]] = {name: getattr(os, name) for name in UNAUDITED}
_SUPPORT_SETS = (os.supports_dir_fd, os.supports_fd, os.supports_follow_symlinks, os.supports_effective_ids)


class HostAccessError(BaseException):
    """A test touched the real host; use a synthetic tree, a fake runner or a loopback server.

    A BaseException, so that `except Exception` in the code under test cannot hide it.
    """


class _Guard:
    active = False
    allow_programs = False
    owner = 0  # the thread that runs the test
    elsewhere: ClassVar[list[str]] = []  # raised in other threads, reported at teardown


class _Busy(threading.local):
    """Set while the guard itself resolves a path, so its own lstat/readlink calls pass through."""

    on = False


_busy = _Busy()


def _violation(message: str) -> HostAccessError:
    if threading.get_ident() != _Guard.owner:
        _Guard.elsewhere.append(message)
    return HostAccessError(message)


def _resolve(path: str | bytes | os.PathLike[Any], dir_fd: object, follow: bool) -> str:
    """The path the kernel will act on: symlinks resolved, the last one only when followed."""
    text = os.fsdecode(path)
    if not os.path.isabs(text):
        try:
            base = (
                _ORIGINAL["readlink"](f"/proc/self/fd/{dir_fd}") if isinstance(dir_fd, int) else os.getcwd()
            )
        except OSError:
            return text  # a bad fd or a removed working folder: the call itself fails
        text = os.path.join(base, text)
    head, tail = os.path.split(text)
    if follow or tail in ("", ".", ".."):
        return os.path.realpath(text)
    return os.path.join(os.path.realpath(head), tail)


def is_host_path(resolved: str) -> bool:
    """Whether an absolute, resolved path is host state a host-side test must not touch."""
    if resolved in HARMLESS_DEVICES:
        return False
    return PROCESS_TREE.fullmatch(resolved) is not None or any(
        resolved == tree or resolved.startswith(tree + "/") for tree in GUARDED_TREES
    )


def _check_path(what: str, path: object, dir_fd: object, follow: bool) -> None:
    if path is None:
        path = "."
    if not isinstance(path, (str, bytes, os.PathLike)):
        return  # an fd, already judged when it was opened
    _busy.on = True
    try:
        resolved = _resolve(path, dir_fd, follow)
    finally:
        _busy.on = False
    if not is_host_path(resolved):
        return
    named = os.fsdecode(path)
    via = "" if named == resolved else f", which is {resolved!r}"
    raise _violation(f"test touched {named!r}{via} on the real host ({what})")


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if not _Guard.active or _busy.on:
        return
    if event in PATH_EVENTS:
        paths, follow = PATH_EVENTS[event]
        for index, dir_fd_index in paths:
            if index < len(args):
                dir_fd = args[dir_fd_index] if dir_fd_index is not None and dir_fd_index < len(args) else None
                _check_path(event, args[index], dir_fd, follow)
    elif event in PROGRAM_EVENTS and not _Guard.allow_programs:
        raise _violation(f"test started a program on the real host ({event}: {args[:2]!r})")
    elif event in ("os.kill", "os.killpg") and not _Guard.allow_programs and args[0] != os.getpid():
        raise _violation(f"test signalled process {args[0]} on the real host ({event})")
    elif event == "socket.__new__" and len(args) > 1 and args[1] == socket.AF_NETLINK:
        raise _violation("test opened a netlink socket to the real host's kernel")
    elif event in ("socket.connect", "socket.sendto", "socket.bind") and len(args) > 1:
        address = args[1]
        if isinstance(address, (str, bytes)):  # a Unix socket: /run/systemd/notify, /run/udev/control
            if address[:1] not in ("\0", b"\0"):  # an abstract name is no path
                _check_path(event, address, None, event != "socket.bind")
        elif event != "socket.bind" and not _is_loopback(address):
            raise _violation(f"test connected to {address!r}, which is not loopback")


def _is_loopback(address: object) -> bool:
    if not isinstance(address, tuple) or not address:
        return True
    host = address[0]
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _wrapped(name: str, follows: bool) -> Callable[..., Any]:
    original = _ORIGINAL[name]

    @functools.wraps(original)
    def call(path: Any, *args: Any, **kwargs: Any) -> Any:
        if _Guard.active and not _busy.on:
            follow = follows and kwargs.get("follow_symlinks", True)
            _check_path(f"os.{name}", path, kwargs.get("dir_fd"), follow)
        return original(path, *args, **kwargs)

    return call


_WRAPPED = {name: _wrapped(name, follows) for name, follows in UNAUDITED.items()}


def _install_wrappers() -> None:
    for name, wrapper in _WRAPPED.items():
        for support in _SUPPORT_SETS:  # `os.stat in os.supports_dir_fd` must stay true
            if _ORIGINAL[name] in support:
                support.add(wrapper)
        setattr(os, name, wrapper)


def _remove_wrappers() -> None:
    for name, wrapper in _WRAPPED.items():
        setattr(os, name, _ORIGINAL[name])
        for support in _SUPPORT_SETS:
            support.discard(wrapper)


sys.addaudithook(_audit)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "allow_subprocess: the test may start programs on the host")


@pytest.fixture(autouse=True)
def host_guard(request: pytest.FixtureRequest) -> Iterator[None]:
    if request.node.get_closest_marker("vm") is not None:
        yield
        return
    _Guard.allow_programs = request.node.get_closest_marker("allow_subprocess") is not None
    _Guard.owner = threading.get_ident()
    _Guard.elsewhere = []
    _install_wrappers()
    _Guard.active = True
    try:
        yield
    finally:
        _Guard.active = False
        _Guard.allow_programs = False
        _remove_wrappers()
    if _Guard.elsewhere:
        raise HostAccessError("in another thread: " + "; ".join(_Guard.elsewhere))
