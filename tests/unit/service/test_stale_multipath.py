"""A stale path at a reused LUN id that runs under the old LUN's multipath map (synthetic host).

The map holds the path (and claims it), so the path cannot go while the map is there. The map is
the old LUN's and now leads to the new one: it goes when nothing uses it (failed first, then
flushed), and the path after it, unflushed; a map something uses stops the attach, naming the
holder, with nothing removed. The VM tier shows the same on a real kernel
(tests/vm/test_multipath_reuse.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from iscsi_agent.host.command import CommandResult
from iscsi_agent.host.multipath import Multipath
from iscsi_agent.host.removal import DeviceRemover
from iscsi_agent.host.sessions import ScsiAddress, Session
from iscsi_agent.naa import multipath_wwid
from iscsi_agent.service.errors import WrongDevice
from iscsi_agent.service.lun_device import LunDevices
from tests.contract.helpers import array_maps
from tests.initiator_world import KernelDevices
from tests.unit.service.conftest import Host, config_for, host_layer, polling, unmap_behind_the_agents_back
from tests.unit.service.test_attach_detach import LUN1, LUN2, OWN_IGROUP, disks, serial_of

OLD_SERIAL = "OLDSERIAL001"
OLD_MAP = multipath_wwid(OLD_SERIAL)


@dataclass
class MultipathTools:
    """dmsetup and multipath(d) on the synthetic host: ``multipath -f`` removes the map and its claims."""

    host: Host
    argvs: list[tuple[str, ...]] = field(default_factory=list)

    def __call__(self, argv: Sequence[str], *, timeout: float, secrets: Sequence[str] = ()) -> CommandResult:
        args = tuple(argv)
        self.argvs.append(args)
        if args[:2] == ("multipath", "-f"):
            dm = next(
                p.name for p in (self.host.tree.root / "sys/block").iterdir() if _map_name(p) == args[-1]
            )
            for path in self.host.tree.remove_multipath(dm):
                self.host.block.claimed.discard(path)
        return CommandResult(args, 0, "", "")


def _map_name(folder) -> str | None:
    name = folder / "dm/name"
    return name.read_text().strip() if name.exists() else None


@pytest.fixture
def tools(host: Host) -> MultipathTools:
    return MultipathTools(host)


def lun_devices(host: Host, tools: MultipathTools) -> LunDevices:
    layer = host.layer
    multipath = Multipath(layer.paths, tools, host.clock)
    return LunDevices(layer.sessions, layer.devices, layer.remover, host.clock, multipath=multipath)


def stale_path_under_old_map(host: Host) -> tuple[Session, int]:
    """Logged in, the next LUN id holding a disk of a LUN unmapped behind the host's back, under that
    LUN's multipath map (which claims it), and LUN1 mapped at that id now."""
    first, _ = host.service.attach("lun3")
    [session] = host.layer.sessions.current()
    lun_id = first.lun_id + 1
    host.tree.add_disk(ScsiAddress(session.host_number, 0, 0, lun_id), "sdx", OLD_SERIAL, sid=session.sid)
    host.tree.add_multipath("dm-7", OLD_MAP, "mpath-" + OLD_MAP, ["sdx"])
    host.block.claimed.add("sdx")
    assert host.array.map_lun(LUN1, OWN_IGROUP) == lun_id
    return session, lun_id


def test_the_old_luns_unused_map_is_failed_and_flushed_then_its_path_replaced_unflushed(
    host: Host, tools: MultipathTools
):
    session, lun_id = stale_path_under_old_map(host)
    device, scanned = lun_devices(host, tools).bring_up(session, lun_id, serial_of(host, LUN1))
    assert scanned and device.identity.serial == serial_of(host, LUN1) and device.name != "sdx"
    assert tools.argvs[:3] == [
        ("dmsetup", "message", OLD_MAP, "0", "fail_if_no_path"),
        ("multipath", "-f", "-R", "5", OLD_MAP),
        ("multipathd", "del", "path", "sdx"),
    ]
    assert "sdx" not in disks(host) and "dm-7" not in disks(host)
    assert "sdx" not in host.block.flushed  # its pages were written for the old LUN, not this one


def test_a_map_of_the_old_lun_that_something_holds_stops_the_attach_naming_it(
    host: Host, tools: MultipathTools
):
    session, lun_id = stale_path_under_old_map(host)
    host.tree.open_by(4711, "qemu-system-x86", "dm-7")
    with pytest.raises(
        WrongDevice, match=r"multipath map .* is in use \(open by pid 4711 \(qemu-system-x86\)\)"
    ) as held:
        lun_devices(host, tools).bring_up(session, lun_id, serial_of(host, LUN1))
    assert held.value.details["holder"] == "open by pid 4711 (qemu-system-x86)"
    assert held.value.details["multipath_map"] == OLD_MAP
    assert tools.argvs == [] and {"sdx", "dm-7"} <= set(disks(host))


def test_without_multipath_a_stale_path_held_by_a_map_stays_a_refusal(host: Host):
    session, lun_id = stale_path_under_old_map(host)
    with pytest.raises(WrongDevice, match="in use"):
        LunDevices(host.layer.sessions, host.layer.devices, host.layer.remover, host.clock).bring_up(
            session, lun_id, serial_of(host, LUN1)
        )
    assert {"sdx", "dm-7"} <= set(disks(host))


def with_multipath(host: Host) -> None:
    """The same host and journal, the agent now configured with multipath and a kernel whose rescans
    read the identity the target offers now."""
    host.config = config_for(host.sim, host.tree.root, host.config.agent.state_dir, multipath=True)
    layer = host_layer(host.config, host.initiator, host.clock, host.block)
    devices = KernelDevices(layer.paths, host.clock, host.initiator, polling)
    remover = DeviceRemover(layer.paths, devices, host.block, host.clock)
    host.layer = dataclasses.replace(layer, devices=devices, remover=remover)
    host.services = host._build()


def test_detach_when_the_lun_id_now_leads_to_another_lun_removes_the_map_and_the_stale_path_unflushed(
    host: Host,
):
    attachment, _ = host.service.attach(LUN1)
    [path] = [name for name in disks(host) if name.startswith("sd")]
    wwid = multipath_wwid(serial_of(host, LUN1))
    host.tree.add_multipath("dm-7", wwid, "mpath-" + wwid, [path])
    with_multipath(host)
    unmap_behind_the_agents_back(host, LUN1)
    assert host.array.map_lun(LUN2, OWN_IGROUP, attachment.lun_id) == attachment.lun_id

    host.service.detach(LUN1, force=False)
    assert path not in disks(host) and "dm-7" not in disks(host)
    assert path not in host.block.flushed  # what it buffered was LUN1's; LUN2 is behind it now
    calls = host.initiator.calls
    assert calls.index(("dmsetup", "message", wwid, "0", "fail_if_no_path")) < calls.index(
        ("multipath", "-f", "-R", "5", wwid)
    )
    assert array_maps(host.sim, LUN2) == [(OWN_IGROUP, attachment.lun_id)]  # not LUN1's to remove
    assert host.service.attachments() == []


def test_detach_of_a_path_that_is_still_the_lun_flushes_it(host: Host):
    host.service.attach(LUN1)
    [path] = [name for name in disks(host) if name.startswith("sd")]
    with_multipath(host)
    host.service.detach(LUN1, force=False)
    assert path not in disks(host) and host.block.flushed == [path]
