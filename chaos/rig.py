"""What the soak runs against: the simulated array mirrored into the guest's tgtd, and the real daemon
started, killed and started again from one config whose ``multipath`` setting a phase chooses."""

from __future__ import annotations

import signal
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ontap_sim import Simulator
from ontap_sim.mirror import TgtMirror
from ontap_sim.seed import DEFAULT_SEED
from ontap_sim.tgt import Tgtadm
from tests.vmtier.daemon import start

MIRROR_TID = 9
VOLUMES = tuple(f"/vol/vol1/lun{index}" for index in range(16))
SPARES = tuple(f"/vol/spare/lun{index}" for index in range(4))  # only ever mapped behind the agent's back
LUN_SIZE = 64 * 1024 * 1024
# READY=1 comes after start-up recovery, which after a kill mid-burst rolls back up to 16 attaches;
# under software emulation on a busy machine that took longer than 300 s
START_TIMEOUT = 1200.0
INITIATOR_NAME_FILE = Path("/etc/iscsi/initiatorname.iscsi")


def array_seed() -> dict[str, Any]:
    """The default cluster with 16 volumes to attach and 4 spare LUNs to reuse their ids with."""
    svm = dict(DEFAULT_SEED["svms"][0])
    svm["volumes"] = [
        {
            "name": "vol1",
            "node": "node-01",
            "luns": [{"name": f"lun{i}", "size": LUN_SIZE} for i in range(16)],
        },
        {
            "name": "spare",
            "node": "node-01",
            "luns": [{"name": f"lun{i}", "size": LUN_SIZE} for i in range(4)],
        },
    ]
    return {**DEFAULT_SEED, "svms": [svm]}


def initiator_name() -> str:
    for line in INITIATOR_NAME_FILE.read_text().splitlines():
        if line.startswith("InitiatorName="):
            return line.partition("=")[2].strip()
    raise RuntimeError(f"{INITIATOR_NAME_FILE} has no InitiatorName")


@dataclass
class Rig:
    """The array, tgtd and the daemon; ``workdir`` is in the guest's own /tmp (SQLite and the socket
    need a local filesystem), ``logs`` where the daemon's log is copied for the host to read."""

    api: str
    logs: Path
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="iscsi-agent-chaos-")))
    sim: Simulator = field(init=False)
    tgt: Tgtadm = field(init=False)
    process: subprocess.Popen[bytes] | None = None
    multipath: bool = False
    starts: int = 0
    tid: int = MIRROR_TID

    def __post_init__(self) -> None:
        self.tgt = Tgtadm(backing_dir=self.workdir / "backing")
        self.sim = Simulator(seed=array_seed(), tgt=TgtMirror(self.tgt, tid=MIRROR_TID))
        self.initiator = initiator_name()

    @property
    def socket(self) -> Path:
        return self.workdir / "agent.sock"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def open(self) -> None:
        url = urlsplit(self.sim.start())
        self._array = f"hostname = {url.hostname}\nport = {url.port}\n"

    def start_agent(self, multipath: bool) -> dict[str, float]:
        """The daemon with ``multipath``; the reconciler runs only when the soak asks (POST /v1/reconcile)."""
        self.multipath = multipath
        conf = self.workdir / "agent.conf"
        conf.touch(mode=0o600)  # it holds the password: the agent refuses it readable by everyone
        conf.write_text(
            f"[agent]\nsocket = {self.socket}\nstate_dir = {self.workdir / 'state'}\nworkers = 16\n"
            f"[array]\n{self._array}scheme = http\nusername = admin\npassword = netapp1!\n"
            f"vserver = svm1\napi = {self.api}\ntimeout = 8\n"
            f"[iscsi]\nmultipath = {str(multipath).lower()}\ndevice_timeout = 120\nlogin_timeout = 30\n"
            "[reconciler]\ninterval = 86400\n[metrics]\nlisten =\n"
        )
        self.process, figures = start(conf, self.workdir, timeout=START_TIMEOUT)
        self.starts += 1
        return figures

    def kill_agent(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(60)

    def stop_agent(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(120)
            except subprocess.TimeoutExpired:
                self.kill_agent()
        self.process = None

    def agent_alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def close(self) -> None:
        self.stop_agent()
        log = self.workdir / "agent.log"
        if log.exists():
            self.logs.mkdir(parents=True, exist_ok=True)
            (self.logs / "agent.log").write_bytes(log.read_bytes())
        self.sim.stop()
