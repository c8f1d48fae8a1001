"""A VM-tier test that hangs fails on its own, with the stack it hung in, and the tests after it still
run: one wedged libvirtd once held a whole tier past its deadline, and every later test was lost."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pytest

from tests.vmtier.guest import PYTEST_TIMEOUT
from tests.vmtier.plugin import GUEST_TEST_TIMEOUT, guest_pytest_args

pytestmark = pytest.mark.allow_subprocess

HANG = 600  # seconds: far past the run's own bound below
GUEST_TESTS = f"""
import subprocess, threading, pytest

@pytest.mark.timeout(2)
def test_waits_on_a_program_that_never_ends():
    subprocess.run(["sleep", "{HANG}"], timeout={HANG})

@pytest.mark.timeout(2)
def test_waits_on_a_lock_nobody_releases():
    lock = threading.Lock()
    lock.acquire()
    lock.acquire()

def test_after_them():
    pass
"""
# a test the timeout's signal cannot reach, as a task in uninterruptible sleep: SIGALRM blocked
UNSIGNALLABLE_TEST = """
import signal, time

def test_that_the_signal_cannot_reach():
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
    time.sleep(4)
"""


def run_as_the_guest_does(
    folder: Path, tests: str = GUEST_TESTS, *overrides: str
) -> tuple[subprocess.CompletedProcess[str], float]:
    (folder / "test_guest.py").write_text(tests)
    config = cast(pytest.Config, SimpleNamespace(option=SimpleNamespace(verbose=0)))
    argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *guest_pytest_args(config), *overrides]
    started = time.monotonic()
    done = subprocess.run(
        [*argv, "test_guest.py"], cwd=folder, capture_output=True, text=True, timeout=120, check=False
    )
    return done, time.monotonic() - started


def test_a_hung_test_fails_with_its_stack_and_the_next_test_still_runs(tmp_path: Path):
    done, took = run_as_the_guest_does(tmp_path)

    assert "FAILED test_guest.py::test_waits_on_a_program_that_never_ends" in done.stdout, done.stdout
    assert "FAILED test_guest.py::test_waits_on_a_lock_nobody_releases" in done.stdout, done.stdout
    assert "PASSED test_guest.py::test_after_them" in done.stdout, done.stdout
    assert "Timeout" in done.stdout and "lock.acquire()" in done.stdout, done.stdout
    assert took < 60


def test_every_guest_test_is_bounded_by_default_within_the_guests_own_deadline():
    config = cast(pytest.Config, SimpleNamespace(option=SimpleNamespace(verbose=0)))
    assert f"--timeout={GUEST_TEST_TIMEOUT:g}" in guest_pytest_args(config)
    assert GUEST_TEST_TIMEOUT < PYTEST_TIMEOUT


def test_a_test_the_signal_cannot_reach_still_leaves_every_threads_stack(tmp_path: Path):
    done, _ = run_as_the_guest_does(
        tmp_path, UNSIGNALLABLE_TEST, "--timeout=1", "-o", "faulthandler_timeout=1"
    )

    assert "Timeout" not in done.stdout, done.stdout  # the signal never reached it
    assert "most recent call first" in done.stderr, done.stderr
    assert "line 6 in test_that_the_signal_cannot_reach" in done.stderr, done.stderr
