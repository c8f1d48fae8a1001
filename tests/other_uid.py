"""Connections made by another local user: a forked child that drops to ``NOBODY`` before connecting.

The kernel records a Unix peer's credentials when it connects (SO_PEERCRED), so a socket the child
connected and handed back over SCM_RIGHTS stays, for the server, a peer of the other uid. Tests
that need the other user's connections to stay out of this process (a flood that must not count
against the server's descriptors) keep them in the child instead (``held_by_nobody``).
Forking needs ``@pytest.mark.allow_subprocess``; the tests run as root.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import resource
import socket
import struct
import termios
import time
from collections.abc import Callable, Iterator

NOBODY = 65534
_BATCH = 200  # below SCM_MAX_FD (253)
_COUNT = struct.Struct("i")
_TCP_ESTABLISHED = 1  # tcp_info.tcpi_state


def _become(uid: int) -> None:
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)


def _child(run: Callable[[], int]) -> None:
    code = 1
    try:
        code = run()
    finally:
        os._exit(code)


def connections_as(uid: int, count: int, connect: Callable[[], socket.socket]) -> list[socket.socket]:
    """``count`` connections made by a process running as ``uid``, now held by this one."""
    ours, theirs = socket.socketpair()
    pid = os.fork()
    if pid == 0:

        def run() -> int:
            ours.close()
            _become(uid)
            for start in range(0, count, _BATCH):
                made = [connect() for _ in range(min(_BATCH, count - start))]
                socket.send_fds(theirs, [b"x"], [made_socket.fileno() for made_socket in made])
                for made_socket in made:
                    made_socket.close()
            return 0

        _child(run)
    theirs.close()
    received: list[socket.socket] = []
    try:
        with ours:
            while len(received) < count:
                message, fds, _, _ = socket.recv_fds(ours, 1, _BATCH)
                received += [socket.socket(fileno=fd) for fd in fds]
                if not message:
                    raise AssertionError(f"the child as uid {uid} made only {len(received)} connections")
    finally:
        os.waitpid(pid, 0)
    return received


@contextlib.contextmanager
def held_by_nobody(count: int, address: tuple[str, int], within: float = 20.0) -> Iterator[int]:
    """``count`` idle TCP connections to ``address`` from uid ``NOBODY``, held in a child process until
    the block ends; each sends one byte of a request and no more; yields how many the server took (acknowledged
    the byte or closed) within ``within`` seconds."""
    ours, theirs = socket.socketpair()
    pid = os.fork()
    if pid == 0:

        def run() -> int:
            ours.close()
            _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the flood, not its maker, is limited
            _become(NOBODY)
            flood = []
            deadline = time.monotonic() + within
            for _ in range(count):
                client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                client.settimeout(max(0.01, deadline - time.monotonic()))
                if client.connect_ex(address) == 0:
                    client.send(b"G")  # a request begun and never finished
                flood.append(client)
            taken = 0
            for client in flood:  # acknowledged by the server's kernel, or already closed by the server
                while _unacknowledged(client) and time.monotonic() < deadline:
                    time.sleep(0.01)
                taken += not _unacknowledged(client)
            connected = taken
            theirs.sendall(_COUNT.pack(connected))
            theirs.recv(1)  # until the parent is done
            return 0

        _child(run)
    theirs.close()
    try:
        raw = b""
        while len(raw) < _COUNT.size:
            chunk = ours.recv(_COUNT.size - len(raw))
            assert chunk, "the child holding the connections died"
            raw += chunk
        yield _COUNT.unpack(raw)[0]
    finally:
        ours.close()
        os.waitpid(pid, 0)


def _unacknowledged(client: socket.socket) -> bool:
    """Whether the connection is established with bytes its peer's kernel has not acknowledged
    (SIOCOUTQ); a connection the server closed or reset is taken, whatever it still counts."""
    state = client.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0]
    if state != _TCP_ESTABLISHED:
        return False
    raw = fcntl.ioctl(client.fileno(), termios.TIOCOUTQ, _COUNT.pack(0))
    return bool(_COUNT.unpack(raw)[0])
