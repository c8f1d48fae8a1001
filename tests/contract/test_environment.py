"""The daemon's environment does not choose where the client connects, as whom, or whom it trusts.

``requests`` reads ``HTTPS_PROXY``/``HTTP_PROXY``, ``.netrc`` (``NETRC``) and ``REQUESTS_CA_BUNDLE``
by default; a variable left in a unit file or a login shell must not redirect array traffic,
add credentials, or widen the trust store. Only the configuration decides.
"""

import socket

import pytest

from iscsi_agent.array.errors import ArrayAuthFailed, ArrayTlsError
from tests.contract.conftest import make_client

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


def dead_loopback_url() -> str:
    """A loopback port nobody listens on: a proxy there refuses every connection."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_a_proxy_in_the_environment_is_not_used(ontap_sim, wire, sleeps, monkeypatch):
    dead = dead_loopback_url()
    for name in PROXY_VARIABLES:
        monkeypatch.setenv(name, dead)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    assert make_client(ontap_sim, wire.api, sleeps).version().release == (9, 13, 1)


def test_credentials_in_a_netrc_file_are_not_sent(ontap_sim, wire, sleeps, monkeypatch, tmp_path):
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login admin password netapp1!\n")
    monkeypatch.setenv("NETRC", str(netrc))
    client = make_client(ontap_sim, wire.api, sleeps, username="", password="")
    with pytest.raises(ArrayAuthFailed):
        client.version()


def test_a_ca_bundle_in_the_environment_does_not_widen_trust(ontap_sim_tls, wire, sleeps, monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", ontap_sim_tls.ca_cert_path)
    monkeypatch.setenv("CURL_CA_BUNDLE", ontap_sim_tls.ca_cert_path)
    with pytest.raises(ArrayTlsError):
        make_client(ontap_sim_tls, wire.api, sleeps).version()
