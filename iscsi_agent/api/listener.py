"""The listening Unix socket: passed by systemd (socket activation) or bound here with its mode and group.

The socket's folder is made if missing and must be root's and writable by no one else: then no one
else can put a link at the socket's path between bind and chown and steer root's hand. The mode
comes from the umask at bind, so nothing is chmodded by name, and the group is given with lchown,
which never follows a link.

Binding replaces a stale socket file left by a previous run, but only a socket nobody listens on:
anything else at that path (a regular file, a directory, a live agent) stops start-up instead of
being deleted. Closing removes the file only if nobody listens on it, so a stopping agent never
removes the socket of one that has started since.
"""

from __future__ import annotations

import errno
import grp
import logging
import os
import socket
import stat
from collections.abc import MutableMapping
from dataclasses import dataclass
from pathlib import Path

from iscsi_agent.errors import AgentError
from iscsi_agent.safe_paths import folder_problem

log = logging.getLogger(__name__)

SD_LISTEN_FDS_START = 3  # systemd passes sockets from this descriptor on (sd_listen_fds(3))
BACKLOG = 128
_SUN_PATH_MAX = 107  # sizeof(sun_path) is 108, with the terminating NUL


class ListenerError(AgentError):
    code = "socket_unusable"


@dataclass
class Listener:
    sock: socket.socket
    path: Path | None  # the file bound here, removed on close; None when systemd owns it

    def close(self) -> None:
        self.sock.close()
        if self.path is not None and _is_socket(self.path) and not _is_live(self.path):
            self.path.unlink(missing_ok=True)


def from_systemd(
    environ: MutableMapping[str, str], pid: int, first_fd: int = SD_LISTEN_FDS_START
) -> Listener | None:
    """The socket systemd passed (LISTEN_PID is this process, LISTEN_FDS=1), or None when none was.

    Like sd_listen_fds(unset_environment=1), the variables are removed so that no child program
    takes the socket for its own, and the descriptor is not inherited by them.
    """
    listen_pid = environ.pop("LISTEN_PID", None)
    listen_fds = environ.pop("LISTEN_FDS", None)
    environ.pop("LISTEN_FDNAMES", None)
    if listen_pid is None or listen_fds is None or listen_pid != str(pid):
        return None
    if listen_fds != "1":
        raise ListenerError(
            f"systemd passed {listen_fds} sockets; the agent takes exactly one", fds=listen_fds
        )
    sock = socket.socket(fileno=first_fd)
    problem = None
    if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM:
        problem = "is not a Unix stream socket"
    elif not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
        problem = "is not listening"
    if problem:
        sock.detach()  # not taken: the descriptor stays as systemd left it
        raise ListenerError(f"the socket systemd passed {problem}", fd=first_fd)
    os.set_inheritable(first_fd, False)
    log.info("serving on the socket systemd passed (%s)", sock.getsockname())
    return Listener(sock, None)


def bind(path: Path, mode: int, group: str | None) -> Listener:
    """A new listening socket at ``path`` with ``mode`` and, when given, owned by ``group``."""
    if len(os.fsencode(path)) > _SUN_PATH_MAX:
        raise ListenerError(f"socket path {path} is longer than {_SUN_PATH_MAX} bytes", path=str(path))
    gid = _group_id(group) if group else None
    _prepare_folder(path.parent)
    _remove_stale(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        _bind_with_mode(sock, path, mode)
        if gid is not None:
            os.chown(path, -1, gid, follow_symlinks=False)
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        raise ListenerError(f"cannot listen on {path}: {exc.strerror}", path=str(path)) from exc
    log.info("listening on %s (mode %04o, group %s)", path, mode, group or "unchanged")
    return Listener(sock, path)


def _prepare_folder(folder: Path) -> None:
    try:
        folder.mkdir(mode=0o755, parents=True, exist_ok=True)
    except OSError as exc:
        raise ListenerError(
            f"cannot make the socket folder {folder}: {exc.strerror}", path=str(folder)
        ) from exc
    problem = folder_problem(folder)
    if problem:
        raise ListenerError(f"socket folder {folder} {problem}", path=str(folder), problem=problem)


def _bind_with_mode(sock: socket.socket, path: Path, mode: int) -> None:
    """Bind so that the file has ``mode`` from the start (the kernel applies the umask to it).

    The umask is the process's: bind runs at start-up, before the threads that create files, and
    a file made meanwhile would only get fewer permissions, never more.
    """
    previous = os.umask(0o777 & ~mode)
    try:
        sock.bind(os.fspath(path))
    finally:
        os.umask(previous)


def _group_id(group: str) -> int:
    if group.isdigit():
        return int(group)
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise ListenerError(f"socket_group {group!r}: no such group", group=group) from None


def _is_socket(path: Path) -> bool:
    try:
        return stat.S_ISSOCK(path.lstat().st_mode)
    except FileNotFoundError:
        return False


def _is_live(path: Path) -> bool:
    """Whether a process listens on the socket file; a refused connection means it is stale."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(os.fspath(path))
        except OSError as exc:
            if exc.errno in (errno.ECONNREFUSED, errno.ENOENT):
                return False
            raise ListenerError(
                f"cannot tell whether {path} is in use: {exc.strerror}", path=str(path)
            ) from exc
    return True


def _remove_stale(path: Path) -> None:
    if not path.exists() and not path.is_symlink():
        return
    if not _is_socket(path):
        raise ListenerError(f"{path} exists and is not a socket; not replacing it", path=str(path))
    if _is_live(path):
        raise ListenerError(f"another process is listening on {path}", path=str(path))
    log.info("replacing stale socket %s", path)
    path.unlink()
