"""The attach service on a real kernel: the simulator maps through a real tgtd, the host attaches.

Built exactly as the daemon builds it (``service.build``), with the real runner, clock, routing
table and journal: attach hands out the by-id path of a device whose identity is the LUN's and
that carries data; detach leaves no device, link, session, node record or map behind.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from iscsi_agent.array.settings import ApiChoice
from iscsi_agent.host.command import SubprocessRunner
from iscsi_agent.naa import netapp_wwid
from iscsi_agent.service_api import VolumeInUse
from tests.vm.agent_host import AgentHost, agent_host

MIRROR_TID = 3
_run = SubprocessRunner()


@pytest.fixture(params=[ApiChoice.ZAPI, ApiChoice.REST], ids=["zapi", "rest"])
def agent(request: pytest.FixtureRequest, tmp_path: Path, initiator_iqn: str) -> Iterator[AgentHost]:
    with agent_host(request.param, tmp_path / "state", initiator_iqn, MIRROR_TID) as host:
        yield host


def sessions() -> str:
    return _run(["iscsiadm", "-m", "session"], timeout=30).stdout


def test_attach_hands_out_the_luns_device_with_data_and_detach_leaves_nothing(agent: AgentHost):
    attachment, created = agent.service.attach("/vol/vol1/lun1")
    serial = agent.serial("/vol/vol1/lun1")
    device = attachment.device
    real = device.resolve()
    print(
        f"attached {attachment.volume} as {device} -> {real}, LUN {attachment.lun_id}, {attachment.portals}"
    )
    assert created and device == Path(f"/dev/disk/by-id/wwn-0x{netapp_wwid(serial)}")
    assert real.name.startswith("sd")
    assert Path(f"/sys/block/{real.name}/device/wwid").read_text().strip() == "naa." + netapp_wwid(serial)
    payload = os.urandom(4096)
    with open(device, "r+b", buffering=0) as disk:
        disk.write(payload)
        os.fsync(disk.fileno())
    with open(device, "rb", buffering=0) as disk:
        assert disk.read(4096) == payload
    assert agent.service.attach("lun1") == (attachment, False)

    agent.service.detach("lun1", force=False)
    assert not device.exists() and not Path(f"/sys/block/{real.name}").exists()
    assert agent.maps("/vol/vol1/lun1") == []
    assert sessions() == ""
    print(f"detached: {device} gone, no session, no map")


def test_a_mounted_volume_is_refused_naming_the_mount_and_stays(agent: AgentHost, tmp_path: Path):
    attachment, _ = agent.service.attach("/vol/vol1/lun2")
    _run(["mkfs.ext4", "-q", "-F", str(attachment.device)], timeout=120).check()
    mount_point = tmp_path / "mnt"
    mount_point.mkdir()
    _run(["mount", str(attachment.device), str(mount_point)], timeout=60).check()
    try:
        with pytest.raises(VolumeInUse, match=f"mounted at {mount_point}") as refused:
            agent.service.detach("/vol/vol1/lun2", force=False)
        print(f"refused: {refused.value}")
        assert attachment.device.exists() and agent.maps("/vol/vol1/lun2")
    finally:
        _run(["umount", str(mount_point)], timeout=60)
    agent.service.detach("/vol/vol1/lun2", force=False)
    assert not attachment.device.exists()


def test_parallel_attaches_each_get_their_own_verified_device(agent: AgentHost):
    volumes = ["/vol/vol1/lun0", "/vol/vol1/lun1", "/vol/vol1/lun2", "/vol/vol1/lun3"]
    results: dict[str, object] = {}

    def attach(volume: str) -> None:
        try:
            results[volume] = agent.service.attach(volume)[0]
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            results[volume] = exc

    threads = [threading.Thread(target=attach, args=(volume,)) for volume in volumes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    failures = {volume: result for volume, result in results.items() if isinstance(result, Exception)}
    assert failures == {}
    for volume in volumes:
        device = results[volume].device  # type: ignore[union-attr]
        real = device.resolve()
        wwid = Path(f"/sys/block/{real.name}/device/wwid").read_text().strip()
        print(f"{volume}: {device.name} -> {real.name} ({wwid})")
        assert wwid == "naa." + netapp_wwid(agent.serial(volume))
    assert sessions().count("\n") == 1
    for volume in volumes:
        agent.service.detach(volume, force=False)
    assert sessions() == ""


def identity_of(device: Path) -> str:
    return Path(f"/sys/block/{device.resolve().name}/device/wwid").read_text().strip()


def test_multipath_hands_out_the_map_over_both_portals(agent: AgentHost):
    service = agent.reconfigure("multipath = true\n")
    attachment, _ = service.attach("/vol/vol1/lun1")
    wwid = "3" + netapp_wwid(agent.serial("/vol/vol1/lun1"))
    dm = attachment.device.resolve().name
    slaves = sorted(entry.name for entry in Path(f"/sys/block/{dm}/slaves").iterdir())
    print(f"multipath: {attachment.device} -> {dm} over {slaves}, portals {attachment.portals}")
    assert attachment.device == Path(f"/dev/mapper/{wwid}") and attachment.multipath
    assert len(slaves) == 2 and len(attachment.portals) == 2
    service.detach("/vol/vol1/lun1", force=False)
    assert not attachment.device.exists() and sessions() == ""


def test_a_lun_mapped_and_scanned_by_hand_before_the_attach_is_used_at_its_id(agent: AgentHost):
    """The seed's experiment 3: an operator mapped and scanned the LUN first; the attach adopts it."""
    agent.service.attach("/vol/vol1/lun0")  # logs in, so a hand scan has a session
    igroup = agent.array.igroups_with_initiator(agent.initiator)[0].name
    lun_id = agent.array.map_lun("/vol/vol1/lun2", igroup)
    Path(f"/sys/class/scsi_host/host{_session_host()}/scan").write_text(f"0 0 {lun_id}")
    _run(["udevadm", "settle", "--timeout=30"], timeout=60)
    attachment, _ = agent.service.attach("/vol/vol1/lun2")
    assert attachment.lun_id == lun_id
    assert identity_of(attachment.device) == "naa." + netapp_wwid(agent.serial("/vol/vol1/lun2"))
    agent.service.detach("/vol/vol1/lun2", force=False)
    assert agent.maps("/vol/vol1/lun2") == [igroup]  # the agent did not make that map: it stays


def test_a_lun_id_reused_after_a_backend_unmap_never_returns_the_old_device(agent: AgentHost):
    first, _ = agent.service.attach("/vol/vol1/lun1")
    old = first.device.resolve()
    igroup = agent.array.igroups_with_initiator(agent.initiator)[0].name
    agent.array.unmap_lun("/vol/vol1/lun1", igroup)  # behind the agent's back: the device stays
    assert old.exists()
    attachment, _ = agent.service.attach("/vol/vol1/lun3")  # the array gives lun3 the freed id
    print(f"id {first.lun_id} was {old.name} ({first.wwid}); now {attachment.lun_id}: {attachment.device}")
    assert attachment.lun_id == first.lun_id  # the id was reused
    assert identity_of(attachment.device) == "naa." + netapp_wwid(agent.serial("/vol/vol1/lun3"))


def test_an_array_fault_mid_attach_leaves_nothing_behind(agent: AgentHost):
    match = "lun-map" if agent.array.api == "zapi" else "POST /api/protocols/san/lun-maps"
    agent.sim.faults.inject(match, "errno", times=10, errno=13001, reason="busy")
    with pytest.raises(Exception, match="at map"):
        agent.service.attach("/vol/vol1/lun1")
    assert agent.maps("/vol/vol1/lun1") == [] and sessions() == ""


def _session_host() -> int:
    hosts = sorted(Path("/sys/class/iscsi_host").iterdir())
    return int(hosts[0].name.removeprefix("host"))
