"""A volume named by a bare LUN name resolves the same way whether or not something is attached.

A name is not an identity: ``/vol/vol1/lun1`` and ``/vol/vol2/lun1`` share the name ``lun1``, and
only the array can say whether a name is unique. Paths and UUIDs are identities, so the journal
answers them on its own.
"""

from __future__ import annotations

import pytest

from iscsi_agent.service_api import NotAttached, VolumeAmbiguous
from tests.contract.helpers import array_lun, array_maps
from tests.unit.service.conftest import Host, unmap_behind_the_agents_back

LUN1, TWIN = "/vol/vol1/lun1", "/vol/vol2/lun1"


def test_attaching_a_shared_name_is_ambiguous_while_one_of_its_luns_is_attached(host: Host):
    array_lun(host.sim, TWIN)
    host.service.attach(LUN1)
    with pytest.raises(VolumeAmbiguous) as refused:
        host.service.attach("lun1")
    assert sorted(refused.value.details["candidates"]) == [LUN1, TWIN]
    assert array_maps(host.sim, TWIN) == []


def test_detaching_a_shared_name_is_ambiguous_and_detaches_nothing(host: Host):
    array_lun(host.sim, TWIN)
    host.service.attach(LUN1)
    with pytest.raises(VolumeAmbiguous):
        host.service.detach("lun1", force=False)
    assert [a.volume for a in host.service.attachments()] == [LUN1]


def test_asking_for_a_shared_name_is_ambiguous(host: Host):
    array_lun(host.sim, TWIN)
    host.service.attach(LUN1)
    with pytest.raises(VolumeAmbiguous):
        host.service.attachment("lun1")


def test_a_name_matching_two_attached_luns_is_ambiguous_on_detach_not_unknown(host: Host):
    array_lun(host.sim, TWIN)
    host.service.attach(LUN1)
    host.service.attach(TWIN)
    with pytest.raises(VolumeAmbiguous):
        host.service.detach("lun1", force=False)
    assert sorted(a.volume for a in host.service.attachments()) == [LUN1, TWIN]


def test_a_unique_name_of_an_attached_lun_still_answers_from_the_record(host: Host):
    first, _ = host.service.attach(LUN1)
    again, created = host.service.attach("lun1")
    assert (again, created) == (first, False)
    assert host.service.attachment("lun1") == first


def test_a_name_proved_unique_once_costs_no_more_array_requests(host: Host):
    host.service.attach(LUN1)
    host.service.attach("lun1")  # the array says whether the name is unique, once
    before = host.array_requests()
    host.service.attach("lun1")
    host.service.attachment("lun1")
    assert host.array_requests() == before


def test_a_name_the_array_no_longer_has_still_names_the_one_lun_attached_by_it(host: Host):
    attached, _ = host.service.attach(LUN1)
    unmap_behind_the_agents_back(host, LUN1)
    with host.sim.state.lock:
        host.sim.state.delete_lun(host.sim.state.lun("svm1", path=LUN1))
    assert host.service.attachment("lun1") == attached


def test_a_name_nothing_has_is_not_attached(host: Host):
    with pytest.raises(NotAttached):
        host.service.detach("lun1", force=False)
