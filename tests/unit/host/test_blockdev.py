"""The exclusive claim, the flush through it, and kernel calls run under a deadline, tested host-side.

A regular file stands in for the device node: ``open(O_EXCL)`` without ``O_CREAT`` is ignored
on it (Linux gives O_EXCL that meaning for block devices only) and BLKFLSBUF answers ENOTTY, so
what the kernel does with a real disk is proven in the VM (tests/vm/test_removal_safety.py);
here the descriptor handling, the node checks and the deadlines are.
"""

from __future__ import annotations

import errno
import os
import threading
import time

import pytest

from iscsi_agent.host.blockdev import (
    BLKFLSBUF,
    CLAIM_FLAGS,
    AbandoningCalls,
    KernelBlockOps,
)
from iscsi_agent.host.errors import KernelCallTimeout, WaitTimeout

# Each wait below is for a thread that is blocked on purpose; short real deadlines keep them quick.
DEADLINE = 0.1


@pytest.fixture
def node(tmp_path):
    path = tmp_path / "sdb"
    path.write_bytes(b"\0" * 4096)
    return path


@pytest.fixture
def calls():
    return AbandoningCalls()


@pytest.fixture
def release():
    """An event the blocked calls of a test wait on; set at the end so no thread outlives its test."""
    event = threading.Event()
    yield event
    event.set()


def fd_is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError as exc:
        assert exc.errno == errno.EBADF
        return False
    return True


# --- the claim -------------------------------------------------------------------------------------


def test_blkflsbuf_is_the_kernels_io_0x12_97():
    assert BLKFLSBUF == (0x12 << 8) | 97


def test_the_claim_opens_read_only_and_exclusive(node):
    seen = []

    def opener(path, flags):
        seen.append((path, flags))
        return os.open(path, flags)

    claim = KernelBlockOps(opener=opener).claim(node)
    claim.close()
    [(path, flags)] = seen
    assert path == node and flags == CLAIM_FLAGS
    assert flags & os.O_EXCL and flags & os.O_ACCMODE == os.O_RDONLY and flags & os.O_CLOEXEC


def test_a_claim_names_the_device_number_of_what_it_holds(node):
    claim = KernelBlockOps().claim(node)
    try:
        assert claim.device_number == "0:0"  # a regular file; /dev/sdb would say "8:16"
        assert claim.held
    finally:
        claim.close()


def test_a_busy_device_cannot_be_claimed_and_the_error_says_ebusy(node):
    def busy(path, flags):
        raise OSError(errno.EBUSY, "Device or resource busy", str(path))

    with pytest.raises(OSError) as caught:
        KernelBlockOps(opener=busy).claim(node)
    assert caught.value.errno == errno.EBUSY
    assert KernelBlockOps(opener=busy).claimed_elsewhere(node) is True


def test_a_free_or_missing_device_is_not_claimed_elsewhere(node, tmp_path):
    assert KernelBlockOps().claimed_elsewhere(node) is False
    assert KernelBlockOps().claimed_elsewhere(tmp_path / "gone") is False


def test_an_unexpected_open_error_is_not_taken_for_free(node):
    def denied(path, flags):
        raise OSError(errno.EACCES, "Permission denied", str(path))

    with pytest.raises(PermissionError):
        KernelBlockOps(opener=denied).claimed_elsewhere(node)


def test_a_node_still_naming_the_claimed_device_has_not_changed(node):
    claim = KernelBlockOps().claim(node)
    try:
        assert claim.node_changed() is None
    finally:
        claim.close()


def test_a_node_made_anew_for_another_device_is_noticed(node):
    claim = KernelBlockOps().claim(node)
    try:
        fresh = node.with_name("sdb.new")
        fresh.write_bytes(b"")
        fresh.replace(node)  # udev: a new disk took the name sdb
        assert "was made anew" in claim.node_changed()
    finally:
        claim.close()


def test_a_node_gone_is_noticed(node):
    claim = KernelBlockOps().claim(node)
    try:
        node.unlink()
        assert claim.node_changed() == f"{node} is gone"
    finally:
        claim.close()


def test_closing_the_claim_releases_its_descriptor(node):
    opened = []
    ops = KernelBlockOps(opener=lambda path, flags: opened.append(os.open(path, flags)) or opened[-1])
    claim = ops.claim(node)
    assert fd_is_open(opened[0])
    claim.close()
    assert not claim.held and not fd_is_open(opened[0])
    claim.close()  # a second close is nothing to do


# --- the flush through the claim --------------------------------------------------------------------


def test_the_flush_is_blkflsbuf_on_the_claimed_descriptor(node):
    issued = []
    opened = []
    ops = KernelBlockOps(
        opener=lambda path, flags: opened.append(os.open(path, flags)) or opened[-1],
        ioctl=lambda fd, request, arg: issued.append((fd, request, arg)),
    )
    claim = ops.claim(node)
    claim.flush()
    claim.close()
    assert issued == [(opened[0], BLKFLSBUF, 0)]


def test_the_kernel_answer_to_the_flush_reaches_the_caller(node):
    claim = KernelBlockOps().claim(node)
    try:
        with pytest.raises(OSError) as caught:
            claim.flush()  # the real ioctl: a regular file is no block device
        assert caught.value.errno == errno.ENOTTY
    finally:
        claim.close()


def test_a_released_claim_cannot_flush(node):
    claim = KernelBlockOps().claim(node)
    claim.close()
    with pytest.raises(OSError) as caught:
        claim.flush()
    assert caught.value.errno == errno.EBADF


def test_a_claim_closed_while_its_flush_is_stuck_stays_held_until_the_flush_returns(node, calls, release):
    """The descriptor (and with it the exclusive claim) outlives close() while the kernel still uses it."""
    opened = []
    ops = KernelBlockOps(
        opener=lambda path, flags: opened.append(os.open(path, flags)) or opened[-1],
        ioctl=lambda fd, request, arg: release.wait(),
    )
    claim = ops.claim(node)
    with pytest.raises(KernelCallTimeout):
        calls.run(claim.flush, DEADLINE, device="/dev/sdb", step="flush")
    claim.close()
    assert claim.held and fd_is_open(opened[0])
    release.set()
    [stuck] = calls.abandoned()
    stuck.thread.join(timeout=5)
    assert not claim.held and not fd_is_open(opened[0])


# --- kernel calls under a deadline ------------------------------------------------------------------


def test_a_call_that_returns_in_time_gives_its_value(calls):
    assert calls.run(lambda: 42, 5, device="/dev/sdb", step="flush") == 42
    assert calls.abandoned() == []


def test_a_call_that_fails_in_time_raises_its_own_error(calls):
    def fails():
        raise OSError(errno.EIO, "Input/output error")

    with pytest.raises(OSError, match="Input/output error"):
        calls.run(fails, 5, device="/dev/sdb", step="flush")


def test_a_call_stuck_past_its_deadline_is_abandoned_with_a_typed_timeout(calls, release):
    started = time.monotonic()
    with pytest.raises(KernelCallTimeout) as caught:
        calls.run(release.wait, DEADLINE, device="/dev/sdb", step="delete")
    assert time.monotonic() - started < DEADLINE + 1.0
    error = caught.value
    assert isinstance(error, WaitTimeout) and error.code == "kernel_call_timeout"
    assert error.details == {
        "waited_for": "delete of /dev/sdb",
        "device": "/dev/sdb",
        "step": "delete",
        "timeout": DEADLINE,
        "abandoned": True,
    }
    assert "stays blocked in the kernel in an abandoned thread" in str(error)
    [stuck] = calls.abandoned("/dev/sdb")
    assert (stuck.device, stuck.step, stuck.blocked) == ("/dev/sdb", "delete", True)
    assert stuck.thread.daemon  # never keeps the agent from exiting
    assert calls.abandoned("/dev/sdc") == []


def test_an_abandoned_call_that_returns_later_is_forgotten(calls, release):
    with pytest.raises(KernelCallTimeout):
        calls.run(release.wait, DEADLINE, device="/dev/sdb", step="flush")
    [stuck] = calls.abandoned()
    release.set()
    stuck.thread.join(timeout=5)
    assert calls.abandoned() == []


def test_a_value_arriving_after_the_deadline_is_handed_to_late(node, calls, release):
    """A claim whose open was abandoned must still be released when the open finally returns."""
    closed = threading.Event()

    def slow_open():
        release.wait()
        return os.open(node, os.O_RDONLY)

    def close_late(fd):
        os.close(fd)
        closed.set()

    with pytest.raises(KernelCallTimeout):
        calls.run(slow_open, DEADLINE, device="/dev/sdb", step="exclusive claim", late=close_late)
    assert not closed.is_set()
    release.set()
    assert closed.wait(timeout=5)


def test_an_error_arriving_after_the_deadline_is_only_logged(calls, release, caplog):
    def fails_late():
        release.wait()
        raise OSError(errno.EIO, "Input/output error")

    with pytest.raises(KernelCallTimeout):
        calls.run(fails_late, DEADLINE, device="/dev/sdb", step="flush", late=pytest.fail)
    [stuck] = calls.abandoned()
    release.set()
    stuck.thread.join(timeout=5)
    assert "abandoned flush of /dev/sdb returned late with [Errno 5] Input/output error" in caplog.text


def test_a_deadline_already_spent_still_waits_for_nothing(calls, release):
    with pytest.raises(KernelCallTimeout):
        calls.run(release.wait, -1.0, device="/dev/sdb", step="flush")
