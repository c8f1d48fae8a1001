"""Boots the VM with systemd as PID 1, the agent's own unit files installed, and runs the guest checks.

`vng --systemd` alone hangs on these machines: the root filesystem has /.dockerenv, so systemd
thinks it runs in a container and never starts vng's serial console, where the command runs
(shared/testbed.md, last section). So vng runs with HOME set to a folder of ours, whose
virtme-ng.conf smuggles ``. pre.sh`` into vng's init command (virtme-ng 1.42, pinned in setup.py,
puts the "fstab" value into it unquoted). pre.sh builds an overlay root without /.dockerenv,
copies the staged files into it (the units from systemd/, the agent's config, a short watchdog, and
the two Debian packages built from the tree for the last phases) and starts systemd there. The guest
writes what it saw into the --rwdir folder.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.vmsystemd import debs as packages
from tests.vmtier import boot as vmtier
from tests.vmtier.guest import MULTIPATH_CONF

UNIT_NAMES = ("iscsi-agent.service", "iscsi-agent.socket")
SIM_PORT = 18080  # the simulator in the guest; the agent's config is written before boot
WATCHDOG_SEC = 5  # short, so that a wedged agent is restarted within the test
START_TIMEOUT_SEC = 300
AGENT_CONF = "/etc/iscsi-agent/agent.conf"  # the shipped unit's ExecStart reads this one
GUEST_DEBS = "/opt/iscsi-agent-debs"  # first/ and upgrade/, each with one .deb
DROPIN = "/etc/systemd/system/iscsi-agent.service.d/vmtest.conf"  # the test's changes to the service
RESULTS_FILE = "results.json"
TRANSCRIPT = "transcript.log"
VM_LOG = "vm-console.log"
BOOT_TIMEOUT = 50 * 60.0  # about 15 min alone; 30 min was not enough with three VMs sharing two cores
# The testbed's three, and the services the machine's packages enable that have no business here
# (prometheus and postgresql would start in the guest and slow the boot).
MASKS = (
    "getty@",
    "console-getty.service",
    "systemd-logind.service",
    "prometheus.service",
    "prometheus-node-exporter.service",
    "postgresql.service",
    "smartmontools.service",
    "openipmi.service",
)
GUEST_TMPFILES = "d /tmp 1777 root root -\nd /var/tmp 1777 root root -\n"
PRE_SH = """\
# Sourced by /bin/sh, the guest's first process, before systemd starts: give systemd a root it can
# own. Without /.dockerenv it knows it runs in a VM and starts vng's serial console.
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p /run/ov/upper /run/ov/work /run/ov/root
mount -t overlay overlay -o lowerdir=/,upperdir=/run/ov/upper,workdir=/run/ov/work /run/ov/root
rm -f /run/ov/root/.dockerenv
cp -a {stage}/. /run/ov/root/
for cache in {home}/.cache/virtme-ng/guest/run-*; do :; done
SYSTEMD_UNIT_PATH="$cache:" exec chroot /run/ov/root /sbin/init
"""


@dataclass(frozen=True)
class SystemdRun:
    """What one boot brought back: the guest's facts, its transcript, and where the logs are."""

    facts: dict
    transcript: str
    exit_code: int | None
    seconds: float
    results_dir: Path
    console_tail: str
    deb_build_error: str = ""


def missing_prerequisites() -> list[str]:
    missing = vmtier.missing_prerequisites()
    for program in ("systemd-analyze", "systemctl", "journalctl"):
        if shutil.which(program) is None:
            missing.append(program)
    if not Path("/sbin/init").exists():
        missing.append("/sbin/init (Debian package systemd-sysv)")
    return missing


def agent_config() -> str:
    """The test array, and passes only when the tests ask: a scheduled pass removing the stale disk
    before the reconcile phase's own pass would leave that pass nothing to show. [iscsi] comes last:
    the multipath phase appends to it."""
    return (
        "[array]\n"
        f"hostname = 127.0.0.1\nport = {SIM_PORT}\nscheme = http\n"
        "username = admin\npassword = netapp1!\nvserver = svm1\n"
        "[reconciler]\ninterval = 86400\n"
        "[iscsi]\ndevice_timeout = 60\nlogin_timeout = 30\n"
    )


def service_dropin(rootdir: Path, interpreter_prefix: Path = Path(sys.base_prefix)) -> str:
    """The test's only changes to the shipped service: a short watchdog, start-up time, its Python.

    The repo's venv stands in for an installed package. When its interpreter or the repo itself
    lives under /root or /home (pyenv), ProtectHome= would hide it; then home stays hidden but for
    those folders, read-only. A repo under /tmp (a CI clone) would be hidden by PrivateTmp=.
    """
    lines = [
        "[Service]",
        "# the test wedges the agent and waits for systemd to restart it",
        f"WatchdogSec={WATCHDOG_SEC}s",
        "# Python's start-up alone took 60-70 s in a loaded software-emulated guest; the default 90 s is tight",
        f"TimeoutStartSec={START_TIMEOUT_SEC}s",
    ]
    homes = (Path("/root"), Path("/home"))
    hidden = [path for path in (interpreter_prefix, rootdir) if any(path.is_relative_to(h) for h in homes)]
    if hidden:
        lines += [
            "# this machine's Python or the repo's venv is under a home folder, which ProtectHome=true hides",
            "ProtectHome=tmpfs",
            *(f"BindReadOnlyPaths={path}" for path in hidden),
        ]
    if any(rootdir.is_relative_to(Path(tmp)) for tmp in ("/tmp", "/var/tmp")):
        lines += [
            "# the repo (and its venv, the stand-in package) is under /tmp, which PrivateTmp=true hides",
            "PrivateTmp=false",
        ]
    return "\n".join(lines) + "\n"


def stage(home: Path, rootdir: Path, debs: packages.Debs) -> Path:
    """The files pre.sh copies into the guest's root: the repo's units exactly as shipped, enabled
    like `systemctl enable iscsi-agent.socket` does, what the shipped ExecStart expects, and the
    packages."""
    tree = home / "stage"
    for folder, deb in (("first", debs.first), ("upgrade", debs.upgrade)):
        if deb is not None:
            (tree / GUEST_DEBS.lstrip("/") / folder).mkdir(parents=True)
            shutil.copyfile(deb, tree / GUEST_DEBS.lstrip("/") / folder / deb.name)
    system = tree / "etc/systemd/system"
    (system / "sockets.target.wants").mkdir(parents=True)
    for name in UNIT_NAMES:
        shutil.copyfile(rootdir / "systemd" / name, system / name)
    (system / "sockets.target.wants/iscsi-agent.socket").symlink_to("/etc/systemd/system/iscsi-agent.socket")
    (tree / DROPIN.lstrip("/")).parent.mkdir()
    (tree / DROPIN.lstrip("/")).write_text(service_dropin(rootdir.resolve()))
    (tree / "etc/iscsi-agent").mkdir(parents=True)
    (tree / AGENT_CONF.lstrip("/")).touch(mode=0o600)  # it holds the password; `cp -a` keeps the mode
    (tree / AGENT_CONF.lstrip("/")).write_text(agent_config())
    # Debian's `D /tmp` would empty /tmp, and with it vng's guest tools.
    (tree / "etc/tmpfiles.d").mkdir(parents=True)
    (tree / "etc/tmpfiles.d/tmp.conf").write_text(GUEST_TMPFILES)
    (tree / "etc/fstab").write_text("")
    # vng's own init later lays an overlay over /var, which hides journal files kept there.
    (tree / "etc/systemd/journald.conf.d").mkdir(parents=True)
    (tree / "etc/systemd/journald.conf.d/volatile.conf").write_text("[Journal]\nStorage=volatile\n")
    (tree / "etc/multipath.conf").write_text(MULTIPATH_CONF)
    # The package is not installed system-wide: the shipped ExecStart path points at the repo's venv.
    (tree / "usr/bin").mkdir(parents=True)
    (tree / "usr/bin/iscsi-agent").symlink_to(Path(sys.executable).parent / "iscsi-agent")
    return tree


def prepare(home: Path, rootdir: Path, debs: packages.Debs) -> None:
    """vng's config and pre.sh under ``home`` (vng is run with HOME=home)."""
    tree = stage(home, rootdir, debs)
    (home / "pre.sh").write_text(PRE_SH.format(stage=tree, home=home))
    conf_dir = home / ".config/virtme-ng"
    conf_dir.mkdir(parents=True)
    conf = {
        "default_opts": {},
        "clean_exclude": [],
        "systemd": {"masks": list(MASKS), "fstab": f"/dev/null /etc/fstab; . {home}/pre.sh; true /dev/null"},
    }
    (conf_dir / "virtme-ng.conf").write_text(json.dumps(conf, indent=2) + "\n")


def run_in_vm(rootdir: Path) -> SystemdRun:
    """Boot once with systemd as PID 1 and run tests.vmsystemd.guest inside."""
    home = Path(tempfile.mkdtemp(prefix="iscsi-agent-vmsd-"))
    results = home / "results"
    results.mkdir()
    debs = packages.build(rootdir, home / "debs")
    prepare(home, rootdir, debs)
    kernel = vmtier.find_kernel()
    assert kernel is not None, "missing_prerequisites() is checked first"
    vmtier.compile_tree(rootdir)
    argv = vmtier.vng_argv(
        kernel, results, rootdir, [sys.executable, "-m", "tests.vmsystemd.guest", str(results)]
    )
    argv.insert(argv.index("--exec"), "--systemd")
    if os.environ.get("ISCSI_AGENT_VM_DEBUG") == "1":
        argv[argv.index("--exec") : argv.index("--exec")] = [
            "-v",
            "--append",
            "systemd.journald.forward_to_console=1",
        ]
    env = dict(os.environ, HOME=str(home), PATH=f"{Path(sys.executable).parent}:{vmtier._sbin_path()}")
    started = time.monotonic()
    console, exit_code = vmtier.run_vng(argv, env, BOOT_TIMEOUT)
    seconds = time.monotonic() - started
    (results / VM_LOG).write_text(console)
    facts_file, transcript = results / RESULTS_FILE, results / TRANSCRIPT
    return SystemdRun(
        facts=json.loads(facts_file.read_text()) if facts_file.exists() else {},
        transcript=transcript.read_text(errors="replace") if transcript.exists() else "",
        exit_code=exit_code,
        seconds=seconds,
        results_dir=results,
        console_tail=console[-4000:],
        deb_build_error=debs.error,
    )
