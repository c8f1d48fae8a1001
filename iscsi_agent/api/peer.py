"""Who is on the other end of a Unix socket (SO_PEERCRED), and whether config lets them in.

The kernel records the peer's pid, uid and gid when it connects; the client cannot forge them, so
they decide access together with the socket file's mode and group (which decide who can connect
at all). Only the peer's primary gid is known: supplementary groups are not in ``struct ucred``.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

_UCRED = struct.Struct("3i")  # struct ucred { pid_t pid; uid_t uid; gid_t gid; }


@dataclass(frozen=True)
class Peer:
    pid: int
    uid: int
    gid: int


def peer_of(connection: socket.socket) -> Peer:
    raw = connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    pid, uid, gid = _UCRED.unpack(raw)
    return Peer(pid, uid, gid)


@dataclass(frozen=True)
class PeerPolicy:
    """``[agent] allowed_uids`` / ``allowed_gids``: a peer is let in when either list names it."""

    allowed_uids: frozenset[int]
    allowed_gids: frozenset[int]

    def allows(self, peer: Peer) -> bool:
        return peer.uid in self.allowed_uids or peer.gid in self.allowed_gids
