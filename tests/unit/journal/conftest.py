"""A journal under a fresh state directory, on a wall clock that only moves when told."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from iscsi_agent.journal.store import FILE_NAME, Journal
from tests.unit.journal.fakes import FakeWallClock


@pytest.fixture
def clock() -> FakeWallClock:
    return FakeWallClock()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state" / FILE_NAME


@pytest.fixture
def journal(path: Path, clock: FakeWallClock) -> Iterator[Journal]:
    with Journal.open(path, clock) as opened:
        yield opened
