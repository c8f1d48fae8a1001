"""Removal on a real kernel: the exclusive claim keeps mounts and dm tables out between check and
delete, re-validation refuses an address that now holds another LUN, and flush and delete on dead
paths come back as timeouts at the caller's deadline instead of hanging.

Each test prints what it saw (device, error, timings), so -rA output shows what was proven.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from iscsi_agent.host.blockdev import AbandoningCalls, KernelBlockOps
from iscsi_agent.host.command import SubprocessRunner
from iscsi_agent.host.devices import BlockDevice, Devices
from iscsi_agent.host.errors import DeviceChanged, KernelCallTimeout
from iscsi_agent.host.iscsi_db import IscsiDatabase
from iscsi_agent.host.iscsiadm import Iscsiadm
from iscsi_agent.host.multipath import Multipath
from iscsi_agent.host.paths import HostPaths
from iscsi_agent.host.removal import DeviceRemover
from iscsi_agent.host.sessions import Session, Sessions
from iscsi_agent.host.waiting import SystemClock, wait_until
from iscsi_agent.portal import Portal
from tests.vm.test_host_layer import DEVICE_TIMEOUT, HostLayer, attach, run

# Short on purpose: the point is that the call comes back at the deadline, not when the kernel does.
DEADLINE = 5.0
# The guest is slow (no KVM): what "roughly the deadline" allows on top.
SLACK = 4.0
# How long the kernel may take to let go of an abandoned call once the target is back.
RECOVERY = 180.0


@dataclass
class StepHooks:
    """The real AbandoningCalls, with a hook run before a named step: the test acts between check and delete."""

    inner: AbandoningCalls = field(default_factory=AbandoningCalls)
    before: dict[str, Callable[[], None]] = field(default_factory=dict)
    steps: list[str] = field(default_factory=list)

    def run(
        self, call: Callable[[], Any], timeout: float, *, device: str, step: str, late: Any = None
    ) -> Any:
        self.steps.append(step)
        hook = self.before.pop(step, None)
        if hook is not None:
            hook()
        return self.inner.run(call, timeout, device=device, step=step, late=late)


@dataclass
class Layer:
    host: HostLayer
    calls: StepHooks


@pytest.fixture
def layer() -> Layer:
    paths, clock, runner = HostPaths(), SystemClock(), SubprocessRunner()
    devices = Devices(paths, clock)
    calls = StepHooks()
    host = HostLayer(
        paths=paths,
        runner=runner,
        iscsiadm=Iscsiadm(runner, IscsiDatabase(paths, clock), timeout=60, login_timeout=120),
        sessions=Sessions(paths),
        devices=devices,
        remover=DeviceRemover(paths, devices, KernelBlockOps(), clock, calls),
        multipath=Multipath(paths, runner, clock, timeout=90),
        clock=clock,
    )
    return Layer(host, calls)


def tgtadm(*args: str) -> str:
    done = run(["tgtadm", "--lld", "iscsi", *args], timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def kill_connections(tid: int) -> None:
    """Drop every connection tgtd has on the target, as a dead network would (testbed: "Path loss")."""
    show = tgtadm("--op", "show", "--mode", "target")
    block = show.split(f"Target {tid}:", 1)[1].split("\nTarget ", 1)[0]
    for nexus in re.finditer(r"I_T nexus: (\d+)(.*?)(?=I_T nexus:|LUN information:)", block, re.S):
        for cid in re.findall(r"Connection: (\d+)", nexus[2]):
            tgtadm("--op", "delete", "--mode", "conn", "--tid", str(tid), "--sid", nexus[1], "--cid", cid)


def sysfs_state(host: HostLayer, device: BlockDevice) -> str:
    try:
        return (host.devices.sysfs_dir(device.address) / "state").read_text().strip()
    except OSError:
        return "gone"


def session_state(host: HostLayer, session: Session) -> str:
    found = host.sessions.find(session.target_iqn, session.portal) if session.portal else None
    return found.state if found else "gone"


def wait_for(what: str, predicate: Callable[[], object], timeout: float) -> None:
    wait_until(predicate, timeout, SystemClock(), what=what, interval=0.5)


def claim_holders_blocked(device: BlockDevice, mount_point: str) -> dict[str, subprocess.CompletedProcess]:
    """Try what would take the device while it is claimed: a mount and a dm table on it."""
    sectors = 2048
    return {
        "mount": run(["mount", str(device.node), mount_point]),
        "dmsetup": run(["dmsetup", "create", "claimtest", "--table", f"0 {sectors} linear {device.node} 0"]),
    }


@contextlib.contextmanager
def tgtd_stopped() -> Iterator[list[int]]:
    """Freeze tgtd: connections stay up, nothing is answered (a target that hung, not a refused one)."""
    pids = [int(pid) for pid in run(["pgrep", "-x", "tgtd"]).stdout.split()]
    assert pids, "tgtd is not running"
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield pids
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)


# --- item 2: the window between the usage check and the delete is closed --------------------------


def test_while_the_remover_holds_its_claim_a_mount_and_a_dm_table_fail_with_ebusy(layer, target, tmp_path):
    host = layer.host
    target.add_lun(1)
    _, device = attach(host, target, 1)
    assert run(["mkfs.ext4", "-q", "-F", str(device.node)]).returncode == 0
    run(["udevadm", "settle", "--timeout=30"])
    mount_point = tmp_path / "mnt"
    mount_point.mkdir()
    # Unclaimed, the device can be mounted: what fails below fails because of the claim.
    assert run(["mount", str(device.node), str(mount_point)]).returncode == 0
    assert run(["umount", str(mount_point)]).returncode == 0
    tried: dict[str, subprocess.CompletedProcess] = {}
    layer.calls.before["delete"] = lambda: tried.update(claim_holders_blocked(device, str(mount_point)))
    try:
        host.remover.remove(device, DEVICE_TIMEOUT)
    finally:
        run(["umount", str(mount_point)])
        run(["dmsetup", "remove", "claimtest"])
    print(f"steps: {layer.calls.steps}")
    print(f"during the removal: mount -> {tried['mount'].returncode} {tried['mount'].stderr.strip()!r}")
    print(f"during the removal: dmsetup -> {tried['dmsetup'].returncode} {tried['dmsetup'].stderr.strip()!r}")
    assert tried["mount"].returncode != 0 and "busy" in tried["mount"].stderr
    assert tried["dmsetup"].returncode != 0 and "Device or resource busy" in tried["dmsetup"].stderr
    assert not device.node.exists() and host.devices.leftovers(device) == []


def test_a_lun_id_reused_between_check_and_delete_is_refused_and_the_device_kept(layer, target):
    host = layer.host
    old = target.add_lun(1)
    _, device = attach(host, target, 1)
    swapped = {}

    def reuse_the_lun_id():  # the array unmaps the LUN and maps another at the same id
        target.remove_lun(1)
        swapped["new"] = target.add_lun(1)

    layer.calls.before["flush"] = reuse_the_lun_id
    with pytest.raises(DeviceChanged) as caught:
        host.remover.remove(device, DEVICE_TIMEOUT, serial=old)
    print(f"refused: {caught.value}")
    assert caught.value.details["changed"] == "identity"
    assert repr(swapped["new"]) in caught.value.details["found"]
    assert layer.calls.steps[-1] == "identity check (rescan)"  # never reached the delete
    assert device.node.exists() and host.devices.block_name(device.address) == device.name
    os.close(os.open(device.node, os.O_RDONLY | os.O_EXCL))  # the claim was released
    current = host.devices.read(device.address)
    host.remover.remove(current, DEVICE_TIMEOUT, serial=swapped["new"])
    assert not device.node.exists()


# --- item 4: flush and delete on dead paths come back at the deadline -----------------------------


def test_a_flush_on_a_lun_whose_portal_is_gone_times_out_at_the_deadline(layer, target):
    host = layer.host
    target.add_lun(1)
    session, device = attach(host, target, 1)
    portal = Portal.parse(target.portals[0])
    # Dirty pages for BLKFLSBUF to write back, from this process (not a "user" of the device).
    writer = os.open(device.node, os.O_RDWR)
    os.pread(writer, 1 << 20, 0)
    os.pwrite(writer, b"\xa5" * (1 << 20), 0)
    portal_removed = False
    try:
        target.tgt.remove_portal(portal.address, portal.port)
        portal_removed = True
        kill_connections(target.tid)
        wait_for("the session to fail", lambda: session_state(host, session) == "FAILED", 60)
        wait_for(f"{device.node} to be blocked", lambda: sysfs_state(host, device) == "blocked", 60)
        print(f"portal {portal} gone: session {session_state(host, session)}, {device.node} blocked")
        started = time.monotonic()
        with pytest.raises(KernelCallTimeout) as caught:
            host.remover.remove(device, DEADLINE)
        took = time.monotonic() - started
        print(f"remove({device.node}, {DEADLINE:g}s) -> {took:.1f}s: {caught.value}")
        assert caught.value.details["step"] == "flush"
        assert took < DEADLINE + SLACK
        time.sleep(2)  # the flush is really stuck in the kernel, not merely slow
        [stuck] = layer.calls.inner.abandoned(str(device.node))
        assert stuck.blocked
        assert host.devices.block_name(device.address) == device.name  # nothing was deleted
    finally:
        if portal_removed:
            target.tgt.add_portal(portal.address, portal.port)
        wait_for("the session to come back", lambda: session_state(host, session) == "LOGGED_IN", RECOVERY)
        for stuck in layer.calls.inner.abandoned():
            stuck.thread.join(RECOVERY)
        os.close(writer)
    print(f"portal back: the abandoned flush returned, session {session_state(host, session)}")
    assert layer.calls.inner.abandoned() == []
    host.remover.remove(host.devices.read(device.address), DEVICE_TIMEOUT)
    assert not device.node.exists()


def test_a_delete_on_a_target_that_stopped_answering_times_out_at_the_deadline(layer, target):
    """With the session failed the kernel skips the cache sync; a target that hangs does not let it."""
    host = layer.host
    target.add_lun(1)
    _, device = attach(host, target, 1)
    cache = host.paths.sys("class", "scsi_disk", str(device.address), "cache_type").read_text().strip()
    print(f"{device.node}: cache {cache} (the delete sends SYNCHRONIZE CACHE)")
    try:
        with tgtd_stopped():
            started = time.monotonic()
            with pytest.raises(KernelCallTimeout) as caught:
                host.remover.remove(device, DEADLINE)
            took = time.monotonic() - started
            print(f"remove({device.node}, {DEADLINE:g}s) with tgtd stopped -> {took:.1f}s: {caught.value}")
            assert caught.value.details["step"] == "delete"
            assert took < DEADLINE + SLACK
            [stuck] = layer.calls.inner.abandoned(str(device.node))
            assert stuck.blocked
    finally:
        for stuck in layer.calls.inner.abandoned():
            stuck.thread.join(RECOVERY)
    print(
        f"tgtd answering again: the abandoned delete returned; {device.node} is {sysfs_state(host, device)}"
    )
    host.devices.wait_gone(device, DEVICE_TIMEOUT)
    assert not device.node.exists()
