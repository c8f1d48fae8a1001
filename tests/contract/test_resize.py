"""A LUN grown on the array (as Cinder or Trident extend it) reads with its new size, the same over ZAPI
and REST; the agent compares that size with its device's, so it must come from a fresh read."""

import pytest

from tests.array_admin import ArrayRefused, grow_lun_rest, resize_lun_zapi
from tests.contract.helpers import LUN0

GiB = 1 << 30


def grow(ontap_sim, wire, size: int) -> int:
    """Grow LUN0 over the API the client under test speaks."""
    if wire.api.value == "rest":
        return grow_lun_rest(ontap_sim, LUN0, size)
    return resize_lun_zapi(ontap_sim, LUN0, size)


def test_a_fresh_lookup_reads_the_size_the_array_grew_the_lun_to(client, ontap_sim, wire):
    before = client.lun_by_path(LUN0, fresh=True)
    assert before.size == GiB
    set_size = grow(ontap_sim, wire, 3 * GiB + 100)
    assert set_size == 3 * GiB + 512  # rounded up to whole blocks, reported as set
    after = client.lun_by_path(LUN0, fresh=True)
    assert after.size == set_size
    assert (after.uuid, after.serial) == (before.uuid, before.serial)


def test_a_shrink_without_force_is_refused_and_the_size_stays(client, ontap_sim, wire):
    with pytest.raises(ArrayRefused) as caught:
        grow(ontap_sim, wire, GiB // 2)
    assert caught.value.code == {"rest": "5374892", "zapi": "13115"}[wire.api.value]
    assert client.lun_by_path(LUN0, fresh=True).size == GiB
