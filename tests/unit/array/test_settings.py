"""Connection settings derive the base URL, TLS verification and certificate options."""

from iscsi_agent.array.settings import ArraySettings


def test_the_port_defaults_by_scheme():
    assert ArraySettings("array.test").base_url == "https://array.test:443"
    assert ArraySettings("array.test", scheme="http").base_url == "http://array.test:80"
    assert ArraySettings("array.test", port=8443).base_url == "https://array.test:8443"


def test_an_ipv6_host_is_bracketed():
    assert ArraySettings("fd00::5").base_url == "https://[fd00::5]:443"


def test_by_default_the_certificate_is_checked_against_the_system_store_and_a_ca_bundle_replaces_it():
    assert ArraySettings("a").verify == "/etc/ssl/certs/ca-certificates.crt"  # not requests' own bundle
    assert ArraySettings("a", ca_bundle="/ca.pem").verify == "/ca.pem"
    assert ArraySettings("a", verify_tls=False, ca_bundle="/ca.pem").verify is False


def test_a_client_certificate_needs_both_files():
    assert ArraySettings("a", client_cert="c.pem").cert is None
    assert ArraySettings("a", client_cert="c.pem", client_key="k.pem").cert == ("c.pem", "k.pem")


def test_a_call_may_take_every_tries_timeouts_unless_a_deadline_is_given():
    assert ArraySettings("a", timeout=30.0, connect_timeout=10.0, attempts=3).call_deadline == 120.0
    assert ArraySettings("a", deadline=45.0).call_deadline == 45.0


def test_clear_text_and_unchecked_certificates_are_named_as_risks():
    assert ArraySettings("a").security_risks() == ()
    assert ArraySettings("a", ca_bundle="/ca.pem").security_risks() == ()
    (http,) = ArraySettings("a", scheme="http").security_risks()
    assert http.startswith("scheme = http:") and "password (HTTP Basic)" in http and "clear text" in http
    (unchecked,) = ArraySettings("a", verify_tls=False).security_risks()
    assert unchecked.startswith("verify_tls = false:") and "pose as the array" in unchecked
