"""The host layer on a real kernel: iscsiadm against tgtd, sysfs sessions, targeted scans, udev links,
identity after LUN-id reuse, safe removal, dm-multipath over two portals, and CHAP.

Each test prints the real device and link names it saw, so -rA output shows what was proven.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass

import pytest

from iscsi_agent.host.blockdev import KernelBlockOps
from iscsi_agent.host.command import SubprocessRunner
from iscsi_agent.host.devices import BlockDevice, Devices
from iscsi_agent.host.errors import DeviceInUse, IscsiAuthFailed, IscsiLoginFailed
from iscsi_agent.host.identity import (
    StaleReason,
    Verdict,
    is_lun,
    stale_reason,
    verify_lun,
)
from iscsi_agent.host.initiator import read_initiator_name
from iscsi_agent.host.iscsi_db import IscsiDatabase
from iscsi_agent.host.iscsiadm import DEFAULT_IFACE, Chap, Iscsiadm, NodeSettings
from iscsi_agent.host.multipath import Multipath
from iscsi_agent.host.paths import HostPaths
from iscsi_agent.host.removal import DeviceRemover
from iscsi_agent.host.sessions import ScsiAddress, Session, Sessions
from iscsi_agent.host.waiting import SystemClock
from iscsi_agent.naa import multipath_wwid, netapp_wwid
from iscsi_agent.portal import Portal

# The guest runs everything several times slower than the host (no KVM): generous deadlines.
DEVICE_TIMEOUT = 60.0
MAP_TIMEOUT = 90.0


@dataclass
class HostLayer:
    paths: HostPaths
    runner: SubprocessRunner
    iscsiadm: Iscsiadm
    sessions: Sessions
    devices: Devices
    remover: DeviceRemover
    multipath: Multipath
    clock: SystemClock


@pytest.fixture
def host() -> HostLayer:
    paths, runner, clock = HostPaths(), SubprocessRunner(), SystemClock()
    devices = Devices(paths, clock)
    return HostLayer(
        paths=paths,
        runner=runner,
        iscsiadm=Iscsiadm(runner, IscsiDatabase(paths, clock), timeout=60, login_timeout=120),
        sessions=Sessions(paths),
        devices=devices,
        remover=DeviceRemover(paths, devices, KernelBlockOps()),
        multipath=Multipath(paths, runner, clock, timeout=90),
        clock=clock,
    )


def log_in(host: HostLayer, iqn: str, portal: Portal, settings: NodeSettings | None = None) -> Session:
    host.iscsiadm.configure_node(iqn, portal, settings or NodeSettings())
    host.iscsiadm.login(iqn, portal)
    session = host.sessions.find(iqn, portal)
    assert session is not None, f"no session to {iqn} via {portal} in sysfs after login"
    print(f"session{session.sid} to {iqn} via {portal}: host{session.host_number}, {session.state}")
    return session


def scan(host: HostLayer, session: Session, lun: int) -> BlockDevice:
    host.sessions.scan_lun(session.host_number, lun)
    device = host.devices.wait_for(
        ScsiAddress(session.host_number, 0, 0, lun), DEVICE_TIMEOUT, context=f"session{session.sid}"
    )
    print(
        f"LUN {lun} via {session.portal}: {device.node} ({device.address}), "
        f"by-path {[link.name for link in device.by_path]}, serial {device.identity.serial!r}, "
        f"wwid {device.identity.wwid}"
    )
    return device


def attach(host: HostLayer, target, lun: int, portal_index: int = 0) -> tuple[Session, BlockDevice]:
    portal = Portal.parse(target.portals[portal_index])
    host.iscsiadm.discover(portal)
    session = log_in(host, target.iqn, portal)
    return session, scan(host, session, lun)


def run(argv: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    print(f"$ {' '.join(argv)} -> {done.returncode} {done.stdout.strip()} {done.stderr.strip()}")
    return done


# --- initiator, discovery, login, logout --------------------------------------------------


def test_the_guests_initiator_name_is_read_and_valid(host, initiator_iqn):
    assert read_initiator_name(host.paths) == initiator_iqn
    print(f"initiator {initiator_iqn}")


def test_discovery_through_each_portal_finds_the_target_there(host, target):
    for text in target.portals:
        portal = Portal.parse(text)
        found = host.iscsiadm.discover(portal)
        print(f"discovery via {portal}: {found}")
        assert [(t.portal, t.iqn) for t in found] == [(portal, target.iqn)]


def test_login_makes_a_sysfs_session_and_a_second_login_is_a_no_op(host, target):
    portal = Portal.parse(target.portals[0])
    host.iscsiadm.discover(portal)
    host.iscsiadm.configure_node(target.iqn, portal, NodeSettings())
    assert host.iscsiadm.login(target.iqn, portal) is True
    first = host.sessions.current()
    assert host.iscsiadm.login(target.iqn, portal) is False
    assert host.sessions.current() == first
    [session] = first
    print(f"session{session.sid} host{session.host_number} {session.portal} {session.state}")
    assert (session.target_iqn, session.portal, session.state) == (target.iqn, portal, "LOGGED_IN")
    assert host.paths.scsi_host(session.host_number).exists()
    # node.session.scan=manual: login mapped nothing, not even tgtd's controller LUN 0
    assert host.sessions.devices(session) == ()


def test_logout_ends_the_session_and_repeating_it_is_nothing_to_do(host, target):
    portal = Portal.parse(target.portals[0])
    host.iscsiadm.discover(portal)
    log_in(host, target.iqn, portal)
    assert host.iscsiadm.logout(target.iqn, portal, iface=DEFAULT_IFACE) is True
    assert host.sessions.find(target.iqn, portal) is None
    assert host.iscsiadm.logout(target.iqn, portal, iface=DEFAULT_IFACE) is False
    assert host.iscsiadm.delete_node(target.iqn, portal, iface=DEFAULT_IFACE) is True
    assert host.iscsiadm.delete_node(target.iqn, portal, iface=DEFAULT_IFACE) is False


# --- targeted scan, identity ---------------------------------------------------------------


def test_a_targeted_scan_brings_exactly_that_lun_with_its_link_and_identity(host, target):
    target.add_lun(1)
    serial = target.add_lun(2)
    target.add_lun(3)
    before = set(host.devices.addresses())
    session, device = attach(host, target, 2)
    assert device.identity.serial == serial
    assert is_lun(device.identity, serial) is Verdict.MATCH
    assert (device.identity.vendor, device.identity.model) == ("NETAPP", "LUN C-Mode")
    assert device.size_bytes == 64 << 20
    [by_path] = device.by_path
    assert by_path.name == f"ip-{target.portals[0]}-iscsi-{target.iqn}-lun-2"
    assert os.path.realpath(by_path) == str(device.node)
    assert f"scsi-{multipath_wwid(serial)}" in [link.name for link in device.by_id]
    assert host.sessions.devices(session) == (device.address,)
    assert set(host.devices.addresses()) - before == {device.address}


def test_a_lun_id_reused_by_another_lun_is_caught_by_the_fresh_identity_check(host, target):
    old = target.add_lun(1)
    _, device = attach(host, target, 1)
    target.remove_lun(1)
    new = target.add_lun(1)
    cached = host.devices.identity(device.address)
    print(f"after reuse, sysfs still says serial {cached.serial!r} wwid {cached.wwid} for {device.node}")
    verdict, fresh = verify_lun(host.devices, device.address, old)
    print(f"fresh identity after rescan: serial {fresh.serial!r} wwid {fresh.wwid}; verdict {verdict}")
    assert fresh.serial == new and fresh.wwid == "naa." + netapp_wwid(new)
    assert verdict is Verdict.SERIAL_MISMATCH
    assert stale_reason(1, fresh, {1: new}) is None
    assert stale_reason(1, cached, {1: new}) is StaleReason.IDENTITY_MISMATCH
    print(f"links to {device.node} that udev does not list for it: {host.devices.stray_links(device.name)}")
    host.remover.remove(device, DEVICE_TIMEOUT, force_flush=True)


def test_a_lun_removed_at_the_target_leaves_a_stale_device_that_is_recognised(host, target):
    target.add_lun(1)
    keep = target.add_lun(2)
    session, gone = attach(host, target, 1)
    scan(host, session, 2)
    target.remove_lun(1)
    run(["iscsiadm", "-m", "session", "-r", str(session.sid), "--rescan"])
    run(["udevadm", "settle", "--timeout=30"])
    still = host.devices.read(gone.address)
    assert still is not None and still.node.exists() and still.by_path, "a plain rescan removed the device"
    print(f"stale after rescan: {still.node} by-path {[link.name for link in still.by_path]}")
    mapped = {2: keep}
    verdicts = {
        address.lun: stale_reason(address.lun, host.devices.identity(address), mapped)
        for address in host.sessions.devices(session)
    }
    assert verdicts[1] is StaleReason.LUN_GONE and verdicts[2] is None
    host.remover.remove(still, DEVICE_TIMEOUT, force_flush=True)
    assert not any(link.exists() for link in still.by_path) and not still.node.exists()


# --- removal -----------------------------------------------------------------------------


def test_removing_an_unused_device_drops_its_node_and_links(host, target):
    target.add_lun(1)
    session, device = attach(host, target, 1)
    host.remover.remove(device, DEVICE_TIMEOUT)
    print(f"removed {device.node}; its links were: {[str(link) for link in device.by_path + device.by_id]}")
    # A name may live on for another disk: tgtd gives every target's LUN 1 the same extra
    # NAA designator (scsi-33000000100000001). None may still lead to the removed node.
    reused = {str(link): os.readlink(link) for link in device.by_id if link.is_symlink()}
    print(f"link names now held by other disks: {reused}")
    assert not device.node.exists()
    assert not any(link.is_symlink() for link in device.by_path)
    assert host.devices.leftovers(device) == []
    assert host.sessions.devices(session) == ()


def test_removing_a_mounted_device_is_refused_naming_the_mount(host, target, tmp_path):
    target.add_lun(1)
    _, device = attach(host, target, 1)
    assert run(["mkfs.ext4", "-q", "-F", str(device.node)]).returncode == 0
    mount_point = tmp_path / "mnt"
    mount_point.mkdir()
    assert run(["mount", str(device.node), str(mount_point)]).returncode == 0
    try:
        with pytest.raises(DeviceInUse) as caught:
            host.remover.remove(device, DEVICE_TIMEOUT)
        print(f"refused: {caught.value}")
        assert f"mounted at {mount_point}" in str(caught.value)
    finally:
        run(["umount", str(mount_point)])
    assert device.node.exists()
    host.remover.remove(device, DEVICE_TIMEOUT)


def test_removing_a_device_open_in_another_process_is_refused_naming_it(host, target):
    target.add_lun(1)
    _, device = attach(host, target, 1)
    with device.node.open("rb") as held:
        reader = subprocess.Popen(["sleep", "120"], stdin=held)
    try:
        with pytest.raises(DeviceInUse, match=rf"open by pid {reader.pid} \(sleep\)") as caught:
            host.remover.remove(device, DEVICE_TIMEOUT)
        print(f"refused: {caught.value}")
    finally:
        reader.kill()
        reader.wait(timeout=30)
    assert device.node.exists()


def test_removing_a_device_claimed_exclusively_is_refused(host, target):
    target.add_lun(1)
    _, device = attach(host, target, 1)
    claim = os.open(device.node, os.O_RDONLY | os.O_EXCL)
    try:
        with pytest.raises(DeviceInUse, match="claimed exclusively") as caught:
            host.remover.remove(device, DEVICE_TIMEOUT)
        print(f"refused: {caught.value}")
    finally:
        os.close(claim)
    host.remover.remove(device, DEVICE_TIMEOUT)
    assert not device.node.exists()


# --- dm-multipath ------------------------------------------------------------------------


def test_a_multipath_map_over_two_portals_and_its_clean_removal(host, target):
    serial = target.add_lun(1)
    paths = [attach(host, target, 1, portal_index=index)[1] for index in range(len(target.portals))]
    wwid = multipath_wwid(serial)
    host.multipath.add_wwid(wwid)
    for device in paths:
        host.multipath.add_path(device.name)
    mpath = host.multipath.wait_for(wwid, [device.name for device in paths], MAP_TIMEOUT)
    print(f"multipath map {mpath.name} ({mpath.dm}) over {mpath.slaves} at {mpath.node}")
    assert mpath.node.exists()
    for device in paths:
        with pytest.raises(DeviceInUse, match=rf"held by {mpath.dm} \({wwid}\)"):
            host.remover.remove(device, DEVICE_TIMEOUT)
    host.multipath.flush(mpath)
    assert host.multipath.find(wwid) is None
    assert not mpath.node.exists()
    for device in paths:
        host.remover.remove(device, DEVICE_TIMEOUT)
        assert not device.node.exists()


# --- CHAP --------------------------------------------------------------------------------


def test_one_way_chap_logs_in_with_the_right_secret(host, target):
    target.set_chap("agent-user", "right-secret-0123")
    target.add_lun(1)
    portal = Portal.parse(target.portals[0])
    host.iscsiadm.discover(portal)
    log_in(host, target.iqn, portal, NodeSettings(chap=Chap("agent-user", "right-secret-0123")))


def test_a_wrong_chap_secret_is_a_clear_auth_error(host, target):
    target.set_chap("agent-user", "right-secret-0123")
    portal = Portal.parse(target.portals[0])
    host.iscsiadm.discover(portal)
    host.iscsiadm.configure_node(
        target.iqn, portal, NodeSettings(chap=Chap("agent-user", "wrong-secret-0123"))
    )
    with pytest.raises(IscsiAuthFailed) as caught:
        host.iscsiadm.login(target.iqn, portal)
    print(f"refused: {caught.value}")
    assert "wrong-secret-0123" not in str(caught.value) + " ".join(caught.value.details["argv"])
    assert host.sessions.find(target.iqn, portal) is None


def test_mutual_chap_logs_in_and_a_wrong_target_secret_fails_the_login(host, target):
    target.set_chap("agent-user", "right-secret-0123", "array-user", "array-secret-0123")
    portal = Portal.parse(target.portals[0])
    host.iscsiadm.discover(portal)
    right = Chap("agent-user", "right-secret-0123", "array-user", "array-secret-0123")
    log_in(host, target.iqn, portal, NodeSettings(chap=right))
    host.iscsiadm.logout(target.iqn, portal, iface=DEFAULT_IFACE)
    wrong = Chap("agent-user", "right-secret-0123", "array-user", "not-the-array-0123")
    host.iscsiadm.configure_node(target.iqn, portal, NodeSettings(chap=wrong))
    with pytest.raises(IscsiLoginFailed) as caught:
        host.iscsiadm.login(target.iqn, portal)
    print(f"refused: {caught.value}")
