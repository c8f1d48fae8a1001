"""Leaves no multipath map, session, node or discovery record behind, using the tools directly.

Cleanup does not go through the agent's host layer, so a bug under test cannot hide behind it.
"""

from pathlib import Path

from iscsi_agent.host.command import SubprocessRunner

_run = SubprocessRunner()
SHIPPED_IFACES = frozenset({"iface.example"})  # open-iscsi's package ships this one, not a record


def reset_initiator() -> None:
    _run(["multipath", "-F"], timeout=60)
    Path("/etc/multipath/wwids").write_text("")
    _run(["iscsiadm", "-m", "node", "--logoutall=all"], timeout=60)
    # --logoutall skips a session whose node record it cannot read (one made with -o new through a
    # named iface has no tpgt): such a session outlives its record and reconnects to a later target
    for session in sorted(Path("/sys/class/iscsi_session").glob("session*")):
        _run(
            ["iscsiadm", "-m", "session", "-r", session.name.removeprefix("session"), "--logout"], timeout=60
        )
    _run(["iscsiadm", "-m", "node", "-o", "delete"], timeout=60)
    _run(["iscsiadm", "-m", "discoverydb", "-t", "sendtargets", "-o", "delete"], timeout=60)
    for iface in sorted(Path("/etc/iscsi/ifaces").glob("*")):
        # an iface record a test made ([iscsi] ifaces) outlives its interface: left, every later
        # discovery that names no iface (a test's own iscsiadm) makes node records through it
        if iface.name not in SHIPPED_IFACES:
            _run(["iscsiadm", "-m", "iface", "-I", iface.name, "-o", "delete"], timeout=60)
    _run(["udevadm", "settle", "--timeout=30"], timeout=60)
