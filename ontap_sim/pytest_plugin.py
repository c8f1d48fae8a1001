"""Pytest fixtures: a fresh simulator per test, on 127.0.0.1 with the default seed.

Register with ``pytest_plugins = ["ontap_sim.pytest_plugin"]``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

from ontap_sim.simulator import Simulator
from ontap_sim.tls import ClientCertFiles, write_client_cert


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


class ClientCerts(NamedTuple):
    trusted: ClientCertFiles  # issued by the CA ``cert_sim`` trusts
    untrusted: ClientCertFiles  # for the same account, from a CA the array does not know


@pytest.fixture
def client_certs(tmp_path: Path) -> ClientCerts:
    """Client certificates for the simulator's account (admin): one the array trusts, one it does not."""
    (tmp_path / "trusted").mkdir()
    (tmp_path / "untrusted").mkdir()
    return ClientCerts(
        write_client_cert(tmp_path / "trusted", "admin"), write_client_cert(tmp_path / "untrusted", "admin")
    )


@pytest.fixture
def cert_sim(client_certs: ClientCerts) -> Iterator[Simulator]:
    """HTTPS that requires and verifies a client certificate from ``client_certs.trusted``'s CA."""
    sim = Simulator()
    sim.start(tls=True, client_ca=str(client_certs.trusted.ca_cert))
    try:
        yield sim
    finally:
        sim.stop()
