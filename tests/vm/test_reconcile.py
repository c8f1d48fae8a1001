"""The reconciler on a real kernel: stale devices after a backend unmap (the seed's experiment 3, both
ways), a LUN id reused while a stale device sits there, a held stale device, and sessions lost at
the target or logged out behind the agent's back."""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from iscsi_agent.array.settings import ApiChoice
from iscsi_agent.host.command import SubprocessRunner
from iscsi_agent.naa import netapp_wwid
from iscsi_agent.service_api import ReconcileAction
from tests.vm.agent_host import AgentHost, agent_host

MIRROR_TID = 5
_run = SubprocessRunner()


@pytest.fixture
def agent(tmp_path: Path, initiator_iqn: str) -> Iterator[AgentHost]:
    with agent_host(ApiChoice.REST, tmp_path / "state", initiator_iqn, MIRROR_TID) as host:
        yield host


def igroup(agent: AgentHost) -> str:
    return agent.array.igroups_with_initiator(agent.initiator)[0].name


def reconcile(agent: AgentHost, *, dry_run: bool = False) -> list[ReconcileAction]:
    actions = agent.services.reconciler.run(dry_run=dry_run)
    _run(["udevadm", "settle", "--timeout=30"], timeout=60)
    for action in actions:
        print(f"  {action.action} {action.target} ({action.reason}) {'done' if action.done else 'not done'}")
    return actions


def taken(actions: list[ReconcileAction]) -> list[tuple[str, str, bool]]:
    return [(a.action, a.reason, a.done) for a in actions]


def disks() -> list[str]:
    return sorted(p.name for p in Path("/sys/block").iterdir() if p.name.startswith("sd"))


def by_path_links() -> list[str]:
    folder = Path("/dev/disk/by-path")
    return sorted(p.name for p in folder.iterdir() if "-iscsi-" in p.name) if folder.exists() else []


def sysfs_wwid(device: Path) -> str:
    return Path(f"/sys/block/{device.resolve().name}/device/wwid").read_text().strip()


def session_states() -> list[str]:
    return [p.joinpath("state").read_text().strip() for p in Path("/sys/class/iscsi_session").iterdir()]


def test_experiment_3_a_backend_unmap_leaves_a_stale_device_the_reconciler_removes(agent: AgentHost):
    attachment, _ = agent.service.attach("/vol/vol1/lun1")
    stale = attachment.device.resolve().name
    agent.array.unmap_lun("/vol/vol1/lun1", igroup(agent))  # behind the agent's back
    _run(["iscsiadm", "-m", "session", "--rescan"], timeout=60).check()
    _run(["udevadm", "settle", "--timeout=30"], timeout=60)
    assert stale in disks() and by_path_links(), "a plain rescan removes nothing (experiment 3)"
    print(f"after the unmap and a rescan: {stale} and {by_path_links()} are still there")

    actions = reconcile(agent)
    assert ("remove_device", "lun_unmapped", True) in taken(actions)
    assert ("report", "attachment_unmapped", False) in taken(actions)
    assert stale not in disks() and by_path_links() == []
    assert not attachment.device.exists()


def test_experiment_3_a_backend_map_the_host_did_not_ask_for_is_reported_and_left_alone(agent: AgentHost):
    agent.service.attach("/vol/vol1/lun0")
    before = disks()
    agent.array.map_lun("/vol/vol1/lun2", igroup(agent))  # someone else's decision
    actions = reconcile(agent)
    assert taken(actions) == [("report", "unrequested_map", False)]
    assert disks() == before  # nothing scanned in
    assert agent.maps("/vol/vol1/lun2") == [igroup(agent)]  # nor unmapped: it is not the agent's


def test_a_lun_id_reused_while_a_stale_device_exists_is_only_ever_seen_with_its_own_identity(
    agent: AgentHost,
):
    first, _ = agent.service.attach("/vol/vol1/lun1")
    stale = first.device.resolve().name
    group = igroup(agent)
    agent.array.unmap_lun("/vol/vol1/lun1", group)
    agent.array.map_lun("/vol/vol1/lun3", group, first.lun_id)  # the array gives the id to another LUN
    print(f"LUN {first.lun_id}: {stale} was lun1 ({first.wwid}); the id now leads to lun3")

    actions = reconcile(agent)
    assert ("remove_device", "identity_mismatch", True) in taken(actions)
    assert stale not in disks()
    assert not Path(f"/dev/disk/by-id/wwn-0x{netapp_wwid(agent.serial('/vol/vol1/lun1'))}").exists()

    attachment, _ = agent.service.attach("/vol/vol1/lun3")
    assert attachment.lun_id == first.lun_id
    assert sysfs_wwid(attachment.device) == "naa." + netapp_wwid(agent.serial("/vol/vol1/lun3"))
    agent.service.detach("/vol/vol1/lun3", force=False)
    agent.service.detach("/vol/vol1/lun1", force=False)  # its record goes; there was no device left


def test_a_held_stale_device_is_reported_and_kept_until_it_is_let_go(agent: AgentHost):
    attachment, _ = agent.service.attach("/vol/vol1/lun2")
    stale = attachment.device.resolve().name
    with open(attachment.device, "rb") as device:
        holder = subprocess.Popen(["sleep", "600"], stdin=device)  # another process has it open
    try:
        agent.array.unmap_lun("/vol/vol1/lun2", igroup(agent))
        actions = reconcile(agent)
        [removal] = [a for a in actions if a.action == "remove_device"]
        assert not removal.done and f"pid {holder.pid} (sleep)" in removal.target
        assert stale in disks()
        [problem] = agent.services.reconciler.degraded
        print(f"health problem: {problem}")
        assert stale in problem
    finally:
        holder.kill()
        holder.wait(30)
    assert ("remove_device", "lun_unmapped", True) in taken(reconcile(agent))
    assert stale not in disks() and agent.services.reconciler.degraded == []


def test_a_session_logged_out_behind_the_agents_back_is_logged_in_again_with_its_lun(agent: AgentHost):
    attachment, _ = agent.service.attach("/vol/vol1/lun1")
    payload = os.urandom(4096)
    with open(attachment.device, "r+b", buffering=0) as disk:
        disk.write(payload)
        os.fsync(disk.fileno())
    _run(["iscsiadm", "-m", "session", "-u"], timeout=60).check()
    _run(["udevadm", "settle", "--timeout=30"], timeout=60)
    assert not attachment.device.exists()

    actions = reconcile(agent)
    assert ("relogin", "session_missing", True) in taken(actions)
    deadline = time.monotonic() + 60
    while not attachment.device.exists() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert sysfs_wwid(attachment.device) == "naa." + netapp_wwid(agent.serial("/vol/vol1/lun1"))
    with open(attachment.device, "rb", buffering=0) as disk:
        assert disk.read(4096) == payload
    assert reconcile(agent) == []


def tgt_connections(tid: int) -> list[tuple[str, str]]:
    """(session id, connection id) of every connection tgtd has on the target."""
    shown = _run(
        ["tgtadm", "--lld", "iscsi", "--mode", "conn", "--op", "show", "--tid", str(tid)], timeout=30
    )
    shown.check()
    found, sid = [], None
    for line in shown.stdout.splitlines():
        if match := re.match(r"\s*Session:\s*(\d+)", line):
            sid = match.group(1)
        elif (match := re.match(r"\s*Connection:\s*(\d+)", line)) and sid is not None:
            found.append((sid, match.group(1)))
    return found


def test_a_session_dropped_at_the_target_comes_back_with_its_devices_and_is_never_logged_out(
    agent: AgentHost,
):
    attachment, _ = agent.service.attach("/vol/vol1/lun1")
    [(sid, cid)] = tgt_connections(MIRROR_TID)
    _run(
        ["tgtadm", "--lld", "iscsi", "--mode", "conn", "--op", "delete", "--tid", str(MIRROR_TID),
         "--sid", sid, "--cid", cid],
        timeout=30,
    ).check()  # fmt: skip
    print(f"dropped tgtd session {sid} connection {cid}; host sessions: {session_states()}")
    seen: list[tuple[str, str, bool]] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        seen += taken(reconcile(agent))
        if session_states() == ["LOGGED_IN"] and attachment.device.exists():
            break
        time.sleep(2)
    print(f"host sessions now: {session_states()}; actions seen: {seen}")
    assert session_states() == ["LOGGED_IN"]
    assert not any(action in ("logout", "remove_device") for action, _, _ in seen)
    assert sysfs_wwid(attachment.device) == "naa." + netapp_wwid(agent.serial("/vol/vol1/lun1"))
    with open(attachment.device, "rb", buffering=0) as disk:
        assert len(disk.read(4096)) == 4096


def slaves(device: Path) -> list[str]:
    return sorted(p.name for p in Path(f"/sys/block/{device.resolve().name}/slaves").iterdir())


def test_a_multipath_map_whose_lun_was_unmapped_is_flushed_and_its_paths_removed(agent: AgentHost):
    service = agent.reconfigure("multipath = true\n")
    attachment, _ = service.attach("/vol/vol1/lun1")
    dm, paths = attachment.device.resolve().name, slaves(attachment.device)
    print(f"{attachment.device} -> {dm} over {paths}")
    agent.array.unmap_lun("/vol/vol1/lun1", igroup(agent))
    actions = reconcile(agent)
    assert taken(actions)[:3] == [
        ("flush_multipath", "lun_unmapped", True),
        ("remove_device", "lun_unmapped", True),
        ("remove_device", "lun_unmapped", True),
    ]
    assert not attachment.device.exists() and not Path(f"/sys/block/{dm}").exists()
    assert not any(name in disks() for name in paths)


def test_a_path_lost_under_a_multipath_map_is_scanned_back_into_it(agent: AgentHost):
    service = agent.reconfigure("multipath = true\n")
    attachment, _ = service.attach("/vol/vol1/lun1")
    lost, kept = slaves(attachment.device)
    Path(f"/sys/block/{lost}/device/delete").write_text("1")  # one path goes, the map stays on the other
    _run(["udevadm", "settle", "--timeout=30"], timeout=60)
    assert slaves(attachment.device) == [kept]
    seen: list[tuple[str, str, bool]] = []
    deadline = time.monotonic() + 90
    while len(slaves(attachment.device)) < 2 and time.monotonic() < deadline:
        seen += taken(reconcile(agent))
        time.sleep(2)
    print(f"slaves now {slaves(attachment.device)}; actions seen: {seen}")
    assert len(slaves(attachment.device)) == 2
    assert ("scan", "path_missing", True) in seen
    payload = os.urandom(4096)
    with open(attachment.device, "r+b", buffering=0) as disk:
        disk.write(payload)
        os.fsync(disk.fileno())
    with open(attachment.device, "rb", buffering=0) as disk:
        assert disk.read(4096) == payload
    service.detach("/vol/vol1/lun1", force=False)


def test_a_path_multipathd_let_go_of_is_added_back_to_its_map(agent: AgentHost):
    service = agent.reconfigure("multipath = true\n")
    attachment, _ = service.attach("/vol/vol1/lun1")
    dropped, kept = slaves(attachment.device)
    _run(["multipathd", "del", "path", dropped], timeout=60).check()  # the disk stays, out of the map
    deadline = time.monotonic() + 30
    while slaves(attachment.device) != [kept] and time.monotonic() < deadline:
        time.sleep(0.5)
    assert slaves(attachment.device) == [kept] and dropped in disks()
    actions = reconcile(agent)
    assert ("add_multipath_path", "path_not_in_map", True) in taken(actions)
    deadline = time.monotonic() + 60
    while len(slaves(attachment.device)) < 2 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert slaves(attachment.device) == sorted([dropped, kept])
    service.detach("/vol/vol1/lun1", force=False)


def test_a_held_multipath_map_of_an_unmapped_lun_keeps_its_map_and_its_paths(agent: AgentHost):
    service = agent.reconfigure("multipath = true\n")
    attachment, _ = service.attach("/vol/vol1/lun1")
    dm, paths = attachment.device.resolve().name, slaves(attachment.device)
    with open(attachment.device, "rb") as device:
        holder = subprocess.Popen(["sleep", "600"], stdin=device)  # a VM still has the map open
    try:
        agent.array.unmap_lun("/vol/vol1/lun1", igroup(agent))
        actions = reconcile(agent)
        assert [(a.action, a.done) for a in actions if a.action in ("flush_multipath", "remove_device")] == [
            ("flush_multipath", False),
            ("remove_device", False),
            ("remove_device", False),
        ]
        assert slaves(attachment.device) == paths and all(name in disks() for name in paths)
        print(f"kept {dm} over {paths}; problems: {agent.services.reconciler.degraded}")
        assert len(agent.services.reconciler.degraded) == 3
    finally:
        holder.kill()
        holder.wait(30)
    actions = reconcile(agent)
    assert ("flush_multipath", "lun_unmapped", True) in taken(actions)
    assert not Path(f"/sys/block/{dm}").exists() and not any(name in disks() for name in paths)
