"""The simulator's own fixtures, plus small helpers to talk to it over real HTTP."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import requests

from ontap_sim.pytest_plugin import ontap_sim, ontap_sim_tls  # noqa: F401 - fixtures for this directory
from ontap_sim.simulator import Simulator

AUTH = ("admin", "netapp1!")
ZAPI_PATH = "/servlets/netapp.servlets.admin.XMLrequest_filer"


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.auth = AUTH
        yield session


@pytest.fixture
def start_sim() -> Iterator[Callable[..., Simulator]]:
    """Start simulators built with custom arguments; all are stopped after the test."""
    started: list[Simulator] = []

    def start(**kwargs: object) -> Simulator:
        sim = Simulator(**kwargs)  # type: ignore[arg-type]
        sim.start()
        started.append(sim)
        return sim

    yield start
    for sim in started:
        sim.stop()
