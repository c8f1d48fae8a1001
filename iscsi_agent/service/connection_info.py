"""The attach answer's ``connection_info``: os-brick's iSCSI connection properties, never a secret.

Hypervisor tooling built around Cinder (Nova's volume drivers, os-brick) reads exactly these keys,
so a hook can hand them on unchanged. CHAP secrets stay on the host: ``auth_password`` is left out
on purpose.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from iscsi_agent.portal import Portal


def connection_info(
    *,
    target_iqn: str,
    portals: Sequence[Portal],
    lun_id: int,
    volume_id: str,
    chap_username: str | None,
) -> dict[str, Any]:
    """``{"driver_volume_type": "iscsi", "data": {...}}`` for the portals logged in, first one primary."""
    if not portals:
        raise ValueError("connection_info needs at least one portal")
    data: dict[str, Any] = {
        "target_discovered": False,
        "target_portal": str(portals[0]),
        "target_iqn": target_iqn,
        "target_lun": lun_id,
        "target_portals": [str(portal) for portal in portals],
        "target_iqns": [target_iqn] * len(portals),
        "target_luns": [lun_id] * len(portals),
        "volume_id": volume_id,
        "auth_method": "CHAP" if chap_username else None,
        "auth_username": chap_username,
    }
    return {"driver_volume_type": "iscsi", "data": data}
