"""Runs inside the VM as root: brings up the iSCSI stack, then pytest on the requested tests.

Order matters (shared/testbed.md): loopback and the second portal address, udevd (without it
there are no /dev/disk/by-* links), the kernel modules, tgtd (answering), iscsid (answering),
multipathd with a config that only claims WWIDs the agent adds, then the tests.
Usage: python -m tests.vmtier.guest RESULTS_DIR
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from tests.vmtier.boot import ARGS_FILE, GUEST_ENV_FLAG, GUEST_LOG, GUEST_REPORTS_ENV, REPORTS_FILE

PORTALS = ("127.0.0.1", "127.0.0.2")
# The whole VM tier in one guest: about 35 min on an idle two-core machine, 40 with other VMs beside
# it; past this it is cut off, and every test it did not reach fails saying so.
PYTEST_TIMEOUT = 60 * 60.0
MULTIPATH_CONF = """\
defaults {
    user_friendly_names no
    find_multipaths strict
    polling_interval 2
    uxsock_timeout 30000
}
devices {
    device {
        vendor "NETAPP"
        product "LUN C-Mode"
        path_grouping_policy group_by_prio
        prio const
        path_checker tur
        failback immediate
        no_path_retry 2
    }
}
"""


class GuestSetupError(Exception):
    pass


def run(argv: Sequence[str], log, timeout: float = 60.0, check: bool = True) -> int:
    log.write(f"$ {' '.join(argv)}\n")
    log.flush()
    done = subprocess.run(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        timeout=timeout,
        check=False,
    )
    if check and done.returncode != 0:
        raise GuestSetupError(f"{' '.join(argv)} exited {done.returncode}")
    return done.returncode


def wait_for(description: str, probe: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            raise GuestSetupError(f"{description} did not come up within {timeout:g}s")
        time.sleep(0.3)


def start_stack(log) -> None:
    run(["ip", "link", "set", "lo", "up"], log)
    run(["ip", "addr", "add", "127.0.0.2/8", "dev", "lo"], log, check=False)
    run(["/lib/systemd/systemd-udevd", "--daemon"], log)
    run(["udevadm", "trigger", "--action=add"], log)
    # the first settle after udevd starts took over 60 s on a machine at load 15 (udevd did not answer)
    run(["udevadm", "settle", "--timeout=240"], log, timeout=300)
    run(["modprobe", "iscsi_tcp"], log)
    run(["modprobe", "dm_multipath"], log)
    portals = ",".join(f"portal={address}:3260" for address in PORTALS)
    run(["tgtd", "--iscsi", portals], log)
    wait_for(
        "tgtd",
        lambda: run(["tgtadm", "--lld", "iscsi", "--op", "show", "--mode", "target"], log, check=False) == 0,
    )
    run(["iscsid"], log)
    # exit 21 "no active sessions" proves iscsid answers; 20 means it cannot be reached yet.
    wait_for("iscsid", lambda: run(["iscsiadm", "-m", "session"], log, check=False) in (0, 21))
    Path("/etc/multipath.conf").write_text(MULTIPATH_CONF)
    Path("/etc/multipath").mkdir(exist_ok=True)
    Path("/etc/multipath/wwids").write_text("")
    run(["multipathd"], log)
    wait_for("multipathd", lambda: run(["multipathd", "show", "status"], log, check=False) == 0)


def main(results_dir: Path) -> int:
    with (results_dir / GUEST_LOG).open("w") as log:
        try:
            start_stack(log)
        except (GuestSetupError, OSError, subprocess.TimeoutExpired) as exc:
            log.write(f"guest set-up failed: {exc}\n")
            return 3
        env = dict(
            os.environ,
            PYTHONDONTWRITEBYTECODE="1",
            # unbuffered: a test that hangs for good after pytest-timeout wrote its stacks (a child that
            # cannot be reaped) would otherwise keep them in the buffer of a process that never exits
            PYTHONUNBUFFERED="1",
            **{GUEST_ENV_FLAG: "1", GUEST_REPORTS_ENV: str(results_dir / REPORTS_FILE)},
        )
        argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", f"@{results_dir / ARGS_FILE}"]
        log.write(f"$ {' '.join(argv)}\n")
        log.flush()
        # on the console, not in the log: the log is on the shared folder, which a stall may take with it
        watcher = subprocess.Popen(
            [sys.executable, "-m", "tests.vmtier.stallwatch"], stdin=subprocess.DEVNULL
        )
        try:
            done = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                timeout=PYTEST_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired:
            log.write(f"pytest did not finish within {PYTEST_TIMEOUT:g}s\n")
            return 4
        finally:
            watcher.kill()
            watcher.wait()
        return done.returncode


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
