"""`iscsi-agent-libvirt-hook`: libvirt's qemu hook, attaching a domain's volumes through the agent.

libvirt runs ``/etc/libvirt/hooks/qemu.d/iscsi-agent DOMAIN OP SUBOP EXTRA`` as root with a scrubbed
environment and the domain XML on stdin, so the hook finds the agent at its default socket. It acts
on two calls, ``prepare begin`` and ``release end`` (``actions``), and changes nothing on any other
(``reconnect begin``, ``start``, ``migrate``, ...).

libvirt runs the hook for every call of every domain and waits for it (five calls for one start and
stop), so an ignored call returns before the agent's client and the XML parser are imported: they
are most of the hook's start-up.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, BinaryIO, TextIO

if TYPE_CHECKING:
    from iscsi_agent.libvirt.actions import Host

PROG = "iscsi-agent-libvirt-hook"
EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2
PREPARE, RELEASE = ("prepare", "begin"), ("release", "end")
CHUNK = 64 * 1024


def main(
    argv: Sequence[str] | None = None,
    *,
    stdin: BinaryIO | None = None,
    err: TextIO = sys.stderr,
    host: Host | None = None,
) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 3:
        print(f"{PROG}: usage: {PROG} DOMAIN OPERATION SUB-OPERATION [EXTRA]", file=err)
        return EXIT_USAGE
    source = stdin or sys.stdin.buffer
    operation = (args[1], args[2])
    if operation not in (PREPARE, RELEASE):
        while source.read(CHUNK):  # libvirt writes the XML to every call: take it, leave it
            pass
        return EXIT_OK
    from iscsi_agent.libvirt.actions import act  # here, not above: see the module's docstring

    return act(args[0], operation, source, err, host)
