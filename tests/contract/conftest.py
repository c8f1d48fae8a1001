"""Contract fixtures: the same client tests run over ZAPI and over REST against the simulator.

Each API gets a ``Wire`` naming its requests the way the simulator counts them and matches
faults, so one test body can assert "exactly one map request" for both.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest

from iscsi_agent.array.client import ArrayClient
from iscsi_agent.array.connect import connect
from iscsi_agent.array.settings import ApiChoice, ArraySettings
from iscsi_agent.array.transport import HttpTransport
from ontap_sim.simulator import Simulator

USERNAME, PASSWORD = "admin", "netapp1!"


@dataclass(frozen=True)
class Wire:
    """How the simulator names one API's requests (for counts and for fault matching)."""

    api: ApiChoice
    lun_map: str
    lun_maps: str
    luns: str
    igroup_create: str
    igroups: str

    def key(self, request: str) -> tuple[str, str]:
        return (self.api.value, request)


ZAPI = Wire(ApiChoice.ZAPI, "lun-map", "lun-map-get-iter", "lun-get-iter", "igroup-create", "igroup-get-iter")
REST = Wire(
    ApiChoice.REST,
    "POST /api/protocols/san/lun-maps",
    "GET /api/protocols/san/lun-maps",
    "GET /api/storage/luns",
    "POST /api/protocols/san/igroups",
    "GET /api/protocols/san/igroups",
)


@pytest.fixture(params=[ZAPI, REST], ids=["zapi", "rest"])
def wire(request: pytest.FixtureRequest) -> Wire:
    return request.param


def settings_for(sim: Simulator, api: ApiChoice, **overrides) -> ArraySettings:
    url = urlsplit(sim.base_url)
    values = {
        "hostname": url.hostname,
        "port": url.port,
        "scheme": url.scheme,
        "username": USERNAME,
        "password": PASSWORD,
        "vserver": "svm1",
        "api": api,
        "timeout": 5.0,
        "connect_timeout": 2.0,
        **overrides,
    }
    return ArraySettings(**values)


class Sleeps(list):
    """Records the client's backoff delays instead of sleeping; ``clock`` counts them as time passed."""

    def clock(self) -> float:
        return time.monotonic() + sum(self)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


def make_client(sim: Simulator, api: ApiChoice, sleeps: Sleeps, **overrides) -> ArrayClient:
    settings = settings_for(sim, api, **overrides)
    transport = HttpTransport.from_settings(
        settings, sleep=sleeps.append, rand=lambda: 0.5, clock=sleeps.clock
    )
    return connect(settings, transport=transport)


@pytest.fixture
def client(ontap_sim: Simulator, wire: Wire, sleeps: Sleeps) -> Iterator[ArrayClient]:
    made = make_client(ontap_sim, wire.api, sleeps)
    ontap_sim.reset_counts()
    yield made
    made.close()
