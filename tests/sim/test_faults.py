"""Injected faults hit exactly the matching requests, the given number of times; requests are counted per API."""

from __future__ import annotations

import base64
import time

import pytest
import requests

from ontap_sim import Simulator
from ontap_sim.app import App, HttpRequest
from ontap_sim.faults import Faults
from ontap_sim.seed import build_state
from tests.sim.wire import ZAPI_PATH, results_of, zapi_body

AUTH_HEADER = {"authorization": "Basic " + base64.b64encode(b"admin:netapp1!").decode()}


def recording_app() -> tuple[App, list[float]]:
    """The request pipeline without sockets, with a clock that records instead of sleeping."""
    waits: list[float] = []
    return App(build_state(), Faults(), "admin", "netapp1!", wait=waits.append), waits


def post_zapi(
    sim: Simulator, http: requests.Session, api: str, inner: str = "", timeout: float = 5
) -> requests.Response:
    return http.post(sim.base_url + ZAPI_PATH, data=zapi_body(api, inner), timeout=timeout)


class TestCounting:
    def test_counts_per_api_and_totals(self, ontap_sim: Simulator, http: requests.Session, rest) -> None:
        post_zapi(ontap_sim, http, "system-get-version")
        post_zapi(ontap_sim, http, "system-get-version")
        rest("GET", "/api/cluster")
        rest("GET", f"/api/protocols/san/lun-maps/{'a' * 8}/{'b' * 8}")
        assert ontap_sim.counts[("zapi", "system-get-version")] == 2
        assert ontap_sim.counts[("rest", "GET /api/cluster")] == 1
        assert ontap_sim.counts[("rest", "GET /api/protocols/san/lun-maps/{lun.uuid}/{igroup.uuid}")] == 1
        assert (ontap_sim.total("zapi"), ontap_sim.total("rest")) == (2, 2)
        ontap_sim.reset_counts()
        assert ontap_sim.total("zapi") == 0


class TestFaults:
    def test_errno_fails_the_zapi_call_once(self, ontap_sim: Simulator, http: requests.Session) -> None:
        ontap_sim.faults.inject("system-get-version", "errno", errno=13001, reason="busy")
        first = results_of(post_zapi(ontap_sim, http, "system-get-version").content)
        second = results_of(post_zapi(ontap_sim, http, "system-get-version").content)
        assert (first.get("status"), first.get("errno"), first.get("reason")) == ("failed", "13001", "busy")
        assert second.get("status") == "passed"

    def test_errno_on_rest_carries_code_message_and_status(self, ontap_sim: Simulator, rest) -> None:
        ontap_sim.faults.inject(
            "POST /api/protocols/san/lun-maps", "errno", code="5374573", message="no LIF", status=400
        )
        reply = rest("POST", "/api/protocols/san/lun-maps", json={})
        assert reply.status_code == 400 and reply.json()["error"] == {"code": "5374573", "message": "no LIF"}

    def test_rest_match_is_a_method_and_path_prefix(self, ontap_sim: Simulator, rest) -> None:
        ontap_sim.faults.inject("GET /api/storage", "http_status", times=2, status=503)
        assert rest("GET", "/api/cluster").status_code == 200
        assert [rest("GET", "/api/storage/luns").status_code for _ in range(3)] == [503, 503, 200]

    def test_zapi_match_is_the_exact_api_name(self, ontap_sim: Simulator, http: requests.Session) -> None:
        ontap_sim.faults.inject("lun-map", "http_status", status=500)
        assert post_zapi(ontap_sim, http, "lun-map-get-iter").status_code == 200
        assert post_zapi(ontap_sim, http, "lun-map").status_code == 500

    def test_times_none_fires_for_ever(self, ontap_sim: Simulator, rest) -> None:
        ontap_sim.faults.inject("*", "http_status", times=None, status=502)
        assert {rest("GET", "/api/cluster").status_code for _ in range(3)} == {502}

    def test_reset_drops_the_connection_without_reply(
        self, ontap_sim: Simulator, http: requests.Session
    ) -> None:
        ontap_sim.faults.inject("system-get-version", "reset")
        with pytest.raises(requests.ConnectionError):
            post_zapi(ontap_sim, http, "system-get-version")
        assert results_of(post_zapi(ontap_sim, http, "system-get-version").content).get("status") == "passed"

    def test_lost_reply_applies_the_request_then_drops_the_connection(
        self, ontap_sim: Simulator, rest
    ) -> None:
        ontap_sim.faults.inject("POST /api/protocols/san/igroups", "lost_reply")
        body = {"svm": {"name": "svm1"}, "name": "host1", "protocol": "iscsi", "os_type": "linux"}
        with pytest.raises(requests.ConnectionError):
            rest("POST", "/api/protocols/san/igroups", json=body)
        assert [ig.name for ig in ontap_sim.state.igroups.values()] == ["host1"]

    def test_broken_reply_applies_the_request_then_cuts_the_chunked_body_off(
        self, ontap_sim: Simulator, rest
    ) -> None:
        ontap_sim.faults.inject("POST /api/protocols/san/igroups", "broken_reply")
        body = {"svm": {"name": "svm1"}, "name": "host1", "protocol": "iscsi", "os_type": "linux"}
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            rest("POST", "/api/protocols/san/igroups", json=body)
        assert [ig.name for ig in ontap_sim.state.igroups.values()] == ["host1"]

    def test_an_applied_http_status_carries_the_request_out_and_answers_the_status(
        self, ontap_sim: Simulator, rest
    ) -> None:
        ontap_sim.faults.inject("POST /api/protocols/san/igroups", "http_status", status=504, applied=True)
        body = {"svm": {"name": "svm1"}, "name": "host1", "protocol": "iscsi", "os_type": "linux"}
        assert rest("POST", "/api/protocols/san/igroups", json=body).status_code == 504
        assert [ig.name for ig in ontap_sim.state.igroups.values()] == ["host1"]

    def test_a_bare_http_status_is_not_carried_out(self, ontap_sim: Simulator, rest) -> None:
        ontap_sim.faults.inject("POST /api/protocols/san/igroups", "http_status", status=503)
        body = {"svm": {"name": "svm1"}, "name": "host1", "protocol": "iscsi", "os_type": "linux"}
        assert rest("POST", "/api/protocols/san/igroups", json=body).status_code == 503
        assert ontap_sim.state.igroups == {}

    def test_timeout_holds_the_request_past_the_client_deadline(
        self, ontap_sim: Simulator, http: requests.Session
    ) -> None:
        ontap_sim.faults.inject("system-get-version", "timeout", seconds=30)
        with pytest.raises(requests.ReadTimeout):
            post_zapi(ontap_sim, http, "system-get-version", timeout=0.2)

    def test_stop_releases_held_requests_quickly(self, start_sim) -> None:
        sim = start_sim()
        sim.faults.inject("*", "timeout", seconds=30)
        with pytest.raises(requests.ReadTimeout):
            requests.get(sim.base_url + "/api/cluster", auth=("admin", "netapp1!"), timeout=0.2)
        began = time.monotonic()
        sim.stop()
        assert time.monotonic() - began < 2

    def test_latency_delays_but_answers(self) -> None:
        app, waits = recording_app()
        app.faults.inject("GET /api/cluster", "latency", seconds=0.2)
        reply = app.handle(HttpRequest("GET", "/api/cluster", AUTH_HEADER, b""))
        assert (reply.status, waits) == (200, [0.2])

    def test_global_latency_applies_to_every_request(self) -> None:
        app, waits = recording_app()
        app.latency = 0.1
        app.handle(HttpRequest("GET", "/api/cluster", AUTH_HEADER, b""))
        app.handle(HttpRequest("POST", ZAPI_PATH, AUTH_HEADER, zapi_body("system-get-version")))
        assert waits == [0.1, 0.1]

    def test_missing_parameters_are_refused_at_injection(self, ontap_sim: Simulator) -> None:
        with pytest.raises(ValueError, match="seconds"):
            ontap_sim.faults.inject("lun-map", "timeout")
