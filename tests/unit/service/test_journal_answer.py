"""An attach or GET answered from the journal hands out the recorded device only while it is that LUN.

The kernel reuses names (``/dev/sda`` may now be another LUN's disk) and the array reuses LUN ids
(the disk at the id reads as another LUN after a rescan, while udev's links still carry the old
WWID). So before the journal's device is handed out again, its identity is read afresh and compared
with the LUN's serial, whether it was handed out as a by-id link or, without one, as the bare node.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from iscsi_agent.host.errors import IdentityUnreadable
from iscsi_agent.host.sessions import ScsiAddress
from iscsi_agent.service.errors import WrongDevice
from iscsi_agent.service_api import Attachment
from tests.contract.helpers import array_map
from tests.unit.service.conftest import (
    OWN_IGROUP,
    Host,
    serial_of,
    unmap_behind_the_agents_back,
)

LUN1, LUN2 = "/vol/vol1/lun1", "/vol/vol1/lun2"


def address_of(host: Host, attached: Attachment) -> ScsiAddress:
    session = next(iter(host.initiator.sessions.values()))
    return ScsiAddress(session.host, 0, 0, attached.lun_id)


def hand_out_the_bare_node(host: Host, attached: Attachment, node: str = "/dev/sda") -> None:
    """What an attach recorded when the disk had no ``wwn-`` link: its node."""
    found = host.journal.attachment(attached.lun_uuid)
    assert found is not None
    host.journal.put_attachment(dataclasses.replace(found.attachment, device=node))


def give_the_lun_id_to_another_lun(host: Host, attached: Attachment) -> None:
    """Behind the agent's back: the LUN is unmapped and LUN2 mapped at its id; the old disk stays,
    and a fresh read of it now answers as LUN2."""
    unmap_behind_the_agents_back(host, LUN1)
    array_map(host.sim, LUN2, OWN_IGROUP, attached.lun_id)
    host.tree.set_identity(address_of(host, attached), serial_of(host, LUN2))


def resolved(host: Host, device: Path) -> str:
    return (host.tree.root / str(device).lstrip("/")).resolve().name


@pytest.mark.parametrize("handed_out", ["by-id link", "bare node"])
def test_a_recorded_device_that_is_now_another_lun_is_not_handed_out_again(host: Host, handed_out: str):
    first, _ = host.service.attach(LUN1)
    if handed_out == "bare node":
        hand_out_the_bare_node(host, first)
    give_the_lun_id_to_another_lun(host, first)
    again, created = host.service.attach(LUN1)
    assert created  # attached again, properly: a new map, a new disk that is the LUN
    assert again.lun_id != first.lun_id
    assert resolved(host, again.device) != "sda"
    if handed_out == "by-id link":
        assert again.device == first.device  # the same wwn- name, now leading to the LUN's own disk


def test_asking_for_an_attachment_whose_device_is_now_another_lun_names_what_it_is(host: Host):
    first, _ = host.service.attach(LUN1)
    hand_out_the_bare_node(host, first)
    give_the_lun_id_to_another_lun(host, first)
    with pytest.raises(WrongDevice) as refused:
        host.service.attachment(LUN1)
    assert refused.value.details["device"] == "/dev/sda"
    assert refused.value.details["found_serial"] == serial_of(host, LUN2)
    assert refused.value.details["serial"] == serial_of(host, LUN1)


def test_a_recorded_device_whose_identity_cannot_be_read_is_not_handed_out(host: Host):
    first, _ = host.service.attach(LUN1)
    hand_out_the_bare_node(host, first)
    host.tree.break_attr(address_of(host, first), "vpd_pg80")
    with pytest.raises(IdentityUnreadable) as refused:
        host.service.attach(LUN1)
    assert refused.value.details["device"] == "/dev/sda"
    assert [a.lun_id for a in host.service.attachments()] == [first.lun_id]  # nothing was changed


def test_a_recorded_bare_node_that_is_still_the_lun_is_answered_again(host: Host):
    first, _ = host.service.attach(LUN1)
    hand_out_the_bare_node(host, first)
    again, created = host.service.attach(LUN1)
    assert (again.device, created) == (Path("/dev/sda"), False)
    assert host.service.attachment(LUN1).device == Path("/dev/sda")
