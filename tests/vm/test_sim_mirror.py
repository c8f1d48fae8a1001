"""The simulated array drives the real target: what the agent's client maps, the host really sees.

The ONTAP simulator runs inside the VM with a tgtd mirror; the agent's array client (over
ZAPI and over REST) creates the igroup and maps a LUN; the host layer logs in through the
portals the array reports and finds the LUN at the id the array assigned, with the LUN's
serial and NAA WWID. An unmap through the client removes the LUN from the target.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from iscsi_agent.array.settings import ApiChoice
from iscsi_agent.host.command import SubprocessRunner
from iscsi_agent.host.devices import Devices
from iscsi_agent.host.identity import StaleReason, Verdict, stale_reason, verify_lun
from iscsi_agent.host.iscsi_db import IscsiDatabase
from iscsi_agent.host.iscsiadm import Iscsiadm, NodeSettings
from iscsi_agent.host.paths import HostPaths
from iscsi_agent.host.sessions import ScsiAddress, Sessions
from iscsi_agent.host.waiting import SystemClock
from ontap_sim.tgt import naa_id
from tests.vm.mirrored import MirroredArray, mirrored_array

MIRROR_TID = 2  # apart from the `target` fixture's tid, so a leftover of one cannot mask the other
DEVICE_TIMEOUT = 60.0
IGROUP = "openstack-vmtier"


@pytest.fixture(params=[ApiChoice.ZAPI, ApiChoice.REST], ids=["zapi", "rest"])
def array(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MirroredArray]:
    with mirrored_array(tmp_path / "backing", MIRROR_TID, request.param) as mirrored:
        yield mirrored


def test_a_map_through_the_array_appears_on_the_host_and_an_unmap_removes_it_at_the_target(
    array, initiator_iqn
):
    client = array.client
    lun = client.lun_by_path("/vol/vol1/lun1")
    igroup = client.create_igroup(IGROUP, "linux", [initiator_iqn])
    lun_id = client.map_lun(lun.path, igroup.name)
    print(f"{client.api}: mapped {lun.path} (serial {lun.serial!r}) to {igroup.name} at LUN {lun_id}")
    assert f"SCSI SN: {lun.serial}" in array.tgt.show()

    paths, runner, clock = HostPaths(), SubprocessRunner(), SystemClock()
    iscsiadm, sessions, devices = (
        Iscsiadm(runner, IscsiDatabase(paths, clock), timeout=60, login_timeout=120),
        Sessions(paths),
        Devices(paths, clock),
    )
    target_iqn = client.iscsi_service().target_iqn
    portal = client.portals()[0].portal
    assert [found.iqn for found in iscsiadm.discover(portal)] == [target_iqn]
    iscsiadm.configure_node(target_iqn, portal, NodeSettings())
    iscsiadm.login(target_iqn, portal)
    session = sessions.find(target_iqn, portal)
    assert session is not None
    sessions.scan_lun(session.host_number, lun_id)
    address = ScsiAddress(session.host_number, 0, 0, lun_id)
    device = devices.wait_for(address, DEVICE_TIMEOUT, context=f"session{session.sid}")
    print(
        f"host sees {device.node} by-path {[link.name for link in device.by_path]} "
        f"serial {device.identity.serial!r} wwid {device.identity.wwid}"
    )
    verdict, identity = verify_lun(devices, address, lun.serial)
    assert verdict is Verdict.MATCH
    assert identity.wwid == "naa." + naa_id(lun.serial) == "naa." + lun.naa_id

    assert client.unmap_lun(lun.path, igroup.name) is True
    assert f"SCSI SN: {lun.serial}" not in array.tgt.show()
    assert client.maps_of_igroup(igroup.name) == ()
    # the host still holds the device: the array's word is what marks it stale
    assert stale_reason(lun_id, devices.identity(address), {}) is StaleReason.LUN_GONE
