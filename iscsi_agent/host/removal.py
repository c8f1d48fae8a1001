"""Removing a SCSI disk safely: find who uses it, refuse if anyone does, flush, delete, wait until gone.

The decision (``removal_blocker``) is a pure function of what was found (``DeviceUsage``);
gathering the facts and acting on them are the I/O around it. Order follows the kernel:

1. Claim the device exclusively (O_EXCL). From here until the delete no mount and no dm or
   multipath table can take it (they get EBUSY); if one already has it, the claim fails and the
   refusal names the mount point or holder.
2. Refuse if a process has it open (a plain open cannot be kept out by the claim: a process that
   opens it after this check meets a deleted device, as with any hot-unplug), or if its identity
   cannot be read.
3. Flush its buffers through the claim.
4. Re-validate right before the delete, since the delete goes by SCSI address: the address must
   still hold the same block name, that name the claimed device number, /dev the same node, and
   the LUN the same identity (a fresh one against ``serial`` when the caller gives it; on a dead
   path, which gives none, a forced detach may go on the identity recorded at attach instead).
5. Delete the SCSI device through sysfs, release the claim, wait until node and links are gone.

Claim, flush, identity rescan and delete can each block in the kernel for as long as the paths
are dead; they run through ``KernelCalls`` under the caller's one deadline, so a timeout is a
``KernelCallTimeout`` naming the step, never a hang. A flush that fails or times out stops the
removal (deleting a device drops its dirty pages, seen in the VM as "lost async page write"),
unless ``force_flush`` says the LUN is gone at the array and there is nothing to write back to.
"""

from __future__ import annotations

import errno
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

from iscsi_agent.host.blockdev import AbandoningCalls, BlockOps, Claim, KernelCalls
from iscsi_agent.host.devices import BlockDevice, DeviceIdentity, Devices
from iscsi_agent.host.errors import (
    DeviceChanged,
    DeviceInUse,
    IdentityUnreadable,
    KernelCallTimeout,
    MultipathError,
    SysfsError,
    WaitTimeout,
)
from iscsi_agent.host.identity import Verdict, is_lun, verify_lun
from iscsi_agent.host.multipath import Multipath, MultipathMap
from iscsi_agent.host.paths import HostPaths
from iscsi_agent.host.sessions import ScsiAddress
from iscsi_agent.host.sysfs import entries, read_attr, read_attr_if_present, read_link, write_attr
from iscsi_agent.host.waiting import Clock, SystemClock, wait_until

log = logging.getLogger(__name__)

_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")
# udev opens every new or changed disk to probe it (idle workers were seen still holding it);
# that is not a user, and deleting the device under a probe is harmless.
UDEV_WORKERS = frozenset({"(udev-worker)", "systemd-udevd", "udevd"})
# run by udev rules on change events and gone within moments; waited out, never a user
UDEV_PROBES = frozenset({"multipath", "blkid", "udevadm", "kpartx"})
PROBE_GRACE = 5.0
MULTIPATH_DAEMON = "multipathd"
# delete() called on its own (not from remove(), which shares the caller's deadline).
DELETE_TIMEOUT = 30.0
# With force_flush the flush (and with recorded_identity the identity rescan) may take at most this
# share of what is left: on a dead path they block until the deadline, and the delete still needs time.
FORCED_SHARE = 0.5
# `multipath -f` calls of a map that nothing but udev's probes keeps open (each with multipath's own retries)
MAP_FLUSH_ATTEMPTS = 3


@dataclass(frozen=True)
class Mount:
    device_number: str
    mount_point: str
    source: str


@dataclass(frozen=True)
class Opener:
    pid: int
    command: str


@dataclass(frozen=True)
class DeviceUsage:
    """Everything that can keep a device (or one of its partitions) busy."""

    device: str
    mounts: tuple[Mount, ...] = ()
    holders: tuple[str, ...] = ()
    openers: tuple[Opener, ...] = ()
    claimed: bool = False


def parse_mountinfo(text: str) -> tuple[Mount, ...]:
    """Mounts from /proc/self/mountinfo (man 5 proc); mount points have octal escapes undone::

    36 35 98:0 /mnt1 /mnt1 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
    """
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 7 or "-" not in fields[6:]:
            continue
        after = fields[fields.index("-", 6) + 1 :]
        mounts.append(Mount(fields[2], _unescape(fields[4]), _unescape(after[1]) if len(after) > 1 else ""))
    return tuple(mounts)


def _unescape(text: str) -> str:
    return _OCTAL_ESCAPE.sub(lambda match: chr(int(match[1], 8)), text)


def beside_multipath(usage: DeviceUsage, map_dm: str | None = None) -> DeviceUsage:
    """A path's usage without what multipath itself adds: multipathd's path checker keeps the path
    open until told to let go, and its own map (``map_dm``, flushed before its paths go) holds and
    claims it. Neither is a user whose data the removal could lose."""
    if map_dm is None:
        holders, claimed = usage.holders, usage.claimed
    else:
        holders, claimed = tuple(h for h in usage.holders if h.split(" ", 1)[0] != map_dm), False
    return replace(
        usage,
        holders=holders,
        openers=tuple(o for o in usage.openers if o.command != MULTIPATH_DAEMON),
        claimed=claimed,
    )


def removal_blocker(usage: DeviceUsage) -> str | None:
    """What keeps the device from being removed, in words naming the holder; None when it is free."""
    if usage.mounts:
        return "mounted at " + ", ".join(mount.mount_point for mount in usage.mounts)
    if usage.holders:
        return "held by " + ", ".join(usage.holders)
    users = [opener for opener in usage.openers if opener.command not in UDEV_WORKERS]
    if users:
        return "open by " + ", ".join(f"pid {opener.pid} ({opener.command})" for opener in users)
    if usage.claimed:
        return "claimed exclusively by another user (the kernel answered EBUSY)"
    return None


class DeviceRemover:
    """Looks for users of a device and removes it only when it has none and is still what was checked."""

    def __init__(
        self,
        paths: HostPaths,
        devices: Devices,
        block: BlockOps,
        clock: Clock | None = None,
        calls: KernelCalls | None = None,
    ) -> None:
        self._paths = paths
        self._devices = devices
        self._block = block
        self._clock = clock or SystemClock()
        self._calls = calls or AbandoningCalls()
        self._stuck: dict[str, tuple[Claim, str]] = {}  # node -> our claim held by an abandoned call

    def usage(self, name: str, *, unstick: Callable[[], None] | None = None) -> DeviceUsage:
        """Who uses block device ``name`` ("sdb", or "dm-3" for a multipath map) or its partitions,
        once udev's own probes are done with it (see ``_settled_usage``).

        A probe of a multipath map that queues I/O while its LUN is gone never finishes (seen in
        the VM: kpartx, run by udev on the map's change event, waits for ever under
        ``no_path_retry queue``). When such probes are all that keeps the device busy after the
        grace, ``unstick`` (``Multipath.stop_queueing``) makes their I/O fail, and they are waited
        out once more. A real user is never unstuck: its presence alone is the answer.
        """
        claimed = self._block.claimed_elsewhere(self._paths.dev(name))
        usage = self._settled_usage(name, claimed)
        if unstick is not None and _only_probes_block(usage):
            log.warning(
                "%s is held only by udev's probes, stuck in its I/O; making that I/O fail", usage.device
            )
            unstick()
            usage = self._settled_usage(name, claimed)
        return usage

    def _settled_usage(self, name: str, claimed: bool, grace: float = PROBE_GRACE) -> DeviceUsage:
        """``multipath -u``, ``blkid`` and the like, run by udev rules on every change event, hold a disk
        open for moments (seen in the VM whenever other LUNs were attached alongside); waited out for
        ``grace`` seconds, so they do not turn a removal into a refusal. Anything else counts at once."""

        def settled() -> DeviceUsage | None:
            usage = self._usage(name, claimed)
            return None if any(opener.command in UDEV_PROBES for opener in usage.openers) else usage

        try:
            return wait_until(settled, grace, self._clock, what=f"udev's probes of {name} to finish")
        except WaitTimeout:
            return self._usage(name, claimed)

    def flush_map(self, multipath: Multipath, mpath: MultipathMap) -> None:
        """Flush a map its caller found unused; a map a real user opened since is DeviceInUse naming it.

        ``multipath -f`` refuses a map anything has open, udev's probes included: closing a map that
        was written to raises a change event, and its probes (kpartx, blkid) held the map through all
        of multipath's own retries under load (seen in CI: a write and fsync, then the detach). A
        refusal that leaves no user once the probes are waited out is tried again."""
        for attempt in range(1, MAP_FLUSH_ATTEMPTS + 1):
            try:
                multipath.flush(mpath)
                return
            except MultipathError as exc:
                usage = self.usage(mpath.dm, unstick=partial(multipath.stop_queueing, mpath))
                blocker = removal_blocker(usage)
                if blocker:
                    raise DeviceInUse(
                        f"{usage.device} ({mpath.name}) is in use: {blocker}",
                        device=usage.device,
                        holder=blocker,
                    ) from exc
                if attempt == MAP_FLUSH_ATTEMPTS:
                    raise
                log.warning(
                    "multipath map %s (%s) refused its flush with no user left; again: %s",
                    mpath.name,
                    mpath.dm,
                    exc,
                )

    def remove(
        self,
        device: BlockDevice,
        timeout: float,
        force_flush: bool = False,
        *,
        serial: str | None = None,
        flush: bool = True,
        recorded_identity: bool = False,
    ) -> None:
        """Refuse if in use; else flush, delete the SCSI device and wait until node and links are gone.

        ``timeout`` bounds the whole removal, every kernel call included. ``serial``, when the
        caller knows which LUN the device must be, is checked on a fresh identity before the flush
        and again right before the delete; without it the address must keep the identity it had
        when the removal began. ``force_flush`` carries on when the flush fails or times out, for
        devices whose LUN is already gone at the array (there is nothing left to write back to).
        ``flush=False`` skips the flush, for a stale device whose LUN id now leads to another LUN:
        what it holds belongs to a volume it no longer reaches, and writing it back would land on
        the new one. ``recorded_identity`` (with ``serial``) lets the identity sysfs recorded stand in
        when no fresh one can be had (the rescan fails or does not return: a dead path), if it is that
        LUN's; for a forced detach of a device whose identity was verified when it was attached, so
        that a device nobody uses and whose LUN is gone can go. A fresh identity of another LUN still
        stops the removal, and so does any user, whatever is recorded.

        Raises DeviceInUse, DeviceChanged, IdentityUnreadable, SysfsError, KernelCallTimeout or
        DeviceTimeout; on any of them before the delete the device stays (at most flushed), and
        the claim is released (or, under a flush stuck in the kernel, released when it returns).
        """
        deadline = self._clock.monotonic() + timeout

        def left() -> float:
            return max(deadline - self._clock.monotonic(), 0.0)

        node = self._paths.host_view(device.node)
        claim = self._claim(device, node, left())
        if claim is None:
            self._devices.wait_gone(device, left())
            return
        try:
            checked, fresh_serial = self._check(device, node, serial, left, recorded_identity)
            if flush:
                self._flush(claim, node, force_flush, left)
            else:
                log.warning("not flushing %s: its LUN id now leads to another LUN", node)
            self._revalidate(device, claim, checked, serial=fresh_serial, left=left)
            self.delete(device.address, left(), device=node)
        finally:
            claim.close()
        self._devices.wait_gone(device, left())
        log.info("removed %s (%s)", node, device.address)

    def delete(self, address: ScsiAddress, timeout: float = DELETE_TIMEOUT, *, device: str = "") -> None:
        """Tell the kernel to drop the SCSI device; udev then removes node and links.

        The write returns once the kernel has synchronised the disk's cache, which on a dead
        path takes as long as the path stays dead: past ``timeout`` it is abandoned.
        """
        folder = self._devices.sysfs_dir(address)
        if not folder.exists():
            log.debug("%s was already gone", address)
            return
        self._calls.run(
            lambda: write_attr(folder / "delete", "1", f"deleting {address}", address=str(address)),
            timeout,
            device=device or str(address),
            step="delete",
        )

    def _claim(self, device: BlockDevice, node: str, timeout: float) -> Claim | None:
        """The exclusive claim; None when the device is gone already; DeviceInUse naming who has it."""
        try:
            return self._calls.run(
                lambda: self._block.claim(device.node),
                timeout,
                device=node,
                step="exclusive claim",
                late=lambda claim: claim.close(),
            )
        except OSError as exc:
            if exc.errno == errno.EBUSY:
                blocker = self._own_stuck_call(node) or removal_blocker(
                    self._usage(device.name, claimed=True)
                )
                raise DeviceInUse(
                    f"{node} ({device.address}) is in use: {blocker}", device=node, holder=blocker
                ) from exc
            if exc.errno in (errno.ENOENT, errno.ENXIO, errno.ENODEV) and not self._still_there(device):
                log.info("%s (%s) was already gone", node, device.address)
                return None
            raise SysfsError(f"claiming {node} exclusively failed: {exc}", device=node) from exc

    def _check(
        self,
        device: BlockDevice,
        node: str,
        serial: str | None,
        left: Callable[[], float],
        recorded_identity: bool,
    ) -> tuple[DeviceIdentity, str | None]:
        """Under the claim: nobody may have it open, and its identity must be known (and be ``serial``).

        Returns the identity checked and the serial the delete re-checks on a fresh identity: None
        when the removal goes on the recorded one (the address must then keep it until the delete).
        """
        blocker = removal_blocker(self._settled_usage(device.name, claimed=False))
        if blocker:
            raise DeviceInUse(f"{node} ({device.address}) is in use: {blocker}", device=node, holder=blocker)
        if serial is None or not recorded_identity:
            return self._identity(device, node, serial, left, "before the flush"), serial
        try:
            return self._identity(
                device, node, serial, lambda: left() * FORCED_SHARE, "before the flush"
            ), serial
        except (IdentityUnreadable, KernelCallTimeout) as exc:
            recorded = self._devices.identity(device.address)
            if is_lun(recorded, serial) is not Verdict.MATCH:
                raise
            log.warning(
                "no fresh identity of %s (%s): %s; removing it on the identity recorded at attach (%s)",
                node,
                device.address,
                exc,
                _describe(recorded),
            )
            return recorded, None

    def _flush(self, claim: Claim, node: str, force_flush: bool, left: Callable[[], float]) -> None:
        budget = left() * FORCED_SHARE if force_flush else left()
        try:
            self._calls.run(claim.flush, budget, device=node, step="flush")
        except KernelCallTimeout:
            self._stuck[node] = (claim, "flush")
            if not force_flush:
                raise
            log.warning("flushing %s did not return within %gs; removing it anyway", node, budget)
        except OSError as exc:
            if not force_flush:
                raise SysfsError(f"flushing {node} failed: {exc}", device=node) from exc
            log.warning("flushing %s failed (%s); removing it anyway", node, exc)

    def _revalidate(
        self,
        device: BlockDevice,
        claim: Claim,
        checked: DeviceIdentity,
        *,
        serial: str | None,
        left: Callable[[], float],
    ) -> None:
        """Right before the delete: the address must still hold the device that was checked and claimed."""
        address = device.address
        node = self._paths.host_view(device.node)

        def changed(what: str, expected: object, found: object) -> DeviceChanged:
            return DeviceChanged(
                f"not deleting {address}: it no longer holds the {node} that was checked; "
                f"its {what} changed from {expected} to {found}",
                device=node,
                address=str(address),
                changed=what,
                expected=expected,
                found=found,
            )

        name = self._devices.block_name(address)
        if name != device.name:
            raise changed("block device", device.name, name or "none")
        try:
            number = read_attr_if_present(self._paths.block(name, "dev"))
        except OSError as exc:
            raise SysfsError(f"reading the device number of {node} failed: {exc}", device=node) from exc
        if number != claim.device_number:
            raise changed("device number", claim.device_number, number or "none")
        replaced = claim.node_changed()
        if replaced:
            raise changed("device node", node, replaced)
        identity = self._identity(device, node, serial, left, "before the delete")
        if serial is None and identity != checked:
            raise changed("identity", _describe(checked), _describe(identity))

    def _identity(
        self, device: BlockDevice, node: str, serial: str | None, left: Callable[[], float], when: str
    ) -> DeviceIdentity:
        """The identity at the address: fresh and matching ``serial`` when given; readable in any case."""
        address = device.address
        if serial is None:
            identity = self._devices.identity(address)
            verdict = Verdict.UNREADABLE if identity.unreadable else Verdict.MATCH
        else:
            verdict, identity = self._calls.run(
                lambda: verify_lun(self._devices, address, serial),
                left(),
                device=node,
                step="identity check (rescan)",
            )
        if verdict is Verdict.UNREADABLE:
            raise IdentityUnreadable(
                f"not removing {node} ({address}): its identity could not be read {when} "
                f"({'; '.join(identity.unreadable)})",
                device=node,
                address=str(address),
                unreadable=list(identity.unreadable),
            )
        if verdict is not Verdict.MATCH:
            raise DeviceChanged(
                f"not removing {node} ({address}): {when} it is not the LUN with serial {serial}: "
                f"{verdict.value} ({_describe(identity)})",
                device=node,
                address=str(address),
                changed="identity",
                expected=serial,
                found=_describe(identity),
            )
        return identity

    def _own_stuck_call(self, node: str) -> str | None:
        stuck = self._stuck.get(node)
        if stuck is None:
            return None
        claim, step = stuck
        if not claim.held:
            del self._stuck[node]
            return None
        return (
            f"claimed by this agent's own {step}, abandoned at its deadline and still blocked in the kernel"
        )

    def _still_there(self, device: BlockDevice) -> bool:
        return self._devices.block_name(device.address) == device.name

    def _usage(self, name: str, claimed: bool) -> DeviceUsage:
        folders = self._block_folders(name)
        numbers = {read_attr(folder / "dev") for folder in folders} - {""}
        nodes = {self._paths.host_view(self._paths.dev(folder.name)) for folder in folders}
        return DeviceUsage(
            device=self._paths.host_view(self._paths.dev(name)),
            mounts=tuple(mount for mount in self._mounts() if mount.device_number in numbers),
            holders=tuple(
                self._holder_label(holder.name)
                for folder in folders
                for holder in sorted(entries(folder / "holders"))
            ),
            openers=self._openers(nodes),
            claimed=claimed,
        )

    def _block_folders(self, name: str) -> list[Path]:
        """sysfs block/<name> and its partitions' folders (block/sdb/sdb1): each can be mounted or held."""
        disk = self._paths.block(name)
        return [disk, *sorted(entry for entry in entries(disk) if entry.name.startswith(name))]

    def _holder_label(self, holder: str) -> str:
        """ "dm-3 (3600a0980...)": the dm name is what an operator finds in /dev/mapper."""
        try:
            dm_name = (self._paths.block(holder, "dm", "name")).read_text().strip()
        except OSError:
            return holder
        return f"{holder} ({dm_name})"

    def _mounts(self) -> tuple[Mount, ...]:
        try:
            return parse_mountinfo(self._paths.mountinfo().read_text())
        except OSError:
            return ()

    def _openers(self, nodes: set[str]) -> tuple[Opener, ...]:
        """Processes with the device open, from their /proc/PID/fd links (what fuser does)."""
        openers = []
        for process in entries(self._paths.proc()):
            if not process.name.isdigit() or int(process.name) == os.getpid():
                continue
            if any(read_link(fd) in nodes for fd in entries(process / "fd")):
                openers.append(Opener(int(process.name), read_attr(process / "comm") or "?"))
        return tuple(sorted(openers, key=lambda opener: opener.pid))


def _only_probes_block(usage: DeviceUsage) -> bool:
    """True when udev's probes are there and, without them, nothing would keep the device."""
    probes = [opener for opener in usage.openers if opener.command in UDEV_PROBES]
    others = replace(usage, openers=tuple(o for o in usage.openers if o.command not in UDEV_PROBES))
    return bool(probes) and removal_blocker(others) is None


def _describe(identity: DeviceIdentity) -> str:
    return f"serial {identity.serial!r}, wwid {identity.wwid!r}"
