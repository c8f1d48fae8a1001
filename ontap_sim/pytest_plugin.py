"""Pytest fixtures: a fresh simulator per test, on 127.0.0.1 with the default seed.

Register with ``pytest_plugins = ["ontap_sim.pytest_plugin"]``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ontap_sim.simulator import Simulator


@pytest.fixture
def ontap_sim() -> Iterator[Simulator]:
    """Plain HTTP; ``ontap_sim.base_url`` is set."""
    sim = Simulator()
    sim.start()
    try:
        yield sim
    finally:
        sim.stop()


@pytest.fixture
def ontap_sim_tls() -> Iterator[Simulator]:
    """HTTPS with a throw-away CA; verify with ``ontap_sim_tls.ca_cert_path``."""
    sim = Simulator()
    sim.start(tls=True)
    try:
        yield sim
    finally:
        sim.stop()
