"""The agent killed with SIGKILL at every fault point of an attach, a detach and of recovery itself, on
a real kernel; then started again (start-up recovery, one reconciler pass) and held to the invariants:

- no map on the array for a volume that is not attached, and no duplicate igroup;
- no session without an attachment that needs it;
- no SCSI disk or by-path link that is not an attached volume's;
- an attachment that was handed out is still there, its device the LUN's, its data intact.

Each agent process is a fork of the test with the point armed in its environment
(``ISCSI_AGENT_FAULT_POINT``): the fault point kills it on the spot, as a crash would.
"""

from __future__ import annotations

import os
import signal
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from iscsi_agent.array.connect import connect
from iscsi_agent.array.settings import ApiChoice
from iscsi_agent.faults import FAULT_ENV
from iscsi_agent.host.command import SubprocessRunner
from iscsi_agent.journal.store import FILE_NAME, Journal
from iscsi_agent.naa import netapp_wwid
from iscsi_agent.service.build import AgentServices
from tests.fault_points import ATTACH_POINTS, DETACH_POINTS, RECOVERY_POINTS
from tests.vm.agent_host import AgentHost, agent_host, agent_services

MIRROR_TID = 6
LUN0, LUN1 = "/vol/vol1/lun0", "/vol/vol1/lun1"
VOLUMES = (LUN0, LUN1, "/vol/vol1/lun2", "/vol/vol1/lun3")
CHILD_TIMEOUT = 300.0
_run = SubprocessRunner()


@pytest.fixture
def agent(tmp_path: Path, initiator_iqn: str) -> Iterator[AgentHost]:
    with agent_host(ApiChoice.REST, tmp_path / "state", initiator_iqn, MIRROR_TID) as host:
        yield host


def killed_at(agent: AgentHost, point: str, work: Callable[[AgentServices], object]) -> None:
    """Run ``work`` in a new agent process with ``point`` armed; it must die there by SIGKILL."""
    config = agent.config
    agent.journal.close()  # the new process takes the journal's lock, as a restarted agent does
    pid = os.fork()
    if pid == 0:  # the agent process: never returns into pytest
        try:
            os.environ[FAULT_ENV] = point
            journal = Journal.open(config.agent.state_dir / FILE_NAME)
            work(agent_services(config, connect(config.array.to_settings()), journal, agent.initiator))
            print(f"{point} was never reached", flush=True)
        except BaseException:  # noqa: BLE001 - the child reports and exits; pytest must not resume in it
            traceback.print_exc()
        finally:
            os._exit(3)
    status = _wait(pid)
    agent.journal = Journal.open(config.agent.state_dir / FILE_NAME)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, (
        f"the agent was not killed at {point} (status {status:#x})"
    )


def _wait(pid: int) -> int:
    deadline = time.monotonic() + CHILD_TIMEOUT
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        time.sleep(0.2)
    os.kill(pid, signal.SIGKILL)
    raise AssertionError(f"the agent process ran past {CHILD_TIMEOUT:g}s")


def restart(agent: AgentHost) -> None:
    """A new agent: start-up recovery from the journal, then one reconciler pass."""
    services = agent.restart()
    for recovered in services.recovery.run():
        print(f"recovered {recovered.kind.value} {recovered.operation}: {recovered.resolution.value}")
    for action in services.reconciler.run():
        print(f"reconcile: {action.action} {action.target} ({action.reason})")
    _run(["udevadm", "settle", "--timeout=30"], timeout=60)


def assert_invariants(agent: AgentHost, data: dict[str, bytes] | None = None) -> None:
    attached = {a.volume: a for a in agent.service.attachments()}
    group = [i.name for i in agent.array.igroups_with_initiator(agent.initiator)]
    assert len(group) <= 1, f"duplicate igroups: {group}"
    for volume in VOLUMES:
        assert len(agent.maps(volume)) == (1 if volume in attached else 0), f"{volume}: {agent.maps(volume)}"
    assert agent.journal.in_flight() == []
    sessions = _run(["iscsiadm", "-m", "session"], timeout=30).stdout.strip()
    assert bool(sessions) == bool(attached), f"sessions {sessions!r} for attachments {sorted(attached)}"
    wanted = {"naa." + netapp_wwid(agent.serial(volume)) for volume in attached}
    for disk in sorted(Path("/sys/block").glob("sd*")):
        assert (disk / "device/wwid").read_text().strip() in wanted, f"{disk.name} belongs to no attachment"
    for link in Path("/dev/disk/by-path").glob("*-iscsi-*"):
        assert link.resolve().exists(), f"dangling {link}"
    for volume, attachment in attached.items():
        assert Path(f"/sys/block/{attachment.device.resolve().name}/device/wwid").read_text().strip() == (
            "naa." + netapp_wwid(agent.serial(volume))
        )
        if data and volume in data:
            with open(attachment.device, "rb", buffering=0) as disk:
                assert disk.read(len(data[volume])) == data[volume]


def write(device: Path) -> bytes:
    payload = os.urandom(4096)
    with open(device, "r+b", buffering=0) as disk:
        disk.write(payload)
        os.fsync(disk.fileno())
    return payload


@pytest.mark.parametrize("point", ATTACH_POINTS)
def test_the_agent_killed_in_an_attach_starts_again_into_a_consistent_host(agent: AgentHost, point: str):
    killed_at(agent, point, lambda services: services.volumes.attach(LUN1))
    restart(agent)
    assert_invariants(agent)
    handed_out = point == "attach.handed_out.done"
    assert [a.volume for a in agent.service.attachments()] == ([LUN1] if handed_out else [])
    if handed_out:  # the device the client may already use is intact and works
        attachment = agent.service.attachments()[0]
        payload = write(attachment.device)
        assert_invariants(agent, {LUN1: payload})


@pytest.mark.parametrize("point", DETACH_POINTS)
def test_the_agent_killed_in_a_detach_starts_again_and_finishes_it(agent: AgentHost, point: str):
    agent.service.attach(LUN1)
    killed_at(agent, point, lambda services: services.volumes.detach(LUN1, force=False))
    restart(agent)
    assert agent.service.attachments() == []
    assert_invariants(agent)


@pytest.mark.parametrize("point", RECOVERY_POINTS)
def test_the_agent_killed_in_its_own_recovery_starts_again_and_carries_it_on(agent: AgentHost, point: str):
    killed_at(agent, "attach.scan.done", lambda services: services.volumes.attach(LUN1))
    killed_at(agent, point, lambda services: services.recovery.run())
    restart(agent)
    assert_invariants(agent)


def test_a_crash_beside_a_volume_in_use_leaves_that_volume_and_its_session_alone(agent: AgentHost):
    kept, _ = agent.service.attach(LUN0)
    payload = write(kept.device)
    killed_at(agent, "attach.scan.done", lambda services: services.volumes.attach(LUN1))
    killed_at(agent, "attach.map.done", lambda services: services.volumes.attach("/vol/vol1/lun2"))
    restart(agent)
    assert [a.volume for a in agent.service.attachments()] == [LUN0]
    assert_invariants(agent, {LUN0: payload})
