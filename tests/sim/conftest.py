"""The simulator's own fixtures, plus small clients that talk to it over real HTTP."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import requests
from lxml import etree

from ontap_sim.simulator import Simulator
from tests.sim.wire import AUTH, ZAPI_PATH, results_of, zapi_body


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.auth = AUTH
        yield session


@pytest.fixture
def zapi(ontap_sim: Simulator, http: requests.Session) -> Callable[..., etree._Element]:
    """Call a ZAPI API on the simulator; returns the <results> element, passed or failed."""

    def call(api: str, inner: str = "", vfiler: str | None = "svm1") -> etree._Element:
        reply = http.post(
            ontap_sim.base_url + ZAPI_PATH,
            data=zapi_body(api, inner, vfiler),
            headers={"Content-Type": "text/xml"},
            timeout=5,
        )
        assert reply.status_code == 200, reply.text
        return results_of(reply.content)

    return call


@pytest.fixture
def rest(ontap_sim: Simulator, http: requests.Session) -> Callable[..., requests.Response]:
    """rest("GET", "/api/...", json=..., headers=...) against the simulator."""

    def call(method: str, path: str, **kwargs: object) -> requests.Response:
        return http.request(method, ontap_sim.base_url + path, timeout=5, **kwargs)  # type: ignore[arg-type]

    return call


@pytest.fixture
def start_sim() -> Iterator[Callable[..., Simulator]]:
    """Start simulators built with custom arguments; every one is stopped after the test."""
    started: list[Simulator] = []

    def start(**kwargs: object) -> Simulator:
        sim = Simulator(**kwargs)  # type: ignore[arg-type]
        sim.start()
        started.append(sim)
        return sim

    yield start
    for sim in started:
        sim.stop()
