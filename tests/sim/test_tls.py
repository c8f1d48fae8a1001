"""HTTPS with a throw-away CA that clients can verify against, and a clean start/stop cycle."""

from __future__ import annotations

import os

import pytest
import requests

from ontap_sim import Simulator


def test_tls_verifies_against_the_ca(ontap_sim_tls: Simulator) -> None:
    assert ontap_sim_tls.base_url.startswith("https://127.0.0.1:")
    reply = requests.get(
        ontap_sim_tls.base_url + "/api/cluster",
        auth=("admin", "netapp1!"),
        verify=ontap_sim_tls.ca_cert_path,
        timeout=5,
    )
    assert reply.json()["name"] == "cluster1"


def test_tls_is_refused_without_the_ca(ontap_sim_tls: Simulator) -> None:
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(ontap_sim_tls.base_url + "/api/cluster", timeout=5)


def test_stop_removes_the_certificates() -> None:
    sim = Simulator()
    sim.start(tls=True)
    ca = sim.ca_cert_path
    sim.stop()
    assert ca is not None and not os.path.exists(ca) and sim.ca_cert_path is None


def test_plain_http_client_against_tls_does_not_wedge_the_server(ontap_sim_tls: Simulator) -> None:
    plain = ontap_sim_tls.base_url.replace("https://", "http://")
    with pytest.raises(requests.ConnectionError):
        requests.get(plain + "/api/cluster", timeout=5)
    reply = requests.get(
        ontap_sim_tls.base_url + "/api/cluster",
        auth=("admin", "netapp1!"),
        verify=ontap_sim_tls.ca_cert_path,
        timeout=5,
    )
    assert reply.status_code == 200


def test_only_loopback_addresses_are_served() -> None:
    with pytest.raises(ValueError, match="loopback"):
        Simulator().start(host="0.0.0.0")


def test_a_stopped_simulator_frees_its_port_for_a_new_one() -> None:
    first = Simulator()
    url = first.start()
    first.stop()
    second = Simulator()
    try:
        assert second.start(port=int(url.rsplit(":", 1)[1])) == url
    finally:
        second.stop()


def test_a_client_certificate_naming_the_account_authenticates_without_a_password(cert_sim, client_certs):
    trusted, _ = client_certs
    reply = requests.get(
        cert_sim.base_url + "/api/cluster",
        cert=(str(trusted.cert), str(trusted.key)),
        verify=cert_sim.ca_cert_path,
        timeout=5,
    )
    assert reply.status_code == 200 and reply.json()["name"] == "cluster1"


@pytest.mark.parametrize("which", ["none", "other CA"])
def test_a_simulator_given_a_client_ca_refuses_clients_without_a_certificate_it_issued(
    cert_sim, client_certs, which
):
    _, other = client_certs
    cert = None if which == "none" else (str(other.cert), str(other.key))
    with pytest.raises(requests.exceptions.ConnectionError):  # SSLError, or a reset after TLS 1.3's alert
        requests.get(
            cert_sim.base_url + "/api/cluster",
            auth=("admin", "netapp1!"),
            cert=cert,
            verify=cert_sim.ca_cert_path,
            timeout=5,
        )
    assert cert_sim.total("rest") == 0


def test_the_client_key_is_written_private(client_certs):
    trusted, _ = client_certs
    assert trusted.key.stat().st_mode & 0o777 == 0o600
