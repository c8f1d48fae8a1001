"""Removal refuses a device anyone uses (naming who), else flushes, deletes it and waits until it is gone;
it holds an exclusive claim from its check to the delete, re-validates the address right before the
delete, never acts on an identity it could not read, and runs each kernel call under the caller's deadline.
"""

import errno
import os
import shutil
import threading
import time

import pytest

from iscsi_agent.host.blockdev import AbandoningCalls, KernelBlockOps
from iscsi_agent.host.devices import Devices
from iscsi_agent.host.errors import (
    DeviceChanged,
    DeviceInUse,
    IdentityUnreadable,
    KernelCallTimeout,
    SysfsError,
)
from iscsi_agent.host.removal import (
    DeviceRemover,
    DeviceUsage,
    Mount,
    Opener,
    parse_mountinfo,
    removal_blocker,
)
from iscsi_agent.host.sessions import ScsiAddress
from tests.fakes import FakeBlockOps, FakeKernelCalls, polling

ADDRESS = ScsiAddress(6, 0, 0, 1)
OTHER = ScsiAddress(6, 0, 0, 2)
SERIAL = "serial000001"
MOUNTINFO = """\
22 1 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
36 35 98:0 /mnt1 /mnt1 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
41 22 8:16 / /srv/with\\040space rw,relatime shared:1 - xfs /dev/sdb rw,attr2
"""


@pytest.fixture
def block(tree):
    return FakeBlockOps(block_dir=tree.root / "sys/block")


@pytest.fixture
def calls():
    return FakeKernelCalls()


@pytest.fixture
def devices(paths, clock):
    return Devices(paths, clock, watch=polling)


@pytest.fixture
def remover(paths, devices, block, clock, calls):
    return DeviceRemover(paths, devices, block, clock=clock, calls=calls)


@pytest.fixture
def sda(tree, devices):
    tree.add_disk(ADDRESS, "sda", SERIAL)
    return devices.read(ADDRESS)


def delete_requested(devices, address):
    return (devices.sysfs_dir(address) / "delete").read_text() == "1"


def test_mountinfo_is_parsed_with_escapes_undone():
    assert parse_mountinfo(MOUNTINFO) == (
        Mount("0:21", "/proc", "proc"),
        Mount("98:0", "/mnt1", "/dev/root"),
        Mount("8:16", "/srv/with space", "/dev/sdb"),
    )


def test_mountinfo_with_optional_fields_and_junk_lines():
    text = "50 22 8:0 / /data rw shared:1 master:2 propagate_from:3 - ext4 /dev/sda rw\ngarbage\n"
    assert parse_mountinfo(text) == (Mount("8:0", "/data", "/dev/sda"),)


@pytest.mark.parametrize(
    ("usage", "blocker"),
    [
        (DeviceUsage("/dev/sda"), None),
        (DeviceUsage("/dev/sda", mounts=(Mount("8:0", "/data", "/dev/sda"),)), "mounted at /data"),
        (DeviceUsage("/dev/sda", holders=("dm-3 (3600a0980)",)), "held by dm-3 (3600a0980)"),
        (
            DeviceUsage("/dev/sda", openers=(Opener(4242, "qemu-system-x86"),)),
            "open by pid 4242 (qemu-system-x86)",
        ),
        (
            DeviceUsage("/dev/sda", claimed=True),
            "claimed exclusively by another user (the kernel answered EBUSY)",
        ),
    ],
)
def test_the_decision_names_what_holds_the_device(usage, blocker):
    assert removal_blocker(usage) == blocker


def test_a_mount_outranks_the_exclusive_claim_it_causes():
    usage = DeviceUsage("/dev/sda", mounts=(Mount("8:0", "/data", "/dev/sda"),), claimed=True)
    assert removal_blocker(usage) == "mounted at /data"


def test_an_unused_device_is_flushed_deleted_and_waited_for(sda, remover, block, devices):
    remover.remove(sda, timeout=5)
    assert block.flushed == ["sda"]
    assert devices.leftovers(sda) == []
    assert devices.read(ADDRESS) is None


def test_a_stale_device_is_removed_without_writing_its_pages_to_the_lun_now_at_its_id(
    sda, remover, block, calls, devices
):
    remover.remove(sda, timeout=5, flush=False)
    assert block.flushed == [] and calls.step_names == ["exclusive claim", "delete"]
    assert devices.read(ADDRESS) is None


def test_the_exclusive_claim_is_held_from_the_check_across_flush_and_delete(sda, remover, block, calls):
    held = {}
    calls.on_step = lambda step: held.setdefault(step, list(block.held))
    remover.remove(sda, timeout=5)
    assert calls.step_names == ["exclusive claim", "flush", "delete"]
    assert held == {"exclusive claim": [], "flush": ["sda"], "delete": ["sda"]}
    assert block.held == [] and block.released == ["sda"]


def test_the_device_is_removed_when_it_is_still_the_lun_the_caller_names(sda, remover, calls, devices):
    remover.remove(sda, timeout=5, serial=SERIAL)
    assert calls.step_names == [
        "exclusive claim",
        "identity check (rescan)",
        "flush",
        "identity check (rescan)",
        "delete",
    ]
    assert devices.read(ADDRESS) is None


def test_a_mounted_device_is_refused_naming_the_mount_point(tree, sda, remover, block):
    tree.mount("sda", "/var/lib/nova/mnt")
    with pytest.raises(
        DeviceInUse, match=r"/dev/sda \(6:0:0:1\) is in use: mounted at /var/lib/nova/mnt"
    ) as caught:
        remover.remove(sda, timeout=5)
    assert caught.value.details["holder"] == "mounted at /var/lib/nova/mnt"
    assert block.flushed == [] and (tree.root / "dev/sda").exists()


def test_a_mounted_partition_keeps_the_disk(tree, sda, remover):
    part = tree.add_partition("sda", 1)
    tree.mount(part, "/boot/efi")
    assert removal_blocker(remover.usage("sda")) == "mounted at /boot/efi"


def test_a_device_under_a_multipath_map_is_refused_naming_the_map(tree, sda, remover):
    tree.hold("sda", "dm-0", dm_name="3600a098073657269616c303030303031")
    with pytest.raises(DeviceInUse, match=r"held by dm-0 \(3600a098073657269616c303030303031\)"):
        remover.remove(sda, timeout=5)


def test_a_device_open_in_a_process_is_refused_naming_the_process(tree, sda, remover):
    tree.open_by(4242, "qemu-system-x86", "sda")
    tree.open_by(77, "bash", "sdz")
    assert remover.usage("sda").openers == (Opener(4242, "qemu-system-x86"),)
    with pytest.raises(DeviceInUse, match=r"open by pid 4242 \(qemu-system-x86\)"):
        remover.remove(sda, timeout=5)


def test_udev_probing_the_device_is_not_a_user(tree, sda, remover, devices):
    tree.open_by(613, "(udev-worker)", "sda")
    assert remover.usage("sda").openers == (Opener(613, "(udev-worker)"),)
    remover.remove(sda, timeout=5)
    assert devices.read(ADDRESS) is None


def test_a_udev_probe_holding_the_device_for_a_moment_is_waited_out(tree, sda, remover, devices, clock):
    tree.open_by(614, "multipath", "sda")  # `multipath -u`, run by udev on a change event
    kernel = clock.on_sleep

    def probe_ends() -> None:
        shutil.rmtree(tree.root / "proc/614", ignore_errors=True)
        kernel()

    clock.on_sleep = probe_ends
    remover.remove(sda, timeout=10)
    assert devices.read(ADDRESS) is None


def test_a_probe_that_stays_is_a_user_after_its_grace(tree, sda, remover):
    tree.open_by(615, "multipath", "sda")
    with pytest.raises(DeviceInUse, match=r"pid 615 \(multipath\)"):
        remover.remove(sda, timeout=10)


def test_an_exclusive_claim_is_refused(sda, remover, block):
    block.claimed.add("sda")
    with pytest.raises(DeviceInUse, match="claimed exclusively"):
        remover.remove(sda, timeout=5)


def test_a_claim_refused_by_the_kernel_names_the_mount_that_holds_it(tree, sda, remover, block, devices):
    tree.mount("sda", "/data")
    block.claimed.add("sda")  # the kernel answers EBUSY to O_EXCL on a mounted device
    with pytest.raises(DeviceInUse, match=r"in use: mounted at /data"):
        remover.remove(sda, timeout=5)
    assert block.flushed == [] and not delete_requested(devices, ADDRESS)


def test_a_failed_flush_stops_removal(sda, remover, block, devices):
    block.flush_error = OSError(errno.EIO, "Input/output error")
    with pytest.raises(SysfsError, match="flushing /dev/sda failed"):
        remover.remove(sda, timeout=5)
    assert devices.read(ADDRESS) is not None
    assert block.held == []


def test_a_failed_flush_is_tolerated_when_forced_for_a_lun_already_gone(sda, remover, block, devices):
    block.flush_error = OSError(errno.EIO, "Input/output error")
    remover.remove(sda, timeout=5, force_flush=True)
    assert devices.read(ADDRESS) is None


def test_deleting_a_device_already_gone_is_nothing_to_do(remover, devices):
    remover.delete(ADDRESS)
    assert devices.read(ADDRESS) is None


# --- re-validation right before the delete (the address may no longer hold what was checked) ----------


def test_a_name_reused_before_the_delete_is_not_deleted_at_its_old_address(tree, sda, paths, devices, block):
    """sda went and came back at another address, and its old address now holds sdb: delete nothing."""
    tree.remove_disk(ADDRESS)
    tree.add_disk(OTHER, "sda", "serial000002")
    tree.add_disk(ADDRESS, "sdb", "serial000003")
    remover = DeviceRemover(paths, devices, block)
    with pytest.raises(DeviceChanged, match=r"block device changed from sda to sdb"):
        remover.remove(sda, timeout=5)
    assert not delete_requested(devices, ADDRESS) and not delete_requested(devices, OTHER)
    assert devices.read(ADDRESS).name == "sdb" and devices.read(OTHER).name == "sda"


def test_the_address_taken_by_another_name_between_check_and_delete_is_not_deleted(
    tree, sda, remover, block, devices
):
    def lun_reprobed_as_sdb():
        tree.remove_disk(ADDRESS)
        tree.add_disk(ADDRESS, "sdb", SERIAL)

    block.on_flush = lun_reprobed_as_sdb
    with pytest.raises(DeviceChanged) as caught:
        remover.remove(sda, timeout=5)
    assert caught.value.details["changed"] == "block device"
    assert (caught.value.details["expected"], caught.value.details["found"]) == ("sda", "sdb")
    assert not delete_requested(devices, ADDRESS)
    assert block.held == []


def test_a_node_made_anew_between_check_and_delete_is_not_deleted(tree, sda, remover, block, devices):
    def node_recreated():  # udev made a new /dev/sda for a new disk of that name
        (tree.root / "dev/sda.new").write_text("")
        (tree.root / "dev/sda.new").replace(tree.root / "dev/sda")

    block.on_flush = node_recreated
    with pytest.raises(DeviceChanged, match=r"its device node changed from /dev/sda to .* made anew"):
        remover.remove(sda, timeout=5)
    assert not delete_requested(devices, ADDRESS)


def test_a_device_number_changed_between_check_and_delete_is_not_deleted(tree, sda, remover, block, devices):
    block.on_flush = lambda: (tree.root / "sys/block/sda/dev").write_text("8:32\n")
    with pytest.raises(DeviceChanged, match=r"device number changed from 8:0 to 8:32"):
        remover.remove(sda, timeout=5)
    assert not delete_requested(devices, ADDRESS)


def test_a_lun_id_reused_between_check_and_delete_is_caught_by_the_fresh_identity(
    tree, sda, remover, block, devices
):
    # The array gave LUN id 1 to another LU meanwhile; a rescan would read its identity.
    block.on_flush = lambda: tree.set_identity(ADDRESS, "newserial002")
    with pytest.raises(DeviceChanged, match=r"before the delete it is not the LUN with serial serial000001"):
        remover.remove(sda, timeout=5, serial=SERIAL)
    assert block.flushed == ["sda"] and not delete_requested(devices, ADDRESS)
    assert block.held == []


def test_a_lun_id_reused_before_the_call_is_refused_before_the_flush(tree, sda, remover, block, devices):
    tree.set_identity(ADDRESS, "newserial002")  # what a rescan reads: the id now maps another LU
    with pytest.raises(DeviceChanged, match=r"before the flush it is not the LUN with serial serial000001"):
        remover.remove(sda, timeout=5, serial=SERIAL)
    assert block.flushed == [] and not delete_requested(devices, ADDRESS)


def test_without_a_serial_the_identity_must_stay_what_it_was_at_the_check(tree, sda, remover, block, devices):
    def rescanned_by_someone():
        tree.set_identity(ADDRESS, "newserial002")

    block.on_flush = rescanned_by_someone
    with pytest.raises(DeviceChanged) as caught:
        remover.remove(sda, timeout=5)
    assert caught.value.details["changed"] == "identity"
    assert "newserial002" in caught.value.details["found"]
    assert not delete_requested(devices, ADDRESS)


def test_a_device_gone_before_the_claim_is_nothing_to_do(tree, sda, remover, block, devices):
    tree.remove_disk(ADDRESS)
    remover.remove(sda, timeout=5)
    assert block.claims == [] and devices.leftovers(sda) == []


# --- an identity that cannot be read is never acted on ------------------------------------------------


def test_a_device_whose_identity_cannot_be_read_is_not_removed(tree, sda, remover, block, devices):
    tree.break_attr(ADDRESS, "vpd_pg80")
    with pytest.raises(IdentityUnreadable, match=r"identity could not be read before the flush \(vpd_pg80: "):
        remover.remove(sda, timeout=5, force_flush=True)
    assert block.flushed == [] and not delete_requested(devices, ADDRESS)
    assert block.held == []


def test_a_fresh_identity_that_cannot_be_read_stops_the_removal(tree, sda, remover, block, devices):
    tree.break_attr(ADDRESS, "rescan")  # the rescan write fails: sysfs holds no fresh identity
    with pytest.raises(IdentityUnreadable, match=r"rescan: "):
        remover.remove(sda, timeout=5, serial=SERIAL)
    assert not delete_requested(devices, ADDRESS)


def test_an_identity_that_becomes_unreadable_before_the_delete_stops_it(tree, sda, remover, block, devices):
    block.on_flush = lambda: tree.break_attr(ADDRESS, "wwid")
    with pytest.raises(IdentityUnreadable, match=r"before the delete \(wwid: "):
        remover.remove(sda, timeout=5)
    assert not delete_requested(devices, ADDRESS)


# --- deadlines: flush and delete block in the kernel while the paths are dead -------------------------


def test_a_flush_that_does_not_return_is_a_timeout_naming_the_step_and_nothing_is_deleted(
    sda, remover, calls, devices
):
    calls.hang.add("flush")
    with pytest.raises(KernelCallTimeout) as caught:
        remover.remove(sda, timeout=5)
    assert (caught.value.details["step"], caught.value.details["device"]) == ("flush", "/dev/sda")
    assert caught.value.code == "kernel_call_timeout"
    assert calls.step_names == ["exclusive claim", "flush"]
    assert not delete_requested(devices, ADDRESS)


def test_a_delete_that_does_not_return_is_a_timeout_naming_the_step(sda, remover, calls):
    calls.hang.add("delete")
    with pytest.raises(KernelCallTimeout, match=r"delete of /dev/sda did not return"):
        remover.remove(sda, timeout=5)


def test_a_forced_removal_goes_on_past_a_flush_that_does_not_return(sda, remover, calls, devices):
    calls.hang.add("flush")
    remover.remove(sda, timeout=10, force_flush=True)
    assert calls.steps[1] == ("flush", 5.0)  # half of what was left, so the delete still has time
    assert calls.step_names[-1] == "delete" and devices.read(ADDRESS) is None


def test_every_kernel_call_gets_what_is_left_of_the_callers_one_deadline(sda, remover, calls, clock):
    def each_step_takes_two_seconds(step):
        clock.now += 2

    calls.on_step = each_step_takes_two_seconds
    remover.remove(sda, timeout=12, serial=SERIAL)
    assert calls.steps == [
        ("exclusive claim", 12),
        ("identity check (rescan)", 10),
        ("flush", 8),
        ("identity check (rescan)", 6),
        ("delete", 4),
    ]


def test_a_deadline_already_spent_leaves_the_device_alone(sda, remover, calls, devices, clock):
    calls.on_step = lambda step: setattr(clock, "now", clock.now + 6)
    calls.hang.add("delete")  # a call given no time does not return in it
    with pytest.raises(KernelCallTimeout):
        remover.remove(sda, timeout=10)
    assert calls.steps[-1] == ("delete", 0.0)


def test_a_delete_blocked_in_the_kernel_is_abandoned_at_the_deadline(tree, sda, paths, devices, clock):
    """Real threads: the delete write blocks (a FIFO nobody reads, like a delete on a dead path)."""
    fifo = tree.hang_attr(ADDRESS, "delete")
    calls = AbandoningCalls()
    remover = DeviceRemover(paths, devices, FakeBlockOps(block_dir=tree.root / "sys/block"), clock, calls)
    started = time.monotonic()
    try:
        with pytest.raises(KernelCallTimeout, match=r"delete of /dev/sda did not return within 0.2s"):
            remover.remove(sda, timeout=0.2)
        assert time.monotonic() - started < 2
        [stuck] = calls.abandoned("/dev/sda")
        assert stuck.step == "delete" and stuck.blocked
    finally:
        reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # the "kernel" lets go
        for stuck in calls.abandoned():
            stuck.thread.join(timeout=5)
        os.close(reader)
    assert calls.abandoned() == []


def test_a_later_removal_says_the_device_is_held_by_our_own_abandoned_flush(
    tmp_path, tree, sda, paths, devices
):
    """The claim stays with a flush stuck in the kernel; a retry must not blame "another user"."""
    release = threading.Event()
    opened = []

    def opener(node, flags):
        if opened:
            raise OSError(errno.EBUSY, "Device or resource busy")  # the kernel: our first claim is still held
        opened.append(node)
        return os.open(node, flags)

    remover = DeviceRemover(
        paths, devices, KernelBlockOps(opener=opener, ioctl=lambda fd, request, arg: release.wait())
    )
    try:
        with pytest.raises(KernelCallTimeout, match="flush of /dev/sda"):
            remover.remove(sda, timeout=0.2)
        with pytest.raises(
            DeviceInUse, match=r"claimed by this agent's own flush, abandoned at its deadline"
        ):
            remover.remove(sda, timeout=0.2)
    finally:
        release.set()


# --- a forced removal on a dead path: the identity recorded when it was attached ------------------------


def test_a_forced_removal_goes_on_the_recorded_identity_when_a_dead_path_gives_no_fresh_one(
    tree, sda, remover, calls, devices
):
    tree.break_attr(ADDRESS, "rescan")  # the inquiry behind a rescan fails: the path is dead
    remover.remove(sda, timeout=5, force_flush=True, serial=SERIAL, recorded_identity=True)
    assert devices.read(ADDRESS) is None
    assert calls.step_names.count("identity check (rescan)") == 1  # not asked again before the delete


def test_a_forced_removal_goes_on_the_recorded_identity_when_the_rescan_does_not_return(
    sda, remover, calls, devices
):
    calls.hang.add("identity check (rescan)")
    remover.remove(sda, timeout=10, force_flush=True, serial=SERIAL, recorded_identity=True)
    assert calls.steps[1] == ("identity check (rescan)", 5.0)  # half: the flush and delete still have time
    assert calls.step_names[-1] == "delete" and devices.read(ADDRESS) is None


def test_without_the_recorded_identity_a_dead_path_is_not_removed(tree, sda, remover, devices):
    tree.break_attr(ADDRESS, "rescan")
    with pytest.raises(IdentityUnreadable, match=r"rescan: "):
        remover.remove(sda, timeout=5, force_flush=True, serial=SERIAL)
    assert not delete_requested(devices, ADDRESS)


def test_a_recorded_identity_of_another_lun_does_not_stand_in_for_a_fresh_one(tree, sda, remover, devices):
    tree.set_identity(ADDRESS, "newserial002")  # what sysfs recorded is not the LUN the caller names
    tree.break_attr(ADDRESS, "rescan")
    with pytest.raises(IdentityUnreadable):
        remover.remove(sda, timeout=5, force_flush=True, serial=SERIAL, recorded_identity=True)
    assert not delete_requested(devices, ADDRESS)


def test_a_fresh_identity_of_another_lun_stops_the_removal_whatever_was_recorded(tree, sda, remover, devices):
    tree.set_identity(ADDRESS, "newserial002")
    with pytest.raises(DeviceChanged):
        remover.remove(sda, timeout=5, force_flush=True, serial=SERIAL, recorded_identity=True)
    assert not delete_requested(devices, ADDRESS)


def test_a_device_in_use_is_not_removed_on_its_recorded_identity(tree, sda, remover, devices):
    tree.break_attr(ADDRESS, "rescan")
    tree.open_by(4242, "qemu-system-x86", "sda")
    with pytest.raises(DeviceInUse, match=r"pid 4242"):
        remover.remove(sda, timeout=5, force_flush=True, serial=SERIAL, recorded_identity=True)
    assert not delete_requested(devices, ADDRESS)


def test_probes_stuck_in_a_queueing_map_are_unstuck_and_then_waited_out(tree, sda, remover):
    tree.open_by(616, "kpartx", "sda")  # udev's kpartx, its read queued for ever: the LUN is gone
    unstuck: list[str] = []

    def fail_queued_io() -> None:
        unstuck.append("sda")
        shutil.rmtree(tree.root / "proc/616")  # its read fails, kpartx exits

    usage = remover.usage("sda", unstick=fail_queued_io)
    assert unstuck == ["sda"] and removal_blocker(usage) is None


def test_a_real_user_beside_stuck_probes_is_never_unstuck(tree, sda, remover):
    tree.open_by(617, "kpartx", "sda")
    tree.open_by(618, "qemu-system-x86", "sda")  # a VM whose I/O must keep queueing, not fail
    unstuck: list[str] = []
    usage = remover.usage("sda", unstick=lambda: unstuck.append("sda"))
    assert unstuck == [] and removal_blocker(usage) == "open by pid 617 (kpartx), pid 618 (qemu-system-x86)"


def test_a_mounted_device_with_stuck_probes_is_never_unstuck(tree, sda, remover):
    tree.open_by(619, "blkid", "sda")
    tree.mount("sda", "/srv")
    unstuck: list[str] = []
    remover.usage("sda", unstick=lambda: unstuck.append("sda"))
    assert unstuck == []
