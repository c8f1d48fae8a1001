"""Runs inside the VM under systemd as PID 1: the agent's units from activation to a clean stop.

Started by vng's serial console once systemd is up. Each phase records what the guest saw, raw
(systemctl's properties, the agent's answers, journal lines), into results.json, and every
command with its output into transcript.log; the host's tests judge them. A failing phase is
recorded and the next one still runs, so one boot answers every question.
Usage: python -m tests.vmsystemd.guest RESULTS_DIR
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import traceback
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from iscsi_agent.array.client import ArrayClient
from iscsi_agent.array.connect import connect
from iscsi_agent.config import parse_config
from iscsi_agent.faults import FAULT_ENV
from iscsi_agent.naa import netapp_wwid
from ontap_sim import Simulator
from ontap_sim.mirror import TgtMirror
from ontap_sim.tgt import Tgtadm
from tests.monitoring.prometheus import start as run_prometheus
from tests.monitoring.test_rules import dashboard_queries
from tests.vm.mirrored import read_direct, write_direct
from tests.vmsystemd.boot import (
    AGENT_CONF,
    DROPIN,
    GUEST_DEBS,
    RESULTS_FILE,
    SIM_PORT,
    START_TIMEOUT_SEC,
    TRANSCRIPT,
)

SERVICE, SOCKET_UNIT = "iscsi-agent.service", "iscsi-agent.socket"
SOCKET = "/run/iscsi-agent/agent.sock"
VOLUME = "/vol/vol1/lun1"
CRASH_VOLUME, CRASH_POINT = "/vol/vol1/lun2", "attach.scan.done"
RECONCILE_VOLUME, MULTIPATH_VOLUME = "/vol/vol1/lun0", "/vol/vol1/lun3"
DEB_VOLUME = VOLUME  # detached by then; the package's agent attaches it again
FAILED_VOLUME = CRASH_VOLUME  # rolled back by then; its map refused by the array: a failed attach
METRICS = "127.0.0.1:9713"  # the agent's default [metrics] listen
PROMETHEUS = "127.0.0.1:9090"
# The shipped unit's watchdog, for the dashboard's run: under load the tier's 5 s one restarted the
# agent between scrapes, and a counter that starts again from zero shows no rate.
SHIPPED_WATCHDOG_SEC = 30
SCRAPED = 5.0  # seconds that Prometheus, scraping every second, is given to see a state
INITIATOR_NAME_FILE = Path("/etc/iscsi/initiatorname.iscsi")
# What the unit's sandbox says when it refuses something (a read-only path, a device, a system call).
DENIED = "Operation not permitted|Permission denied|Read-only file system|EPERM|EACCES|EROFS|SECCOMP"
CTL = str(Path(sys.executable).parent / "iscsi-agentctl")
# As an operator's shell runs them: no PYTHONPATH or venv of this test, so the package's own modules.
CLEAN_ENV = ("env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin")
PACKAGED_CTL = (*CLEAN_ENV, "/usr/bin/iscsi-agentctl")
DPKG = (*CLEAN_ENV, "dpkg")
# What the phases before the package's stage in /etc and /usr/bin (the repo's units, its venv's entry
# point), which would hide the package's own units in /lib and its /usr/bin/iscsi-agent.
STAGED = (
    "/etc/systemd/system/iscsi-agent.socket",
    "/etc/systemd/system/iscsi-agent.service",
    "/etc/systemd/system/sockets.target.wants/iscsi-agent.socket",
    "/usr/bin/iscsi-agent",
)
MARKER_BYTES = 1 << 20
SERVICE_PROPS = "ActiveState,SubState,Result,StatusText,MainPID,NRestarts,ExecMainCode,ExecMainStatus,TriggeredBy,WatchdogUSec,FragmentPath,DropInPaths"
SOCKET_PROPS = "ActiveState,SubState,Listen,Triggers"
BOOT_WAIT = 300.0
RESTART_WAIT = 300.0  # the agent's start alone took 60 s of a loaded TCG guest


class Guest:
    def __init__(self, transcript: TextIO, results: Path) -> None:
        self.out = transcript
        self.facts: dict[str, Any] = {}
        self._results = results

    def sh(self, *argv: str, timeout: float = 120.0) -> tuple[int, str]:
        self.out.write(f"\n$ {' '.join(argv)}\n")
        try:
            done = subprocess.run(
                list(argv),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
            code, text = done.returncode, done.stdout + done.stderr
        except subprocess.TimeoutExpired as exc:
            code, text = -1, f"{exc.stdout or ''}{exc.stderr or ''}[timed out after {timeout:g}s]"
        self.out.write(text if text.endswith("\n") or not text else text + "\n")
        self.out.write(f"[exit {code}]\n")
        self.out.flush()
        return code, text

    def note(self, text: str) -> None:
        self.out.write(f"\n# {text}\n")
        self.out.flush()

    def show(self, unit: str, props: str) -> dict[str, str]:
        _, text = self.sh("systemctl", "show", "-p", props, unit)
        return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)

    def ctl(self, *args: str, timeout: float = 300.0, program: tuple[str, ...] = (CTL,)) -> dict[str, Any]:
        code, text = self.sh(*program, "--socket", SOCKET, "--json", *args, timeout=timeout)
        try:
            answer = json.loads(text)
        except json.JSONDecodeError:
            answer = text
        return {"exit": code, "answer": answer}

    def journal(self, unit: str, pattern: str) -> list[str]:
        """The unit's journal lines (systemd's own about it included) that match ``pattern``."""
        _, text = self.sh("journalctl", "--no-pager", "-o", "short-monotonic", "-u", unit)
        return [line for line in text.splitlines() if re.search(pattern, line)]

    def wait(self, what: str, probe: Callable[[], bool], timeout: float) -> float | None:
        """Seconds until ``probe`` held, or None when it did not within ``timeout``."""
        started = time.monotonic()
        while not probe():
            if time.monotonic() - started > timeout:
                self.note(f"{what}: not within {timeout:g}s")
                return None
            time.sleep(0.5)
        took = time.monotonic() - started
        self.note(f"{what}: after {took:.1f}s")
        return took

    def phase(self, name: str, action: Callable[[], dict[str, Any]]) -> None:
        self.note(f"=== {name} ===")
        try:
            self.facts[name] = action()
        except Exception:  # noqa: BLE001 - recorded for the host's test; the next phase still runs
            self.facts[name] = {"error": traceback.format_exc()}
            self.note(f"{name} failed:\n{traceback.format_exc()}")
        self.record()

    def record(self) -> None:
        """Every fact so far, after each phase: a boot cut short by the host's deadline still tells."""
        (self._results / RESULTS_FILE).write_text(json.dumps(self.facts, indent=2) + "\n")


def boot(guest: Guest) -> dict[str, Any]:
    pid1 = Path("/proc/1/comm").read_text().strip()
    _, running = guest.sh("systemctl", "is-system-running", "--wait", timeout=BOOT_WAIT)
    _, failed = guest.sh("systemctl", "list-units", "--failed", "--no-legend", "--plain")
    _, virt = guest.sh("systemd-detect-virt")
    return {
        "pid1": pid1,
        "system_state": running.strip(),
        "failed_units": failed.strip(),
        "virt": virt.strip(),
    }


def verify(guest: Guest) -> dict[str, Any]:
    code, text = guest.sh("systemd-analyze", "verify", SOCKET_UNIT, SERVICE)
    _, security = guest.sh("systemd-analyze", "security", "--no-pager", SERVICE)
    exposure = [line for line in security.splitlines() if "Overall exposure level" in line]
    return {"exit": code, "output": text.strip(), "exposure": exposure[-1].strip() if exposure else ""}


def before_activation(guest: Guest) -> dict[str, Any]:
    return {"socket": guest.show(SOCKET_UNIT, SOCKET_PROPS), "service": guest.show(SERVICE, SERVICE_PROPS)}


def start_array(guest: Guest) -> tuple[Simulator, dict[str, Any]]:
    guest.sh("ip", "addr", "add", "127.0.0.2/8", "dev", "lo")
    guest.sh("modprobe", "iscsi_tcp")
    units = {
        unit: guest.show(unit, "ActiveState,SubState")
        for unit in ("tgt.service", "iscsid.socket", "multipathd.service")
    }
    guest.wait(
        "tgtd answers",
        lambda: guest.sh("tgtadm", "--lld", "iscsi", "--op", "show", "--mode", "target")[0] == 0,
        60,
    )
    guest.wait("iscsid answers", lambda: guest.sh("iscsiadm", "-m", "session")[0] in (0, 21), 60)
    sim = Simulator(tgt=TgtMirror(Tgtadm(backing_dir=Path("/var/tmp/iscsi-agent-backing")), tid=1))
    url = sim.start(port=SIM_PORT)
    guest.note(f"simulated ONTAP at {url}, mirrored into tgtd target 1")
    return sim, {"units": units, "simulator": url}


def activate(guest: Guest) -> dict[str, Any]:
    """The first connection starts the service (only the socket is enabled)."""
    guest.sh("systemd-analyze", "log-level", "debug")  # PID 1 then logs each notification it gets
    started = time.monotonic()
    status = guest.ctl("status")
    first_answer = time.monotonic() - started
    guest.wait("service active", lambda: guest.show(SERVICE, "ActiveState")["ActiveState"] == "active", 60)
    guest.sh("systemd-analyze", "log-level", "info")
    _, text = guest.sh("systemctl", "status", "--no-pager", "-l", SERVICE)
    return {
        "first_status": status,
        "first_answer_seconds": round(first_answer, 2),
        "service": guest.show(SERVICE, SERVICE_PROPS),
        "socket": guest.show(SOCKET_UNIT, SOCKET_PROPS),
        "systemctl_status": text,
        "notifications": guest.journal(SERVICE, "notification message"),
        "listener": guest.journal(SERVICE, "systemd passed"),
    }


def attach(guest: Guest, sim: Simulator) -> dict[str, Any]:
    with sim.state.lock:
        serial = sim.state.lun("svm1", path=VOLUME).serial
    answer = guest.ctl("attach", VOLUME)
    device = answer["answer"].get("device", "") if isinstance(answer["answer"], dict) else ""
    resolved = os.path.realpath(device) if device else ""
    guest.sh("ls", "-l", device or "/dev/disk/by-id")
    guest.wait(
        "STATUS shows the attachment",
        lambda: "1 attachments" in guest.show(SERVICE, "StatusText")["StatusText"],
        30,
    )
    return {
        "ctl": answer,
        "expected_device": f"/dev/disk/by-id/wwn-0x{netapp_wwid(serial)}",
        "device_exists": bool(device) and os.path.exists(device),
        "resolved": resolved,
        "service": guest.show(SERVICE, SERVICE_PROPS),
    }


def watchdog(guest: Guest) -> dict[str, Any]:
    """SIGSTOP freezes every thread: the pings stop, as they would for a wedged main loop."""
    before = guest.show(SERVICE, SERVICE_PROPS)
    old_pid, old_restarts = int(before["MainPID"]), int(before["NRestarts"])
    if old_pid <= 1:  # kill(0) would stop this script's own process group
        raise RuntimeError(f"the service has no main process to wedge: {before}")
    guest.note(f"SIGSTOP to the agent's main process {old_pid}")
    os.kill(old_pid, signal.SIGSTOP)

    def restarted() -> bool:
        now = guest.show(SERVICE, "ActiveState,MainPID,NRestarts")
        return (
            now["ActiveState"] == "active"
            and now["MainPID"] not in ("0", str(old_pid))
            and int(now["NRestarts"]) > old_restarts
        )

    took = guest.wait("restarted by systemd", restarted, RESTART_WAIT)
    after = guest.show(SERVICE, SERVICE_PROPS)
    guest.sh("ls", "-l", "/run/iscsi-agent")
    listed = guest.ctl("list")
    return {
        "before": before,
        "stopped_pid": old_pid,
        "restart_seconds": took,
        "after": after,
        "journal": guest.journal(
            SERVICE, "atchdog|SIGABRT|Scheduled restart|Main process exited|Started|serving"
        ),
        "list_after": listed,
        "old_pid_gone": not Path(f"/proc/{old_pid}").exists(),
    }


def detach(guest: Guest, device: str) -> dict[str, Any]:
    answer = guest.ctl("detach", VOLUME)
    return {"ctl": answer, "device_gone": not os.path.exists(device) if device else None}


def disks() -> list[str]:
    return sorted(p.name for p in Path("/sys/block").glob("sd*"))


def multipath_maps() -> list[str]:
    return sorted(
        p.parent.name for p in Path("/sys/block").glob("dm-*/dm/uuid") if p.read_text().startswith("mpath-")
    )


def array_client() -> ArrayClient:
    config = parse_config(Path(AGENT_CONF).read_text(), Path(AGENT_CONF))
    return connect(config.array.to_settings())


def reconcile(guest: Guest) -> dict[str, Any]:
    """A backend unmap behind the agent's back leaves a stale disk; a reconciler pass run through the
    socket removes it (flush, sysfs delete) under the unit's sandbox."""
    attached = guest.ctl("attach", RECONCILE_VOLUME)
    device = attached["answer"].get("device", "") if isinstance(attached["answer"], dict) else ""
    stale = Path(os.path.realpath(device)).name if device else ""
    initiator = INITIATOR_NAME_FILE.read_text().partition("InitiatorName=")[2].split()[0]
    array = array_client()
    try:
        igroup = array.igroups_with_initiator(initiator)[0].name
        array.unmap_lun(RECONCILE_VOLUME, igroup)
    finally:
        array.close()
    guest.note(f"unmapped {RECONCILE_VOLUME} from {igroup} behind the agent's back; {stale} stays")
    stale_before = stale in disks()
    passed = guest.ctl("reconcile")
    guest.sh("udevadm", "settle", "--timeout=30")
    detached = guest.ctl("detach", RECONCILE_VOLUME)  # the attachment the unmap left, cleaned up
    return {
        "attach": attached,
        "stale": stale,
        "stale_before": stale_before,
        "reconcile": passed,
        "disks_after": disks(),
        "detach": detached,
    }


@contextmanager
def multipath_on() -> Iterator[None]:
    """``multipath = true`` in the agent's configuration (its last section is [iscsi]) while inside;
    the next phase's restart runs on the plain configuration again."""
    conf = Path(AGENT_CONF)
    plain = conf.read_text()
    conf.write_text(plain + "multipath = true\n")
    try:
        yield
    finally:
        conf.write_text(plain)


def multipath(guest: Guest, sim: Simulator) -> dict[str, Any]:
    """With ``multipath = true`` the agent builds and flushes a dm-multipath map over both portals
    (device-mapper's control node and dm nodes through the unit's device list)."""
    with multipath_on():
        guest.sh("systemctl", "restart", SERVICE, timeout=RESTART_WAIT)
        with sim.state.lock:
            serial = sim.state.lun("svm1", path=MULTIPATH_VOLUME).serial
        attached = guest.ctl("attach", MULTIPATH_VOLUME)
        device = attached["answer"].get("device", "") if isinstance(attached["answer"], dict) else ""
        resolved = os.path.realpath(device) if device else ""
        slaves = (
            sorted(p.name for p in Path(f"/sys/block/{Path(resolved).name}/slaves").glob("*"))
            if resolved
            else []
        )
        guest.sh("multipath", "-ll")
        detached = guest.ctl("detach", MULTIPATH_VOLUME)
        guest.sh("udevadm", "settle", "--timeout=30")
    return {
        "attach": attached,
        "expected_device": f"/dev/mapper/3{netapp_wwid(serial)}",
        "resolved": resolved,
        "slaves": slaves,
        "detach": detached,
        "device_gone": not os.path.exists(device) if device else None,
        "maps_after": multipath_maps(),
        "disks_after": disks(),
    }


def sandbox(guest: Guest) -> dict[str, Any]:
    """Everything the agent and its programs logged that reads as the sandbox refusing them."""
    return {"denied": guest.journal(SERVICE, DENIED)}


def crash(guest: Guest, sim: Simulator) -> dict[str, Any]:
    """The agent killed (SIGKILL, a fault point) half-way through an attach; systemd's restart brings
    it back, and its start-up recovery rolls the attach back before it serves again."""
    dropin = Path(f"/run/systemd/system/{SERVICE}.d/fault.conf")
    dropin.parent.mkdir(parents=True, exist_ok=True)
    dropin.write_text(f"[Service]\nEnvironment={FAULT_ENV}={CRASH_POINT}\n")
    guest.sh("systemctl", "daemon-reload")
    guest.sh("systemctl", "restart", SERVICE, timeout=RESTART_WAIT)
    dropin.unlink()  # the next start (systemd's restart after the crash) runs without it
    guest.sh("systemctl", "daemon-reload")
    before = guest.show(SERVICE, SERVICE_PROPS)
    old_pid, old_restarts = before["MainPID"], int(before["NRestarts"])
    guest.sh("systemd-analyze", "log-level", "debug")  # PID 1 logs the restarted agent's notifications
    killed = guest.ctl("attach", CRASH_VOLUME)

    def restarted() -> bool:
        now = guest.show(SERVICE, "ActiveState,SubState,MainPID,NRestarts")
        return (
            (now["ActiveState"], now["SubState"]) == ("active", "running")
            and now["MainPID"] not in ("0", old_pid)
            and int(now["NRestarts"]) > old_restarts
        )

    took = guest.wait("restarted by systemd after the crash", restarted, RESTART_WAIT)
    guest.sh("systemd-analyze", "log-level", "info")
    with sim.state.lock:
        lun = sim.state.lun("svm1", path=CRASH_VOLUME)
        maps = [sim.state.igroups[m.igroup_uuid].name for m in sim.state.maps_of_lun(lun)]
    guest.sh("iscsiadm", "-m", "session")
    return {
        "before": before,
        "killed_attach": killed,
        "restart_seconds": took,
        "after": guest.show(SERVICE, SERVICE_PROPS),
        "maps_after": maps,
        "sessions_after": sorted(p.name for p in Path("/sys/class/iscsi_session").glob("session*")),
        "disks_after": sorted(p.name for p in Path("/sys/block").glob("sd*")),
        "list_after": guest.ctl("list"),
        "journal": guest.journal(SERVICE, "fault point|recover|rolled back|Main process exited|serving on"),
        "extended": guest.journal(SERVICE, "EXTEND_TIMEOUT_USEC"),
    }


def dashboard(guest: Guest, sim: Simulator) -> dict[str, Any]:
    """Debian's prometheus scraping the agent every second over one run of it (started after the
    agent's last restart, the shipped unit's watchdog in place of the tier's short one): a multipath
    attach held over a reconciler pass that removes a LUN's stale map and paths, an attach the array
    refuses, a detach. Every dashboard query over that run, and every alert rule, as Prometheus
    evaluates them."""
    # Drop-ins apply in the order of their file names, whatever their folder: after the tier's vmtest.conf.
    dropin = Path(f"/run/systemd/system/{SERVICE}.d/zz-dashboard.conf")
    dropin.parent.mkdir(parents=True, exist_ok=True)
    dropin.write_text(f"[Service]\nWatchdogSec={SHIPPED_WATCHDOG_SEC}s\n")
    guest.sh("systemctl", "daemon-reload")
    prometheus: subprocess.Popen[bytes] | None = None
    try:
        with multipath_on():
            guest.sh("systemctl", "restart", SERVICE, timeout=RESTART_WAIT)
            before = guest.show(SERVICE, SERVICE_PROPS)
            prometheus = run_prometheus(Path("/var/tmp/prometheus"), METRICS, PROMETHEUS)
            started = time.time()
            guest.wait("prometheus ready", lambda: _answers(f"http://{PROMETHEUS}/-/ready"), 120)
            held = guest.ctl("attach", MULTIPATH_VOLUME)
            time.sleep(SCRAPED)
            reconciled = reconcile(guest)
            failed = failed_attach(guest, sim)
            released = guest.ctl("detach", MULTIPATH_VOLUME)
            time.sleep(SCRAPED)
            ended = time.time()
            after = guest.show(SERVICE, SERVICE_PROPS)
            queries = {
                expr: _query_range(guest, title, expr, started, ended) for title, expr in dashboard_queries()
            }
            groups = _prometheus_api("rules")["data"]["groups"]
    finally:
        if prometheus is not None:
            prometheus.terminate()
            prometheus.wait(timeout=60)
        dropin.unlink()
        guest.sh("systemctl", "daemon-reload")
    return {
        "before": before,
        "after": after,
        "held": held,
        "reconcile": reconciled,
        "failed_attach": failed,
        "released": released,
        "queries": queries,
        "rules": [
            {"name": rule["name"], "health": rule["health"], "error": rule.get("lastError", "")}
            for group in groups
            for rule in group["rules"]
        ],
    }


def failed_attach(guest: Guest, sim: Simulator) -> dict[str, Any]:
    """An attach the array refuses to map, over both of its APIs."""
    sim.faults.inject("POST /api/protocols/san/lun-maps", "errno", times=None)
    sim.faults.inject("lun-map", "errno", times=None)
    try:
        return guest.ctl("attach", FAILED_VOLUME)
    finally:
        sim.faults.clear()


def _query_range(guest: Guest, title: str, expr: str, start: float, end: float) -> dict[str, Any]:
    answer = _prometheus_api("query_range", query=expr, start=f"{start:.0f}", end=f"{end:.0f}", step="1")
    shown = {
        "title": title,
        "status": answer.get("status"),
        "error": answer.get("error", ""),
        "series": len(answer.get("data", {}).get("result", [])),
    }
    guest.note(f"{title}: {shown['status']}, {shown['series']} series: {expr}")
    return shown


def _prometheus_api(path: str, **params: str) -> dict[str, Any]:
    query = f"?{urllib.parse.urlencode(params)}" if params else ""
    with urllib.request.urlopen(f"http://{PROMETHEUS}/api/v1/{path}{query}", timeout=60) as answer:
        return json.loads(answer.read())  # type: ignore[no-any-return]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5):
            return True
    except OSError:
        return False


def stop(guest: Guest) -> dict[str, Any]:
    guest.sh("systemd-analyze", "log-level", "debug")
    code, _ = guest.sh("systemctl", "stop", SERVICE, timeout=120)
    guest.sh("systemd-analyze", "log-level", "info")
    _, text = guest.sh("systemctl", "status", "--no-pager", "-l", SERVICE)
    return {
        "exit": code,
        "service": guest.show(SERVICE, SERVICE_PROPS),
        "socket": guest.show(SOCKET_UNIT, SOCKET_PROPS),
        "systemctl_status": text,
        "stopping": guest.journal(SERVICE, "STOPPING=1|stopping|stopped|Deactivated|Stopped"),
    }


def staged_deb(folder: str) -> Path:
    (deb,) = Path(GUEST_DEBS, folder).glob("*.deb")
    return deb


def main_command(pid: str) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1] if pid not in ("", "0") else []


def deb_install(guest: Guest) -> dict[str, Any]:
    """From the .deb alone, as on a compute host. What the phases before staged goes first; the
    configuration they used stays, as the package's conffile (``--force-confold``)."""
    guest.sh("systemctl", "stop", SERVICE, SOCKET_UNIT, timeout=120)
    for staged in STAGED:
        Path(staged).unlink(missing_ok=True)
    # This machine's image forbids maintainer scripts to start services (a container's policy-rc.d);
    # a compute host has none. man-db's trigger would run mandb in the background for minutes under
    # emulation, holding dpkg's output open.
    Path("/usr/sbin/policy-rc.d").unlink(missing_ok=True)
    Path("/var/lib/man-db/auto-update").unlink(missing_ok=True)
    # The package's agent runs with its own unit's watchdog; only the emulated guest's slow start stays.
    Path(DROPIN).write_text(f"[Service]\nTimeoutStartSec={START_TIMEOUT_SEC}s\n")
    guest.sh("systemctl", "daemon-reload")
    code, output = guest.sh(*DPKG, "-i", "--force-confold", str(staged_deb("first")), timeout=600)
    socket = guest.show(SOCKET_UNIT, SOCKET_PROPS + ",UnitFileState,FragmentPath")
    enabled, _ = guest.sh("systemctl", "enable", "--now", SERVICE, timeout=RESTART_WAIT)
    service = guest.show(SERVICE, SERVICE_PROPS)
    attached = guest.ctl("attach", DEB_VOLUME, program=PACKAGED_CTL)
    device = attached["answer"].get("device", "") if isinstance(attached["answer"], dict) else ""
    marker = os.urandom(MARKER_BYTES)
    if device:
        write_direct(Path(device), 0, marker)
    _, owner = guest.sh("dpkg", "-S", "/usr/bin/iscsi-agent")
    return {
        "dpkg": {"exit": code, "output": output},
        "socket": socket,
        "enable_exit": enabled,
        "service": service,
        "main_command": main_command(service["MainPID"]),
        "entry_point_owner": owner.strip(),
        "conf_mode": oct(Path(AGENT_CONF).stat().st_mode & 0o7777),
        "state_mode": oct(Path("/var/lib/iscsi-agent").stat().st_mode & 0o7777),
        "attach": attached,
        "device": device,
        "written_sha256": hashlib.sha256(marker).hexdigest(),
    }


def sessions() -> list[str]:
    return sorted(p.name for p in Path("/sys/class/iscsi_session").glob("session*"))


def deb_upgrade(guest: Guest, device: str) -> dict[str, Any]:
    """The next release over the running one, the volume attached and written, while a client asks."""
    before = guest.show(SERVICE, SERVICE_PROPS)
    socket_before = guest.show(SOCKET_UNIT, "InvocationID,ActiveState")
    sessions_before = sessions()
    client = subprocess.Popen(  # started now, it asks while dpkg unpacks and restarts the service
        [*CLEAN_ENV, "sh", "-c", f"sleep 3; exec /usr/bin/iscsi-agentctl --socket {SOCKET} --json list"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    code, output = guest.sh(*DPKG, "-i", "--force-confold", str(staged_deb("upgrade")), timeout=600)
    client_output, _ = client.communicate(timeout=RESTART_WAIT)

    def taken_over() -> bool:
        now = guest.show(SERVICE, "ActiveState,SubState,MainPID")
        return (now["ActiveState"], now["SubState"]) == ("active", "running") and now["MainPID"] not in (
            "0",
            before["MainPID"],
        )

    took = guest.wait("the new agent serves", taken_over, RESTART_WAIT)
    _, version = guest.sh("dpkg-query", "-W", "-f=${Version}", "iscsi-agent")
    read = read_direct(Path(device), 0, MARKER_BYTES) if device else b""
    return {
        "dpkg": {"exit": code, "output": output},
        "version": version.strip(),
        "before": before,
        "after": guest.show(SERVICE, SERVICE_PROPS),
        "takeover_seconds": took,
        "socket_before": socket_before,
        "socket_after": guest.show(SOCKET_UNIT, "InvocationID,ActiveState"),
        "sessions_before": sessions_before,
        "sessions_after": sessions(),
        "client_during": {"exit": client.returncode, "output": client_output},
        "list_after": guest.ctl("list", program=PACKAGED_CTL),
        "read_sha256": hashlib.sha256(read).hexdigest(),
    }


def deb_remove(guest: Guest, device: str) -> dict[str, Any]:
    """``apt remove`` stops the agent and detaches nothing; ``purge`` keeps a journal that records an
    attachment."""
    sessions_before = sessions()
    removed, removed_output = guest.sh(*DPKG, "-r", "iscsi-agent", timeout=600)
    service = guest.show(SERVICE, "ActiveState,SubState,LoadState")
    socket = guest.show(SOCKET_UNIT, "ActiveState,SubState,LoadState")
    still_there = bool(device) and os.path.exists(device)
    purged, purged_output = guest.sh(*DPKG, "--purge", "iscsi-agent", timeout=600)
    return {
        "remove": {"exit": removed, "output": removed_output},
        "service_after_remove": service,
        "socket_after_remove": socket,
        "device_after_remove": still_there,
        "sessions_before": sessions_before,
        "sessions_after": sessions(),
        "purge": {"exit": purged, "output": purged_output},
        "journal_kept": Path("/var/lib/iscsi-agent/journal.sqlite3").exists(),
        "conf_dir_after_purge": Path(AGENT_CONF).parent.exists(),
    }


def main(results: Path) -> int:
    with (results / TRANSCRIPT).open("w") as transcript:
        guest = Guest(transcript, results)
        guest.phase("boot", lambda: boot(guest))
        guest.phase("verify", lambda: verify(guest))
        guest.phase("before_activation", lambda: before_activation(guest))
        sim: Simulator | None = None
        try:
            sim, array = start_array(guest)
            guest.facts["array"] = array
        except Exception:  # noqa: BLE001 - without an array the unit checks still run
            guest.facts["array"] = {"error": traceback.format_exc()}
        guest.phase("activate", lambda: activate(guest))
        if sim is not None:
            guest.phase("attach", lambda: attach(guest, sim))
        guest.phase("watchdog", lambda: watchdog(guest))
        device = guest.facts.get("attach", {}).get("expected_device", "")
        guest.phase("detach", lambda: detach(guest, device))
        if sim is not None:
            guest.phase("reconcile", lambda: reconcile(guest))
            guest.phase("multipath", lambda: multipath(guest, sim))
            guest.phase("crash", lambda: crash(guest, sim))
            guest.phase("dashboard", lambda: dashboard(guest, sim))
        guest.phase("stop", lambda: stop(guest))
        guest.phase("sandbox", lambda: sandbox(guest))
        if sim is not None and Path(GUEST_DEBS, "upgrade").is_dir():
            guest.phase("deb_install", lambda: deb_install(guest))
            deb_device = guest.facts["deb_install"].get("device", "")
            guest.phase("deb_upgrade", lambda: deb_upgrade(guest, deb_device))
            guest.phase("deb_remove", lambda: deb_remove(guest, deb_device))
        with (results / "journal.txt").open("w") as journal:
            subprocess.run(
                ["journalctl", "-b", "--no-pager", "-o", "short-monotonic"],
                stdout=journal,
                stderr=subprocess.STDOUT,
                timeout=300,
                check=False,
            )
        if sim is not None:
            sim.stop()
    guest.record()
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
