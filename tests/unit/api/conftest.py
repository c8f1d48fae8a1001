"""A running API server on a short-named temporary socket, with a fake service behind it."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from iscsi_agent.api.listener import bind
from iscsi_agent.api.peer import PeerPolicy
from iscsi_agent.api.server import ApiServer, Limits
from tests.unit.api.fakes import FakeService

ME = PeerPolicy(frozenset({os.getuid()}), frozenset())


@pytest.fixture
def socket_dir() -> Iterator[Path]:
    """A directory short enough for AF_UNIX's 108-byte paths, which pytest's tmp_path may not be."""
    path = Path(tempfile.mkdtemp(prefix="ia-api-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def service() -> FakeService:
    return FakeService()


Serve = Callable[..., Path]


@pytest.fixture
def serve(socket_dir: Path, service: FakeService) -> Iterator[Serve]:
    """Start a server (``limits``, ``peers``, ``clock`` as given) and return its socket path."""
    servers: list[ApiServer] = []

    def start(limits: Limits | None = None, peers: PeerPolicy = ME, **kwargs: object) -> Path:
        path = socket_dir / f"s{len(servers)}.sock"
        server = ApiServer(bind(path, 0o660, None), service, peers, limits, **kwargs)  # type: ignore[arg-type]
        server.start()
        servers.append(server)
        return path

    yield start
    for server in servers:
        assert server.stop(grace=5), "a request was still in flight at the end of the test"


@pytest.fixture
def agent(serve: Serve) -> Path:
    """The socket of a server with default limits."""
    return serve()
