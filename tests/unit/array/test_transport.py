"""The HTTP transport retries only what is safe, within the call's budget, and types its failures."""

import logging

import pytest
import requests

from iscsi_agent.array.budget import one_budget_per_call
from iscsi_agent.array.errors import (
    TRANSPORT_ERRORS,
    ArrayAuthFailed,
    ArrayRedirected,
    ArrayTimeout,
    ArrayTlsError,
    ArrayUnreachable,
)
from iscsi_agent.array.settings import ArraySettings
from iscsi_agent.array.transport import HttpTransport, RetryPolicy
from tests.unit.array.fakes import ScriptedSession, response

POLICY = RetryPolicy(attempts=3, base_delay=0.5, max_delay=8.0)


def transport(session, sleeps, rand=lambda: 1.0, retry=POLICY, clock=None):
    return HttpTransport(
        "https://array.test:443",
        session=session,
        timeout=(5.0, 30.0),
        retry=retry,
        sleep=sleeps.append,
        rand=rand,
        clock=clock or (lambda: sum(sleeps)),
    )


def test_an_idempotent_request_is_retried_after_a_connection_reset_with_growing_backoff():
    reset = requests.exceptions.ConnectionError("Connection reset by peer")
    session = ScriptedSession(reset, reset, response(200, b"ok"))
    sleeps = []
    reply = transport(session, sleeps).request("GET", "/api/cluster", idempotent=True)
    assert reply.status == 200 and reply.body == b"ok"
    assert len(session.calls) == 3
    assert sleeps == [0.5, 1.0]  # base * 2**n, with the jitter draw at its maximum


def test_jitter_scales_each_delay_by_the_random_draw():
    session = ScriptedSession(requests.exceptions.ReadTimeout("slow"), response(200))
    sleeps = []
    transport(session, sleeps, rand=lambda: 0.25).request("GET", "/api/cluster", idempotent=True)
    assert sleeps == [0.125]


def test_the_delay_is_capped():
    assert RetryPolicy(attempts=10, base_delay=1.0, max_delay=4.0).delay(6, 1.0) == 4.0


def test_retries_are_bounded_and_the_last_failure_is_raised():
    session = ScriptedSession(*[requests.exceptions.ConnectionError("refused")] * 3)
    sleeps = []
    with pytest.raises(ArrayUnreachable) as caught:
        transport(session, sleeps).request("GET", "/api/cluster", idempotent=True)
    assert len(session.calls) == 3 and len(sleeps) == 2
    assert caught.value.code == "array_unreachable"


def test_a_non_idempotent_request_is_sent_once_even_after_a_reset():
    session = ScriptedSession(requests.exceptions.ConnectionError("Connection reset by peer"))
    sleeps = []
    with pytest.raises(ArrayUnreachable):
        transport(session, sleeps).request("POST", "/api/protocols/san/lun-maps", idempotent=False)
    assert len(session.calls) == 1 and sleeps == []


def test_a_read_timeout_becomes_array_timeout():
    session = ScriptedSession(requests.exceptions.ReadTimeout("read timed out"))
    with pytest.raises(ArrayTimeout):
        transport(session, []).request("POST", "/servlets/x", idempotent=False)


def test_transient_statuses_are_retried_for_idempotent_calls_and_unknown_outcomes_when_they_persist():
    session = ScriptedSession(response(503), response(502), response(503, b"busy"))
    sleeps = []
    with pytest.raises(ArrayUnreachable) as caught:
        transport(session, sleeps).request("GET", "/api/storage/luns", idempotent=True)
    assert caught.value.details["http_status"] == 503 and len(sleeps) == 2


@pytest.mark.parametrize(
    ("status", "error"), [(502, ArrayUnreachable), (503, ArrayUnreachable), (504, ArrayTimeout)]
)
def test_a_gateway_status_on_a_write_is_an_unknown_outcome_not_a_refusal_and_is_not_resent(status, error):
    session = ScriptedSession(response(status, reason="Bad Gateway"))
    with pytest.raises(error) as caught:
        transport(session, []).request("POST", "/api/protocols/san/lun-maps", idempotent=False)
    assert isinstance(caught.value, TRANSPORT_ERRORS)  # what makes the client re-read before deciding
    assert "may or may not have carried it out" in str(caught.value)
    assert len(session.calls) == 1


def test_too_many_requests_on_a_write_is_returned_as_the_arrays_answer():
    session = ScriptedSession(response(429))
    assert transport(session, []).request("POST", "/api/x", idempotent=False).status == 429
    assert len(session.calls) == 1


def test_a_reply_cut_off_mid_body_is_an_unknown_outcome_and_a_read_is_retried():
    broken = requests.exceptions.ChunkedEncodingError("Connection broken: IncompleteRead(10 bytes read)")
    session = ScriptedSession(broken, response(200, b"ok"))
    assert transport(session, []).request("GET", "/api/cluster", idempotent=True).body == b"ok"
    session = ScriptedSession(broken)
    with pytest.raises(ArrayUnreachable) as caught:
        transport(session, []).request("POST", "/api/protocols/san/lun-maps", idempotent=False)
    assert "broke off" in str(caught.value) and len(session.calls) == 1


def test_requests_made_in_one_client_call_share_its_retries():
    reset = requests.exceptions.ConnectionError("Connection reset by peer")
    session = ScriptedSession(reset, reset, response(200), reset)
    sleeps = []

    @one_budget_per_call
    class Client:
        def __init__(self, transport):
            self.transport = transport
            self.budgets = transport.budgets

        def two_reads(self):
            self.transport.request("GET", "/api/storage/luns", idempotent=True)  # spends both retries
            self.transport.request("GET", "/api/protocols/san/lun-maps", idempotent=True)  # none left

    with pytest.raises(ArrayUnreachable):
        Client(transport(session, sleeps)).two_reads()
    assert len(session.calls) == 4 and sleeps == [0.5, 1.0]


def test_no_retry_starts_after_the_calls_deadline_and_timeouts_shrink_to_the_time_left():
    reset = requests.exceptions.ConnectionError("Connection reset by peer")
    session = ScriptedSession(*[reset] * 10)
    sleeps = []
    made = transport(session, sleeps, retry=RetryPolicy(attempts=10, base_delay=1.0, deadline=4.0))
    with pytest.raises(ArrayUnreachable):
        made.request("GET", "/api/cluster", idempotent=True)
    assert sleeps == [1.0, 2.0]  # the next backoff, 4 s, would end after the deadline
    assert [kwargs["timeout"] for _, _, kwargs in session.calls] == [(4.0, 4.0), (3.0, 3.0), (1.0, 1.0)]


def test_401_is_an_auth_error_and_is_not_retried():
    session = ScriptedSession(response(401, reason="Unauthorized"))
    with pytest.raises(ArrayAuthFailed):
        transport(session, []).request("GET", "/api/cluster", idempotent=True)
    assert len(session.calls) == 1


def test_a_certificate_failure_is_a_tls_error_and_is_not_retried():
    session = ScriptedSession(requests.exceptions.SSLError("certificate verify failed"))
    with pytest.raises(ArrayTlsError) as caught:
        transport(session, []).request("GET", "/api/cluster", idempotent=True)
    assert caught.value.code == "array_tls_failed" and len(session.calls) == 1


def test_every_request_carries_the_connect_and_read_timeouts():
    session = ScriptedSession(response(200))
    transport(session, []).request("GET", "/api/cluster", idempotent=True, params={"fields": "version"})
    method, url, kwargs = session.calls[0]
    assert (method, url) == ("GET", "https://array.test:443/api/cluster")
    assert kwargs["timeout"] == (5.0, 30.0) and kwargs["params"] == {"fields": "version"}


def test_the_environment_chooses_no_proxy_credentials_or_trust_store():
    made = HttpTransport.from_settings(ArraySettings("array.test", "admin", "s3cret!"))
    assert made._session.trust_env is False


def test_settings_that_expose_secrets_are_logged_as_a_warning_naming_the_risk(caplog):
    HttpTransport.from_settings(ArraySettings("array.test", "admin", "s3cret!", scheme="http"))
    HttpTransport.from_settings(ArraySettings("array.test", "admin", "s3cret!", verify_tls=False))
    HttpTransport.from_settings(ArraySettings("array.test", "admin", "s3cret!"))
    warnings = [record.getMessage() for record in caplog.records if record.levelname == "WARNING"]
    assert len(warnings) == 2
    assert "scheme = http" in warnings[0] and "clear text" in warnings[0]
    assert "verify_tls = false" in warnings[1] and "not checked" in warnings[1]


def test_settings_give_basic_auth_or_a_client_certificate_never_both():
    by_password = HttpTransport.from_settings(ArraySettings("array.test", "admin", "s3cret!"))
    assert by_password._session.auth == ("admin", "s3cret!")
    by_cert = HttpTransport.from_settings(
        ArraySettings(
            "array.test", "admin", "s3cret!", client_cert="c.pem", client_key="k.pem", ca_bundle="ca.pem"
        )
    )
    assert by_cert._session.auth is None


def test_tls_options_travel_with_every_request_so_the_environment_cannot_override_them():
    session = ScriptedSession(response(200))
    HttpTransport(
        "https://array.test:443",
        session=session,
        timeout=(1.0, 2.0),
        verify="ca.pem",
        cert=("c.pem", "k.pem"),
    ).request("GET", "/api/cluster", idempotent=True)
    (_, _, kwargs) = session.calls[0]
    assert kwargs["verify"] == "ca.pem" and kwargs["cert"] == ("c.pem", "k.pem")


def test_the_password_never_reaches_the_logs(caplog):
    caplog.set_level(logging.DEBUG)
    session = ScriptedSession(requests.exceptions.ConnectionError("reset"), response(200))
    settings = ArraySettings("array.test", "admin", "s3cret!")
    assert "s3cret!" not in repr(settings)
    transport(session, []).request("POST", "/api/x", idempotent=True, json={"password": "s3cret!"})
    assert "s3cret!" not in caplog.text


def test_every_request_is_told_to_the_observer_with_its_result_and_duration():
    reset = requests.exceptions.ConnectionError("Connection reset by peer")
    session = ScriptedSession(reset, response(200, b"ok"), response(500, b"{}"))
    sleeps: list[float] = []
    seen: list[tuple[str, float]] = []
    sender = transport(session, sleeps)
    sender.observe = lambda result, seconds: seen.append((result, seconds))
    sender.request("GET", "/api/cluster", idempotent=True)
    sender.request("GET", "/api/cluster", idempotent=True)
    assert [result for result, _ in seen] == ["array_unreachable", "ok", "http_500"]
    assert all(seconds >= 0 for _, seconds in seen)


def test_a_redirect_is_never_followed_and_is_an_error_naming_the_location_briefly():
    moved = response(308, reason="Permanent Redirect")
    moved.headers["Location"] = "https://elsewhere.test/" + "x" * 5000
    session = ScriptedSession(moved)
    made = transport(session, [])
    observed = []
    made.observe = lambda result, seconds: observed.append(result)
    with pytest.raises(ArrayRedirected) as caught:
        made.request("POST", "/api/protocols/san/iscsi/credentials", idempotent=True, json={"x": 1})
    assert session.calls[0][2]["allow_redirects"] is False and len(session.calls) == 1
    assert caught.value.details["http_status"] == 308
    assert caught.value.details["location"] == ("https://elsewhere.test/" + "x" * 5000)[:512]
    assert "'https://elsewhere.test/xxx" in str(caught.value) and len(str(caught.value)) < 800
    assert observed == ["array_redirected"]


def test_a_ca_bundle_or_client_certificate_that_cannot_be_loaded_is_a_tls_error_not_retried():
    unusable = OSError("Could not find the TLS key file, invalid path: /etc/iscsi-agent/client.key")
    session = ScriptedSession(unusable, response(200))
    with pytest.raises(ArrayTlsError) as caught:
        transport(session, []).request("GET", "/api/cluster", idempotent=True)
    assert "client.key" in str(caught.value) and len(session.calls) == 1
