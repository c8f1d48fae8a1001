"""Is this device that ONTAP LUN? The identity rules, as pure functions, plus the fresh-inquiry check.

ONTAP puts the LUN serial on VPD page 0x80 and derives the NAA WWID from it:
``600a0980`` + hex(serial bytes). A device is only that LUN when both agree; a device whose
identity disagrees at a LUN id the array maps is stale (the id was reused), and so is a
device at a LUN id the array no longer maps.

An identity that could not be read (a failed VPD read, a failed rescan) is its own verdict,
UNREADABLE: it proves nothing either way, so it never makes a device stale. Only a positive
mismatch on a fresh read does.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Protocol

from iscsi_agent.host.devices import DeviceIdentity
from iscsi_agent.host.sessions import ScsiAddress
from iscsi_agent.naa import netapp_wwid, normalize_wwid


class Verdict(enum.Enum):
    MATCH = "match"
    SERIAL_MISMATCH = "serial on VPD page 0x80 differs"
    WWID_MISMATCH = "NAA WWID differs from 600a0980 + hex(serial)"
    NO_IDENTITY = "the device reports no serial or no WWID"
    UNREADABLE = "the device's identity could not be read; nothing is known either way"


# a positive disagreement: the device is another LUN (not merely unreadable or without identity)
MISMATCHES = frozenset({Verdict.SERIAL_MISMATCH, Verdict.WWID_MISMATCH})


class StaleReason(enum.Enum):
    LUN_GONE = "the array no longer maps this LUN id"
    IDENTITY_MISMATCH = "the array maps a different LUN at this id"


def is_lun(identity: DeviceIdentity, serial: str) -> Verdict:
    """Whether the device is the LUN with this serial: page 0x80 AND the NAA WWID must both agree.

    Any unreadable part makes the whole verdict UNREADABLE, even where the readable part disagrees.
    """
    if identity.unreadable:
        return Verdict.UNREADABLE
    if not identity.serial or not identity.wwid:
        return Verdict.NO_IDENTITY
    if identity.serial != serial:
        return Verdict.SERIAL_MISMATCH
    if normalize_wwid(identity.wwid) != netapp_wwid(serial):
        return Verdict.WWID_MISMATCH
    return Verdict.MATCH


def stale_reason(lun_id: int, identity: DeviceIdentity, mapped: Mapping[int, str]) -> StaleReason | None:
    """Why a device at ``lun_id`` is stale, given the array's maps for this host (LUN id -> serial).

    ``identity`` must be fresh (``Devices.fresh_identity``): sysfs keeps an old one after a LUN id
    is reused. None means not shown to be stale: the device is that LUN, or its identity could not
    be read (``is_lun`` then says UNREADABLE), and a device is never removed on "could not read".
    """
    serial = mapped.get(lun_id)
    if serial is None:
        return StaleReason.LUN_GONE
    verdict = is_lun(identity, serial)
    if verdict in (Verdict.MATCH, Verdict.UNREADABLE):
        return None
    return StaleReason.IDENTITY_MISMATCH


class FreshInquiry(Protocol):
    def fresh_identity(self, address: ScsiAddress) -> DeviceIdentity: ...


def verify_lun(devices: FreshInquiry, address: ScsiAddress, serial: str) -> tuple[Verdict, DeviceIdentity]:
    """Check the device at address against serial on a fresh identity, never the cached one.

    A rescan that cannot be written gives UNREADABLE, not a verdict on the cached identity.
    """
    identity = devices.fresh_identity(address)
    return is_lun(identity, serial), identity
