"""The service's values as the socket API's JSON (shared/design.md), and nowhere else.

``connection_info`` (os-brick's iSCSI connection properties, ``iscsi_agent.service.connection_info``)
is derived from the attachment's own fields; an Attachment holds no secret, so the answer cannot
leak one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from iscsi_agent.service.connection_info import connection_info
from iscsi_agent.service_api import Attachment, Detachment, Health, ReconcileAction, Resized


def attachment_json(attachment: Attachment) -> dict[str, Any]:
    portals = [str(portal) for portal in attachment.portals]
    return {
        "volume": attachment.volume,
        "lun_uuid": attachment.lun_uuid,
        "device": str(attachment.device),
        "wwid": attachment.wwid,
        "lun_id": attachment.lun_id,
        "target_iqn": attachment.target_iqn,
        "portals": portals,
        "multipath": attachment.multipath,
        "state": attachment.state.value,
        "connection_info": connection_info(
            target_iqn=attachment.target_iqn,
            portals=attachment.portals,
            lun_id=attachment.lun_id,
            volume_id=attachment.lun_uuid,
            chap_username=attachment.auth_username,
        ),
    }


def attachments_json(attachments: Sequence[Attachment]) -> dict[str, Any]:
    return {"attachments": [attachment_json(attachment) for attachment in attachments]}


def detachment_json(detachment: Detachment) -> dict[str, Any]:
    return {"volume": detachment.volume, "detached": True}


def resized_json(resized: Resized) -> dict[str, Any]:
    return {"volume": resized.volume, "device": str(resized.device), "size_bytes": resized.size_bytes}


def health_json(health: Health) -> dict[str, Any]:
    return {
        "status": health.status.value,
        "array": {"reachable": health.array.reachable, "api": health.array.api, "error": health.array.error},
        "sessions": health.sessions,
        "attachments": health.attachments,
        "last_reconcile": health.last_reconcile.isoformat() if health.last_reconcile else None,
        "problems": list(health.problems),
    }


def actions_json(actions: Sequence[ReconcileAction]) -> dict[str, Any]:
    return {
        "actions": [
            {"action": action.action, "target": action.target, "reason": action.reason, "done": action.done}
            for action in actions
        ]
    }
