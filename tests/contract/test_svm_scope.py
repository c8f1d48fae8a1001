"""An unknown SVM fails every SVM-scoped call the same way over ZAPI and REST, at little cost.

ZAPI tunnels each call to the SVM (``vfiler``) and the array refuses an unknown one (15698).
REST filters by SVM, where an unknown name would just match nothing: empty portals, no
igroups, "LUN not found". The REST client therefore confirms the SVM exists the first time an
SVM-scoped answer is empty (or before its first write), once per client lifetime.
"""

from collections.abc import Callable

import pytest

from iscsi_agent.array.client import ArrayClient
from iscsi_agent.array.errors import ArrayNotFound
from iscsi_agent.array.model import ChapAuth, ChapCredentials
from tests.contract.conftest import make_client
from tests.contract.helpers import IGROUP, IQN, LUN0, array_igroup, array_map

CALLS: dict[str, Callable[[ArrayClient], object]] = {
    "lun_by_path": lambda c: c.lun_by_path(LUN0),
    "lun_by_name": lambda c: c.lun_by_name("lun0"),
    "lun_by_uuid": lambda c: c.lun_by_uuid("8c1b7a52-0c8e-4a53-9d7a-1f5c1e2d3a40"),
    "igroups_with_initiator": lambda c: c.igroups_with_initiator(IQN),
    "igroup_by_name": lambda c: c.igroup_by_name(IGROUP),
    "create_igroup": lambda c: c.create_igroup(IGROUP, "linux", (IQN,)),
    "add_initiator": lambda c: c.add_initiator(IGROUP, IQN),
    "map_lun": lambda c: c.map_lun(LUN0, IGROUP),
    "unmap_lun": lambda c: c.unmap_lun(LUN0, IGROUP),
    "lun_map": lambda c: c.lun_map(LUN0, IGROUP),
    "maps_of_lun": lambda c: c.maps_of_lun(LUN0),
    "maps_of_igroup": lambda c: c.maps_of_igroup(IGROUP),
    "maps_of_initiator": lambda c: c.maps_of_initiator(IQN),
    "portals": lambda c: c.portals(),
    "iscsi_service": lambda c: c.iscsi_service(),
    "chap_credentials": lambda c: c.chap_credentials(IQN),
    "set_chap_credentials": lambda c: c.set_chap_credentials(
        ChapCredentials(IQN, ChapAuth.CHAP, "user", "secret1234567")
    ),
    "check_svm": lambda c: c.check_svm(),
}


@pytest.mark.parametrize("call", list(CALLS))
def test_every_svm_scoped_call_on_an_unknown_svm_is_svm_not_found(ontap_sim, wire, sleeps, call):
    array_igroup(ontap_sim, IGROUP, IQN)  # in svm1: the misspelt SVM must not see it
    array_map(ontap_sim, LUN0, IGROUP)
    client = make_client(ontap_sim, wire.api, sleeps, vserver="svm-typo")
    with pytest.raises(ArrayNotFound) as caught:
        CALLS[call](client)
    assert (caught.value.kind, caught.value.name) == ("svm", "svm-typo")


def test_the_svm_is_confirmed_at_most_once_per_client(ontap_sim, wire, sleeps):
    client = make_client(ontap_sim, wire.api, sleeps)
    ontap_sim.reset_counts()
    for _ in range(2):  # empty answers, each of which an unknown SVM would also give
        assert client.igroups_with_initiator(IQN) == ()
        assert client.maps_of_igroup(IGROUP) == ()
    confirmations = 1 if wire.api.value == "rest" else 0  # ZAPI's tunnel checks the SVM on every call
    assert ontap_sim.total(wire.api.value) == 4 + confirmations
    assert ontap_sim.counts[(wire.api.value, "GET /api/svm/svms")] == confirmations


def test_a_checked_svm_costs_nothing_more(ontap_sim, wire, sleeps):
    client = make_client(ontap_sim, wire.api, sleeps)
    client.check_svm()
    ontap_sim.reset_counts()
    assert client.igroups_with_initiator(IQN) == ()
    assert ontap_sim.total(wire.api.value) == 1
