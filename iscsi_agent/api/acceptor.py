"""Taking connections with bounded resources: one accept loop, a bounded set of connection threads.

Shared by the socket API and /metrics, because anything a local user can connect to must not let
that user exhaust the agent's descriptors or threads (prometheus-client's own server starts a
thread per connection and waits on each for ever):

- ``admit`` decides at accept, before a slot or a thread is taken: a connection it refuses is
  answered at once from the accept loop (the answer fits in a fresh socket's buffer) and then kept
  only to read what its client still sends, for at most ``linger`` seconds, at most ``lingering``
  of them at once; beyond those, closed unanswered. ``admit`` also names who connected (a uid), and
  nobody holds more than ``per_peer`` connection slots: the next is told ``busy`` the same way.
- at most ``connections`` connections are served at once, each on its own thread; the next
  ``refusals`` are handed to the handler as overloaded (it answers 503 after reading their head
  briefly, so the client reads the answer rather than a reset); any beyond those are closed at once.

The lifecycle is start → serve → stop: ``start`` runs the accept loop in a thread until ``stop``,
which wakes the loop, closes the listener and the lingering refusals, and waits, with a bound, for
the connections in flight.
"""

from __future__ import annotations

import logging
import selectors
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Hashable
from dataclasses import dataclass

log = logging.getLogger(__name__)

_ACCEPT_BACKOFF = 0.1  # after a failed accept (EMFILE): the listener stays readable, so do not spin
_LINGER_BYTES = 64 * 1024
_WARN_EVERY = 10.0  # a flood is reported, not logged line by line into the journal


@dataclass(frozen=True)
class Limits:
    max_head: int = 16 * 1024
    max_body: int = 64 * 1024
    head_timeout: float = 10.0
    body_timeout: float = 10.0
    write_timeout: float = 10.0
    connections: int = 64
    refusals: int = 8
    refusal_timeout: float = 1.0
    linger: float = 1.0
    per_peer: int = 32  # connection slots one peer (a uid) may hold; the rest stay for others
    lingering: int = 64  # refusals answered at accept that are still read from


@dataclass(frozen=True)
class Admission:
    """Who connected (None when nobody can tell, as on TCP) and, for a refused peer, its answer and
    why (for the log)."""

    peer: Hashable | None = None
    refusal: bytes | None = None
    reason: str = ""


class _Warnings:
    """At most one warning of a kind every ``every`` seconds, counting the ones held back."""

    def __init__(self, every: float = _WARN_EVERY, clock: Callable[[], float] = time.monotonic) -> None:
        self._every = every
        self._clock = clock
        self._last: dict[str, float] = {}
        self._held: Counter[str] = Counter()

    def warn(self, kind: str, message: str) -> None:
        now = self._clock()
        if kind in self._last and now - self._last[kind] < self._every:
            self._held[kind] += 1
            return
        held = self._held.pop(kind, 0)
        self._last[kind] = now
        log.warning("%s%s", message, f" ({held} more like it since the last)" if held else "")


Admit = Callable[[socket.socket], Admission]
Serve = Callable[[socket.socket, bool], None]  # (connection, overloaded); the thread owns the connection


def admit_everyone(connection: socket.socket) -> Admission:
    return Admission()


class Acceptor:
    def __init__(
        self,
        sock: socket.socket,
        serve: Serve,
        limits: Limits,
        *,
        name: str,
        admit: Admit = admit_everyone,
        busy: bytes = b"",
        close: Callable[[], None] | None = None,
    ) -> None:
        """``serve`` answers one connection on its own thread; ``busy`` is the answer at accept for a
        peer over its share; ``close`` closes the listener at stop (by default, the socket alone)."""
        self._sock = sock
        self._serve = serve
        self._limits = limits
        self._name = name
        self._admit = admit
        self._busy = busy
        self._close = close or sock.close
        self._serving = threading.BoundedSemaphore(limits.connections)
        self._refusing = threading.BoundedSemaphore(limits.refusals)
        self._held: Counter[Hashable] = Counter()
        self._threads: set[threading.Thread] = set()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._lingering: dict[socket.socket, tuple[float, int]] = {}  # deadline, bytes left
        self._loop: threading.Thread | None = None
        self._warnings = _Warnings()

    def start(self) -> None:
        self._loop = threading.Thread(target=self._accept_loop, name=f"{self._name}-accept", daemon=True)
        self._loop.start()

    def alive(self) -> bool:
        """Whether the accept loop is running."""
        return self._loop is not None and self._loop.is_alive() and not self._stopping.is_set()

    def stop(self, grace: float) -> bool:
        """Stop taking connections and wait up to ``grace`` seconds for those in flight; True if all ended."""
        if self._stopping.is_set():
            return True
        self._stopping.set()
        self._wake_writer.send(b"x")
        if self._loop is not None:
            self._loop.join()
        self._close()
        self._wake_reader.close()
        self._wake_writer.close()
        deadline = time.monotonic() + grace
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        unfinished = sum(thread.is_alive() for thread in threads)
        if unfinished:
            log.warning(
                "%s stopped with %d connections still in flight after %gs", self._name, unfinished, grace
            )
        return not unfinished

    # -- the accept loop ---------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        self._sock.setblocking(False)
        with selectors.DefaultSelector() as selector:
            selector.register(self._sock, selectors.EVENT_READ)
            selector.register(self._wake_reader, selectors.EVENT_READ)
            try:
                while not self._stopping.is_set():
                    for key, _ in selector.select(self._next_deadline()):
                        if key.fileobj is self._sock:
                            self._accept(selector)
                        elif key.fileobj is not self._wake_reader:
                            assert isinstance(key.fileobj, socket.socket)
                            self._drain(selector, key.fileobj)
                    self._expire(selector)
            finally:
                for connection in list(self._lingering):
                    self._forget(selector, connection)

    def _accept(self, selector: selectors.BaseSelector) -> None:
        try:
            connection, _ = self._sock.accept()
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._warnings.warn("accept", f"{self._name} cannot accept a connection: {exc}")
            self._stopping.wait(_ACCEPT_BACKOFF)
            return
        try:
            admission = self._admit(connection)
        except OSError as exc:  # the peer is gone already: nobody to answer
            log.debug("%s: cannot tell who connected: %s", self._name, exc)
            connection.close()
            return
        if admission.refusal is not None:
            self._warnings.warn("refused", f"{self._name}: {admission.reason}")
            self._refuse(selector, connection, admission.refusal)
            return
        peer = admission.peer
        with self._lock:
            over_share = peer is not None and self._held[peer] >= self._limits.per_peer
            if not over_share:
                self._held[peer] += 1
        if over_share:
            self._warnings.warn(
                "busy",
                f"{self._name}: peer {peer} holds {self._limits.per_peer} connections already; answered busy",
            )
            self._refuse(selector, connection, self._busy)
            return
        self._start(connection, peer)

    def _start(self, connection: socket.socket, peer: Hashable | None) -> None:
        if self._serving.acquire(blocking=False):
            slots, overloaded = self._serving, False
        elif self._refusing.acquire(blocking=False):
            slots, overloaded = self._refusing, True
        else:
            self._warnings.warn(
                "full",
                f"{self._name}: closing a connection unanswered: every serving and refusing slot is busy",
            )
            self._release(peer)
            connection.close()
            return
        thread = threading.Thread(
            target=self._run,
            args=(connection, slots, overloaded, peer),
            name=f"{self._name}-connection",
            daemon=True,
        )
        with self._lock:
            self._threads.add(thread)
        try:
            thread.start()
        except RuntimeError as exc:  # the process is out of threads: refuse this one, keep accepting
            log.warning("%s: closing a connection unanswered: %s", self._name, exc)
            with self._lock:
                self._threads.discard(thread)
            slots.release()
            self._release(peer)
            connection.close()

    def _run(
        self,
        connection: socket.socket,
        slots: threading.BoundedSemaphore,
        overloaded: bool,
        peer: Hashable | None,
    ) -> None:
        try:
            with connection:
                self._serve(connection, overloaded)
        except Exception:
            log.exception("%s: a connection failed", self._name)
        finally:
            slots.release()
            self._release(peer)
            with self._lock:
                self._threads.discard(threading.current_thread())

    def _release(self, peer: Hashable | None) -> None:
        with self._lock:
            self._held[peer] -= 1
            if self._held[peer] <= 0:
                del self._held[peer]

    # -- refusals answered at accept -----------------------------------------------------------------

    def _refuse(self, selector: selectors.BaseSelector, connection: socket.socket, answer: bytes) -> None:
        """Answer without a thread; then read what the client still sends, briefly, so that closing on
        its unread request does not reset the connection before it reads the answer."""
        connection.setblocking(False)
        try:
            if answer:
                connection.send(answer)
            connection.shutdown(socket.SHUT_WR)
        except OSError:
            connection.close()
            return
        if len(self._lingering) >= self._limits.lingering:
            connection.close()
            return
        self._lingering[connection] = (time.monotonic() + self._limits.linger, _LINGER_BYTES)
        selector.register(connection, selectors.EVENT_READ)

    def _drain(self, selector: selectors.BaseSelector, connection: socket.socket) -> None:
        deadline, left = self._lingering[connection]
        try:
            chunk = connection.recv(min(left, 65536))
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk or len(chunk) >= left:
            self._forget(selector, connection)
        else:
            self._lingering[connection] = (deadline, left - len(chunk))

    def _next_deadline(self) -> float | None:
        if not self._lingering:
            return None
        return max(0.0, min(deadline for deadline, _ in self._lingering.values()) - time.monotonic())

    def _expire(self, selector: selectors.BaseSelector) -> None:
        now = time.monotonic()
        for connection, (deadline, _) in list(self._lingering.items()):
            if deadline <= now:
                self._forget(selector, connection)

    def _forget(self, selector: selectors.BaseSelector, connection: socket.socket) -> None:
        selector.unregister(connection)
        del self._lingering[connection]
        connection.close()


class AcceptingServer:
    """A server whose connections an :class:`Acceptor` takes: starting, liveness and stopping are its."""

    _acceptor: Acceptor

    def start(self) -> None:
        self._acceptor.start()

    def alive(self) -> bool:
        """Whether the accept loop is running (the daemon's watchdog asks)."""
        return self._acceptor.alive()

    def stop(self, grace: float) -> bool:
        """Stop taking connections and wait up to ``grace`` seconds for those in flight; True if all ended."""
        return self._acceptor.stop(grace)
