"""The attach answer's connection_info is os-brick's iSCSI connection properties and holds no secret."""

import pytest

from iscsi_agent.portal import Portal
from iscsi_agent.service.connection_info import connection_info

IQN = "iqn.1992-08.com.netapp:sn.4b1d:vs.3"


def test_one_entry_per_portal_the_first_primary():
    info = connection_info(
        target_iqn=IQN,
        portals=[Portal("fd00::1"), Portal("10.0.0.2")],
        lun_id=4,
        volume_id="u-1",
        chap_username=None,
    )
    assert info == {
        "driver_volume_type": "iscsi",
        "data": {
            "target_discovered": False,
            "target_portal": "[fd00::1]:3260",
            "target_iqn": IQN,
            "target_lun": 4,
            "target_portals": ["[fd00::1]:3260", "10.0.0.2:3260"],
            "target_iqns": [IQN, IQN],
            "target_luns": [4, 4],
            "volume_id": "u-1",
            "auth_method": None,
            "auth_username": None,
        },
    }


def test_chap_is_named_by_user_only():
    info = connection_info(
        target_iqn=IQN, portals=[Portal("10.0.0.2")], lun_id=1, volume_id="u", chap_username="u1"
    )
    assert info["data"]["auth_method"] == "CHAP" and info["data"]["auth_username"] == "u1"
    assert not any("password" in key or "secret" in key for key in info["data"])


def test_no_portal_is_a_programming_error():
    with pytest.raises(ValueError):
        connection_info(target_iqn=IQN, portals=[], lun_id=1, volume_id="u", chap_username=None)
