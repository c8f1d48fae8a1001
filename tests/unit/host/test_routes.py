"""Portal reachability: the kernel's route answer read, and portals ordered by reach and preference."""

import ipaddress

from iscsi_agent.host.routes import Route, order_portals, parse_route_reply
from iscsi_agent.portal import Portal

# RTM_NEWROUTE answers as pyroute2 gives them (trimmed to what is read).
VIA_GATEWAY = {
    "type": 1,
    "attrs": [
        ("RTA_TABLE", 254),
        ("RTA_DST", "10.0.0.11"),
        ("RTA_OIF", 3),
        ("RTA_PREFSRC", "10.0.0.5"),
        ("RTA_GATEWAY", "10.0.0.1"),
        ("RTA_CACHEINFO", {"rta_clntref": 2}),
    ],
}
LOCAL = {
    "type": 2,
    "attrs": [("RTA_TABLE", 255), ("RTA_DST", "127.0.0.2"), ("RTA_OIF", 1), ("RTA_PREFSRC", "127.0.0.1")],
}
BLACKHOLE = {"type": 6, "attrs": [("RTA_TABLE", 254), ("RTA_DST", "10.9.9.9")]}
LINKS = {1: "lo", 3: "ens4"}


def test_a_routed_address_names_interface_source_and_gateway():
    assert parse_route_reply("10.0.0.11", VIA_GATEWAY, LINKS) == Route(
        "10.0.0.11", True, interface="ens4", source="10.0.0.5", gateway="10.0.0.1"
    )


def test_a_local_address_is_reachable_without_a_gateway():
    assert parse_route_reply("127.0.0.2", LOCAL, LINKS) == Route(
        "127.0.0.2", True, interface="lo", source="127.0.0.1"
    )


def test_a_blackhole_route_is_not_reachable_and_says_why():
    route = parse_route_reply("10.9.9.9", BLACKHOLE, LINKS)
    assert not route.reachable and "route type 6" in route.problem


def test_an_unknown_interface_index_leaves_the_name_empty_rather_than_failing():
    assert parse_route_reply("10.0.0.11", VIA_GATEWAY, {}).interface is None


A, B, C = Portal("10.0.0.11"), Portal("192.168.50.11"), Portal("172.16.0.11")


def routes(*reachable: str) -> dict[str, Route]:
    return {p.address: Route(p.address, p.address in reachable) for p in (A, B, C)}


def test_unreachable_portals_are_dropped_and_the_arrays_order_kept():
    assert order_portals([A, B, C], routes("10.0.0.11", "172.16.0.11")) == (A, C)


def test_portals_on_a_preferred_network_come_first():
    storage = [ipaddress.ip_network("192.168.50.0/24")]
    assert order_portals([A, B, C], routes("10.0.0.11", "192.168.50.11", "172.16.0.11"), storage) == (B, A, C)


def test_a_portal_the_table_does_not_know_is_treated_as_unreachable():
    assert order_portals([A, B], {}) == ()


def test_networks_of_the_other_ip_version_are_ignored():
    v6 = Portal("fd00::11")
    table = {A.address: Route(A.address, True), v6.address: Route(v6.address, True)}
    assert order_portals([A, v6], table, [ipaddress.ip_network("fd00::/64")]) == (v6, A)
