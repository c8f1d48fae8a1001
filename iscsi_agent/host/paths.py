"""Where the host's sysfs, /dev, /proc and /etc live: every host path is joined here, under one root.

Production uses root "/"; unit tests hand in a synthetic tree under a temporary folder, and no
other module spells out a /sys or /dev path, so none of them can reach the real host by accident.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from iscsi_agent.host.sysfs import entry_names


@dataclass(frozen=True)
class HostPaths:
    """Joins host paths under ``root``; ``host_view`` turns them back into what the host calls them."""

    root: Path = Path("/")

    def under_root(self, absolute: str | os.PathLike[str]) -> Path:
        """A configured absolute path (e.g. the initiator name file) as seen under the root."""
        relative = PurePosixPath(os.fspath(absolute)).relative_to("/")
        return self.root / relative

    def sys(self, *parts: str) -> Path:
        return self.root.joinpath("sys", *parts)

    def dev(self, *parts: str) -> Path:
        return self.root.joinpath("dev", *parts)

    def proc(self, *parts: str) -> Path:
        return self.root.joinpath("proc", *parts)

    # The sysfs classes and /dev folders the host layer reads; named once here.
    def iscsi_sessions(self) -> Path:
        return self.sys("class", "iscsi_session")

    def scsi_host(self, host: int) -> Path:
        return self.sys("class", "scsi_host", f"host{host}")

    def scsi_devices(self) -> Path:
        return self.sys("class", "scsi_device")

    def block(self, *parts: str) -> Path:
        return self.sys("block", *parts)

    def by_path(self) -> Path:
        return self.dev("disk", "by-path")

    def by_id(self) -> Path:
        return self.dev("disk", "by-id")

    def mapper(self, name: str) -> Path:
        return self.dev("mapper", name)

    def mountinfo(self) -> Path:
        return self.proc("self", "mountinfo")

    def udev_db(self, device_number: str) -> Path:
        """udev's database entry for a block device ("8:0"); written once udev has processed it."""
        return self.root.joinpath("run", "udev", "data", f"b{device_number}")

    # open-iscsi's record database and its lock, where Debian's open-iscsi 2.1.8 is built to keep them
    # (ISCSI_DB_ROOT and LOCK_DIR, compiled into iscsiadm).
    def iscsi_db(self, *parts: str) -> Path:
        return self.root.joinpath("etc", "iscsi", *parts)

    def iscsi_lock_dir(self) -> Path:
        return self.root.joinpath("run", "lock", "iscsi")

    def host_view(self, path: Path) -> str:
        """The path as the host names it ("/dev/sdb"), for callers, logs and /proc fd links."""
        return str(PurePosixPath("/", Path(path).relative_to(self.root)))

    def resolve_link(self, link: Path) -> Path:
        """Where a udev or sysfs symlink points, kept under the root even if the target is absolute."""
        return Path(self.link_target(os.fspath(link)))

    def link_target(self, link: str) -> str:
        """``resolve_link`` on plain strings, for passes over thousands of links."""
        return self._target(os.path.dirname(link), os.readlink(link))

    def dangling(self, folder: str, names: Iterable[str]) -> list[str]:
        """Those of the links ``names`` in ``folder`` whose target is gone (entries that are not
        links, or went meanwhile, are left out).

        One readlink per link; its target's folder is listed once for all the links into it (the
        links of /dev/disk point into /dev), and only a target missing from that listing is looked
        up on its own, so a node made since the listing is not taken for gone. For a pass over
        thousands of links, where a readlink, path arithmetic and a stat per link cost tens of ms.
        """
        listed: dict[str, frozenset[str]] = {}
        gone = []
        for name in names:
            link = os.path.join(folder, name)
            try:
                target = os.readlink(link)
            except OSError:
                continue
            where, slash, node = target.rpartition("/")
            where += slash  # "../../", "/" (the root) or "" (this folder)
            present = listed.get(where)
            if present is None:
                present = listed[where] = frozenset(entry_names(self._target(folder, where or ".")))
            if node not in present and not os.path.exists(self._target(folder, target)):
                gone.append(name)
        return gone

    def _target(self, folder: str, target: str) -> str:
        """A link's target as seen under the root, the link being in ``folder``."""
        if os.path.isabs(target):
            return os.path.join(self.root, os.path.normpath(target).lstrip("/"))
        return os.path.normpath(os.path.join(folder, target))
