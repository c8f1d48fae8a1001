"""Portal reachability from the real kernel's routing table (the guest has loopback only)."""

from iscsi_agent.host.routes import KernelRoutes, order_portals
from iscsi_agent.portal import Portal

TEST_NET_1 = "192.0.2.1"  # RFC 5737: documentation only, never routed; nothing is sent anyway


def test_loopback_portals_are_reachable_through_lo_and_an_unrouted_one_is_not():
    table = KernelRoutes().lookup_all(["127.0.0.1", "127.0.0.2", TEST_NET_1])
    print(table)
    assert (table["127.0.0.1"].reachable, table["127.0.0.1"].interface) == (True, "lo")
    assert (table["127.0.0.2"].reachable, table["127.0.0.2"].interface) == (True, "lo")
    assert not table[TEST_NET_1].reachable
    assert table[TEST_NET_1].problem == "Network is unreachable"
    portals = [Portal(TEST_NET_1), Portal("127.0.0.2"), Portal("127.0.0.1")]
    assert order_portals(portals, table) == (Portal("127.0.0.2"), Portal("127.0.0.1"))
