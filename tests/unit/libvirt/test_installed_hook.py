"""The hook file libvirt runs is the console script setup.py installs, with libvirt's arguments as given."""

import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
HOOK_FILE = ROOT / "libvirt" / "qemu.d" / "iscsi-agent"


def test_the_hook_file_is_an_executable_that_execs_the_console_script_with_libvirts_arguments():
    assert os.access(HOOK_FILE, os.X_OK)
    lines = [line for line in HOOK_FILE.read_text().splitlines() if line and not line.startswith("#")]
    assert HOOK_FILE.read_text().startswith("#!/bin/sh\n")
    assert lines == ['exec /usr/bin/iscsi-agent-libvirt-hook "$@"']


def test_setup_installs_the_console_script_the_hook_file_runs():
    entry = re.search(r'"iscsi-agent-libvirt-hook = ([\w.]+):(\w+)"', (ROOT / "setup.py").read_text())
    assert entry is not None and entry.groups() == ("iscsi_agent.libvirt.hook", "main")
