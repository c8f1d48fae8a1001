"""The real daemon on a real kernel, driven only through its contract: the socket API, iscsi-agentctl,
curl and the metrics endpoint, with the simulator (ZAPI and REST) mapping LUNs through a real tgtd.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import urlopen

import pytest

from iscsi_agent.naa import netapp_wwid
from ontap_sim import Simulator
from ontap_sim.mirror import TgtMirror
from ontap_sim.tgt import Tgtadm
from tests.vm.cleanup import reset_initiator
from tests.vmtier.daemon import tree_env

MIRROR_TID = 4
BIN = Path(sys.executable).parent
START_TIMEOUT = 240.0  # Python's imports alone take a while under software emulation


@dataclass
class RunningAgent:
    sim: Simulator
    socket: Path
    metrics_url: str
    process: subprocess.Popen[str]
    log: Path

    def ctl(self, *args: str) -> tuple[int, dict | str]:
        done = subprocess.run(
            [str(BIN / "iscsi-agentctl"), "--socket", str(self.socket), "--json", *args],
            env=tree_env(),
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        print(
            f"iscsi-agentctl {' '.join(args)} -> {done.returncode}: {done.stdout.strip()} {done.stderr.strip()}"
        )
        try:
            return done.returncode, json.loads(done.stdout)
        except json.JSONDecodeError:
            return done.returncode, done.stdout + done.stderr

    def curl(self, method: str, path: str, body: str | None = None) -> tuple[int, dict]:
        argv = ["curl", "-s", "-w", "\n%{http_code}", "--unix-socket", str(self.socket), "-X", method]
        if body is not None:
            argv += ["-H", "Content-Type: application/json", "-d", body]
        done = subprocess.run(
            [*argv, f"http://agent{path}"], capture_output=True, text=True, timeout=600, check=False
        )
        text, _, status = done.stdout.rpartition("\n")
        return int(status), json.loads(text)

    def maps(self, path: str) -> list[str]:
        with self.sim.state.lock:
            lun = self.sim.state.lun("svm1", path=path)
            return [self.sim.state.igroups[m.igroup_uuid].name for m in self.sim.state.maps_of_lun(lun)]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(params=["zapi", "rest"])
def agent(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RunningAgent]:
    tgt = Tgtadm(backing_dir=tmp_path / "backing")
    sim = Simulator(tgt=TgtMirror(tgt, tid=MIRROR_TID))
    url = urlsplit(sim.start())
    sock, port = tmp_path / "agent.sock", free_port()
    conf = tmp_path / "agent.conf"
    conf.touch(mode=0o600)  # it holds the password: the agent refuses it readable by everyone
    conf.write_text(
        f"[agent]\nsocket = {sock}\nstate_dir = {tmp_path / 'state'}\n"
        f"[array]\nhostname = {url.hostname}\nport = {url.port}\nscheme = http\nusername = admin\n"
        f"password = netapp1!\nvserver = svm1\napi = {request.param}\n"
        f"[iscsi]\ndevice_timeout = 60\nlogin_timeout = 30\n[metrics]\nlisten = 127.0.0.1:{port}\n"
    )
    log = tmp_path / "agent.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [str(BIN / "iscsi-agent"), "--config", str(conf)],
            env=tree_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
    try:
        started = time.monotonic()
        while not sock.exists():
            assert process.poll() is None, f"the agent exited: {log.read_text()}"
            assert time.monotonic() - started < START_TIMEOUT, (
                f"no socket after {START_TIMEOUT}s: {log.read_text()}"
            )
            time.sleep(0.1)
        print(f"the agent serves after {time.monotonic() - started:.1f}s")
        yield RunningAgent(sim, sock, f"http://127.0.0.1:{port}/metrics", process, log)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(60)
        print(log.read_text()[-3000:])
        reset_initiator()
        sim.stop()


def test_attach_write_read_list_detach_through_the_socket(agent: RunningAgent):
    code, answer = agent.ctl("attach", "/vol/vol1/lun1")
    assert code == 0, answer
    assert isinstance(answer, dict)
    device = Path(answer["device"])
    with agent.sim.state.lock:
        serial = agent.sim.state.lun("svm1", path="/vol/vol1/lun1").serial
    assert device == Path(f"/dev/disk/by-id/wwn-0x{netapp_wwid(serial)}")
    info = answer["connection_info"]
    assert info["driver_volume_type"] == "iscsi" and info["data"]["target_lun"] == answer["lun_id"]
    payload = os.urandom(8192)
    with open(device, "r+b", buffering=0) as disk:
        disk.write(payload)
        os.fsync(disk.fileno())
    with open(device, "rb", buffering=0) as disk:
        assert disk.read(8192) == payload

    status, listed = agent.curl("GET", "/v1/attachments")
    assert status == 200 and [a["volume"] for a in listed["attachments"]] == ["/vol/vol1/lun1"]
    status, again = agent.curl("POST", "/v1/attachments", '{"volume": "lun1"}')
    assert status == 200 and again["device"] == answer["device"]
    status, health = agent.curl("GET", "/v1/health")
    assert status == 200 and health["status"] == "ok" and health["sessions"] == 1
    code, planned = agent.ctl("reconcile", "--dry-run")
    assert code == 0 and planned == {"actions": []}, planned
    status, reconciled = agent.curl("POST", "/v1/reconcile", '{"dry_run": false}')
    assert status == 200 and reconciled == {"actions": []}, reconciled
    status, health = agent.curl("GET", "/v1/health")
    assert health["last_reconcile"] is not None and health["problems"] == []

    metrics = urlopen(agent.metrics_url, timeout=10).read().decode()
    assert 'iscsi_agent_operations_total{code="",operation="attach",outcome="ok"} 1.0' in metrics
    assert "iscsi_agent_attached_volumes 1.0" in metrics
    assert "iscsi_agent_stale_devices_held 0.0" in metrics
    assert 'iscsi_agent_reconcile_pass_duration_seconds_count{outcome="ok"}' in metrics
    assert 'iscsi_agent_array_requests_total{api="' in metrics and 'result="ok"}' in metrics
    assert (
        'iscsi_agent_commands_total{exit_code="0",operation="node-login",program="iscsiadm"} 1.0' in metrics
    )
    checked = subprocess.run(
        ["promtool", "check", "metrics"], input=metrics, capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr

    code, detached = agent.ctl("detach", "/vol/vol1/lun1")  # iscsi-agentctl percent-encodes it
    assert code == 0 and detached == {"volume": "/vol/vol1/lun1", "detached": True}
    assert not device.exists() and agent.maps("/vol/vol1/lun1") == []
    status, refused = agent.curl("DELETE", "/v1/attachments/%2Fvol%2Fvol1%2Flun1")
    assert status == 404 and refused["error"]["code"] == "not_attached"
    status, forced = agent.curl("DELETE", "/v1/attachments/lun1?force=true")
    assert status == 200 and forced["detached"] is True


def test_bad_requests_get_json_errors_and_the_agent_keeps_serving(agent: RunningAgent):
    status, body = agent.curl("POST", "/v1/attachments", "{not json")
    assert status == 400 and body["error"]["code"] == "bad_request"
    status, body = agent.curl("POST", "/v1/attachments", '{"volume": "no-such-lun"}')
    assert status == 404 and body["error"]["code"] == "volume_not_found"
    with socket.socket(socket.AF_UNIX) as raw:
        raw.connect(str(agent.socket))
        raw.sendall(b"\x00\xffgarbage\r\n\r\n")
        assert raw.recv(4096).startswith(b"HTTP/1.1 400")
    status, body = agent.curl("GET", "/v1/health")
    assert status == 200


def test_sigterm_stops_the_agent_cleanly(agent: RunningAgent):
    agent.process.send_signal(signal.SIGTERM)
    assert agent.process.wait(60) == 0
    assert not agent.socket.exists()
