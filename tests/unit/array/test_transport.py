"""The HTTP transport retries only what is safe, a bounded number of times, and types its failures."""

import logging

import pytest
import requests

from iscsi_agent.array.errors import ArrayAuthFailed, ArrayTimeout, ArrayTlsError, ArrayUnreachable
from iscsi_agent.array.settings import ArraySettings
from iscsi_agent.array.transport import HttpTransport, RetryPolicy
from tests.unit.array.fakes import ScriptedSession, response

POLICY = RetryPolicy(attempts=3, base_delay=0.5, max_delay=8.0)


def transport(session, sleeps, rand=lambda: 1.0):
    return HttpTransport(
        "https://array.test:443",
        session=session,
        timeout=(5.0, 30.0),
        retry=POLICY,
        sleep=sleeps.append,
        rand=rand,
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


def test_transient_statuses_are_retried_for_idempotent_calls_and_returned_when_they_persist():
    session = ScriptedSession(response(503), response(502), response(503, b"busy"))
    sleeps = []
    reply = transport(session, sleeps).request("GET", "/api/storage/luns", idempotent=True)
    assert reply.status == 503 and reply.body == b"busy" and len(sleeps) == 2


def test_a_transient_status_on_a_write_is_returned_without_a_retry():
    session = ScriptedSession(response(503))
    assert transport(session, []).request("POST", "/api/x", idempotent=False).status == 503
    assert len(session.calls) == 1


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
