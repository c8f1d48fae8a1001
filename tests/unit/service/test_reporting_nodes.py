"""Which nodes' LIFs an attach logs in to after the LUN's volume moved to another HA pair.

Selective LUN Map: ONTAP reports a LUN only through LIFs on its map's reporting nodes (the owning
HA pair), and the simulated kernel here does the same. The agent keeps the reporting nodes per
volume between attaches, so a volume move makes them stale.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from iscsi_agent.errors import AgentError
from ontap_sim.model import Lif, Node
from tests.contract.helpers import SVM
from tests.unit.service.conftest import Host

LUN1, LUN2 = "/vol/vol1/lun1", "/vol/vol1/lun2"
NEW_PAIR = ("node-03", "node-04")
NEW_PAIR_ADDRESSES = {"127.0.0.3", "127.0.0.4"}


def a_second_ha_pair_with_lifs(host: Host) -> None:
    state = host.sim.state
    with state.lock:
        for name, partner, address in (
            ("node-03", "node-04", "127.0.0.3"),
            ("node-04", "node-03", "127.0.0.4"),
        ):
            state.nodes[name] = Node(name, state.new_uuid(), partner)
            lif = Lif(
                SVM,
                f"iscsi_lif_{name}",
                state.new_uuid(),
                address,
                name,
                "e0d",
                1100 + len(state.lifs),
                True,
                ("data_core", "data_iscsi"),
            )
            state.lifs[lif.uuid] = lif


def move_volume(host: Host, volume: str, node: str) -> None:
    """A volume move to another HA pair, with the SLM steps done: its LUNs' maps report the new pair."""
    state = host.sim.state
    with state.lock:
        state.volumes[(SVM, volume)] = replace(state.volumes[(SVM, volume)], node=node)
        moved = {uuid for uuid, lun in state.luns.items() if lun.svm == SVM and lun.volume == volume}
        for uuid in moved:
            state.luns[uuid] = replace(state.luns[uuid], node=node)
        state.maps[:] = [
            replace(m, reporting_nodes=state.reporting_nodes(state.luns[m.lun_uuid]))
            if m.lun_uuid in moved
            else m
            for m in state.maps
        ]


def addresses(attachment) -> set[str]:
    return {str(portal).rpartition(":")[0] for portal in attachment.portals}


def test_after_a_volume_move_an_attach_that_finds_no_device_forgets_the_old_nodes_and_the_next_uses_the_new(
    host: Host,
):
    if host.array.api == "rest":
        pytest.skip("a REST map's own answer names its reporting nodes: the next test")
    a_second_ha_pair_with_lifs(host)
    host.service.attach(LUN1)  # the agent learns where vol1 is: node-01 (and its partner node-02)
    host.service.detach(LUN1, force=False)
    move_volume(host, "vol1", "node-03")
    with pytest.raises(AgentError):
        host.service.attach(LUN1)  # through node-01's LIF, which no longer reports vol1's LUNs
    attachment, _ = host.service.attach(LUN1)
    assert addresses(attachment) <= NEW_PAIR_ADDRESSES


def test_after_a_volume_move_a_map_whose_answer_names_its_reporting_nodes_is_reached_through_them_at_once(
    host: Host,
):
    if host.array.api != "rest":
        pytest.skip("lun-map answers only the LUN id")
    a_second_ha_pair_with_lifs(host)
    host.service.attach(LUN1)
    host.service.detach(LUN1, force=False)
    move_volume(host, "vol1", "node-03")
    attachment, _ = host.service.attach(LUN1)
    assert addresses(attachment) <= NEW_PAIR_ADDRESSES


def test_after_a_volume_move_a_lun_looked_up_afresh_is_reached_through_the_node_now_hosting_it(host: Host):
    a_second_ha_pair_with_lifs(host)
    host.service.attach(LUN1)
    move_volume(host, "vol1", "node-03")
    attachment, _ = host.service.attach(LUN2)  # its lookup reads where it is now
    assert addresses(attachment) <= NEW_PAIR_ADDRESSES
