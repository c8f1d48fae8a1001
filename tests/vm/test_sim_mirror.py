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
from iscsi_agent.host.identity import StaleReason, Verdict, stale_reason, verify_lun
from ontap_sim.tgt import naa_id
from tests.vm.mirrored import MirroredArray, log_in_and_scan, mirrored_array

MIRROR_TID = 2  # apart from the `target` fixture's tid, so a leftover of one cannot mask the other
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

    scanned = log_in_and_scan(client, lun_id)
    device, devices, address = scanned.device, scanned.devices, scanned.address
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
