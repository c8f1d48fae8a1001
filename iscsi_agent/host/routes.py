"""Which target portals this host can reach, asked of the kernel's routing table (no packet is sent).

An array reports every data LIF of the SVM, including ones on networks this host has no route
to; logging in to those only costs a login timeout per attach. The kernel's answer to
RTM_GETROUTE says, for each portal address, whether there is a route, through which interface
and from which source address. ``KernelRoutes`` is the only user of pyroute2, and imports it at
its first lookup: the package is slow to import (it loads its whole API), and start-up needs no
route; the rest is pure.
"""

from __future__ import annotations

import errno
import ipaddress
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

# Route types (linux/rtnetlink.h) that deliver a packet; unreachable, blackhole and prohibit do not.
RTN_UNICAST = 1
RTN_LOCAL = 2
DELIVERING_ROUTE_TYPES = frozenset({RTN_UNICAST, RTN_LOCAL})

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Route:
    """The kernel's route to one portal address; ``problem`` says why it is unreachable."""

    address: str
    reachable: bool
    interface: str | None = None
    source: str | None = None
    gateway: str | None = None
    problem: str | None = None


class RouteTable(Protocol):
    def lookup_all(self, addresses: Iterable[str]) -> dict[str, Route]: ...


class HasAddress(Protocol):
    @property
    def address(self) -> str: ...


PortalT = TypeVar("PortalT", bound=HasAddress)


def parse_route_reply(address: str, reply: Mapping[str, Any], link_names: Mapping[int, str]) -> Route:
    """A Route from pyroute2's RTM_NEWROUTE answer, given as a plain mapping::

    {'type': 1, 'attrs': [('RTA_TABLE', 254), ('RTA_DST', '10.0.0.11'), ('RTA_OIF', 3),
                          ('RTA_PREFSRC', '10.0.0.5'), ('RTA_GATEWAY', '10.0.0.1')], ...}
    """
    attrs = dict(reply.get("attrs", ()))
    route_type = reply.get("type")
    if route_type not in DELIVERING_ROUTE_TYPES:
        return Route(address, False, problem=f"route type {route_type} does not deliver packets")
    interface_index = attrs.get("RTA_OIF")
    return Route(
        address,
        True,
        interface=link_names.get(interface_index) if interface_index is not None else None,
        source=attrs.get("RTA_PREFSRC"),
        gateway=attrs.get("RTA_GATEWAY"),
    )


class KernelRoutes:
    """Asks the kernel over rtnetlink, one short-lived socket per lookup batch."""

    def lookup_all(self, addresses: Iterable[str]) -> dict[str, Route]:
        from pyroute2 import IPRoute
        from pyroute2.netlink.exceptions import NetlinkError

        routes: dict[str, Route] = {}
        with IPRoute() as ipr:
            link_names = {link["index"]: link.get_attr("IFLA_IFNAME") for link in ipr.get_links()}
            for address in addresses:
                try:
                    ipaddress.ip_address(address)
                except ValueError:
                    routes[address] = Route(address, False, problem="not an IP address")
                    continue
                try:
                    replies = ipr.route("get", dst=address)
                except NetlinkError as exc:  # ENETUNREACH, EHOSTUNREACH, ...
                    routes[address] = Route(address, False, problem=os.strerror(exc.code or errno.EIO))
                    continue
                routes[address] = parse_route_reply(address, replies[0] if replies else {}, link_names)
        return routes


def order_portals(
    portals: Sequence[PortalT], routes: Mapping[str, Route], preferred: Sequence[Network] = ()
) -> tuple[PortalT, ...]:
    """Reachable portals only, those inside a preferred network first, otherwise in the array's order.

    Operators list storage networks in ``portal_networks`` so that logins go over the dedicated
    iSCSI fabric rather than a management network that happens to route to a LIF as well.
    """

    def preferred_rank(portal: PortalT) -> int:
        address = ipaddress.ip_address(portal.address)
        return (
            0 if any(address in network for network in preferred if network.version == address.version) else 1
        )

    reachable = [
        portal for portal in portals if routes.get(portal.address, Route(portal.address, False)).reachable
    ]
    return tuple(sorted(reachable, key=preferred_rank))
