"""Interface binding (``[iscsi] ifaces``) over the simulated array and a synthetic host: each session is
bound to the listed interface the kernel routes its portal through, a portal routed through any other
interface is not used, and the reconciler's relogin binds as the attach did."""

from __future__ import annotations

import logging

import pytest

from iscsi_agent.service.errors import NoUsablePortal
from tests.unit.service.conftest import Host, config_for

LUN1, LUN2 = "/vol/vol1/lun1", "/vol/vol1/lun2"
LIF1, LIF2 = "127.0.0.1:3260", "127.0.0.2:3260"


def bind(host: Host, ifaces: str, routed: dict[str, str], *, multipath: bool = False) -> None:
    """Configure ``ifaces`` and let the kernel route each LIF address through the interface given."""
    host.routes.interfaces.update(routed)
    host.with_config(
        config_for(host.sim, host.tree.root, host.config.agent.state_dir, multipath=multipath, ifaces=ifaces)
    )


def iface_calls(host: Host) -> list[tuple[str, ...]]:
    return [call for call in host.initiator.iscsiadm_calls if call[1:3] == ("-m", "iface")]


def test_a_session_is_bound_to_the_listed_interface_its_portal_is_routed_through(host: Host):
    bind(host, "ia-st0", {"127.0.0.1": "ia-st0", "127.0.0.2": "ia-st0"})
    attachment, _ = host.service.attach(LUN1)
    portal = str(attachment.portals[0])
    assert host.initiator.sessions[(attachment.target_iqn, portal)].iface == "ia-st0"
    assert host.initiator.ifaces["ia-st0"]["iface.net_ifacename"] == "ia-st0"
    record = host.initiator.bound_records["ia-st0"][(attachment.target_iqn, portal)]
    assert record["node.session.scan"] == "manual" and record["node.startup"] == "manual"
    discovery, login = (
        next(call for call in host.initiator.iscsiadm_calls if marker(call))
        for marker in (lambda call: "discovery" in call, lambda call: "--login" in call)
    )
    assert discovery[-4:] == ("-I", "ia-st0", "-o", "new")
    assert login[-3:] == ("-I", "ia-st0", "--login")
    sysfs = host.tree.root / "sys/class/iscsi_session"
    assert [(entry / "ifacename").read_text().strip() for entry in sysfs.iterdir()] == ["ia-st0"]


def test_the_iface_record_is_read_once_a_login_and_made_only_when_missing(host: Host):
    bind(host, "ia-st0", {"127.0.0.1": "ia-st0", "127.0.0.2": "ia-st0"})
    host.service.attach(LUN1)
    assert [call[call.index("-o") + 1] for call in iface_calls(host)] == ["show", "new", "update"]
    host.service.attach(LUN2)  # the session is there: no iscsiadm at all
    assert len(iface_calls(host)) == 3


def test_a_portal_routed_through_an_unlisted_interface_is_not_used(host: Host):
    bind(host, "ia-st0", {"127.0.0.1": "eth0", "127.0.0.2": "ia-st0"}, multipath=True)
    attachment, _ = host.service.attach(LUN1)
    assert [str(portal) for portal in attachment.portals] == [LIF2]
    assert [(key[1], session.iface) for key, session in host.initiator.sessions.items()] == [(LIF2, "ia-st0")]


def test_with_two_listed_interfaces_each_portal_goes_through_its_own(host: Host):
    bind(host, "ia-st0, ia-st1", {"127.0.0.1": "ia-st0", "127.0.0.2": "ia-st1"}, multipath=True)
    host.service.attach(LUN1)
    assert sorted((key[1], session.iface) for key, session in host.initiator.sessions.items()) == [
        (LIF1, "ia-st0"),
        (LIF2, "ia-st1"),
    ]


def test_with_no_portal_through_a_listed_interface_the_attach_fails_naming_each_portals_interface(host: Host):
    bind(host, "ia-st0", {"127.0.0.1": "eth0", "127.0.0.2": "eth1"})
    with pytest.raises(NoUsablePortal) as caught:
        host.service.attach(LUN1)
    assert "127.0.0.1:3260 through eth0" in str(caught.value) and "ia-st0" in str(caught.value)
    assert caught.value.details["routed_through"] == {"127.0.0.1": "eth0", "127.0.0.2": "eth1"}
    assert host.initiator.sessions == {}


def test_a_discovery_that_ignores_the_iface_still_leaves_a_bound_record_and_session(host: Host, tmp_path):
    """open-iscsi's quirk: the discovery makes the default iface's record only; the agent makes the
    iface's own record, configures it (CHAP secret included) and logs in with it."""
    secret = tmp_path / "chap"
    secret.write_text("chapsecret123")
    secret.chmod(0o600)
    host.initiator.discovery_ignores_iface = True
    host.routes.interfaces.update({"127.0.0.1": "ia-st0", "127.0.0.2": "ia-st0"})
    host.with_config(
        config_for(
            host.sim, host.tree.root, host.config.agent.state_dir, chap_secret_file=secret, ifaces="ia-st0"
        )
    )
    attachment, _ = host.service.attach(LUN1)
    key = (attachment.target_iqn, str(attachment.portals[0]))
    assert host.initiator.sessions[key].iface == "ia-st0"
    assert host.initiator.bound_records["ia-st0"][key]["node.session.auth.authmethod"] == "CHAP"
    assert host.initiator.record_values(key, "ia-st0")["node.session.auth.password"] == "chapsecret123"


def test_a_session_on_another_iface_is_reused_with_a_warning_naming_it(host: Host, caplog):
    host.service.attach(LUN1)  # logged in before ifaces were configured: the default iface
    bind(host, "ia-st0", {"127.0.0.1": "ia-st0", "127.0.0.2": "ia-st0"})
    calls = len(host.initiator.iscsiadm_calls)
    with caplog.at_level(logging.WARNING):
        host.service.attach(LUN2)
    assert len(host.initiator.iscsiadm_calls) == calls  # no second login, no logout
    assert [session.iface for session in host.initiator.sessions.values()] == ["default"]
    assert any("iface default" in message and "ia-st0" in message for message in caplog.messages)


def test_the_reconcilers_relogin_binds_the_session_as_the_attach_did(host: Host):
    bind(host, "ia-st0", {"127.0.0.1": "ia-st0", "127.0.0.2": "ia-st0"})
    host.service.attach(LUN1)
    (key, session), *_ = host.initiator.sessions.items()
    host.tree.remove_session(session.sid, session.host)
    del host.initiator.sessions[key]
    host.services.reconciler.run(dry_run=False)
    assert host.initiator.sessions[key].iface == "ia-st0"


def test_an_iface_record_an_administrator_made_is_not_used_without_ifaces(host: Host):
    """open-iscsi binds a discovery without -I to every software iface record there is (and then
    not to the default), and logs in every record of the target: an offload or admin iface the
    agent was never told about would carry its sessions."""
    host.initiator.ifaces["iface-admin"] = {
        "iface.iscsi_ifacename": "iface-admin",
        "iface.net_ifacename": "eth9",
    }
    attachment, _ = host.service.attach(LUN1)
    key = (attachment.target_iqn, str(attachment.portals[0]))
    assert host.initiator.sessions[key].iface == "default"
    assert key in host.initiator.records
    assert host.initiator.bound_records.get("iface-admin", {}) == {}


def test_the_last_detach_ends_only_the_agents_session_and_records_not_an_administrators(host: Host):
    """iscsiadm's logout and record deletion that name no iface act on every iface's: an
    administrator's own record of the target through an iface of theirs would go with the agent's."""
    host.initiator.ifaces["iface-admin"] = {"iface.iscsi_ifacename": "iface-admin", "iface.net_ifacename": ""}
    attachment, _ = host.service.attach(LUN1)
    key = (attachment.target_iqn, str(attachment.portals[0]))
    host.initiator.bound_records["iface-admin"] = {key: {"node.session.scan": "auto"}}  # made by hand
    host.service.detach(LUN1, force=False)
    assert key not in host.initiator.sessions
    assert key not in host.initiator.records
    assert key in host.initiator.bound_records["iface-admin"]


def test_without_ifaces_discovery_records_and_login_name_the_default_iface(host: Host):
    host.service.attach(LUN1)
    assert iface_calls(host) == []  # the default iface is built in: nothing to make
    named = [call for call in host.initiator.iscsiadm_calls if "-o" not in call or "delete" not in call]
    assert named and all(call[call.index("-I") + 1] == "default" for call in named)


def test_without_ifaces_an_attach_with_no_routable_lif_fails_naming_the_lifs_as_before(host: Host):
    host.routes.unroutable.update({"127.0.0.1", "127.0.0.2"})
    with pytest.raises(NoUsablePortal) as caught:
        host.service.attach(LUN1)
    assert str(caught.value).endswith(f"is routable from this host; LIFs: {LIF1}, {LIF2}")
    assert caught.value.details["unroutable"] == {"127.0.0.1": "no route", "127.0.0.2": "no route"}
