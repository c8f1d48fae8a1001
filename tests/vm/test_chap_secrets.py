"""The CHAP secret never reaches a command line or an environment another user can read.

While the agent attaches and detaches with CHAP on a real kernel, an unprivileged uid (65534, as any
local user could) reads /proc/*/cmdline and /proc/*/environ of every process as fast as it can and
reports every process where the secret shows. It must see iscsiadm running, and the secret nowhere;
iscsiadm still reads the secret back from the node record, and the CHAP logins succeed.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from iscsi_agent.array.settings import ApiChoice
from iscsi_agent.host.iscsiadm import parse_records
from tests.vm.agent_host import AgentHost, agent_host

MIRROR_TID = 4
CHAP_USER = "compute-7"
SECRET = "vm-chap-Secret-7f3a91"
NOBODY = ("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups")
NODES = Path("/etc/iscsi/nodes")
# The simulated array's tgtd takes its CHAP accounts on tgtadm's command line: the array's side, not
# the host's (a real array keeps them in its own memory).
ARRAY_SIDE = ("tgtadm",)

# Reads the secret from stdin (never from its own argv), then polls /proc until SIGTERM and prints
# a JSON report: passes made, iscsiadm processes whose command line it read, and every hit. It runs
# niced, so the guest's udev still gets the CPU it needs to make the attaches' links in time.
WATCHER = r"""
import json, os, signal, sys
os.nice(10)
secret = sys.stdin.readline().rstrip("\n").encode()
stop = []
signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
print("ready", flush=True)
passes, iscsiadm, hits, denied = 0, set(), [], 0
while not stop:
    passes += 1
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or pid == str(os.getpid()):
            continue
        for name in ("cmdline", "environ"):
            try:
                with open(f"/proc/{pid}/{name}", "rb") as f:
                    data = f.read()
            except PermissionError:
                denied += 1
                continue
            except OSError:
                continue
            if name == "cmdline" and b"iscsiadm" in data.split(b"\0")[0]:
                iscsiadm.add(pid)
            if secret in data:
                hits.append({"pid": pid, "file": name, "program": data.split(b"\0")[0].decode(errors="replace")})
print(json.dumps({"passes": passes, "iscsiadm": len(iscsiadm), "hits": hits, "denied": denied}), flush=True)
"""


@pytest.fixture
def agent(tmp_path: Path, initiator_iqn: str) -> Iterator[AgentHost]:
    secret_file = tmp_path / "chap.secret"
    secret_file.write_text(SECRET + "\n")
    secret_file.chmod(0o600)
    extra = f"chap_username = {CHAP_USER}\nchap_secret_file = {secret_file}\n"
    with agent_host(ApiChoice.REST, tmp_path / "state", initiator_iqn, MIRROR_TID, extra) as host:
        yield host


class Watcher:
    """The unprivileged /proc poller, started before the attaches and stopped after them."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [*NOBODY, "/usr/bin/python3", "-I", "-S", "-c", WATCHER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd="/",
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(SECRET + "\n")
        self.process.stdin.flush()
        assert self.process.stdout.readline().strip() == "ready"

    def report(self) -> dict:
        self.process.send_signal(signal.SIGTERM)
        out, _ = self.process.communicate(timeout=60)
        report = json.loads(out.strip().splitlines()[-1])
        print(f"watcher (uid 65534): {report}")
        return report


def stored_record(iqn: str, portal: str) -> dict[str, str]:
    """The node record as iscsiadm reads it, secrets shown (-S)."""
    done = subprocess.run(
        ["iscsiadm", "-m", "node", "-T", iqn, "-p", portal, "-o", "show", "-S"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    (record,) = parse_records(done.stdout)
    return record


def test_an_unprivileged_user_polling_proc_never_sees_the_chap_secret_during_chap_attaches(agent: AgentHost):
    watcher = Watcher()
    try:
        first, _ = agent.service.attach("/vol/vol1/lun1")
        agent.service.detach("lun1", force=False)
        second, _ = agent.service.attach("/vol/vol1/lun1")
    finally:
        report = watcher.report()
    print(f"attached {first.device} then {second.device} as {second.auth_username}")
    assert report["iscsiadm"] > 0, "the watcher never saw iscsiadm run: it proves nothing"
    assert [hit for hit in report["hits"] if Path(hit["program"]).name not in ARRAY_SIDE] == []
    # iscsiadm reads the record back with the secret, and the CHAP login it made worked
    iqn, portal = second.target_iqn, str(second.portals[0])
    record = stored_record(iqn, portal)
    assert (record["node.session.auth.authmethod"], record["node.session.auth.username"]) == (
        "CHAP",
        CHAP_USER,
    )
    assert record["node.session.auth.password"] == SECRET
    for path in (NODES / iqn).rglob("*"):
        if path.is_file():
            assert stat.S_IMODE(os.stat(path).st_mode) & 0o077 == 0, f"{path} is readable by others"


# -- mutual CHAP and rotation --------------------------------------------------------------------

MUTUAL_TID = 5
TARGET_USER = "svm1-target"
ROTATIONS = {  # file name -> (secret before, secret after)
    "chap.secret": ("vm-mutual-In-0ld-4c1", "vm-mutual-In-n3w-9d2"),
    "chap-target.secret": ("vm-mutual-Out-0ld-7e5", "vm-mutual-Out-n3w-2b8"),
}


def write_secret(path: Path, secret: str) -> None:
    """As an operator rotates: a new 0600 file beside the old one, renamed over it."""
    new = path.with_name(path.name + ".new")
    new.write_text(secret + "\n")
    new.chmod(0o600)
    new.replace(path)


@pytest.fixture
def mutual(tmp_path: Path, initiator_iqn: str) -> Iterator[tuple[AgentHost, Path]]:
    for name, (before, _) in ROTATIONS.items():
        write_secret(tmp_path / name, before)
    extra = (
        f"chap_username = {CHAP_USER}\nchap_secret_file = {tmp_path / 'chap.secret'}\n"
        f"chap_target_username = {TARGET_USER}\nchap_target_secret_file = {tmp_path / 'chap-target.secret'}\n"
    )
    with agent_host(ApiChoice.ZAPI, tmp_path / "state", initiator_iqn, MUTUAL_TID, extra) as host:
        yield host, tmp_path


def iscsi_sessions() -> dict[str, str]:
    """Session name -> ``targetname`` of every session the kernel has."""
    folder = Path("/sys/class/iscsi_session")
    return {entry.name: (entry / "targetname").read_text().strip() for entry in sorted(folder.iterdir())}


def wait_for(path: str, seconds: float = 90) -> bool:
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if Path(path).exists():
            return True
        time.sleep(0.5)
    return False


def test_mutual_chap_attaches_and_a_rotation_reaches_new_logins_while_the_session_keeps_running(mutual):
    """Rotated secrets reach the array, the node records, a login again after the session dropped, and a
    login through a new portal; the session logged in before the rotation keeps running meanwhile."""
    agent, folder = mutual
    first, _ = agent.service.attach("/vol/vol1/lun1")
    iqn, portal = first.target_iqn, str(first.portals[0])
    shown = agent.tgt.show()
    assert f"{TARGET_USER} (outgoing)" in shown, shown  # tgtd answers the host's challenge
    record = stored_record(iqn, portal)
    old_in, old_out = (before for before, _ in ROTATIONS.values())
    assert (record["node.session.auth.password"], record["node.session.auth.username_in"]) == (
        old_in,
        TARGET_USER,
    )
    assert record["node.session.auth.password_in"] == old_out
    sessions = iscsi_sessions()
    print(f"mutual CHAP login: {sessions}")

    for name, (_, after) in ROTATIONS.items():
        write_secret(folder / name, after)
    new_in, new_out = (after for _, after in ROTATIONS.values())
    second, _ = agent.service.attach("/vol/vol1/lun2")
    assert iscsi_sessions() == sessions, "the session logged in before the rotation keeps running"
    with agent.sim.state.lock:
        entry = agent.sim.state.chap[("svm1", agent.initiator)]
    assert (entry.inbound_password, entry.outbound_password) == (new_in, new_out)
    record = stored_record(iqn, portal)
    assert (record["node.session.auth.password"], record["node.session.auth.password_in"]) == (
        new_in,
        new_out,
    )
    assert Path(first.device).exists() and Path(second.device).exists()

    # the session drops (logged out here; iscsid giving it up after an outage looks the same):
    # the reconciler logs in again from the record, with the new secrets tgtd now requires
    subprocess.run(["iscsiadm", "-m", "node", "-T", iqn, "-p", portal, "--logout"], check=True, timeout=60)
    assert iscsi_sessions() == {}
    actions = agent.services.reconciler.run()
    print(f"reconciler after the logout: {actions}")
    assert any(a.action == "relogin" and a.done for a in actions)
    assert list(iscsi_sessions().values()) == [iqn]
    assert wait_for(first.device) and wait_for(second.device)

    # an attach through a portal never logged in to before the rotation: multipath logs in to the
    # other node's LIF as well, a new session that must pass the target's and the host's challenges
    service = agent.reconfigure("multipath = true\n")
    third, _ = service.attach("/vol/vol1/lun3")
    new_portals = [str(p) for p in third.portals if str(p) != portal]
    print(f"after the rotation, {third.volume} over {[str(p) for p in third.portals]}: {iscsi_sessions()}")
    assert new_portals and len(iscsi_sessions()) == len(third.portals)
    for other in new_portals:
        record = stored_record(iqn, other)
        assert (record["node.session.auth.password"], record["node.session.auth.password_in"]) == (
            new_in,
            new_out,
        )
    assert wait_for(str(third.device))
