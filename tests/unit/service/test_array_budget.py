"""How many requests an attach and a detach send to the array, over both APIs (the simulator counts
them exactly). Each request is one round trip on the attach's critical path, and a fleet's attaches
all land on one array; none of these budgets may cost a check (the map's intent still says whether
a map was there before, the igroup rule still reads the igroups, the device is still verified).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest

from iscsi_agent.journal.model import Step
from tests.contract.helpers import array_igroups_named
from tests.unit.service.conftest import OWN_IGROUP, Host

LUN1, LUN2 = "/vol/vol1/lun1", "/vol/vol1/lun2"


def requests(host: Host, action: Callable[[], object]) -> Counter[tuple[str, str]]:
    """The requests ``action`` sent, by API and call (``("rest", "GET /api/storage/luns")``)."""
    before = host.sim.counts
    action()
    return host.sim.counts - before


def started(host: Host) -> None:
    """What the daemon does once it serves: read the SVM's facts that no attach has to wait for."""
    host.service.prepare()


def test_starting_reads_the_svms_target_and_lifs_and_nothing_of_the_host(host: Host):
    sent = requests(host, lambda: started(host))
    assert sum(sent.values()) == 2, sent
    assert array_igroups_named(host.sim, OWN_IGROUP) == 0  # no igroup is made before an attach needs it


COLD_ATTACH = {"rest": 4, "zapi": 5}
"""The LUN's lookup, the igroups that hold the initiator (the igroup rule reads them: an igroup of this
host alone is used rather than a new one), the igroup's creation with the initiator in it, and the
map. ZAPI's igroup-create takes no initiators, so a new igroup costs it igroup-create and igroup-add."""


def test_a_cold_attach_on_a_new_host_costs_the_lookup_the_igroup_and_the_map(host: Host):
    started(host)
    assert array_igroups_named(host.sim, OWN_IGROUP) == 0
    sent = requests(host, lambda: host.service.attach(LUN1))
    assert sum(sent.values()) <= COLD_ATTACH[host.array.api], sent


def test_a_cold_attach_still_writes_whether_the_map_was_there_before(
    host: Host, monkeypatch: pytest.MonkeyPatch
):
    intents: list[tuple[Step, dict[str, object]]] = []
    intend = host.journal.intend

    def recording(op, step, **params):
        intents.append((step, params))
        return intend(op, step, **params)

    monkeypatch.setattr(host.journal, "intend", recording)
    started(host)
    host.service.attach(LUN1)
    assert [params["mapped_before"] for step, params in intents if step is Step.MAP] == [False]


def test_a_second_lun_costs_two_array_requests_its_lookup_and_its_map(host: Host):
    started(host)
    host.service.attach(LUN1)
    sent = requests(host, lambda: host.service.attach(LUN2))
    assert sum(sent.values()) == 2, sent


def test_detaching_a_lun_that_is_not_the_last_costs_one_array_request(host: Host):
    host.service.attach(LUN1)
    host.service.attach(LUN2)
    sent = requests(host, lambda: host.service.detach(LUN2, force=False))
    assert sum(sent.values()) == 1, sent


def test_detaching_the_last_lun_costs_one_array_request(host: Host):
    host.service.attach(LUN1)
    sent = requests(host, lambda: host.service.detach(LUN1, force=False))
    assert sum(sent.values()) == 1, sent


def test_a_detach_after_a_restart_costs_one_array_request(host: Host):
    host.service.attach(LUN1)
    service = host.restart()  # nothing of the array is known but what the journal recorded
    sent = requests(host, lambda: service.detach(LUN1, force=False))
    assert sum(sent.values()) == 1, sent
