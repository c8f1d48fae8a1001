"""A synthetic host tree and a stepping clock for every host-layer unit test."""

from __future__ import annotations

import pytest

from iscsi_agent.host.paths import HostPaths
from tests.fakes import FakeClock, HostTree


@pytest.fixture
def tree(tmp_path) -> HostTree:
    return HostTree(tmp_path / "host")


@pytest.fixture
def paths(tree) -> HostPaths:
    return HostPaths(tree.root)


@pytest.fixture
def clock(tree) -> FakeClock:
    """Each sleep lets the synthetic kernel act on scan and delete writes."""
    return FakeClock(on_sleep=tree.kernel_step)
