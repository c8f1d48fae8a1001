"""Files and folders only root may change: owner and mode checks, and opening without following links.

The agent runs as root and acts on what it reads (a program to run, a secret to send, a journal
that drives recovery) and on where it writes (its socket, its state). Anything another user could
write, replace or point elsewhere with a symbolic link would let that user steer root, so each
check below says what is wrong with a path, as a phrase that follows its name ("/x is owned by uid
65534, not root"), for the caller to refuse with its own error.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

WRITABLE_BY_OTHERS = 0o022  # group or others may write
OPEN_TO_OTHERS = 0o077  # group or others have any access
READABLE_BY_EVERYONE = stat.S_IROTH
SECRET = WRITABLE_BY_OTHERS | READABLE_BY_EVERYONE  # what a file holding a secret must not allow


def trusted_owners() -> frozenset[int]:
    """root; and the agent's own uid when it does not run as root (a developer's or a test's run)."""
    return frozenset({0, os.geteuid()})


def open_no_follow(path: Path, flags: int, mode: int = 0o600) -> int:
    """``os.open`` that refuses a symbolic link in the last component (ELOOP) and never blocks on a FIFO."""
    return os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY, mode)


def open_problem(exc: OSError) -> str:
    """What an OSError of ``open_no_follow`` means."""
    if exc.errno == errno.ELOOP:
        return "is a symbolic link (not followed)"
    return f"cannot be opened: {exc.strerror}"


def file_problem(opened: os.stat_result, forbidden: int = WRITABLE_BY_OTHERS) -> str | None:
    """What makes an opened file untrustworthy (``fstat`` of its descriptor), or None."""
    if not stat.S_ISREG(opened.st_mode):
        return "is not a regular file"
    return owner_or_mode_problem(opened, forbidden)


def folder_problem(path: Path, forbidden: int = WRITABLE_BY_OTHERS) -> str | None:
    """What makes ``path`` unsafe to hold the agent's files, or None.

    The folder must be a folder, not a link to one, owned by root, with none of ``forbidden`` in its
    mode; every folder above it must be owned by root and not writable by others unless sticky
    (like /tmp, where others cannot rename or remove what is not theirs).
    """
    try:
        found = os.lstat(path)
    except OSError as exc:
        return f"cannot be examined: {exc.strerror}"
    if stat.S_ISLNK(found.st_mode):
        return "is a symbolic link (not followed)"
    if not stat.S_ISDIR(found.st_mode):
        return "is not a folder"
    problem = owner_or_mode_problem(found, forbidden)
    if problem:
        return problem
    for above in path.parents:
        try:
            parent = os.stat(above)
        except OSError as exc:
            return f"is below {above}, which cannot be examined: {exc.strerror}"
        sticky = parent.st_mode & stat.S_ISVTX
        if parent.st_uid not in trusted_owners() or (parent.st_mode & WRITABLE_BY_OTHERS and not sticky):
            return (
                f"is below {above}, which others may change "
                f"(owner uid {parent.st_uid}, mode {stat.S_IMODE(parent.st_mode):04o})"
            )
    return None


def owner_or_mode_problem(found: os.stat_result, forbidden: int) -> str | None:
    """Whether someone other than root owns it, or its mode has any of ``forbidden``."""
    if found.st_uid not in trusted_owners():
        return f"is owned by uid {found.st_uid}, not root (chown root)"
    mode = stat.S_IMODE(found.st_mode)
    loose = mode & forbidden
    if not loose:
        return None
    if forbidden == OPEN_TO_OTHERS:
        return f"is open to group or others (mode {mode:04o}; chmod go-rwx)"
    if loose & WRITABLE_BY_OTHERS:
        return f"is writable by group or others (mode {mode:04o}; chmod go-w)"
    return f"is readable by everyone (mode {mode:04o}; chmod o-r)"
