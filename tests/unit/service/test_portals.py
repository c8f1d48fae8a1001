"""The LIFs one LUN's attach logs in through: reporting nodes, routable, preferred networks first."""

import ipaddress

from iscsi_agent.array.model import Lif
from iscsi_agent.host.routes import Route
from iscsi_agent.portal import Portal
from iscsi_agent.service.portals import choose_lifs

LIFS = (
    Lif(Portal("10.0.0.1"), 1027, "node-01", "node-01", "lif1"),
    Lif(Portal("10.0.0.2"), 1028, "node-02", "node-02", "lif2"),
    Lif(Portal("192.168.5.3"), 1029, "node-03", "node-03", "lif3"),
    Lif(Portal("192.168.5.4"), 1030, "node-04", "node-04", "lif4"),
)


def routes(*unreachable):
    return {lif.address: Route(lif.address, lif.address not in unreachable) for lif in LIFS}


def names(lifs):
    return [lif.name for lif in lifs]


def test_only_lifs_on_the_maps_reporting_nodes_are_used():
    assert names(choose_lifs(LIFS, ("node-03", "node-04"), routes())) == ["lif3", "lif4"]


def test_unroutable_lifs_are_dropped():
    assert names(choose_lifs(LIFS, ("node-01", "node-02"), routes("10.0.0.1"))) == ["lif2"]


def test_preferred_networks_come_first():
    preferred = (ipaddress.ip_network("192.168.5.0/24"),)
    assert names(choose_lifs(LIFS, (), routes(), preferred)) == ["lif3", "lif4", "lif1", "lif2"]


def test_without_reporting_nodes_every_routable_lif_stays():
    assert names(choose_lifs(LIFS, (), routes("192.168.5.4"))) == ["lif1", "lif2", "lif3"]


def test_a_lif_whose_node_is_unknown_is_kept():
    lif = Lif(Portal("10.0.0.9"), None, None, None, "lif9")
    assert names(choose_lifs((lif,), ("node-01",), {"10.0.0.9": Route("10.0.0.9", True)})) == ["lif9"]


def test_with_ifaces_only_lifs_routed_through_a_listed_interface_are_used():
    through = {"10.0.0.1": "ens1f0", "10.0.0.2": "eno1", "192.168.5.3": "ens1f1", "192.168.5.4": "ens1f1"}
    table = {
        address: Route(address, address != "192.168.5.4", interface=name) for address, name in through.items()
    }
    assert names(choose_lifs(LIFS, (), table, (), ("ens1f0", "ens1f1"))) == ["lif1", "lif3"]
