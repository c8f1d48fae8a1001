"""The libvirt hook driven by a real libvirtd: `virsh start` attaches a domain's declared volume through
the agent before QEMU opens it, `virsh destroy` detaches it, and a refused start leaves nothing behind.

One libvirtd for the module (its first answer takes 15-22 s under software emulation), started as an
operator's host has it: the agent at its default socket, the tree's hook file in
/etc/libvirt/hooks/qemu.d before libvirtd starts (it looks for hooks only then). The guest's /etc is
the VM's own writable overlay, so the host's /etc never sees the hook.

The module boots a guest of its own, with a deadline of its own: in CI this module twice stopped
answering for the rest of the shared guest's hour (no stack came back; a task in uninterruptible
sleep never sees pytest-timeout's signal), and every later test of the tier was lost with it.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest

from iscsi_agent.ctl import DEFAULT_SOCKET
from iscsi_agent.naa import netapp_wwid
from ontap_sim import Simulator
from ontap_sim.mirror import TgtMirror
from ontap_sim.tgt import Tgtadm
from tests.vm.cleanup import reset_initiator

ROOT = Path(__file__).resolve().parents[2]
SHIPPED_HOOK = ROOT / "libvirt" / "qemu.d" / "iscsi-agent"
INSTALLED_PROGRAM = "/usr/bin/iscsi-agent-libvirt-hook"
HOOK_DIR = Path("/etc/libvirt/hooks/qemu.d")
STATUS_DIR = Path("/run/libvirt/qemu")
MIRROR_TID = 12
# the agent's imports under emulation, beside libvirtd's QEMU probe: over 240 s at load 14
AGENT_START_TIMEOUT = 480.0
LIBVIRTD_START_TIMEOUT = 480.0  # 15-22 s measured idle; over 120 s with the agent starting and other VMs
COMMAND_TIMEOUT = 600.0
CLEANUP_TIMEOUT = 120.0  # a wedged libvirtd must not hold the rest of the tier: 4 calls at 600 s each did
CONNECT = ("virsh", "-c", "qemu:///system")
START = ("start", "--paused")
CALLS_LOG = "hook-calls.log"
# about 7 min alone (boot, the iSCSI stack, libvirtd's probe, the two tests); the waits above allow for load
BOOT_DEADLINE = 30 * 60.0

pytestmark = pytest.mark.vm_boot("libvirt", deadline=BOOT_DEADLINE)


@dataclass
class LibvirtHost:
    sim: Simulator
    socket: Path
    work: Path

    def virsh(self, *args: str, timeout: float = COMMAND_TIMEOUT) -> subprocess.CompletedProcess[str]:
        started = time.monotonic()
        done = subprocess.run([*CONNECT, *args], capture_output=True, text=True, timeout=timeout, check=False)
        print(
            f"$ virsh {' '.join(args)} -> {done.returncode} in {time.monotonic() - started:.1f}s: "
            f"{done.stdout.strip()} {done.stderr.strip()}"
        )
        return done

    def curl(self, method: str, path: str) -> tuple[int, dict]:
        done = subprocess.run(
            [
                "curl",
                "-s",
                "-w",
                "\n%{http_code}",
                "--unix-socket",
                str(self.socket),
                "-X",
                method,
                f"http://agent{path}",
            ],
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
        text, _, status = done.stdout.rpartition("\n")
        print(f"$ curl -X {method} {path} -> {status}: {text}")
        return int(status), json.loads(text)

    def attached(self) -> list[str]:
        status, listed = self.curl("GET", "/v1/attachments")
        assert status == 200, listed
        return [attachment["volume"] for attachment in listed["attachments"]]

    def maps(self, path: str) -> list[str]:
        with self.sim.state.lock:
            lun = self.sim.state.lun("svm1", path=path)
            return [self.sim.state.igroups[m.igroup_uuid].name for m in self.sim.state.maps_of_lun(lun)]

    def by_id(self, path: str) -> Path:
        """The device the agent answers for a LUN: stable, so a domain can name it before the attach."""
        with self.sim.state.lock:
            serial = self.sim.state.lun("svm1", path=path).serial
        return Path(f"/dev/disk/by-id/wwn-0x{netapp_wwid(serial)}")

    def hook_calls(self, domain: str) -> list[str]:
        """The hook's finished calls for ``domain``, in order: ``OP SUBOP EXTRA -> STATUS``."""
        lines = (self.work / CALLS_LOG).read_text().splitlines()
        return [line.split(" ", 2)[2] for line in lines if f" {domain} " in line and " -> " in line]

    def define(self, name: str, volumes: list[str], sources: list[Path]) -> None:
        xml = self.work / f"{name}.xml"
        xml.write_text(domain_xml(name, volumes, sources))
        defined = self.virsh("define", str(xml))
        assert defined.returncode == 0, defined.stderr


def domain_xml(name: str, volumes: list[str], sources: list[Path]) -> str:
    """A NIC-less TCG domain with no OS: enough for QEMU to open its disks. It is started paused
    (``START``): QEMU opens the disks as it starts, and no firmware spins in emulation inside emulation."""
    declared = "".join(f"<ia:volume>{volume}</ia:volume>" for volume in volumes)
    disks = "".join(
        f"<disk type='block' device='disk'><driver name='qemu' type='raw'/><source dev='{source}'/>"
        f"<target dev='vd{chr(ord('a') + index)}' bus='virtio'/></disk>"
        for index, source in enumerate(sources)
    )
    return (
        f"<domain type='qemu'><name>{name}</name><memory unit='MiB'>96</memory><vcpu>1</vcpu>"
        f"<metadata><ia:volumes xmlns:ia='urn:iscsi-agent:libvirt:1'>{declared}</ia:volumes></metadata>"
        "<os><type arch='x86_64' machine='pc'>hvm</type></os>"
        "<devices><emulator>/usr/bin/qemu-system-x86_64</emulator>"
        f"{disks}<serial type='null'/><controller type='usb' model='none'/><memballoon model='none'/>"
        "</devices></domain>"
    )


def install_hook(work: Path) -> Path:
    """The tree's hook file, with the console script it execs swapped for one that runs this tree.

    The package puts the console script at /usr/bin, which the guest sees read-only from the host;
    libvirt scrubs the environment, so the stand-in carries the interpreter and the tree itself. It
    writes each call libvirt makes, and its exit status, to ``CALLS_LOG``.
    """
    program = work / "iscsi-agent-libvirt-hook"
    calls = work / CALLS_LOG
    program.write_text(
        "#!/bin/sh\n"
        f'echo "$(date +%T.%N | cut -c1-12) $* ..." >> {calls}\n'
        f"PYTHONPATH={ROOT} PYTHONDONTWRITEBYTECODE=1 {sys.executable} -c "
        "'import sys; from iscsi_agent.libvirt.hook import main; sys.exit(main())' \"$@\"\n"
        "status=$?\n"
        f'echo "$(date +%T.%N | cut -c1-12) $* -> $status" >> {calls}\n'
        "exit $status\n"
    )
    program.chmod(0o755)
    shipped = SHIPPED_HOOK.read_text()
    assert shipped.count(INSTALLED_PROGRAM) == 1
    HOOK_DIR.mkdir(parents=True, exist_ok=True)
    hook = HOOK_DIR / SHIPPED_HOOK.name
    hook.write_text(shipped.replace(INSTALLED_PROGRAM, str(program)))
    hook.chmod(0o755)
    return hook


def start_agent(work: Path, sim_url: str) -> subprocess.Popen[str]:
    """The daemon with no socket setting: it serves at the default path, where the hook looks."""
    url = urlsplit(sim_url)
    conf = work / "agent.conf"
    conf.touch(mode=0o600)
    conf.write_text(
        f"[agent]\nstate_dir = {work / 'state'}\n"
        f"[array]\nhostname = {url.hostname}\nport = {url.port}\nscheme = http\nusername = admin\n"
        "password = netapp1!\nvserver = svm1\napi = rest\n"
        "[iscsi]\ndevice_timeout = 60\nlogin_timeout = 30\n"
    )
    assert not Path(DEFAULT_SOCKET).exists(), "another agent serves at the default socket"
    with (work / "agent.log").open("w") as log:
        return subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import sys; from iscsi_agent.cli import main; sys.exit(main())",
                "--config",
                str(conf),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            env=dict(os.environ, PYTHONPATH=str(ROOT)),  # this tree's agent, not the venv's installed one
        )


def wait_for_agent(process: subprocess.Popen[str], work: Path, started: float) -> None:
    while not Path(DEFAULT_SOCKET).exists():
        assert process.poll() is None, f"the agent exited: {(work / 'agent.log').read_text()}"
        assert time.monotonic() - started < AGENT_START_TIMEOUT, (work / "agent.log").read_text()
        time.sleep(0.2)
    print(f"the agent serves at {DEFAULT_SOCKET} after {time.monotonic() - started:.1f}s")


def start_libvirtd(work: Path) -> list[subprocess.Popen[bytes]]:
    """virtlogd and libvirtd in the foreground (no systemd in the guest)."""
    Path("/var/log/libvirt/qemu").mkdir(parents=True, exist_ok=True)  # /var/log is an empty tmpfs here
    daemons = []
    for name in ("virtlogd", "libvirtd"):
        with (work / f"{name}.log").open("wb") as log:
            daemons.append(subprocess.Popen([name], stdout=log, stderr=subprocess.STDOUT))
    return daemons


def wait_for_libvirtd(daemons: list[subprocess.Popen[bytes]]) -> None:
    """Until virsh answers: libvirtd probes QEMU's capabilities before its first answer."""
    started = time.monotonic()
    while True:
        for daemon in daemons:
            assert daemon.poll() is None, f"{daemon.args} exited {daemon.returncode}"
        left = LIBVIRTD_START_TIMEOUT - (time.monotonic() - started)
        try:  # virsh waits while libvirtd probes QEMU: one call may take most of the wait
            probe = subprocess.run(
                [*CONNECT, "version"], capture_output=True, text=True, timeout=max(left, 1), check=False
            )
        except subprocess.TimeoutExpired:
            raise AssertionError(f"libvirtd did not answer within {LIBVIRTD_START_TIMEOUT:g}s") from None
        if probe.returncode == 0:
            print(
                f"libvirtd answers after {time.monotonic() - started:.1f}s: {' '.join(probe.stdout.split())}"
            )
            return
        assert time.monotonic() - started < LIBVIRTD_START_TIMEOUT, probe.stderr
        time.sleep(1)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(30)


@pytest.fixture(scope="module")
def libvirt_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LibvirtHost]:
    work = tmp_path_factory.mktemp("libvirt")
    sim = Simulator(tgt=TgtMirror(Tgtadm(backing_dir=work / "backing"), tid=MIRROR_TID))
    started = time.monotonic()
    agent = start_agent(work, sim.start())  # its imports and libvirtd's QEMU probe overlap
    hook = install_hook(work)
    host = LibvirtHost(sim, Path(DEFAULT_SOCKET), work)
    daemons = start_libvirtd(work)
    try:
        wait_for_libvirtd(daemons)
        wait_for_agent(agent, work, started)
        yield host
    finally:
        undefine_test_domains(host)
        for daemon in reversed(daemons):
            stop(daemon)
        hook.unlink()
        stop(agent)
        print(
            f"--- the hook's calls\n{(work / CALLS_LOG).read_text() if (work / CALLS_LOG).exists() else ''}"
        )
        for name in ("libvirtd", "agent"):
            print(f"--- {name} log (tail)\n{(work / f'{name}.log').read_text()[-3000:]}")
        reset_initiator()
        sim.stop()


def undefine_test_domains(host: LibvirtHost) -> None:
    """Best effort, briefly: a libvirtd that stopped answering is asked nothing more (it is stopped next)."""
    for name in ("vm-lun1", "vm-unknown"):
        for action in ("destroy", "undefine"):
            try:
                host.virsh(action, name, timeout=CLEANUP_TIMEOUT)
            except subprocess.TimeoutExpired:
                print(f"$ virsh {action} {name}: no answer within {CLEANUP_TIMEOUT:g}s; libvirtd is stopped")
                return


def qemu_pid(name: str) -> int:
    return int((STATUS_DIR / f"{name}.pid").read_text())


def block_devices_open_by(pid: int) -> set[int]:
    """st_rdev of every block device ``pid`` holds open (QEMU has a private /dev: compare numbers)."""
    held = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            info = os.stat(fd)
        except FileNotFoundError:
            continue
        if stat.S_ISBLK(info.st_mode):
            held.add(info.st_rdev)
    return held


def iscsi_sessions() -> str:
    done = subprocess.run(
        ["iscsiadm", "-m", "session"], capture_output=True, text=True, timeout=60, check=False
    )
    return done.stdout.strip() if done.returncode == 0 else ""


def iscsi_by_path_links() -> list[str]:
    return sorted(link.name for link in Path("/dev/disk/by-path").glob("*iscsi*"))


def test_virsh_start_attaches_the_declared_volume_qemu_holds_it_and_destroy_detaches_it(
    libvirt_host: LibvirtHost,
):
    volume = "/vol/vol1/lun1"
    source = libvirt_host.by_id(volume)
    libvirt_host.define("vm-lun1", [volume], [source])
    assert libvirt_host.attached() == [] and not source.exists()

    started = libvirt_host.virsh(*START, "vm-lun1")
    assert started.returncode == 0, started.stderr
    assert libvirt_host.attached() == [volume]
    assert libvirt_host.maps(volume) != []
    device = source.resolve()
    pid = qemu_pid("vm-lun1")
    assert source.stat().st_rdev in block_devices_open_by(pid), f"qemu (pid {pid}) does not hold {device}"

    status, refused = libvirt_host.curl("DELETE", f"/v1/attachments/{quote(volume, safe='')}")
    assert status == 409 and refused["error"]["code"] == "volume_in_use", refused
    assert "qemu" in refused["error"]["message"] and str(pid) in refused["error"]["message"], refused
    assert libvirt_host.attached() == [volume] and source.exists()

    destroyed = libvirt_host.virsh("destroy", "vm-lun1")
    assert destroyed.returncode == 0, destroyed.stderr
    assert libvirt_host.attached() == []
    assert not source.exists() and not Path("/sys/block", device.name).exists()
    assert iscsi_sessions() == "" and iscsi_by_path_links() == []
    assert libvirt_host.maps(volume) == []
    calls = libvirt_host.hook_calls("vm-lun1")
    assert calls[0] == "prepare begin - -> 0" and calls[-1] == "release end - -> 0", calls
    assert all(call.endswith(" -> 0") for call in calls), calls


def test_a_domain_declaring_an_unknown_volume_fails_to_start_with_the_hooks_line_and_attaches_nothing(
    libvirt_host: LibvirtHost,
):
    known, unknown = "/vol/vol1/lun2", "/vol/vol1/nosuch"
    source = libvirt_host.by_id(known)
    libvirt_host.define("vm-unknown", [known, unknown], [source])

    started = libvirt_host.virsh(*START, "vm-unknown")
    assert started.returncode != 0
    said = started.stderr.partition("unexpected exit status 1: ")[2].strip()
    assert said.startswith("iscsi-agent-libvirt-hook: vm-unknown: volume_not_found: "), started.stderr
    assert unknown in said and f"{known} detached again" in said and "\n" not in said, said
    state = libvirt_host.virsh("domstate", "vm-unknown")
    assert state.stdout.strip() == "shut off"
    assert libvirt_host.attached() == []
    assert not source.exists() and iscsi_sessions() == "" and iscsi_by_path_links() == []
    assert libvirt_host.maps(known) == []
    # libvirt still calls release for the refused domain: never attached is not a failure
    calls = libvirt_host.hook_calls("vm-unknown")
    assert calls[0] == "prepare begin - -> 1" and calls[-1] == "release end - -> 0", calls
