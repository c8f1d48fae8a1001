"""The peer's credentials come from the kernel; config's uid and gid lists decide who is let in."""

import os
import socket

from iscsi_agent.api.peer import Peer, PeerPolicy, peer_of


def test_the_peer_of_a_unix_connection_is_the_connecting_process():
    left, right = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with left, right:
        assert peer_of(left) == Peer(os.getpid(), os.getuid(), os.getgid())


def test_a_peer_is_let_in_by_its_uid_or_its_gid():
    policy = PeerPolicy(frozenset({0}), frozenset({64055}))
    assert policy.allows(Peer(1, 0, 0))
    assert policy.allows(Peer(1, 1000, 64055))
    assert not policy.allows(Peer(1, 1000, 1000))


def test_empty_lists_let_nobody_in():
    assert not PeerPolicy(frozenset(), frozenset()).allows(Peer(1, 0, 0))
