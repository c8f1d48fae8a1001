"""Boots the Debian kernel in QEMU over this machine's root filesystem and runs pytest inside.

The machine's own kernel has no SCSI layer, so every test of real iSCSI behaviour runs in a
guest (see shared/testbed.md). The guest sees the host's filesystem read-only, so results
come back through one read-write folder: the serialized pytest reports and the guest's log.
"""

from __future__ import annotations

import compileall
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

GUEST_ENV_FLAG = "ISCSI_AGENT_VM_GUEST"
GUEST_REPORTS_ENV = "ISCSI_AGENT_VM_REPORTS"
# The host's settings a guest test reads (vng starts the guest's command with an environment of its own).
CARRIED_ENV = ("ISCSI_AGENT_CHAOS_SHORT",)
REPORTS_FILE = "reports.jsonl"
ARGS_FILE = "pytest-args.txt"
GUEST_LOG = "guest.log"
VM_LOG = "vm-console.log"
CONSOLE_TAIL = 6000
GUEST_PROGRAMS = (
    "qemu-system-x86_64",
    "iscsiadm",
    "iscsid",
    "tgtd",
    "tgtadm",
    "multipath",
    "multipathd",
    "dmsetup",
    "udevadm",
    "libvirtd",
    "virtlogd",
    "virsh",
)
BOOT_TIMEOUT = 65 * 60.0  # the guest's set-up and its pytest (guest.PYTEST_TIMEOUT)
# The tree's own packages a guest imports: the agent, the simulator, the tests, and the programs run there.
TREE_PACKAGES = ("iscsi_agent", "ontap_sim", "tests", "chaos", "bench", "demo")


@dataclass(frozen=True)
class GuestRun:
    """What came back from one boot: pytest reports by node id, and the logs to show on failure."""

    reports: dict[str, list[dict]] = field(default_factory=dict)
    exit_code: int | None = None
    log_tail: str = ""
    results_dir: Path | None = None


def find_kernel(boot_dir: Path = Path("/boot")) -> Path | None:
    """The newest generic Debian kernel; its version changes with Debian updates, so never hard-code it."""
    kernels = list(boot_dir.glob("vmlinuz-*-amd64"))
    return max(kernels, key=lambda kernel: kernel.stat().st_mtime) if kernels else None


def vng_program() -> str | None:
    """vng calls virtme-run by name, so it must come from the same bin folder as this Python."""
    beside = Path(sys.executable).parent / "vng"
    return str(beside) if beside.exists() else shutil.which("vng")


def missing_prerequisites() -> list[str]:
    missing = [name for name in GUEST_PROGRAMS if shutil.which(name, path=_sbin_path()) is None]
    if find_kernel() is None:
        missing.append("a kernel /boot/vmlinuz-*-amd64 (Debian package linux-image-amd64)")
    if vng_program() is None:
        missing.append("vng (PyPI package virtme-ng)")
    return missing


def compile_tree(root: Path) -> None:
    """Write the bytecode of the tree's packages before a boot, whatever PYTHONDONTWRITEBYTECODE says.

    The guest sees the tree read-only, so without it every Python started there compiles every
    module it imports from source again: under emulation most of an agent's start (in one measured
    start, 53 of the 83 s its imports took), paid at each of the many restarts the tier makes.
    """
    for package in TREE_PACKAGES:
        if (root / package).is_dir():
            compileall.compile_dir(root / package, quiet=1)


def vng_argv(kernel: Path, rwdir: Path, cwd: Path, guest_command: Sequence[str]) -> list[str]:
    """--disable-kvm: with KVM, qemu aborts on an MSR on these machines; --force-9p: virtiofsd is unusable."""
    return [
        vng_program() or "vng",
        "--run",
        str(kernel),
        "--disable-kvm",
        "--force-9p",
        "--memory",
        "2G",
        "--cpus",
        "2",
        f"--rwdir={rwdir}",
        "--cwd",
        str(cwd),
        "--exec",
        shlex.join(guest_command),
    ]


def run_vng(
    argv: Sequence[str], env: dict[str, str], timeout: float = BOOT_TIMEOUT
) -> tuple[str, int | None]:
    """Run vng; its console output and exit code (None when it ran past ``timeout``).

    A pipe, not a file: qemu opens stdout and stderr separately and they would overwrite each other.
    """
    console, exit_code = run_bounded(argv, env, timeout, capture=True)
    if exit_code is None:
        return console.decode(errors="replace") + f"\n[vm did not finish within {timeout:g}s]", None
    return console.decode(errors="replace"), exit_code


def run_bounded(
    argv: Sequence[str], env: dict[str, str], timeout: float, *, capture: bool
) -> tuple[bytes, int | None]:
    """Run vng in a session of its own; past ``timeout`` the whole session is killed, QEMU with it
    (killing vng alone left QEMU running on after the deadline). Its output when captured, and its
    exit code or None."""
    process = subprocess.Popen(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE if capture else None,
        stderr=subprocess.STDOUT if capture else None,
        env=env,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        return output or b"", None
    return output or b"", process.returncode


def run_streaming(
    kernel: Path, rwdir: Path, cwd: Path, guest_command: Sequence[str], timeout: float
) -> int | None:
    """Boot and run one program of the tree in the guest, its lines streaming to this terminal as they
    happen (the demo, the soak, the bench); its exit code, or None when it ran past ``timeout``."""
    compile_tree(cwd)
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{_sbin_path()}")
    return run_bounded(vng_argv(kernel, rwdir, cwd, guest_command), env, timeout, capture=False)[1]


def run_in_vm(
    nodeids: Sequence[str], rootdir: Path, pytest_args: Sequence[str] = (), timeout: float = BOOT_TIMEOUT
) -> GuestRun:
    """Boot once, run these tests inside as root, and collect their reports; past ``timeout`` the
    guest is cut off, and every test it did not report fails saying so."""
    rwdir = Path(tempfile.mkdtemp(prefix="iscsi-agent-vm-"))
    (rwdir / ARGS_FILE).write_text("\n".join([*pytest_args, *nodeids]) + "\n")
    kernel = find_kernel()
    assert kernel is not None, "missing_prerequisites() is checked first"
    compile_tree(rootdir)
    carried = [f"{name}={os.environ[name]}" for name in CARRIED_ENV if name in os.environ]
    guest_command = ["env", *carried, sys.executable, "-m", "tests.vmtier.guest", str(rwdir)]
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{_sbin_path()}")
    console, exit_code = run_vng(vng_argv(kernel, rwdir, rootdir, guest_command), env, timeout)
    (rwdir / VM_LOG).write_text(console)
    run = GuestRun(
        reports=_read_reports(rwdir / REPORTS_FILE),
        exit_code=exit_code,
        log_tail=failure_logs(_tail(rwdir / GUEST_LOG), console, exit_code),
        results_dir=rwdir,
    )
    if exit_code == 0:  # everything passed: nothing in the logs is worth keeping
        shutil.rmtree(rwdir, ignore_errors=True)
    return run


def failure_logs(guest_log: str, console: str, exit_code: int | None) -> str:
    """The guest's log; and when the guest was cut off, the console's end too: the stall watcher's
    samples and the kernel's own reports are there, and nowhere else (the log may have stalled first)."""
    if not guest_log:
        return console[-CONSOLE_TAIL:]
    if exit_code is None:
        return f"{guest_log}\n--- the console's end\n{console[-CONSOLE_TAIL:]}"
    return guest_log


def _read_reports(path: Path) -> dict[str, list[dict]]:
    reports: dict[str, list[dict]] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            data = json.loads(line)
            reports.setdefault(data["nodeid"], []).append(data)
    return reports


def _tail(path: Path, limit: int = 6000) -> str:
    return path.read_text(errors="replace")[-limit:] if path.exists() else ""


def _sbin_path() -> str:
    return os.pathsep.join([os.environ.get("PATH", ""), "/usr/local/sbin", "/usr/sbin", "/sbin"])
