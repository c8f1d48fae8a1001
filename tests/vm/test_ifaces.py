"""Interface binding (``[iscsi] ifaces``) on the real kernel.

The guest has loopback only, and the kernel routes any address local to it through ``lo``, so the
test builds a storage network of its own: a veth pair whose far end sits in a network namespace
(``ia-st0`` 10.98.0.1/24 here, 10.98.0.2/24 there), and in that namespace a relay
(tests/vm/forwarder.py) from 10.98.0.2:3260 to tgtd, which listens on 10.98.0.1:3260 too. The
kernel then routes 10.98.0.2, the simulator's first LIF, through ``ia-st0``; the second LIF,
127.0.0.2, goes through ``lo``. Nothing leaves the VM, and all of it is taken down after.
"""

from __future__ import annotations

import copy
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from iscsi_agent.array.settings import ApiChoice
from iscsi_agent.host.command import SubprocessRunner
from iscsi_agent.naa import netapp_wwid
from iscsi_agent.service.errors import NoUsablePortal
from ontap_sim.seed import DEFAULT_SEED
from tests.vm.agent_host import AgentHost, agent_host

MIRROR_TID = 15  # a tid no other test uses
NS, LINK, PEER = "ia-ns", "ia-st0", "ia-peer0"
HOST_ADDRESS, LIF_ADDRESS = "10.98.0.1", "10.98.0.2"
FORWARDER = Path(__file__).with_name("forwarder.py")
SESSIONS = Path("/sys/class/iscsi_session")
_run = SubprocessRunner()


def ip(*args: str, check: bool = True) -> None:
    result = _run(["ip", *args], timeout=30)
    print(f"$ ip {' '.join(args)} -> {result.exit_code} {result.stderr.strip()}")
    if check:
        result.check()


def seed() -> dict:
    """The default simulator, its first LIF on the storage network behind ``ia-st0``."""
    lifs = copy.deepcopy(DEFAULT_SEED)
    lifs["svms"][0]["lifs"][0]["ip"] = LIF_ADDRESS
    return lifs


def wait_for_listener(address: str, port: int, deadline: float) -> None:
    while True:
        try:
            with socket.create_connection((address, port), timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@pytest.fixture
def storage_network() -> Iterator[None]:
    ip("netns", "add", NS)
    forwarder = None
    try:
        ip("link", "add", LINK, "type", "veth", "peer", "name", PEER)
        ip("link", "set", PEER, "netns", NS)
        ip("addr", "add", f"{HOST_ADDRESS}/24", "dev", LINK)
        ip("link", "set", LINK, "up")
        ip("-n", NS, "addr", "add", f"{LIF_ADDRESS}/24", "dev", PEER)
        ip("-n", NS, "link", "set", PEER, "up")
        ip("-n", NS, "link", "set", "lo", "up")
        forwarder = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                NS,
                sys.executable,
                str(FORWARDER),
                f"{LIF_ADDRESS}:3260",
                f"{HOST_ADDRESS}:3260",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert forwarder.stdout is not None and forwarder.stdout.readline().strip() == "listening"
        yield
    finally:
        if forwarder is not None:
            forwarder.kill()
            forwarder.wait(timeout=30)
        ip("link", "del", LINK, check=False)  # takes its peer with it
        ip("netns", "del", NS, check=False)


@pytest.fixture
def agent(storage_network: None, tmp_path: Path, initiator_iqn: str) -> Iterator[AgentHost]:
    extra = f"ifaces = {LINK}\n"
    with agent_host(
        ApiChoice.REST, tmp_path / "state", initiator_iqn, MIRROR_TID, extra, seed=seed()
    ) as host:
        host.tgt.add_portal(HOST_ADDRESS)  # where the relay delivers: tgtd in the root namespace
        try:
            wait_for_listener(LIF_ADDRESS, 3260, time.monotonic() + 30)  # through ia-st0 and the relay
            yield host
        finally:
            host.tgt.remove_portal(HOST_ADDRESS)
            _run(["iscsiadm", "-m", "iface", "-I", LINK, "-o", "delete"], timeout=30)


def sessions() -> list[tuple[str, str]]:
    """(ifacename, portal address) of every iSCSI session, from sysfs."""
    found = []
    for entry in sorted(SESSIONS.iterdir()):
        connection = next((entry / "device").glob("connection*/iscsi_connection/connection*"))
        found.append(
            (
                (entry / "ifacename").read_text().strip(),
                (connection / "persistent_address").read_text().strip(),
            )
        )
    return found


def iface_record(name: str) -> dict[str, str]:
    shown = _run(["iscsiadm", "-m", "iface", "-I", name], timeout=30).check().stdout
    return {key: value for key, _, value in (line.partition(" = ") for line in shown.splitlines())}


def test_the_session_is_bound_to_the_storage_interface_and_the_lun_attaches_through_it(agent: AgentHost):
    attachment, created = agent.service.attach("/vol/vol1/lun1")
    print(f"attached {attachment.volume} as {attachment.device} through {attachment.portals}")
    assert created and [str(portal) for portal in attachment.portals] == [f"{LIF_ADDRESS}:3260"]
    assert sessions() == [(LINK, LIF_ADDRESS)]
    assert iface_record(LINK)["iface.net_ifacename"] == LINK
    serial = agent.serial("/vol/vol1/lun1")
    real = attachment.device.resolve()
    assert attachment.device == Path(f"/dev/disk/by-id/wwn-0x{netapp_wwid(serial)}")
    assert Path(f"/sys/block/{real.name}/device/wwid").read_text().strip() == "naa." + netapp_wwid(serial)
    assert (
        Path(f"/sys/block/{real.name}/device/vpd_pg80").read_bytes()[4:].decode("ascii", "replace").strip()
        == serial
    )
    with open(attachment.device, "rb", buffering=0) as disk:
        assert len(disk.read(4096)) == 4096  # I/O goes through ia-st0 and the relay

    agent.service.detach("/vol/vol1/lun1", force=False)
    assert not attachment.device.exists() and not Path(f"/sys/block/{real.name}").exists()
    assert sessions() == [] and agent.maps("/vol/vol1/lun1") == []


def test_with_every_portal_routed_through_an_unlisted_interface_the_attach_fails_naming_them(
    agent: AgentHost,
):
    agent.conf = agent.conf.replace(f"ifaces = {LINK}\n", "")
    agent.reconfigure("ifaces = ia-st1\n")  # listed, but the kernel routes no LIF through it
    with pytest.raises(NoUsablePortal) as refused:
        agent.service.attach("/vol/vol1/lun2")
    print(f"refused: {refused.value}")
    assert f"{LIF_ADDRESS}:3260 through {LINK}" in str(refused.value)
    assert "127.0.0.2:3260 through lo" in str(refused.value)
    assert sessions() == []
