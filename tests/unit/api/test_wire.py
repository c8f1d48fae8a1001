"""The service's values as the API's JSON, connection_info after os-brick's iSCSI properties."""

from dataclasses import replace
from datetime import UTC, datetime

from iscsi_agent.api.wire import actions_json, attachment_json, detachment_json, health_json
from iscsi_agent.service_api import (
    ArrayHealth,
    Detachment,
    Health,
    HealthStatus,
    ReconcileAction,
    VolumeState,
)
from tests.unit.api.fakes import TARGET, attachment


def test_an_attachment_answers_every_field_of_the_contract():
    shown = attachment_json(attachment("/vol/vol1/lun2", lun_id=2))
    assert shown["volume"] == "/vol/vol1/lun2"
    assert shown["lun_uuid"] == "00000000-0000-4000-8000-000000000002"
    assert shown["device"] == f"/dev/disk/by-id/wwn-0x{shown['wwid']}" and shown["wwid"].startswith(
        "600a0980"
    )
    assert (shown["lun_id"], shown["target_iqn"], shown["multipath"]) == (2, TARGET, False)
    assert shown["portals"] == ["127.0.0.1:3260", "[fe80::1]:3261"]
    assert shown["state"] == "attached"


def test_a_volume_a_detach_left_partway_is_shown_as_detaching():
    shown = attachment_json(replace(attachment(), state=VolumeState.DETACHING))
    assert shown["state"] == "detaching"


def test_connection_info_is_os_bricks_iscsi_properties_for_every_portal():
    assert attachment_json(attachment(lun_id=2))["connection_info"] == {
        "driver_volume_type": "iscsi",
        "data": {
            "target_discovered": False,
            "target_portal": "127.0.0.1:3260",
            "target_iqn": TARGET,
            "target_lun": 2,
            "target_portals": ["127.0.0.1:3260", "[fe80::1]:3261"],
            "target_iqns": [TARGET, TARGET],
            "target_luns": [2, 2],
            "volume_id": "00000000-0000-4000-8000-000000000002",
            "auth_method": None,
            "auth_username": None,
        },
    }


def test_connection_info_names_the_chap_user_and_no_secret():
    data = attachment_json(attachment(auth_username="host7"))["connection_info"]["data"]
    assert (data["auth_method"], data["auth_username"]) == ("CHAP", "host7")
    assert not any("password" in key or "secret" in key for key in data)


def test_detachment_health_and_actions():
    assert detachment_json(Detachment("/vol/vol1/lun0")) == {"volume": "/vol/vol1/lun0", "detached": True}
    health = Health(
        HealthStatus.DEGRADED,
        ArrayHealth(False, None, "array_unreachable"),
        0,
        1,
        None,
        problems=("sdc (1:0:0:3) held by /mnt",),
    )
    assert health_json(health) == {
        "status": "degraded",
        "array": {"reachable": False, "api": None, "error": "array_unreachable"},
        "sessions": 0,
        "attachments": 1,
        "last_reconcile": None,
        "problems": ["sdc (1:0:0:3) held by /mnt"],
    }
    at = datetime(2026, 12, 1, 23, 0, 5, tzinfo=UTC)
    assert health_json(Health(HealthStatus.OK, ArrayHealth(True, "zapi"), 3, 2, at))["last_reconcile"] == (
        "2026-12-01T23:00:05+00:00"
    )
    assert actions_json(
        [ReconcileAction("logout_idle_session", "iqn...:vs.3 127.0.0.1:3260", "no LUN", True)]
    ) == {
        "actions": [
            {
                "action": "logout_idle_session",
                "target": "iqn...:vs.3 127.0.0.1:3260",
                "reason": "no LUN",
                "done": True,
            }
        ]
    }
