"""Inside the VM: the iSCSI stack, the simulated array with a few volumes, the agent, and the demo steps.

Every step prints what it did and how long it took; the first failing step ends the demo with a
non-zero exit code. Only the agent's contract is used: iscsi-agentctl, the socket and /metrics.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from urllib.request import urlopen

from ontap_sim import Simulator
from ontap_sim.mirror import TgtMirror
from ontap_sim.tgt import Tgtadm
from tests.vmtier.guest import start_stack

BIN = Path(sys.executable).parent
VOLUMES = ["/vol/vol1/lun0", "/vol/vol1/lun1", "/vol/vol1/lun2"]
METRICS_PORT = 9713
START_TIMEOUT = 300.0


class DemoFailed(Exception):
    pass


def step(title: str, action: Callable[[], str]) -> str:
    started = time.monotonic()
    try:
        said = action()
    except Exception as exc:
        print(f"FAILED  {title} ({time.monotonic() - started:.2f} s): {exc}", flush=True)
        raise DemoFailed(title) from exc
    print(f"ok      {title} ({time.monotonic() - started:.2f} s)\n        {said}", flush=True)
    return said


def ctl(socket: Path, *args: str) -> Any:
    done = subprocess.run(
        [str(BIN / "iscsi-agentctl"), "--socket", str(socket), "--json", *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"iscsi-agentctl {' '.join(args)}: {done.stderr.strip()}")
    return json.loads(done.stdout)


def run(*argv: str) -> str:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=120, check=False).stdout


def main(results: Path) -> int:
    with (results / "stack.log").open("w") as log:
        step(
            "iSCSI stack up (udevd, iscsi_tcp, tgtd, iscsid, multipathd)", lambda: start_stack(log) or "ready"
        )
    tgt = Tgtadm(backing_dir=results / "backing")
    sim = Simulator(tgt=TgtMirror(tgt, tid=1))
    url = urlsplit(step("simulated ONTAP (REST and ZAPI) mirroring into tgtd", sim.start))
    # SQLite's WAL and a Unix socket need a local filesystem: the results folder is the host's (9p)
    local = Path(tempfile.mkdtemp(prefix="iscsi-agent-demo-"))
    socket, state = local / "agent.sock", local / "state"
    conf = local / "agent.conf"  # root's and private: it holds the password
    conf.touch(mode=0o600)
    conf.write_text(
        f"[agent]\nsocket = {socket}\nstate_dir = {state}\n"
        f"[array]\nhostname = {url.hostname}\nport = {url.port}\nscheme = http\nusername = admin\n"
        f"password = netapp1!\nvserver = svm1\n[iscsi]\ndevice_timeout = 60\n"
        # the demo shows the pass it asks for; a scheduled one landing first would do its work unseen
        "[reconciler]\ninterval = 86400\n"
        f"[metrics]\nlisten = 127.0.0.1:{METRICS_PORT}\n"
    )
    log = (results / "agent.log").open("w")
    agent = subprocess.Popen(
        [str(BIN / "iscsi-agent"), "--config", str(conf)], stdout=log, stderr=subprocess.STDOUT
    )
    try:
        return _steps(socket, sim, agent)
    except DemoFailed:
        print((results / "agent.log").read_text()[-3000:], flush=True)
        return 1
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(60)
        sim.stop()


def _steps(socket: Path, sim: Simulator, agent: subprocess.Popen[bytes]) -> int:
    def started() -> str:
        deadline = time.monotonic() + START_TIMEOUT
        while not socket.exists():
            if agent.poll() is not None:
                raise RuntimeError(f"the agent exited with {agent.returncode} (its log follows)")
            if time.monotonic() > deadline:
                raise RuntimeError(f"no socket after {START_TIMEOUT:g} s")
            time.sleep(0.1)
        return f"listening on {socket} (Python's start-up is slow under software emulation)"

    step("iscsi-agent started", started)
    first: dict[str, Any] = {}

    def attach_one() -> str:
        first.update(ctl(socket, "attach", VOLUMES[0]))
        real = Path(first["device"]).resolve()
        return f"{VOLUMES[0]} -> {first['device']} ({real}), LUN {first['lun_id']}, via {first['portals']}"

    step("attach one volume (iscsi-agentctl attach)", attach_one)

    def write_read() -> str:
        payload = os.urandom(1 << 20)
        with open(first["device"], "r+b", buffering=0) as disk:
            disk.write(payload)
            os.fsync(disk.fileno())
        with open(first["device"], "rb", buffering=0) as disk:
            if disk.read(len(payload)) != payload:
                raise RuntimeError("read back differs")
        return f"1 MiB written to {first['device']} and read back identical"

    step("write and read back data on the device", write_read)

    def attach_two() -> str:
        with ThreadPoolExecutor(2) as pool:
            answers = list(pool.map(lambda volume: ctl(socket, "attach", volume), VOLUMES[1:]))
        return "; ".join(f"{a['volume']} -> {Path(a['device']).resolve()} LUN {a['lun_id']}" for a in answers)

    step("attach two more in parallel", attach_two)

    step(
        f"{VOLUMES[-1]} unmapped behind the agent's back; iscsi-agentctl reconcile",
        lambda: _stale_device_removed(socket, sim),
    )

    def metrics() -> str:
        text = urlopen(f"http://127.0.0.1:{METRICS_PORT}/metrics", timeout=10).read().decode()
        wanted = (
            "iscsi_agent_operations_total",
            "iscsi_agent_attached_volumes",
            "iscsi_agent_sessions{",
            "iscsi_agent_reconcile_actions_total",
        )
        return "\n        ".join(line for line in text.splitlines() if line.startswith(wanted))

    step("metrics (/metrics)", metrics)
    step("status (iscsi-agentctl status)", lambda: json.dumps(ctl(socket, "status")))

    def detach_all() -> str:
        for volume in VOLUMES:
            ctl(socket, "detach", volume)
        return f"detached {', '.join(VOLUMES)}"

    step("detach everything", detach_all)

    step("nothing is left", lambda: _nothing_left(sim))
    print("demo: every step passed", flush=True)
    return 0


def _stale_device_removed(socket: Path, sim: Simulator) -> str:
    volume = VOLUMES[-1]
    with sim.state.lock:  # the array unmaps it behind the agent's back; the host keeps its disk
        state = sim.state
        lun = state.lun("svm1", path=volume)
        for lun_map in state.maps_of_lun(lun):
            state.unmap_lun(lun, state.igroups[lun_map.igroup_uuid])
    actions = ctl(socket, "reconcile")["actions"]
    if not any(a["action"] == "remove_device" and a["done"] for a in actions):
        raise RuntimeError(f"the reconciler removed no stale device: {actions}")
    return "\n        ".join(
        f"{a['action']} {a['target']} ({a['reason']}, done: {a['done']})" for a in actions
    )


def _nothing_left(sim: Simulator) -> str:
    sessions = run("iscsiadm", "-m", "session").strip()
    disks = sorted(path.name for path in Path("/sys/block").glob("sd*"))
    links = (
        sorted(path.name for path in Path("/dev/disk/by-path").glob("*iscsi*"))
        if Path("/dev/disk/by-path").exists()
        else []
    )
    with sim.state.lock:
        maps = len(sim.state.maps)
    left = {"sessions": sessions, "disks": disks, "by-path links": links, "maps": maps}
    if sessions or disks or links or maps:
        raise RuntimeError(f"left behind: {left}")
    return "no session, no SCSI disk, no by-path link, no map on the array"


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
