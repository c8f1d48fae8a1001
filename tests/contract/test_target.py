"""The iSCSI target: portals, target IQN, and CHAP credentials per initiator."""

from iscsi_agent.array.model import ChapAuth, ChapCredentials

INITIATOR = "iqn.1994-05.com.redhat:chap-host"


def test_portals_are_the_enabled_iscsi_lifs(client, wire):
    portals = sorted(client.portals(), key=lambda p: p.address)
    assert [(p.address, p.portal.port, p.current_node) for p in portals] == [
        ("127.0.0.1", 3260, "node-01"),
        ("127.0.0.2", 3260, "node-02"),
    ]
    tags = [p.tpgt for p in portals]
    assert tags == ([1027, 1028] if wire.api.value == "zapi" else [None, None])


def test_a_disabled_lif_is_no_portal(client, ontap_sim):
    import dataclasses

    with ontap_sim.state.lock:
        lif = next(lif for lif in ontap_sim.state.lifs.values() if lif.ip == "127.0.0.2")
        ontap_sim.state.lifs[next(k for k, v in ontap_sim.state.lifs.items() if v is lif)] = (
            dataclasses.replace(lif, enabled=False)
        )
    assert [p.address for p in client.portals()] == ["127.0.0.1"]


def test_the_target_iqn_is_the_svms_iscsi_node_name(client, ontap_sim):
    service = client.iscsi_service()
    assert service.target_iqn == ontap_sim.state.svm(name="svm1").iscsi.target_iqn
    assert service.target_iqn.startswith("iqn.1992-08.com.netapp:sn.") and service.enabled


def test_an_initiator_without_its_own_entry_has_no_credentials(client):
    assert client.chap_credentials(INITIATOR) is None


def test_one_way_chap_is_set_and_read_back_without_its_secret(client, ontap_sim):
    client.set_chap_credentials(ChapCredentials(INITIATOR, ChapAuth.CHAP, "hostuser", "hostsecret12"))
    read = client.chap_credentials(INITIATOR)
    assert (read.auth, read.inbound_user, read.mutual, read.inbound_secret) == (
        ChapAuth.CHAP,
        "hostuser",
        False,
        None,
    )
    with ontap_sim.state.lock:
        assert (
            ontap_sim.state.chap_entry(ontap_sim.state.svm(name="svm1"), INITIATOR).inbound_password
            == "hostsecret12"
        )


def test_mutual_chap_can_be_set_then_dropped_back_to_one_way(client):
    client.set_chap_credentials(
        ChapCredentials(INITIATOR, ChapAuth.CHAP, "hostuser", "hostsecret12", "arrayuser", "arraysecret1")
    )
    read = client.chap_credentials(INITIATOR)
    assert read.mutual and read.outbound_user == "arrayuser"
    client.set_chap_credentials(ChapCredentials(INITIATOR, ChapAuth.CHAP, "hostuser2", "hostsecret34"))
    read = client.chap_credentials(INITIATOR)
    assert (read.inbound_user, read.mutual) == ("hostuser2", False)


def stored_entry(sim):
    with sim.state.lock:
        return sim.state.chap_entry(sim.state.svm(name="svm1"), INITIATOR)


def test_a_mutual_entry_stores_both_users_and_secrets_and_a_rotation_replaces_both_in_place(
    client, ontap_sim, wire
):
    client.set_chap_credentials(
        ChapCredentials(INITIATOR, ChapAuth.CHAP, "hostuser", "hostsecret12", "arrayuser", "arraysecret1")
    )
    entry = stored_entry(ontap_sim)
    assert (entry.inbound_user, entry.inbound_password, entry.outbound_user, entry.outbound_password) == (
        "hostuser",
        "hostsecret12",
        "arrayuser",
        "arraysecret1",
    )
    ontap_sim.reset_counts()
    client.set_chap_credentials(
        ChapCredentials(INITIATOR, ChapAuth.CHAP, "hostuser", "hostsecret34", "arrayuser", "arraysecret3")
    )
    entry = stored_entry(ontap_sim)
    assert (entry.inbound_password, entry.outbound_password) == ("hostsecret34", "arraysecret3")
    # in place: ONTAP's modify (ZAPI iscsi-initiator-modify-chap-params, REST PATCH), never a delete
    # that would leave the initiator to the SVM's default policy meanwhile
    deletes = [
        key for key, n in ontap_sim.counts.items() if n and ("delete-auth" in key[1] or "DELETE" in key[1])
    ]
    assert deletes == []


def test_chap_can_be_turned_off(client):
    client.set_chap_credentials(ChapCredentials(INITIATOR, ChapAuth.CHAP, "hostuser", "hostsecret12"))
    client.set_chap_credentials(ChapCredentials(INITIATOR, ChapAuth.NONE))
    assert client.chap_credentials(INITIATOR).auth is ChapAuth.NONE


def test_secrets_never_appear_in_a_credentials_repr():
    text = repr(ChapCredentials(INITIATOR, ChapAuth.CHAP, "u", "hostsecret12", "o", "arraysecret1"))
    assert "hostsecret12" not in text and "arraysecret1" not in text
