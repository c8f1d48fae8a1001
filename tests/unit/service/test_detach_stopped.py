"""A detach that stops partway (a holder that appears after the in-use check), and one on a dead path.

Nothing removed yet: the volume is attached as before and the refusal names the holder. Something
removed already: the error says what was removed and what is left, and the volume stays listed (as
detaching) so that the client's retry finishes the detach.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from iscsi_agent.array.errors import ArrayError
from iscsi_agent.host.errors import IdentityUnreadable
from iscsi_agent.host.sessions import ScsiAddress
from iscsi_agent.service_api import VolumeInUse
from tests.contract.helpers import array_maps
from tests.unit.service.conftest import (
    OWN_IGROUP,
    Host,
    config_for,
    refuse_unmaps,
    unmap_behind_the_agents_back,
)

LUN1 = "/vol/vol1/lun1"


def disks(host: Host) -> list[str]:
    return sorted(entry.name for entry in (host.tree.root / "sys/block").iterdir())


def opens_before_claim(host: Host, device: str, pid: int = 4242) -> Callable[[Path], None]:
    """A process opens ``device`` once, right before the removal claims ``device`` (after the detach's
    own in-use check): the window no check can close, since a plain open cannot be kept out."""

    def act(node: Path) -> None:
        if node.name == device and not (host.tree.root / f"proc/{pid}").exists():
            host.tree.open_by(pid, "qemu-system-x86", device)

    return act


def with_multipath(host: Host, tmp_path: Path) -> None:
    host.with_config(config_for(host.sim, host.tree.root, tmp_path / "state", multipath=True))


def test_a_holder_that_appears_after_the_check_leaves_the_volume_attached_as_it_was(host: Host):
    attachment, _ = host.service.attach(LUN1)
    host.block.on_claim = opens_before_claim(host, "sda")
    with pytest.raises(VolumeInUse, match=r"open by pid 4242 \(qemu-system-x86\)") as refused:
        host.service.detach(LUN1, force=False)
    assert disks(host) == ["sda"] and array_maps(host.sim, LUN1) == [(OWN_IGROUP, attachment.lun_id)]
    assert host.service.attachments() == [attachment]
    assert host.service.attachment(LUN1) == attachment
    before = host.array_requests()
    assert host.service.attach(LUN1) == (attachment, False)  # answered from the record, not attached anew
    assert host.array_requests() == before
    assert refused.value.details["device"] == "/dev/sda"


def test_a_multipath_attach_runs_over_a_map_of_both_paths(host: Host, tmp_path: Path):
    with_multipath(host, tmp_path)
    attachment, _ = host.service.attach(LUN1)
    assert attachment.multipath and len(attachment.portals) == 2
    assert host.initiator.multipath_maps() == {"dm-0": attachment.wwid}
    assert attachment.device == Path(f"/dev/mapper/{attachment.wwid}")


def test_a_path_held_after_the_map_went_says_what_was_removed_and_what_is_left(host: Host, tmp_path: Path):
    with_multipath(host, tmp_path)
    attachment, _ = host.service.attach(LUN1)
    host.block.on_claim = opens_before_claim(host, "sdb")
    with pytest.raises(VolumeInUse, match=r"open by pid 4242") as refused:
        host.service.detach(LUN1, force=False)
    mapper = f"/dev/mapper/{attachment.wwid}"
    assert refused.value.details["removed"] == [mapper, "/dev/sda"]
    assert refused.value.details["left"] == ["/dev/sdb"]
    assert f"removed {mapper}, /dev/sda" in str(refused.value) and "left /dev/sdb" in str(refused.value)
    assert disks(host) == ["sdb"] and array_maps(host.sim, LUN1) == [(OWN_IGROUP, attachment.lun_id)]
    listed = host.service.attachments()
    assert [(a.volume, a.state.value) for a in listed] == [(LUN1, "detaching")]
    assert host.service.attachment(LUN1).state.value == "detaching"


@pytest.mark.parametrize(
    ("multipath", "held"), [(False, "sda"), (True, "sdb")], ids=["refused whole", "stopped half-done"]
)
def test_a_stopped_detach_is_finished_by_the_retry_once_the_holder_lets_go(
    host: Host, tmp_path: Path, multipath: bool, held: str
):
    if multipath:
        with_multipath(host, tmp_path)
    host.service.attach(LUN1)
    host.block.on_claim = opens_before_claim(host, held)
    with pytest.raises(VolumeInUse):
        host.service.detach(LUN1, force=False)
    (host.tree.root / "proc/4242/fd/3").unlink()
    host.service.detach(LUN1, force=False)
    assert disks(host) == [] and array_maps(host.sim, LUN1) == [] and host.service.attachments() == []
    assert host.initiator.sessions == {}


def test_a_map_opened_after_the_check_is_refused_naming_it_and_nothing_is_removed(host: Host, tmp_path: Path):
    with_multipath(host, tmp_path)
    attachment, _ = host.service.attach(LUN1)

    def opens_the_map(argv: tuple[str, ...]) -> None:
        if argv[:2] == ("multipath", "-f"):
            host.tree.open_by(4242, "qemu-system-x86", "dm-0")

    host.initiator.before_command.append(opens_the_map)
    with pytest.raises(VolumeInUse, match=r"open by pid 4242 \(qemu-system-x86\)") as refused:
        host.service.detach(LUN1, force=False)
    assert refused.value.details["device"] == f"/dev/mapper/{attachment.wwid}"
    assert disks(host) == ["dm-0", "sda", "sdb"]
    assert host.service.attachments() == [attachment]


def probe_opens_the_map_at_its_flush(host: Host, dm: str = "dm-0", pid: int = 4343) -> None:
    """udev's kpartx, run on the change event that closing a written map raises, has the map open
    when ``multipath -f`` comes (and through all of multipath's own retries: seen in CI under load),
    and lets go at the kernel's next step."""

    def opens(argv: tuple[str, ...]) -> None:
        if argv[:2] == ("multipath", "-f") and opens in host.initiator.before_command:
            host.tree.open_by(pid, "kpartx", dm)
            host.initiator.before_command.remove(opens)

    def lets_go() -> None:
        shutil.rmtree(host.tree.root / f"proc/{pid}", ignore_errors=True)

    host.initiator.before_command.append(opens)
    host.initiator.on_step.append(lets_go)


def test_a_map_a_udev_probe_holds_through_multipaths_own_retries_is_flushed_once_the_probe_is_done(
    host: Host, tmp_path: Path
):
    with_multipath(host, tmp_path)
    attachment, _ = host.service.attach(LUN1)
    probe_opens_the_map_at_its_flush(host)
    host.service.detach(LUN1, force=False)
    flushes = [call[-1] for call in host.initiator.calls if call[:2] == ("multipath", "-f")]
    assert flushes == [attachment.wwid, attachment.wwid]  # refused while the probe held it, then done
    assert disks(host) == [] and array_maps(host.sim, LUN1) == [] and host.service.attachments() == []


def test_an_unmap_the_array_refuses_after_the_devices_went_says_the_map_is_left(host: Host):
    host.service.attach(LUN1)
    refuse_unmaps(host)
    with pytest.raises(ArrayError, match=r"at unmap: .*; removed /dev/sda, left the map of ") as stopped:
        host.service.detach(LUN1, force=False)
    assert stopped.value.details["removed"] == ["/dev/sda"]
    assert stopped.value.details["left"] == [f"the map of {LUN1} to igroup {OWN_IGROUP}"]
    assert [(a.volume, a.state.value) for a in host.service.attachments()] == [(LUN1, "detaching")]
    host.sim.faults.clear()
    host.service.detach(LUN1, force=False)
    assert array_maps(host.sim, LUN1) == [] and host.service.attachments() == []


# --- a dead path: no fresh identity can be read -------------------------------------------------------


def the_path_dies(host: Host) -> None:
    """The LUN is gone behind the agent's back and its path with it: a rescan's inquiry fails."""
    (address,) = [
        ScsiAddress.parse(link.name) for link in (host.tree.root / "sys/class/scsi_device").iterdir()
    ]
    host.tree.break_attr(address, "rescan")


def test_a_forced_detach_removes_an_unused_device_on_a_dead_path_on_its_identity_verified_at_attach(
    host: Host,
):
    host.service.attach(LUN1)
    unmap_behind_the_agents_back(host, LUN1)
    the_path_dies(host)
    host.service.detach(LUN1, force=True)
    assert disks(host) == [] and host.service.attachments() == [] and host.initiator.sessions == {}


def test_without_force_a_dead_path_stops_the_detach_and_the_volume_stays_attached(host: Host):
    attachment, _ = host.service.attach(LUN1)
    the_path_dies(host)
    with pytest.raises(IdentityUnreadable):
        host.service.detach(LUN1, force=False)
    assert disks(host) == ["sda"] and host.service.attachments() == [attachment]


def test_a_forced_detach_does_not_remove_a_device_in_use_on_a_dead_path(host: Host):
    attachment, _ = host.service.attach(LUN1)
    the_path_dies(host)
    host.block.on_claim = opens_before_claim(host, "sda")
    with pytest.raises(VolumeInUse, match=r"pid 4242"):
        host.service.detach(LUN1, force=True)
    assert disks(host) == ["sda"] and host.service.attachments() == [attachment]


def test_a_forced_detach_of_a_volume_the_agent_has_no_record_of_wants_a_fresh_identity(host: Host):
    host.service.attach(LUN1)
    host.journal.remove_attachment(host.service.attachments()[0].lun_uuid)  # never verified by this agent
    the_path_dies(host)
    with pytest.raises(IdentityUnreadable):
        host.service.detach(LUN1, force=True)
    assert disks(host) == ["sda"]
