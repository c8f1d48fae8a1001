"""What the agent does to a block device node itself: claim it exclusively, flush its buffers, and run
every call that can block in the kernel where a deadline applies.

Claim: ``open(O_RDONLY|O_EXCL)`` on a block device takes the kernel's exclusive claim (the one a
mount or a dm table takes), so while the agent holds it a concurrent ``mount`` or dm/multipath
claim fails with EBUSY. Removal holds it from its usage check across flush and delete.

Deadlines: BLKFLSBUF writes dirty pages back, a sysfs ``rescan`` asks the LUN, a sysfs ``delete``
synchronises the cache; on a path that is dead each of them blocks in the kernel for as long as
the paths are dead (replacement_timeout, or for ever). Python cannot interrupt a thread stuck in
a system call, so ``AbandoningCalls`` runs the call in a daemon thread and, at the deadline,
abandons it: the caller gets ``KernelCallTimeout`` naming device and step, and the thread stays
blocked in the kernel until the paths return or fail for good (the error says so).
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from iscsi_agent.host.errors import KernelCallTimeout

log = logging.getLogger(__name__)

T = TypeVar("T")

BLKFLSBUF = 0x1261  # _IO(0x12, 97): write back and drop the buffer cache of a block device
CLAIM_FLAGS = os.O_RDONLY | os.O_EXCL | os.O_CLOEXEC | os.O_NONBLOCK

Opener = Callable[[Path, int], int]
Ioctl = Callable[[int, int, int], Any]


class KernelCalls(Protocol):
    """Runs one call that may block in the kernel, under a deadline."""

    def run(
        self,
        call: Callable[[], T],
        timeout: float,
        *,
        device: str,
        step: str,
        late: Callable[[T], None] | None = None,
    ) -> T:
        """``call()``'s value or exception; KernelCallTimeout once ``timeout`` passed without one.

        ``late`` receives a value that arrives after the caller gave up (an fd to close).
        """
        ...


@dataclass
class _Outcome:
    done: threading.Event
    value: Any = None
    error: BaseException | None = None
    abandoned: bool = False


@dataclass(frozen=True)
class Abandoned:
    """A call given up on at its deadline, with what the thread knows of it."""

    device: str
    step: str
    thread: threading.Thread

    @property
    def blocked(self) -> bool:
        return self.thread.is_alive()


class AbandoningCalls:
    """Runs each call in a daemon thread and stops waiting for it at the deadline.

    The thread cannot be stopped (it is inside a system call); it ends when the kernel returns.
    ``abandoned`` lists the calls given up on, so a later refusal can say an earlier call of
    this agent still holds the device, and tests can wait for the kernel to let go.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._abandoned: list[Abandoned] = []

    def run(
        self,
        call: Callable[[], T],
        timeout: float,
        *,
        device: str,
        step: str,
        late: Callable[[T], None] | None = None,
    ) -> T:
        outcome = _Outcome(threading.Event())

        def work() -> None:
            try:
                value = call()
            except BaseException as exc:  # noqa: BLE001 - handed to the caller, or logged if abandoned
                error: BaseException | None = exc
                value = None
            else:
                error = None
            with self._lock:
                outcome.value, outcome.error = value, error
                outcome.done.set()
                abandoned = outcome.abandoned
            if abandoned:
                self._finish_late(device, step, value, error, late)

        thread = threading.Thread(target=work, name=f"{step} {device}", daemon=True)
        thread.start()
        outcome.done.wait(max(timeout, 0.0))
        with self._lock:
            if not outcome.done.is_set():
                outcome.abandoned = True
                self._abandoned = [entry for entry in self._abandoned if entry.blocked]
                self._abandoned.append(Abandoned(device, step, thread))
        if outcome.abandoned:
            raise KernelCallTimeout(
                f"{step} of {device} did not return within {timeout:.1f}s; the call stays blocked in the "
                f"kernel in an abandoned thread (dead paths?) and ends when the kernel lets it go",
                waited_for=f"{step} of {device}",
                device=device,
                step=step,
                timeout=timeout,
                abandoned=True,
            )
        if outcome.error is not None:
            raise outcome.error
        value: T = outcome.value
        return value

    def abandoned(self, device: str | None = None) -> list[Abandoned]:
        """Calls given up on that are still blocked in the kernel (for ``device``, or all)."""
        with self._lock:
            return [
                entry
                for entry in self._abandoned
                if entry.blocked and (device is None or entry.device == device)
            ]

    @staticmethod
    def _finish_late(
        device: str, step: str, value: Any, error: BaseException | None, late: Callable[[Any], None] | None
    ) -> None:
        if error is not None:
            log.warning("abandoned %s of %s returned late with %s", step, device, error)
            return
        log.warning("abandoned %s of %s returned late", step, device)
        if late is not None:
            late(value)


class DeviceClaim:
    """An exclusive claim on a block device: an O_EXCL descriptor kept open until ``close``.

    A call still using the descriptor when ``close`` comes (an abandoned flush) keeps it open,
    and with it the claim, until that call returns: a device whose flush is stuck stays
    unmountable, and the descriptor number cannot be reused under the blocked call.
    """

    def __init__(self, node: Path, fd: int, ioctl: Ioctl = fcntl.ioctl) -> None:
        self.node = node
        self._fd: int | None = fd
        self._ioctl = ioctl
        self._lock = threading.Lock()
        self._busy = 0
        self._closing = False
        status = os.fstat(fd)
        self._rdev = status.st_rdev
        self._ino = status.st_ino

    @property
    def device_number(self) -> str:
        """ "8:16": the major:minor of the device claimed, as sysfs block/<name>/dev spells it."""
        return f"{os.major(self._rdev)}:{os.minor(self._rdev)}"

    @property
    def held(self) -> bool:
        with self._lock:
            return self._fd is not None

    def flush(self) -> None:
        """BLKFLSBUF on the claimed descriptor: what ``blockdev --flushbufs`` does, without a program."""
        with self._using() as fd:
            self._ioctl(fd, BLKFLSBUF, 0)

    def node_changed(self) -> str | None:
        """Why the node no longer names the claimed device (gone, or made anew for another), or None."""
        try:
            now = os.stat(self.node)
        except FileNotFoundError:
            return f"{self.node} is gone"
        if now.st_rdev != self._rdev:
            return f"{self.node} is now device {os.major(now.st_rdev)}:{os.minor(now.st_rdev)}"
        if now.st_ino != self._ino:
            return (
                f"{self.node} was made anew (inode {self._ino} -> {now.st_ino}): another device took the name"
            )
        return None

    def close(self) -> None:
        with self._lock:
            self._closing = True
            if self._busy == 0:
                self._close_now()

    @contextmanager
    def _using(self) -> Iterator[int]:
        with self._lock:
            if self._fd is None:
                raise OSError(errno.EBADF, f"the claim on {self.node} was released")
            self._busy += 1
            fd = self._fd
        try:
            yield fd
        finally:
            with self._lock:
                self._busy -= 1
                if self._closing and self._busy == 0:
                    self._close_now()

    def _close_now(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class Claim(Protocol):
    """An exclusive claim on one block device, held until ``close``."""

    node: Path

    @property
    def device_number(self) -> str: ...

    @property
    def held(self) -> bool: ...

    def flush(self) -> None: ...

    def node_changed(self) -> str | None: ...

    def close(self) -> None: ...


class BlockOps(Protocol):
    def claimed_elsewhere(self, node: Path) -> bool: ...

    def claim(self, node: Path) -> Claim: ...


class KernelBlockOps:
    """The real device nodes; ``opener`` and ``ioctl`` are seams for tests on regular files."""

    def __init__(self, opener: Opener = os.open, ioctl: Ioctl = fcntl.ioctl) -> None:
        self._open = opener
        self._ioctl = ioctl

    def claimed_elsewhere(self, node: Path) -> bool:
        """True when someone holds the device exclusively (a mount, dm, an O_EXCL opener): EBUSY."""
        try:
            fd = self._open(node, CLAIM_FLAGS)
        except OSError as exc:
            if exc.errno == errno.EBUSY:
                return True
            if exc.errno in (errno.ENOENT, errno.ENXIO, errno.ENODEV):
                return False  # no device, nobody can hold it
            raise
        os.close(fd)
        return False

    def claim(self, node: Path) -> DeviceClaim:
        """Claim the device exclusively; OSError EBUSY when a mount, dm or another O_EXCL opener has it."""
        fd = self._open(node, CLAIM_FLAGS)
        try:
            return DeviceClaim(node, fd, self._ioctl)
        except BaseException:
            os.close(fd)
            raise
