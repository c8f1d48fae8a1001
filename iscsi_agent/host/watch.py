"""Event-driven pauses for waits on udev links: inotify on the link folders, through ctypes.

udev creates and removes /dev/disk/by-* links (usually by renaming a temporary link into
place); watching those folders lets a wait wake the moment a link changes instead of at the
next poll. Where inotify is unavailable the wait falls back to plain polling.
"""

from __future__ import annotations

import ctypes
import logging
import os
import select
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path

log = logging.getLogger(__name__)

IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_ONLYDIR = 0x01000000
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC
FOLDER_EVENTS = IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_ONLYDIR
READ_SIZE = 64 * 1024


class FolderWatcher:
    """Wakes ``pause`` when an entry is created, removed or renamed in any watched folder.

    A folder that does not exist yet (by-path before the first iSCSI disk) is replaced by its
    nearest existing parent, so at least its creation wakes the wait.
    """

    def __init__(self, folders: Iterable[Path]) -> None:
        self._libc = ctypes.CDLL(None, use_errno=True)
        self._fd = self._libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if self._fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1 failed")
        try:
            for folder in {_nearest_existing(Path(folder)) for folder in folders}:
                self._watch(folder)
        except OSError:
            self.close()
            raise

    def _watch(self, folder: Path) -> None:
        if self._libc.inotify_add_watch(self._fd, os.fsencode(folder), FOLDER_EVENTS) < 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"inotify_add_watch {folder}: {os.strerror(errno)}")

    def pause(self, seconds: float) -> bool:
        """Block until a watched folder changes or ``seconds`` pass; True when something changed."""
        ready, _, _ = select.select([self._fd], [], [], max(seconds, 0.0))
        if not ready:
            return False
        try:
            while os.read(self._fd, READ_SIZE):
                pass
        except BlockingIOError:
            pass
        return True

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
    try:
        yield watcher.pause
    finally:
        watcher.close()


def polling(
    folders: Iterable[Path], fallback: Callable[[float], None]
) -> AbstractContextManager[Callable[[float], None]]:
    """Like ``watching`` but never watches: waits pause through the clock alone (unit tests)."""
    return nullcontext(fallback)


def _nearest_existing(folder: Path) -> Path:
    while not folder.is_dir() and folder != folder.parent:
        folder = folder.parent
    return folder
