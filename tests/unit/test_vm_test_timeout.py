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


def run_as_the_guest_does(folder: Path) -> tuple[subprocess.CompletedProcess[str], float]:
    (folder / "test_guest.py").write_text(GUEST_TESTS)
    config = cast(pytest.Config, SimpleNamespace(option=SimpleNamespace(verbose=0)))
    argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *guest_pytest_args(config)]
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
