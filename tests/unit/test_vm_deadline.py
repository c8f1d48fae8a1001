"""A VM past its deadline is killed with everything vng started: QEMU is vng's child, and killing vng
alone left it running (a bench's VM went on for twenty minutes after its run had given up)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from tests.vmtier.boot import run_bounded

pytestmark = pytest.mark.allow_subprocess

# stands in for vng: starts a long-lived child (QEMU) that beats into a file, and waits for it
VNG = (
    "import subprocess, sys; "
    'beat = \'import time, sys\\nwhile True:\\n    open(sys.argv[1], "a").write(".")\\n    time.sleep(0.05)\'; '
    "subprocess.Popen([sys.executable, '-c', beat, sys.argv[1]]).wait()"
)


def test_past_its_deadline_the_vm_and_what_vng_started_are_killed(tmp_path: Path):
    heart = tmp_path / "qemu-beats"
    _, exit_code = run_bounded([sys.executable, "-c", VNG, str(heart)], dict(os.environ), 2.0, capture=True)
    assert exit_code is None
    beats = heart.stat().st_size
    assert beats > 0  # it was running
    time.sleep(1.0)
    assert heart.stat().st_size == beats  # and now it is not


def test_within_its_deadline_the_exit_code_and_the_output_come_back():
    output, exit_code = run_bounded(
        [sys.executable, "-c", "print('booted'); raise SystemExit(3)"], dict(os.environ), 30.0, capture=True
    )
    assert (output, exit_code) == (b"booted\n", 3)
