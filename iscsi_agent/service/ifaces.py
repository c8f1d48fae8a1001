"""Which open-iscsi iface a portal's sessions are bound to: the listed interface (``[iscsi] ifaces``)
the kernel routes the portal through.

Binding a session to an interface the kernel does not route its portal through would send its
packets where no route leads, so the route decides, and the list only says which interfaces
storage traffic may use: a portal routed through any other (a management network that happens
to reach a LIF) is not used at all. Without ``ifaces`` every session uses open-iscsi's default
iface, as before, and no route is asked for.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from iscsi_agent.host.routes import Route, RouteTable
from iscsi_agent.portal import Portal
from iscsi_agent.service.errors import NoUsablePortal


def bound_iface(route: Route | None, ifaces: Sequence[str]) -> str | None:
    """The listed interface the route leads through; None when it leads elsewhere (or nowhere)."""
    if route is None or not route.reachable or route.interface not in ifaces:
        return None
    return route.interface


def routed_through(routes: Mapping[str, Route], addresses: Iterable[str]) -> dict[str, str]:
    """address -> the interface the kernel routes it through ("no route" or why not, when none)."""
    shown = {}
    for address in addresses:
        route = routes.get(address)
        if route is None:
            shown[address] = "no route"
        elif not route.reachable:
            shown[address] = f"no route ({route.problem})" if route.problem else "no route"
        else:
            shown[address] = route.interface or "an unnamed interface"
    return shown


class IfaceBinding:
    """The iface for each portal a session is logged in through (None: the default iface)."""

    def __init__(self, ifaces: Sequence[str], routes: RouteTable) -> None:
        self.ifaces = tuple(ifaces)
        self._routes = routes

    def iface_for(self, portal: Portal) -> str | None:
        """The iface a new login through portal must use: the listed interface the kernel routes
        it through now (one route lookup), or None without ``ifaces``.

        Raises NoUsablePortal when the portal is routed through no listed interface (the route
        changed since the portal was chosen, or a reconciler relogin to a portal routed elsewhere).
        """
        if not self.ifaces:
            return None
        routes = self._routes.lookup_all([portal.address])
        iface = bound_iface(routes.get(portal.address), self.ifaces)
        if iface is None:
            through = routed_through(routes, [portal.address])
            raise NoUsablePortal(
                f"{portal} is routed through {through[portal.address]}, none of the interfaces "
                f"sessions are bound to ([iscsi] ifaces = {', '.join(self.ifaces)})",
                portal=str(portal),
                ifaces=list(self.ifaces),
                routed_through=through,
            )
        return iface

    def foreign(self, session_iface: str | None) -> bool:
        """Whether a logged-in session is on an iface that is none of the listed ones."""
        return bool(self.ifaces) and session_iface not in self.ifaces
