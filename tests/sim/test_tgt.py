"""Tgtadm's parsing of tgtd's answers, on captured text (the real tgtd runs in the VM tier)."""

from __future__ import annotations

from ontap_sim.tgt import Tgtadm
from tests.fakes import FakeRunner

# `tgtadm --lld iscsi --op show --mode conn --tid 9` with two sessions, one of them over two connections
CONNECTIONS = """\
Session: 3
    Connection: 0
        Initiator: iqn.1993-08.org.debian:01:5b1c2d3e4f
        IP Address: 127.0.0.1
Session: 5
    Connection: 0
        Initiator: iqn.1993-08.org.debian:01:5b1c2d3e4f
        IP Address: 127.0.0.2
    Connection: 1
        Initiator: iqn.1993-08.org.debian:01:5b1c2d3e4f
        IP Address: 127.0.0.2
"""


def test_connections_lists_each_session_and_connection_id_of_the_target():
    runner = FakeRunner()
    runner.reply(["tgtadm", "--lld", "iscsi", "--op", "show", "--mode", "conn"], stdout=CONNECTIONS)
    assert Tgtadm(runner).connections(9) == [("3", "0"), ("5", "0"), ("5", "1")]
    assert runner.argvs == [("tgtadm", "--lld", "iscsi", "--op", "show", "--mode", "conn", "--tid", "9")]


def test_drop_connection_deletes_that_one_connection():
    runner = FakeRunner()
    Tgtadm(runner).drop_connection(9, "5", "1")
    assert runner.argvs == [
        (
            "tgtadm",
            "--lld",
            "iscsi",
            "--op",
            "delete",
            "--mode",
            "conn",
            "--tid",
            "9",
            "--sid",
            "5",
            "--cid",
            "1",
        )
    ]
