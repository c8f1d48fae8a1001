"""The identity rule, the portal and its formatting have one definition, shared by the array and host layers."""

from iscsi_agent.array.model import Lif, Lun
from iscsi_agent.host import identity
from iscsi_agent.host.devices import DeviceIdentity
from iscsi_agent.naa import netapp_wwid
from iscsi_agent.portal import Portal, bracketed


def test_a_lun_names_its_wwid_by_the_rule_the_host_checks_devices_with():
    lun = Lun("/vol/v/l", "u", "wH5?k2Lm/9Qa", 1, "linux", True)
    device = DeviceIdentity("NETAPP", "LUN C-Mode", "9800", serial=lun.serial, wwid="naa." + lun.naa_id)
    assert lun.naa_id == netapp_wwid(lun.serial) == "600a0980" + b"wH5?k2Lm/9Qa".hex()
    assert identity.is_lun(device, lun.serial) is identity.Verdict.MATCH


def test_a_lif_carries_the_portal_iscsiadm_is_given():
    lif = Lif(Portal("fd00::11"), None, "node-01", "node-01")
    assert isinstance(lif.portal, Portal)
    assert str(lif.portal) == "[fd00::11]:3260"
    assert lif.address == "fd00::11"


def test_only_ipv6_hosts_are_bracketed():
    assert bracketed("fd00::1") == "[fd00::1]"
    assert bracketed("10.0.0.1") == "10.0.0.1"
    assert bracketed("array.example") == "array.example"
