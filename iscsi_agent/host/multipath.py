"""dm-multipath maps over ONTAP LUN paths: find a map by WWID or path in sysfs, add WWIDs and paths, flush maps.

multipath names its maps by WWID (``user_friendly_names no``), so a map's dm uuid is
``mpath-3600a0980<hex(serial)>``. Layout::

    block/dm-0/dm/{uuid,name}   block/dm-0/slaves/{sda,sdb}   /dev/mapper/3600a0980...

A map is flushed before its path devices are removed; removing paths under a live map
leaves it queueing I/O with no path. ONTAP's recommended settings (multipath-tools' NETAPP
defaults) queue for ever (``no_path_retry queue``): on a map whose LUN is gone, every read or
write, a udev probe's included, then waits for a path that never comes back, and the flush
with it. So a flush first switches the map to failing such I/O (``fail_if_no_path``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from iscsi_agent.host.command import CommandResult, CommandRunner, CommandTimeout
from iscsi_agent.host.errors import MultipathError, WaitTimeout
from iscsi_agent.host.paths import HostPaths
from iscsi_agent.host.sysfs import entry_names, read_attr
from iscsi_agent.host.waiting import Clock, wait_until
from iscsi_agent.naa import normalize_wwid

log = logging.getLogger(__name__)

DM_UUID_PREFIX = "mpath-"
DEFAULT_TIMEOUT = 60.0
# `multipath -R`: retries (a second apart) of a flush that finds the map open. Callers flush a map
# they found unused; udev's probes, run on the map's change events, still open it for moments
# (seen in the VM right after a LUN id was reused: "map in use").
FLUSH_RETRIES = 5


@dataclass(frozen=True)
class MultipathMap:
    name: str
    dm: str
    wwid: str
    slaves: tuple[str, ...]
    node: Path


class Multipath:
    """Reads maps from sysfs; changes them through ``multipath`` and ``multipathd`` via the runner."""

    def __init__(
        self,
        paths: HostPaths,
        runner: CommandRunner,
        clock: Clock,
        *,
        program: str = "multipath",
        daemon_program: str = "multipathd",
        dm_program: str = "dmsetup",
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self._paths = paths
        self._runner = runner
        self._clock = clock
        self._program = program
        self._daemon_program = daemon_program
        self._dm_program = dm_program
        self._timeout = timeout

    def maps(self) -> tuple[MultipathMap, ...]:
        return tuple(
            MultipathMap(name, dm, wwid, slaves, self._paths.mapper(name))
            for name, dm, wwid, slaves in self.listed()
        )

    def listed(self) -> list[tuple[str, str, str, tuple[str, ...]]]:
        """Every multipath map as (name, dm, wwid, slaves), from sysfs: ``maps`` without a Path for
        each node, which a reconciler pass over a thousand maps does not use."""
        block = os.fspath(self._paths.block())
        found = []
        for dm in sorted(name for name in entry_names(block) if name.startswith("dm-")):
            uuid = read_attr(f"{block}/{dm}/dm/uuid")
            if not uuid.startswith(DM_UUID_PREFIX):
                continue  # LVM, crypt and other dm targets
            name = read_attr(f"{block}/{dm}/dm/name")
            slaves = tuple(sorted(entry_names(f"{block}/{dm}/slaves")))
            found.append((name, dm, uuid[len(DM_UUID_PREFIX) :], slaves))
        return found

    def find(self, wwid: str) -> MultipathMap | None:
        """The map for a WWID in any spelling ("naa.600a...", "3600a...")."""
        wanted = normalize_wwid(wwid)
        for mpath in self.maps():
            if normalize_wwid(mpath.wwid) == wanted:
                return mpath
        return None

    def holding(self, device_name: str) -> MultipathMap | None:
        """The map that runs over path device ``device_name`` ("sdb"), if one does."""
        return next((mpath for mpath in self.maps() if device_name in mpath.slaves), None)

    def add_wwid(self, wwid: str) -> None:
        """Record the WWID in multipath's wwids file, so find_multipaths lets multipathd claim its paths."""
        self._run("add wwid", [self._program, "-a", "3" + normalize_wwid(wwid)])

    def add_path(self, device_name: str) -> None:
        """Hand one path device ("sdb") to multipathd, which builds or extends the map."""
        self._run("add path", [self._daemon_program, "add", "path", device_name])

    def forget_path(self, device_name: str) -> None:
        """Tell multipathd to stop managing one path ("sdb"), so its path checker closes the device
        before the path is deleted (and cannot build the map again from it)."""
        self._run("del path", [self._daemon_program, "del", "path", device_name])

    def wait_for(self, wwid: str, path_names: Collection[str], timeout: float) -> MultipathMap:
        """Wait until the map for wwid runs over every one of path_names and has its /dev/mapper node."""
        wanted = set(path_names)

        def complete() -> MultipathMap | None:
            found = self.find(wwid)
            return found if found and wanted <= set(found.slaves) and found.node.exists() else None

        try:
            return wait_until(complete, timeout, self._clock, what=f"multipath map {wwid}")
        except WaitTimeout as exc:
            found = self.find(wwid)
            seen = (
                f"map {found.name} ({found.dm}) over {', '.join(found.slaves) or 'no paths'}"
                if found
                else "no map"
            )
            raise MultipathError(
                f"multipath map {wwid} over {', '.join(sorted(wanted))} not ready within {timeout:g}s; seen: {seen}",
                wwid=wwid,
                paths=sorted(wanted),
                seen=seen,
            ) from exc

    def flush(self, mpath: MultipathMap) -> None:
        """Remove the map (``multipath -f``); fails while the map stays open or mounted.

        Callers flush only a map nothing uses (checked) or one they made and never handed out, so
        I/O still queued on it has nobody waiting for it: it is failed first (see the module
        docstring), or the flush could wait for ever on a map whose LUN is gone.
        """
        self.stop_queueing(mpath)
        self._run(f"flush {mpath.name}", [self._program, "-f", "-R", str(FLUSH_RETRIES), mpath.name])
        log.info("flushed multipath map %s (%s, paths %s)", mpath.name, mpath.dm, ", ".join(mpath.slaves))

    def resize(self, mpath: MultipathMap) -> None:
        """``multipathd resize map``: the map takes the size its paths show (refused while they differ)."""
        self._run(f"resize {mpath.name}", [self._daemon_program, "resize", "map", mpath.name])
        log.info("multipath map %s (%s) resized to its paths' size", mpath.name, mpath.dm)

    def stop_queueing(self, mpath: MultipathMap) -> None:
        """``dmsetup message <map> 0 fail_if_no_path``: I/O waiting for a path fails from now on.

        Not fatal when it fails: what comes next (a flush, a usage check) decides."""
        try:
            self._run(
                f"fail_if_no_path {mpath.name}",
                [self._dm_program, "message", mpath.name, "0", "fail_if_no_path"],
            )
        except MultipathError as exc:
            log.warning(
                "could not switch multipath map %s (%s) to fail without paths: %s", mpath.name, mpath.dm, exc
            )
            return
        log.info(
            "multipath map %s (%s) fails I/O without paths from now on, not queueing it", mpath.name, mpath.dm
        )

    def _run(self, action: str, argv: list[str]) -> CommandResult:
        try:
            result = self._runner(argv, timeout=self._timeout)
        except CommandTimeout as exc:
            raise MultipathError(
                f"multipath {action}: no answer within {self._timeout:g}s", argv=argv
            ) from exc
        if result.exit_code != 0:
            said = (result.stderr.strip() or result.stdout.strip()).splitlines()
            raise MultipathError(
                f"multipath {action} failed (exit {result.exit_code}){': ' + said[-1] if said else ''}",
                argv=argv,
                exit_code=result.exit_code,
                stderr=result.stderr,
            )
        return result
