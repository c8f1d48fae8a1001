"""One retry budget per client call: against an array that keeps failing, few requests, backoff, a deadline.

The transport resends idempotent requests and the client resends writes it has re-read; both
spend the same budget (``attempts = 3``: two resends per call in all), every resend waits a
backoff first (0.25 s, then 0.5 s with the fixtures' jitter of 0.5), and none starts that would
end after the call's deadline. The reads that tell whether a write landed are not resends.
"""

import pytest

from iscsi_agent.array.errors import ArrayUnreachable
from tests.contract.conftest import Sleeps, make_client
from tests.contract.helpers import IGROUP, IQN, LUN0, array_igroup, array_maps

ADD = {"zapi": "igroup-add", "rest": "POST /api/protocols/san/igroups"}  # REST: POST …/{uuid}/initiators


def test_against_an_array_that_resets_every_request_add_initiator_sends_four_requests_in_all(
    client, ontap_sim, wire, sleeps
):
    array_igroup(ontap_sim, IGROUP)
    ontap_sim.faults.inject("*", "reset", times=None)
    with pytest.raises(ArrayUnreachable):
        client.add_initiator(IGROUP, IQN)
    assert ontap_sim.total(wire.api.value) == 4  # three tries, then one read to learn whether it landed
    assert sleeps == [0.25, 0.5]


def test_an_add_that_keeps_being_reset_is_sent_three_times_in_all_not_nine(client, ontap_sim, wire, sleeps):
    array_igroup(ontap_sim, IGROUP)
    ontap_sim.faults.inject(ADD[wire.api.value], "reset", times=None)
    with pytest.raises(ArrayUnreachable):
        client.add_initiator(IGROUP, IQN)
    reads = ontap_sim.counts[wire.key(wire.igroups)]
    assert ontap_sim.total(wire.api.value) - reads == 3
    assert reads == {"zapi": 1, "rest": 2}[wire.api.value]  # REST also reads the igroup's uuid first
    assert sleeps == [0.25, 0.5]


def test_a_map_the_array_never_receives_is_sent_three_times_with_backoff_between(
    client, ontap_sim, wire, sleeps
):
    array_igroup(ontap_sim, IGROUP, IQN)
    ontap_sim.faults.inject(wire.lun_map, "reset", times=None)
    with pytest.raises(ArrayUnreachable):
        client.map_lun(LUN0, IGROUP)
    assert ontap_sim.counts[wire.key(wire.lun_map)] == 3
    assert ontap_sim.counts[wire.key(wire.lun_maps)] == 3  # a read after each: did it land?
    assert sleeps == [0.25, 0.5]
    assert array_maps(ontap_sim, LUN0) == []


class SleptTime(Sleeps):
    """Time that passes only in the client's backoff: the deadline is judged on the backoff alone, not
    on how long a loaded machine takes to answer a request on loopback."""

    def clock(self) -> float:
        return sum(self)


def test_a_call_gives_up_within_its_deadline_whatever_attempts_remain(ontap_sim, wire):
    sleeps = SleptTime()
    client = make_client(ontap_sim, wire.api, sleeps, attempts=10, deadline=2.0)
    array_igroup(ontap_sim, IGROUP)
    ontap_sim.reset_counts()
    ontap_sim.faults.inject("*", "reset", times=None)
    started = sleeps.clock()
    with pytest.raises(ArrayUnreachable):
        client.add_initiator(IGROUP, IQN)
    assert sleeps.clock() - started < 2.0
    assert sleeps == [0.25, 0.5, 1.0]  # the next backoff, 2 s, would end after the deadline
    assert ontap_sim.total(wire.api.value) == 5  # four tries and the read after them
