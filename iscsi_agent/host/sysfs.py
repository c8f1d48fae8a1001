"""Small readers and a writer for kernel attribute files, shared by the sysfs-reading modules.

Attributes come and go with devices and some answer ENXIO while a link is down. ``read_attr``
turns both "not there" and "could not read" into "", for values where the two mean the same to
the caller (a session's state, a process name). A value a decision rests on (a LUN's identity, a
device number) is read with ``read_attr_if_present``, which tells them apart: a failed read is not
an absent attribute. Writes (scan, rescan, delete) are actions and fail loudly with the path.
"""

from __future__ import annotations

import os
from pathlib import Path

from iscsi_agent.host.errors import SysfsError

_CHUNK = 65536


def read_bytes(path: str | os.PathLike[str]) -> bytes:
    """The whole attribute, raw; plain descriptor reads, a fraction of ``open()``'s cost per file,
    which counts in a pass over thousands of devices. A read shorter than asked is the end (files
    and kernel attributes answer whole), so a small attribute costs one read, not a second one
    that finds the end. Raises the OSError."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = [os.read(fd, _CHUNK)]
        while len(chunks[-1]) == _CHUNK:
            chunks.append(os.read(fd, _CHUNK))
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_attr(path: str | os.PathLike[str]) -> str:
    """The attribute's text, stripped; "" when it is missing or unreadable right now (see the module doc)."""
    try:
        return read_bytes(path).decode(errors="replace").strip()
    except OSError:
        return ""


def read_attr_if_present(path: Path) -> str | None:
    """The attribute's text, stripped; None when it does not exist.

    Any other failure (EIO, ENXIO, EINVAL, ...) is raised as the OSError: "could not read" must
    never pass for "absent" or "empty".
    """
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return None


def entries(folder: Path) -> list[Path]:
    """The folder's entries, or none when the folder is gone (its device went away)."""
    try:
        return list(folder.iterdir())
    except OSError:
        return []


def entry_names(folder: str | os.PathLike[str]) -> list[str]:
    """The names in a folder, or none when it is gone: for a reconciler pass over thousands of
    devices, where a Path per entry costs more than the listing itself."""
    try:
        return os.listdir(folder)
    except OSError:
        return []


def read_link(link: Path) -> str:
    try:
        return os.readlink(link)
    except OSError:
        return ""


def write_attr(path: Path, value: str, action: str, **details: object) -> None:
    """Write one value to a kernel attribute; a failure is a SysfsError that names the action and path."""
    try:
        path.write_text(value)
    except OSError as exc:
        raise SysfsError(
            f"{action} failed: {exc} (writing {value!r} to {path})", path=str(path), **details
        ) from exc
