"""Who the peer is decides at accept, before it holds a connection slot or a thread.

The peers here are a real second uid (``tests.other_uid``): a child process drops to 65534 and
connects, so SO_PEERCRED says 65534 whatever the child sends or does not send.
"""

import os
import socket

import pytest

from iscsi_agent.api.listener import bind
from iscsi_agent.api.peer import PeerPolicy
from iscsi_agent.api.server import ApiServer, Limits
from tests.other_uid import NOBODY, connections_as
from tests.unit.api.fakes import parse_response, read_all, request

pytestmark = pytest.mark.allow_subprocess  # forks the other user's process


@pytest.fixture
def open_to_all(socket_dir, service):
    """Start a server on a socket every local user may connect to; ``peers`` still decide who is let in."""
    servers = []
    socket_dir.chmod(0o711)

    def start(peers, limits=None):
        path = socket_dir / f"o{len(servers)}.sock"
        server = ApiServer(bind(path, 0o666, None), service, peers, limits)
        server.start()
        servers.append(server)
        return path

    yield start
    for server in servers:
        assert server.stop(grace=5)


def unix(path):
    def connect():
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        client.connect(str(path))
        return client

    return connect


def answer_within(client, seconds):
    client.settimeout(seconds)
    return parse_response(read_all(client))


def test_a_peer_not_allowed_is_answered_403_at_once_before_it_sends_anything(open_to_all, service):
    path = open_to_all(PeerPolicy(frozenset({os.getuid()}), frozenset()))
    [nobody] = connections_as(NOBODY, 1, unix(path))
    with nobody:
        answer = answer_within(nobody, 2.0)  # the head timeout is 10 s: this is not it
    assert answer.status == 403 and answer.body["error"]["code"] == "peer_not_allowed"
    assert answer.body["error"]["details"]["uid"] == NOBODY
    assert service.calls == []


def test_peers_not_allowed_take_no_slot_from_an_allowed_caller(open_to_all, service):
    path = open_to_all(PeerPolicy(frozenset({os.getuid()}), frozenset()), Limits(connections=2, refusals=1))
    idle = connections_as(NOBODY, 20, unix(path))  # connected, never sending, never reading
    try:
        assert request(path, "GET", "/v1/health").status == 200
    finally:
        for client in idle:
            client.close()
    assert service.calls == [("health",)]


def test_one_allowed_uid_cannot_take_every_slot_and_is_told_503_at_once_beyond_its_share(open_to_all):
    path = open_to_all(PeerPolicy(frozenset({os.getuid(), NOBODY}), frozenset()))
    hoard = connections_as(NOBODY, Limits().connections + Limits().refusals, unix(path))
    try:
        assert request(path, "GET", "/v1/health").status == 200
        beyond = answer_within(hoard[-1], 2.0)
        assert beyond.status == 503 and beyond.body["error"]["code"] == "overloaded"
    finally:
        for client in hoard:
            client.close()


def test_a_flood_of_refused_peers_is_reported_once_not_line_by_line(open_to_all, caplog):
    path = open_to_all(PeerPolicy(frozenset({os.getuid()}), frozenset()))
    flood = connections_as(NOBODY, 50, unix(path))
    try:
        assert request(path, "GET", "/v1/health").status == 200  # taken after the flood: all 50 were refused
    finally:
        for client in flood:
            client.close()
    refusals = [record for record in caplog.records if "not in allowed_uids" in record.getMessage()]
    assert len(refusals) == 1 and f"uid {NOBODY}" in refusals[0].getMessage()
