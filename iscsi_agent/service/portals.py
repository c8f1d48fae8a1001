"""Which of the SVM's iSCSI LIFs this host logs in through for one LUN.

With Selective LUN Map (ONTAP's default since 8.3) a LUN is reported only through LIFs on the
nodes in its map's ``reporting_nodes`` (the owner and its HA partner); a login anywhere else finds
no such LUN. Of those, only LIFs the kernel routes to are worth a login attempt (an unroutable one
costs a login timeout), and operators' ``portal_networks`` come first. With ``ifaces`` only LIFs
the kernel routes through one of those interfaces are used (``service/ifaces.py``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from iscsi_agent.array.model import Lif
from iscsi_agent.config import Network
from iscsi_agent.host.routes import Route, order_portals
from iscsi_agent.service.ifaces import bound_iface


def choose_lifs(
    lifs: Sequence[Lif],
    reporting_nodes: Sequence[str],
    routes: Mapping[str, Route],
    preferred: Sequence[Network] = (),
    ifaces: Sequence[str] = (),
) -> tuple[Lif, ...]:
    """Routable LIFs on the LUN's reporting nodes (routed through one of ``ifaces``, when given),
    preferred networks first, else in the array's order.

    An empty ``reporting_nodes`` (an array without SLM data) or a LIF whose node the array did
    not say keeps the LIF: dropping it could leave no path at all.
    """
    reporting = {node.lower() for node in reporting_nodes}
    on_reporting = [
        lif
        for lif in lifs
        if (not reporting or lif.current_node is None or lif.current_node.lower() in reporting)
        and (not ifaces or bound_iface(routes.get(lif.address), ifaces) is not None)
    ]
    return order_portals(on_reporting, routes, preferred)
