"""ONTAP's LUN identity rule, defined once: the NAA WWID is ``600a0980`` + hex(serial bytes).

The array client names a LUN's WWID with it and the host layer checks devices against it; a second
copy of the rule could drift and hand out a wrong device.
"""

from __future__ import annotations

NETAPP_NAA_PREFIX = "600a0980"  # NAA type 6, NetApp's IEEE company id
_WWID_FORMS = ("naa.", "0x")


def netapp_wwid(serial: str) -> str:
    """The NAA WWID ONTAP derives from a serial, bare lower-case hex: 600a0980 + hex(serial)."""
    return NETAPP_NAA_PREFIX + serial.encode("ascii").hex()


def multipath_wwid(serial: str) -> str:
    """The same WWID as multipath and udev write it (a leading 3, the NAA designator type)."""
    return "3" + netapp_wwid(serial)


def normalize_wwid(wwid: str) -> str:
    """Bare lower-case hex from any spelling: "naa.600A..." (sysfs), "3600a..." (udev), "0x600a...".

    Non-NAA forms (t10., eui.) come back unchanged apart from case, so they never match.
    """
    text = wwid.strip().lower()
    for prefix in _WWID_FORMS:
        if text.startswith(prefix):
            return text[len(prefix) :]
    if text.startswith("3") and len(text) in (17, 33):
        return text[1:]
    return text


def serial_from_wwid(wwid: str) -> str | None:
    """The serial a NetApp WWID was derived from (any spelling); None for a WWID ONTAP did not make."""
    bare = normalize_wwid(wwid)
    if not bare.startswith(NETAPP_NAA_PREFIX):
        return None
    try:
        return bytes.fromhex(bare[len(NETAPP_NAA_PREFIX) :]).decode("ascii")
    except (ValueError, UnicodeDecodeError):
        return None
