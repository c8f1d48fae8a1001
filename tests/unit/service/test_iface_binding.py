"""The iface of a new login: the listed interface the kernel routes the portal through, asked at login."""

import pytest

from iscsi_agent.host.routes import Route
from iscsi_agent.portal import Portal
from iscsi_agent.service.errors import NoUsablePortal
from iscsi_agent.service.ifaces import IfaceBinding


class Routes:
    def __init__(self, **through: str) -> None:
        self.through = through
        self.asked: list[str] = []

    def lookup_all(self, addresses):
        addresses = list(addresses)
        self.asked += addresses
        return {
            a: Route(a, a in self.through, interface=self.through.get(a), problem="unreachable")
            for a in addresses
        }


PORTAL = Portal("10.98.0.2")


def test_without_ifaces_the_default_iface_is_used_and_no_route_is_asked():
    routes = Routes()
    assert IfaceBinding((), routes).iface_for(PORTAL) is None
    assert routes.asked == []


def test_the_iface_is_the_listed_interface_the_portal_is_routed_through():
    assert IfaceBinding(("ia-st0", "ia-st1"), Routes(**{"10.98.0.2": "ia-st1"})).iface_for(PORTAL) == "ia-st1"


@pytest.mark.parametrize(
    ("through", "shown"),
    [({"10.98.0.2": "eth0"}, "eth0"), ({}, "no route (unreachable)")],
    ids=["elsewhere", "nowhere"],
)
def test_a_portal_routed_through_no_listed_interface_is_refused_naming_where_it_goes(through, shown):
    with pytest.raises(NoUsablePortal) as caught:
        IfaceBinding(("ia-st0",), Routes(**through)).iface_for(PORTAL)
    assert f"10.98.0.2:3260 is routed through {shown}" in str(caught.value)
    assert caught.value.details["routed_through"] == {"10.98.0.2": shown}


def test_a_session_on_an_unlisted_iface_is_foreign_only_when_ifaces_are_set():
    assert IfaceBinding(("ia-st0",), Routes()).foreign("default")
    assert not IfaceBinding(("ia-st0",), Routes()).foreign("ia-st0")
    assert not IfaceBinding((), Routes()).foreign("default")
