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
