"""Interface binding (``[iscsi] ifaces``) on the real kernel.

The guest has loopback only, and the kernel routes any address local to it through ``lo``, so the
test builds storage networks of its own: two veth pairs whose far ends sit in a network namespace
(``ia-st0`` 10.98.0.1/24 here, 10.98.0.2/24 there; ``ia-st1`` 10.98.1.1/24, 10.98.1.2/24), and in
that namespace a relay (tests/vm/forwarder.py) from each far address's port 3260 to tgtd, which
listens on the near addresses too. The kernel then routes 10.98.0.2 through ``ia-st0`` and
10.98.1.2 through ``ia-st1``; 127.0.0.2 goes through ``lo``. Nothing leaves the VM, and all of it
is taken down after.
"""

from __future__ import annotations

import copy
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from iscsi_agent.array.settings import ApiChoice
from iscsi_agent.host.command import SubprocessRunner
from iscsi_agent.naa import netapp_wwid
from iscsi_agent.service.errors import NoUsablePortal
from ontap_sim.seed import DEFAULT_SEED
from tests.vm.agent_host import AgentHost, agent_host

MIRROR_TID = 15  # a tid no other test uses
NS = "ia-ns"
# (interface here, its peer in the namespace, the address here, the LIF's address there)
NETWORKS = (
    ("ia-st0", "ia-peer0", "10.98.0.1", "10.98.0.2"),
    ("ia-st1", "ia-peer1", "10.98.1.1", "10.98.1.2"),
)
LINK, _, HOST_ADDRESS, LIF_ADDRESS = NETWORKS[0]
LINK1, _, _, LIF1_ADDRESS = NETWORKS[1]
FORWARDER = Path(__file__).with_name("forwarder.py")
SESSIONS = Path("/sys/class/iscsi_session")
_run = SubprocessRunner()


def ip(*args: str, check: bool = True) -> None:
    result = _run(["ip", *args], timeout=30)
    print(f"$ ip {' '.join(args)} -> {result.exit_code} {result.stderr.strip()}")
    if check:
        result.check()


def seed(*addresses: str) -> dict:
    """The default simulator, its LIFs (on node-01, node-02) at these addresses instead."""
    changed = copy.deepcopy(DEFAULT_SEED)
    for lif, address in zip(changed["svms"][0]["lifs"], addresses, strict=False):
        lif["ip"] = address
    return changed


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
    forwarders: list[subprocess.Popen[str]] = []
    try:
        ip("-n", NS, "link", "set", "lo", "up")
        for link, peer, here, there in NETWORKS:
            ip("link", "add", link, "type", "veth", "peer", "name", peer)
            ip("link", "set", peer, "netns", NS)
            ip("addr", "add", f"{here}/24", "dev", link)
            ip("link", "set", link, "up")
            ip("-n", NS, "addr", "add", f"{there}/24", "dev", peer)
            ip("-n", NS, "link", "set", peer, "up")
            relay = [
                "ip",
                "netns",
                "exec",
                NS,
                sys.executable,
                str(FORWARDER),
                f"{there}:3260",
                f"{here}:3260",
            ]
            forwarders.append(subprocess.Popen(relay, stdout=subprocess.PIPE, text=True))
            assert forwarders[-1].stdout is not None
            assert forwarders[-1].stdout.readline().strip() == "listening"
        yield
    finally:
        for forwarder in forwarders:
            forwarder.kill()
            forwarder.wait(timeout=30)
        for link, *_ in NETWORKS:
            ip("link", "del", link, check=False)  # takes its peer with it
        ip("netns", "del", NS, check=False)


@contextmanager
def bound_agent(tmp_path: Path, initiator: str, extra: str, lifs: tuple[str, ...]) -> Iterator[AgentHost]:
    """An agent host whose LIFs are at ``lifs``, tgtd listening where the relays deliver."""
    with agent_host(
        ApiChoice.REST, tmp_path / "state", initiator, MIRROR_TID, extra, seed=seed(*lifs)
    ) as host:
        for _, _, here, _ in NETWORKS:
            host.tgt.add_portal(here)  # where the relays deliver: tgtd in the root namespace
        try:
            for _, _, _, there in NETWORKS:
                wait_for_listener(there, 3260, time.monotonic() + 30)  # through the veth and the relay
            yield host
        finally:
            for _, _, here, _ in NETWORKS:
                host.tgt.remove_portal(here)
            for link, *_ in NETWORKS:
                _run(["iscsiadm", "-m", "iface", "-I", link, "-o", "delete"], timeout=30)


@pytest.fixture
def agent(storage_network: None, tmp_path: Path, initiator_iqn: str) -> Iterator[AgentHost]:
    """ifaces = ia-st0; the first LIF behind ia-st0, the second on lo."""
    with bound_agent(tmp_path, initiator_iqn, f"ifaces = {LINK}\n", (LIF_ADDRESS,)) as host:
        yield host


@pytest.fixture
def multipath_agent(storage_network: None, tmp_path: Path, initiator_iqn: str) -> Iterator[AgentHost]:
    """ifaces = ia-st0, ia-st1 with multipath; one LIF behind each."""
    extra = f"ifaces = {LINK}, {LINK1}\nmultipath = true\n"
    with bound_agent(tmp_path, initiator_iqn, extra, (LIF_ADDRESS, LIF1_ADDRESS)) as host:
        yield host


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


def test_with_two_storage_interfaces_and_multipath_each_path_goes_through_its_own(multipath_agent: AgentHost):
    attachment, _ = multipath_agent.service.attach("/vol/vol1/lun1")
    serial = multipath_agent.serial("/vol/vol1/lun1")
    print(f"attached {attachment.volume} as {attachment.device} through {attachment.portals}")
    assert sorted(sessions()) == [(LINK, LIF_ADDRESS), (LINK1, LIF1_ADDRESS)]
    assert attachment.device == Path(f"/dev/mapper/3{netapp_wwid(serial)}")
    dm = attachment.device.resolve().name
    slaves = sorted(path.name for path in Path(f"/sys/block/{dm}/slaves").iterdir())
    assert len(slaves) == 2
    for slave in slaves:
        assert Path(f"/sys/block/{slave}/device/wwid").read_text().strip() == "naa." + netapp_wwid(serial)
    with open(attachment.device, "rb", buffering=0) as disk:
        assert len(disk.read(4096)) == 4096

    multipath_agent.service.detach("/vol/vol1/lun1", force=False)
    assert not attachment.device.exists() and sessions() == []


def test_without_ifaces_an_iface_record_the_administrator_made_carries_no_session(
    tmp_path: Path, initiator_iqn: str
):
    """open-iscsi binds a discovery that names no iface to every software iface record on the host,
    and not to the default; a login that names none logs in through each. The agent names the
    default iface, so an administrator's record (or an offload driver's) is left alone."""
    admin = "ia-admin"
    _run(["iscsiadm", "-m", "iface", "-I", admin, "-o", "new"], timeout=30).check()
    try:
        with agent_host(ApiChoice.REST, tmp_path / "state", initiator_iqn, MIRROR_TID) as host:
            attachment, _ = host.service.attach("/vol/vol1/lun1")
            print(f"attached {attachment.volume} as {attachment.device}; sessions {sessions()}")
            assert sessions() == [("default", str(portal.address)) for portal in attachment.portals]
            records = _run(["iscsiadm", "-m", "node", "-I", admin], timeout=30)
            print(f"$ iscsiadm -m node -I {admin} -> {records.exit_code} {records.stdout.strip()}")
            assert attachment.target_iqn not in records.stdout
            host.service.detach("/vol/vol1/lun1", force=False)
            assert sessions() == []
    finally:
        _run(["iscsiadm", "-m", "iface", "-I", admin, "-o", "delete"], timeout=30)


def test_the_agents_logout_ends_its_own_session_not_an_administrators_through_another_iface(
    tmp_path: Path, initiator_iqn: str
):
    """open-iscsi's logout that names no iface ends every session to the target through the portal,
    whatever its iface. An administrator's own session there, through an iface of theirs, outlives
    the agent's last detach: the agent logs out the session it found unused, and only that one."""
    admin = "ia-admin"
    _run(["iscsiadm", "-m", "iface", "-I", admin, "-o", "new"], timeout=30).check()
    try:
        with agent_host(ApiChoice.REST, tmp_path / "state", initiator_iqn, MIRROR_TID) as host:
            attachment, _ = host.service.attach("/vol/vol1/lun1")
            address = str(attachment.portals[0].address)
            node = ["iscsiadm", "-m", "node", "-T", attachment.target_iqn, "-p", str(attachment.portals[0])]
            _run([*node, "-I", admin, "-o", "new"], timeout=30).check()
            try:
                _run([*node, "-I", admin, "--login"], timeout=60).check()
                print(f"attached {attachment.volume}; sessions {sessions()}")
                assert sorted(sessions()) == [("default", address), (admin, address)]
                host.service.detach("/vol/vol1/lun1", force=False)
                print(f"detached; sessions {sessions()}")
                assert sessions() == [(admin, address)]
            finally:  # before the target goes: a session left would reconnect to the next one
                _run([*node, "-I", admin, "--logout"], timeout=60)
                _run([*node, "-I", admin, "-o", "delete"], timeout=30)
    finally:
        _run(["iscsiadm", "-m", "iface", "-I", admin, "-o", "delete"], timeout=30)
