"""Small readers and a writer for kernel attribute files, shared by the sysfs-reading modules.

Attributes come and go with devices and some answer ENXIO while a link is down, so the
readers turn "not there now" into empty values; writes (scan, rescan, delete) are actions and
fail loudly with the path in the error.
"""

from __future__ import annotations

import os
from pathlib import Path

from iscsi_agent.host.errors import SysfsError


def read_attr(path: Path) -> str:
    """The attribute's text, stripped; "" when it is missing or unreadable right now."""
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def entries(folder: Path) -> list[Path]:
    """The folder's entries, or none when the folder is gone (its device went away)."""
    try:
        return list(folder.iterdir())
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
