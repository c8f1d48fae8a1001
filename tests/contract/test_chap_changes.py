"""Changing an initiator's CHAP entry never leaves it without one.

Both APIs refuse, before any request, credentials the array would refuse (equal inbound and
outbound secrets). ZAPI cannot change an auth type in place (``iscsi-initiator-modify-chap-params``
only modifies a CHAP entry), so a change to or from none/deny is a delete and an add; when the add
fails, an entry is put back: the old one when it was none or deny, and deny when it was CHAP,
whose secrets the array never returns (deny admits no one; the SVM's default policy might admit
anyone). REST changes an entry with one PATCH.
"""

import pytest

from iscsi_agent.array.errors import ArrayApiError, ArrayError, ArrayUnreachable
from iscsi_agent.array.model import ChapAuth, ChapCredentials
from iscsi_agent.array.settings import ApiChoice
from ontap_sim.model import Chap
from tests.contract.conftest import make_client

INITIATOR = "iqn.1994-05.com.redhat:chap-change-host"
ONE_WAY = ChapCredentials(INITIATOR, ChapAuth.CHAP, "hostuser", "hostsecret12")
ADD, DELETE = "iscsi-initiator-add-auth", "iscsi-initiator-delete-auth"


@pytest.fixture
def zapi(ontap_sim, sleeps):
    made = make_client(ontap_sim, ApiChoice.ZAPI, sleeps)
    ontap_sim.reset_counts()
    yield made
    made.close()


def array_entry(sim, auth: str, user: str = "", secret: str = "") -> None:
    with sim.state.lock:
        sim.state.add_chap(Chap("svm1", INITIATOR, auth, user, secret))


def entry_on_array(sim) -> Chap | None:
    with sim.state.lock:
        return sim.state.chap.get(("svm1", INITIATOR))


def test_equal_inbound_and_outbound_secrets_are_refused_before_any_request(client, ontap_sim, wire):
    array_entry(ontap_sim, "none")
    same = ChapCredentials(INITIATOR, ChapAuth.CHAP, "hostuser", "samesecret12", "arrayuser", "samesecret12")
    with pytest.raises(ArrayError) as caught:
        client.set_chap_credentials(same)
    assert caught.value.code == "array_invalid_request"
    assert "secrets are the same" in str(caught.value) and "samesecret12" not in str(caught.value)
    assert ontap_sim.total(wire.api.value) == 0
    assert entry_on_array(ontap_sim).auth_type == "none"


def test_when_the_array_refuses_the_new_entry_the_old_none_entry_is_put_back(zapi, ontap_sim):
    array_entry(ontap_sim, "none")
    ontap_sim.faults.inject(ADD, "errno", errno=13115, reason="invalid input")
    with pytest.raises(ArrayApiError) as caught:
        zapi.set_chap_credentials(ONE_WAY)
    assert caught.value.array_code == "13115"
    assert entry_on_array(ontap_sim).auth_type == "none"
    assert caught.value.details["entry_left"] == "none"


def test_when_the_connection_drops_between_delete_and_add_the_old_deny_entry_is_put_back(zapi, ontap_sim):
    array_entry(ontap_sim, "deny")
    ontap_sim.faults.inject(ADD, "reset", times=3)  # the add and both resends
    with pytest.raises(ArrayUnreachable) as caught:
        zapi.set_chap_credentials(ONE_WAY)
    assert entry_on_array(ontap_sim).auth_type == "deny"
    assert caught.value.details["entry_left"] == "deny"
    assert ontap_sim.counts[("zapi", ADD)] == 4  # three tries of the new entry, one putting the old back


def test_an_old_chap_entry_whose_secret_is_unreadable_is_replaced_by_deny_not_by_nothing(zapi, ontap_sim):
    array_entry(ontap_sim, "chap", "hostuser", "hostsecret12")
    ontap_sim.faults.inject(ADD, "reset", times=3)
    with pytest.raises(ArrayUnreachable) as caught:
        zapi.set_chap_credentials(ChapCredentials(INITIATOR, ChapAuth.NONE))
    assert entry_on_array(ontap_sim).auth_type == "deny"
    assert caught.value.details["entry_left"] == "deny"


def test_a_new_entry_that_landed_although_its_reply_was_lost_is_kept(zapi, ontap_sim):
    array_entry(ontap_sim, "none")
    ontap_sim.faults.inject(ADD, "lost_reply")
    zapi.set_chap_credentials(ONE_WAY)
    entry = entry_on_array(ontap_sim)
    assert (entry.auth_type, entry.inbound_user) == ("chap", "hostuser")
    assert ontap_sim.counts[("zapi", ADD)] == 1


def test_chap_parameters_change_in_place_without_a_delete(zapi, ontap_sim):
    array_entry(ontap_sim, "chap", "olduser", "oldsecret123")
    zapi.set_chap_credentials(ONE_WAY)
    assert entry_on_array(ontap_sim).inbound_user == "hostuser"
    assert ontap_sim.counts[("zapi", DELETE)] == 0


def test_setting_the_auth_type_the_entry_already_has_writes_nothing(zapi, ontap_sim):
    array_entry(ontap_sim, "deny")
    zapi.set_chap_credentials(ChapCredentials(INITIATOR, ChapAuth.DENY))
    assert ontap_sim.counts[("zapi", DELETE)] == ontap_sim.counts[("zapi", ADD)] == 0
    assert entry_on_array(ontap_sim).auth_type == "deny"
