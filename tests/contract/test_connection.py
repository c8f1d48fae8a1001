"""Authentication, TLS verification and the choice between ZAPI and REST."""

import pytest

from iscsi_agent.array import settings as settings_module
from iscsi_agent.array.connect import connect
from iscsi_agent.array.errors import ArrayAuthFailed, ArrayTlsError, ArrayUnreachable
from iscsi_agent.array.settings import ApiChoice
from ontap_sim.simulator import Simulator
from tests.contract.conftest import make_client, settings_for


def test_wrong_credentials_are_an_auth_error(ontap_sim, wire, sleeps):
    client = make_client(ontap_sim, wire.api, sleeps, password="wrong")
    with pytest.raises(ArrayAuthFailed) as caught:
        client.version()
    assert caught.value.code == "array_auth_failed" and sleeps == []
    assert "wrong" not in str(caught.value)


def test_auto_detection_with_wrong_credentials_is_an_auth_error_not_a_fallback(ontap_sim):
    with pytest.raises(ArrayAuthFailed):
        connect(settings_for(ontap_sim, ApiChoice.AUTO, password="wrong"))


def test_tls_verifies_against_the_given_ca_bundle(ontap_sim_tls, wire, sleeps):
    client = make_client(ontap_sim_tls, wire.api, sleeps, ca_bundle=ontap_sim_tls.ca_cert_path)
    assert client.version().release == (9, 13, 1)


def test_without_a_ca_bundle_the_certificate_is_checked_against_the_system_store(
    ontap_sim_tls, wire, sleeps, monkeypatch
):
    # the simulator's CA stands in for the system store the operator maintains
    monkeypatch.setattr(settings_module, "SYSTEM_CA_BUNDLE", ontap_sim_tls.ca_cert_path, raising=False)
    assert make_client(ontap_sim_tls, wire.api, sleeps).version().release == (9, 13, 1)


def test_tls_without_the_ca_fails_clearly_and_is_not_retried(ontap_sim_tls, wire, sleeps):
    client = make_client(ontap_sim_tls, wire.api, sleeps)
    with pytest.raises(ArrayTlsError) as caught:
        client.version()
    assert caught.value.code == "array_tls_failed" and sleeps == []


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_verification_can_be_switched_off_for_labs(ontap_sim_tls, wire, sleeps):
    assert make_client(ontap_sim_tls, wire.api, sleeps, verify_tls=False).version().release == (9, 13, 1)


@pytest.mark.parametrize(
    ("release", "api"), [("9.13.1", "rest"), ("9.11.1", "rest"), ("9.10.1", "zapi"), ("9.7", "zapi")]
)
def test_auto_picks_rest_from_9_11_1_and_zapi_below(release, api):
    with Simulator(seed={"cluster": {"version": release}}) as sim:
        assert connect(settings_for(sim, ApiChoice.AUTO)).api == api


def test_auto_falls_back_to_zapi_when_the_cluster_has_no_rest_api(ontap_sim):
    ontap_sim.faults.inject("GET /api/cluster", "http_status", status=404)
    client = connect(settings_for(ontap_sim, ApiChoice.AUTO))
    assert client.api == "zapi" and client.lun_by_path("/vol/vol1/lun0")


def test_a_client_certificate_authenticates_without_a_password(cert_sim, client_certs, wire, sleeps):
    trusted, _ = client_certs
    client = make_client(
        cert_sim,
        wire.api,
        sleeps,
        username="",
        password="",
        ca_bundle=cert_sim.ca_cert_path,
        client_cert=str(trusted.cert),
        client_key=str(trusted.key),
    )
    assert client.lun_by_path("/vol/vol1/lun0").path == "/vol/vol1/lun0"


@pytest.mark.parametrize("presented", ["no certificate", "another CA's certificate"])
def test_an_array_requiring_a_client_certificate_refuses_any_other_and_is_not_retried(
    cert_sim, client_certs, wire, sleeps, presented
):
    _, other = client_certs
    certificate = (
        {}
        if presented == "no certificate"
        else {"client_cert": str(other.cert), "client_key": str(other.key)}
    )
    client = make_client(cert_sim, wire.api, sleeps, ca_bundle=cert_sim.ca_cert_path, **certificate)
    with pytest.raises(ArrayUnreachable) as caught:
        client.version()
    assert caught.value.code == "array_tls_failed" and sleeps == []
    assert cert_sim.total(wire.api.value) == 0
