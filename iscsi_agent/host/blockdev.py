"""The two things the agent does to a block device node itself: probe for an exclusive claim, flush buffers.

Behind a protocol so removal logic can be tested without a kernel block device.
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path
from typing import Protocol

BLKFLSBUF = 0x1261  # _IO(0x12, 97): write back and drop the buffer cache of a block device


class BlockOps(Protocol):
    def claimed_elsewhere(self, node: Path) -> bool: ...

    def flush(self, node: Path) -> None: ...


class KernelBlockOps:
    def claimed_elsewhere(self, node: Path) -> bool:
        """True when someone holds the device exclusively (a mount, dm, an O_EXCL opener): EBUSY."""
        try:
            fd = os.open(node, os.O_RDONLY | os.O_EXCL | os.O_CLOEXEC | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno == errno.EBUSY:
                return True
            if exc.errno in (errno.ENOENT, errno.ENXIO, errno.ENODEV):
                return False  # no device, nobody can hold it
            raise
        os.close(fd)
        return False

    def flush(self, node: Path) -> None:
        """BLKFLSBUF: what ``blockdev --flushbufs`` does, without starting a program."""
        fd = os.open(node, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        try:
            fcntl.ioctl(fd, BLKFLSBUF, 0)
        finally:
            os.close(fd)
