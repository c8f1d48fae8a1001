"""The daemon's start-up: what it costs before READY=1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import iscsi_agent

# Each costs tenths of a second on a host and seconds under emulation, and none is needed before the
# first request: pyroute2 asks routes at an attach, requests and lxml talk to the array once the agent
# serves, apscheduler runs the reconciler's schedule once the agent serves.
LOADED_WHEN_FIRST_USED = ("pyroute2", "requests", "lxml", "apscheduler")
PACKAGE_ROOT = Path(iscsi_agent.__file__).parent.parent


@pytest.mark.allow_subprocess
def test_starting_the_agent_loads_no_library_its_first_request_does_not_need():
    """A fresh interpreter, as systemd execs the agent: its entry point's imports leave them unloaded."""
    probe = (
        "import sys, json, iscsi_agent.cli; "
        f"print(json.dumps(sorted(m for m in {LOADED_WHEN_FIRST_USED!r} if m in sys.modules)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=PACKAGE_ROOT,
        env={**os.environ, "PYTHONPATH": str(PACKAGE_ROOT)},
    )
    loaded = json.loads(done.stdout)
    assert loaded == [], (
        f"imported at start-up (python -X importtime -c 'import iscsi_agent.cli' says by whom): {loaded}"
    )
