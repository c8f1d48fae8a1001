"""Multipath maps whose LUN went away behind the agent's back, on a real kernel.

A LUN id reused under an existing map: volume X is attached as a dm map over two paths at LUN id
N; the array unmaps X and maps Y at N. The kernel keeps X's map and X's identity in the paths'
sysfs while their I/O reaches Y. Attaching Y and detaching X must both succeed when nothing uses
X's map (its map removed, its stale paths removed without writing anything back: that would land
on Y), and both must refuse, naming the holder and removing nothing, while something has the map
open.

Queueing maps: ONTAP's recommended multipath settings queue I/O while no path works
(``no_path_retry queue``); a map whose LUN is gone never gets a path back, so everything that
touches it waits for ever unless it is switched to fail first. Detach and reconcile of such a map
finish within their deadlines.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from iscsi_agent.array.settings import ApiChoice
from iscsi_agent.errors import AgentError
from iscsi_agent.host.command import SubprocessRunner
from iscsi_agent.naa import netapp_wwid
from iscsi_agent.service_api import VolumeInUse
from ontap_sim.tgt import TgtError
from tests.vm.agent_host import AgentHost, agent_host
from tests.vmtier.guest import MULTIPATH_CONF

MIRROR_TID = 7
X, Y = "/vol/vol1/lun1", "/vol/vol1/lun3"
QUEUEING_CONF = MULTIPATH_CONF.replace("no_path_retry 2", "no_path_retry queue")
DEADLINE = 150.0  # detach or a pass, each removal bounded by its own timeout; generous for the slow VM
_run = SubprocessRunner()
T = TypeVar("T")


@pytest.fixture
def agent(tmp_path: Path, initiator_iqn: str) -> Iterator[AgentHost]:
    with agent_host(ApiChoice.REST, tmp_path / "state", initiator_iqn, MIRROR_TID) as host:
        host.reconfigure("multipath = true\n")
        yield host


@pytest.fixture
def queueing() -> Iterator[None]:
    """multipathd configured as ONTAP recommends: queue I/O for ever while no path works."""
    conf = Path("/etc/multipath.conf")
    conf.write_text(QUEUEING_CONF)
    _run(["multipathd", "reconfigure"], timeout=60).check()
    try:
        yield
    finally:
        _run(["multipathd", "disablequeueing", "maps"], timeout=60)  # a failed test must not wedge cleanup
        conf.write_text(MULTIPATH_CONF)
        _run(["multipathd", "reconfigure"], timeout=60)


def igroup(agent: AgentHost) -> str:
    return agent.array.igroups_with_initiator(agent.initiator)[0].name


def dm_name(wwid_hex: str) -> Path:
    return Path(f"/dev/mapper/3{wwid_hex}")


def slaves(dm: str) -> list[str]:
    return sorted(p.name for p in Path(f"/sys/block/{dm}/slaves").iterdir())


def disks_with_wwid(wwid_hex: str) -> list[str]:
    return sorted(
        p.name
        for p in Path("/sys/block").iterdir()
        if p.name.startswith("sd") and (p / "device/wwid").read_text().strip() == "naa." + wwid_hex
    )


def reuse_id(agent: AgentHost, lun_id: int) -> None:
    """Behind the agent's back: X unmapped, Y mapped at X's id (tgtd's LU at that id replaced).

    tgtd refuses to delete an LU with commands in flight ("this logical unit is still active": udev's
    probes of a map just built, multipathd's checker); the simulator's mirror only logs that, so
    tgtd is brought in line with the array here until it serves Y at the id.
    """
    _run(["udevadm", "settle", "--timeout=30"], timeout=60)
    group = igroup(agent)
    agent.array.unmap_lun(X, group)
    assert agent.array.map_lun(Y, group, lun_id) == lun_id
    serial = agent.serial(Y)
    with agent.sim.state.lock:
        size = agent.sim.state.lun("svm1", path=Y).size
    for _ in range(20):
        if f"SCSI SN: {serial}" in agent.tgt.show():
            break
        time.sleep(1)
        try:
            agent.tgt.remove_lun(MIRROR_TID, lun_id)
            agent.tgt.add_lun(MIRROR_TID, lun_id, serial, size)
        except TgtError as exc:
            print(f"tgtd not in line with the array yet: {exc}")
    assert f"SCSI SN: {serial}" in agent.tgt.show()
    print(f"LUN {lun_id}: was {X} ({agent.serial(X)!r}), now {Y} ({serial!r})")


def within(deadline: float, call: Callable[[], T]) -> T:
    """call()'s value, or a failure if it has not returned by the deadline (a hang is the defect)."""
    outcome: dict[str, object] = {}

    def work() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            outcome["error"] = exc

    started = time.monotonic()
    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    thread.join(deadline)
    assert not thread.is_alive(), f"still running after {deadline:g}s: blocked on a queueing map?"
    print(f"returned after {time.monotonic() - started:.1f}s")
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"]  # type: ignore[return-value]


def test_attach_at_a_reused_id_removes_the_old_luns_unused_map_and_comes_up_with_its_own_identity(
    agent: AgentHost,
):
    old, _ = agent.service.attach(X)
    old_dm, old_paths = old.device.resolve().name, slaves(old.device.resolve().name)
    x_wwid = netapp_wwid(agent.serial(X))
    reuse_id(agent, old.lun_id)

    new, _ = agent.service.attach(Y)
    y_wwid = netapp_wwid(agent.serial(Y))
    dm = new.device.resolve().name
    print(f"{Y}: {new.device} -> {dm} over {slaves(dm)}; {X}'s {old_dm} over {old_paths} before")
    assert new.lun_id == old.lun_id and new.device == dm_name(y_wwid)
    assert len(slaves(dm)) == 2 and disks_with_wwid(y_wwid) == slaves(dm)
    assert not dm_name(x_wwid).exists() and disks_with_wwid(x_wwid) == []
    with open(new.device, "rb", buffering=0) as disk:
        assert disk.read(4096) == bytes(4096)  # Y's own (new, empty) data

    agent.service.detach(X, force=False)  # nothing of X is left on the host: its record goes
    assert slaves(dm) == disks_with_wwid(y_wwid) and len(slaves(dm)) == 2
    agent.service.detach(Y, force=False)
    assert not new.device.exists()


def test_detach_of_a_volume_whose_id_now_leads_to_another_lun_removes_its_map_and_stale_paths(
    agent: AgentHost,
):
    old, _ = agent.service.attach(X)
    old_dm = old.device.resolve().name
    x_wwid = netapp_wwid(agent.serial(X))
    reuse_id(agent, old.lun_id)

    agent.service.detach(X, force=False)
    assert not dm_name(x_wwid).exists() and not Path(f"/sys/block/{old_dm}").exists()
    assert disks_with_wwid(x_wwid) == []
    assert agent.maps(Y) == [igroup(agent)]  # Y's map is not X's to remove

    new, _ = agent.service.attach(Y)
    y_wwid = netapp_wwid(agent.serial(Y))
    assert new.lun_id == old.lun_id and new.device == dm_name(y_wwid)
    assert disks_with_wwid(y_wwid) == slaves(new.device.resolve().name)
    with open(new.device, "rb", buffering=0) as disk:
        assert disk.read(4096) == bytes(4096)
    agent.service.detach(Y, force=False)


def test_a_held_map_of_the_old_lun_refuses_attach_and_detach_naming_the_holder_and_removes_nothing(
    agent: AgentHost,
):
    old, _ = agent.service.attach(X)
    old_dm = old.device.resolve().name
    old_paths = slaves(old_dm)
    with open(old.device, "rb") as device:
        holder = subprocess.Popen(["sleep", "600"], stdin=device)  # a VM still has X's map open
    try:
        reuse_id(agent, old.lun_id)
        with pytest.raises(AgentError, match=f"pid {holder.pid} \\(sleep\\)") as refused:
            agent.service.attach(Y)
        print(f"attach refused: {refused.value.code}: {refused.value} {refused.value.details}")
        assert refused.value.code != "internal_error" and refused.value.details.get("holder")
        assert slaves(old_dm) == old_paths
        with pytest.raises(VolumeInUse, match=f"pid {holder.pid} \\(sleep\\)") as refused_detach:
            agent.service.detach(X, force=False)
        print(f"detach refused: {refused_detach.value}")
        assert slaves(old_dm) == old_paths and old.device.exists()
    finally:
        holder.kill()
        holder.wait(30)
    agent.service.detach(X, force=False)
    assert not Path(f"/sys/block/{old_dm}").exists()
    new, _ = agent.service.attach(Y)
    assert new.device == dm_name(netapp_wwid(agent.serial(Y)))
    agent.service.detach(Y, force=False)


def queue_features(device: Path) -> str:
    table = _run(["dmsetup", "table", device.name], timeout=30)
    table.check()
    return table.stdout


def wait_for_failed_paths(dm: str, timeout: float = 60.0) -> None:
    """Until multipathd's checker has failed every path of the map (the LUN is gone at the target)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        shown = _run(["multipathd", "show", "paths", "format", "%d %t %T"], timeout=30).stdout
        states = [
            line.split()[1:]
            for line in shown.splitlines()
            if line.split()[:1] and line.split()[0] in slaves(dm)
        ]
        if states and all("failed" in state or "faulty" in state for state in states):
            print(f"paths of {dm}: {states}")
            return
        time.sleep(1)
    print(f"paths of {dm} not all failed after {timeout:g}s: {shown}")


def test_detach_of_an_unmapped_lun_under_a_queueing_map_finishes_in_time(agent: AgentHost, queueing: None):
    attachment, _ = agent.service.attach(X)
    dm = attachment.device.resolve().name
    assert "queue_if_no_path" in queue_features(attachment.device)
    agent.array.unmap_lun(X, igroup(agent))  # behind the agent's back: the LUN is gone at the target
    wait_for_failed_paths(dm)

    within(DEADLINE, lambda: agent.service.detach(X, force=False))
    assert not attachment.device.exists() and not Path(f"/sys/block/{dm}").exists()
    assert disks_with_wwid(netapp_wwid(agent.serial(X))) == []


def test_reconcile_of_an_unmapped_lun_under_a_queueing_map_finishes_in_time(agent: AgentHost, queueing: None):
    attachment, _ = agent.service.attach(X)
    dm = attachment.device.resolve().name
    assert "queue_if_no_path" in queue_features(attachment.device)
    agent.array.unmap_lun(X, igroup(agent))
    wait_for_failed_paths(dm)

    actions = within(DEADLINE, agent.services.reconciler.run)
    for action in actions:
        print(f"  {action.action} {action.target} ({action.reason}) {'done' if action.done else 'not done'}")
    done = [(a.action, a.done) for a in actions if a.action in ("flush_multipath", "remove_device")]
    assert done == [("flush_multipath", True), ("remove_device", True), ("remove_device", True)]
    assert not attachment.device.exists() and not Path(f"/sys/block/{dm}").exists()
