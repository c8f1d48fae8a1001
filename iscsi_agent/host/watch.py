"""Event-driven pauses for waits on udev links: inotify on the link folders, through ctypes.

udev creates and removes /dev/disk/by-* links (usually by renaming a temporary link into
place); watching those folders lets a wait wake the moment a link changes instead of at the
next poll. Where inotify is unavailable the wait falls back to the clock's sleep (``watching``).
"""

from __future__ import annotations

import ctypes
import logging
import os
import select
import struct
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)

IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_IGNORED = 0x00008000  # the kernel dropped a watch: its folder was removed
IN_ONLYDIR = 0x01000000
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC
FOLDER_EVENTS = IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_ONLYDIR
READ_SIZE = 64 * 1024
EVENT_HEADER = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len; then len name bytes


class FolderWatcher:
    """Wakes ``pause`` when an entry is created, removed or renamed in any watched folder.

    A folder that does not exist yet (by-path before the first iSCSI disk) is replaced by its
    nearest existing parent, so its creation wakes the wait; from then on the folder itself is
    watched too, so the links that appear in it wake later pauses. A watched folder that is
    removed (udev removes an emptied link folder) falls back to its parent the same way.
    """

    def __init__(self, folders: Iterable[Path]) -> None:
        self._libc = ctypes.CDLL(None, use_errno=True)
        self._wanted = tuple(dict.fromkeys(Path(folder) for folder in folders))
        self._watched: dict[Path, int] = {}
        self._fd: int = self._libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if self._fd < 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"inotify_init1: {os.strerror(errno)}")
        try:
            self._watch_nearest()
        except OSError:
            self.close()
            raise
        # poll, not select: select cannot take a descriptor numbered 1024 or more.
        self._poll = select.poll()
        self._poll.register(self._fd, select.POLLIN)

    @property
    def closed(self) -> bool:
        return self._fd < 0

    def fileno(self) -> int:
        """The inotify descriptor (-1 once closed)."""
        return self._fd

    def _watch_nearest(self) -> None:
        for folder in self._wanted:
            nearest = _nearest_existing(folder)
            if nearest not in self._watched:
                self._watched[nearest] = self._watch(nearest)

    def _watch(self, folder: Path) -> int:
        wd = self._libc.inotify_add_watch(self._fd, os.fsencode(folder), FOLDER_EVENTS)
        if wd < 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"inotify_add_watch {folder}: {os.strerror(errno)}")
        return int(wd)

    def pause(self, seconds: float) -> bool:
        """Block until a watched folder changes or ``seconds`` pass; True when something changed."""
        if self.closed:
            raise ValueError("pause on a closed FolderWatcher")
        if not self._poll.poll(max(seconds, 0.0) * 1000):
            return False
        try:
            while data := os.read(self._fd, READ_SIZE):
                self._forget_dropped(data)
        except BlockingIOError:
            pass
        try:
            self._watch_nearest()
        except OSError as exc:  # a folder that came and went again; the next pause tries again
            log.debug("could not watch a new link folder: %s", exc)
        return True

    def _forget_dropped(self, data: bytes) -> None:
        """Forget the watches the kernel dropped, so their folders are watched again once they return."""
        dropped = set()
        offset = 0
        while offset + EVENT_HEADER.size <= len(data):
            wd, mask, _cookie, length = EVENT_HEADER.unpack_from(data, offset)
            offset += EVENT_HEADER.size + length
            if mask & IN_IGNORED:
                dropped.add(wd)
        for folder, wd in list(self._watched.items()):
            if wd in dropped:
                del self._watched[folder]

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


@contextmanager
def watching(
    folders: Iterable[Path],
    fallback: Callable[[float], None],
    make_watcher: Callable[[Iterable[Path]], FolderWatcher] = FolderWatcher,
) -> Iterator[Callable[[float], None]]:
    """A pause function for ``wait_until``: inotify on ``folders``, or ``fallback`` (the clock's sleep)."""
    try:
        watcher = make_watcher(folders)
    except OSError as exc:
        log.debug("inotify unavailable (%s); polling instead", exc)
        yield fallback
        return

    def pause(seconds: float) -> None:
        watcher.pause(seconds)

    try:
        yield pause
    finally:
        watcher.close()


def _nearest_existing(folder: Path) -> Path:
    while not folder.is_dir() and folder != folder.parent:
        folder = folder.parent
    return folder
