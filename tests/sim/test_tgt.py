"""Tgtadm's parsing of tgtd's answers, on captured text (the real tgtd runs in the VM tier)."""

from __future__ import annotations

from pathlib import Path

import pytest

from iscsi_agent.host.command import CommandResult
from ontap_sim.tgt import Tgtadm, TgtError
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


class BusyRunner(FakeRunner):
    """tgtd refusing the first ``busy`` LU deletes, as it does while the LU has commands in flight."""

    def __init__(self, busy: int) -> None:
        super().__init__()
        self.busy = busy

    def __call__(self, argv, *, timeout, secrets=()):
        result = super().__call__(argv, timeout=timeout, secrets=secrets)
        if tuple(argv[4:7]) == ("delete", "--mode", "logicalunit") and self.busy > 0:
            self.busy -= 1
            return CommandResult(result.argv, 22, "", "tgtadm: this logical unit is still active\n")
        return result


def staged(tmp_path: Path, runner: FakeRunner, sleeps: list[float]) -> tuple[Tgtadm, Path]:
    """A Tgtadm over ``runner`` with LUN 3 of target 1 staged at 1 MiB, its first bytes written."""
    tgt = Tgtadm(runner, backing_dir=tmp_path, sleep=sleeps.append)
    backing = tgt.add_lun(1, 3, "Zp$3Rt7/xY?b", 1 << 20)
    with backing.open("r+b") as disk:
        disk.write(b"ONTAP-DATA")
    runner.calls.clear()
    return tgt, backing


LU_ARGVS = [
    ("tgtadm", "--lld", "iscsi", "--op", "delete", "--mode", "logicalunit", "--tid", "1", "--lun", "3"),
    ("tgtadm", "--lld", "iscsi", "--op", "new", "--mode", "logicalunit", "--tid", "1", "--lun", "3", "-b"),
    ("tgtadm", "--lld", "iscsi", "--op", "update", "--mode", "logicalunit", "--tid", "1", "--lun", "3"),
]


def test_resize_lun_grows_the_backing_file_in_place_and_recreates_the_lu_with_its_identity(tmp_path):
    runner, sleeps = FakeRunner(), []
    tgt, backing = staged(tmp_path, runner, sleeps)
    assert tgt.resize_lun(1, 3, "Zp$3Rt7/xY?b", 4 << 20) == backing
    assert backing.stat().st_size == 4 << 20
    assert backing.read_bytes()[:10] == b"ONTAP-DATA"
    assert [argv[: len(prefix)] for argv, prefix in zip(runner.argvs, LU_ARGVS, strict=True)] == LU_ARGVS
    assert runner.argvs[1][-1] == str(backing)
    assert "scsi_sn=Zp$3Rt7/xY?b" in runner.argvs[2][-1] and "vendor_id=NETAPP" in runner.argvs[2][-1]
    assert sleeps == []


def test_resize_lun_shrinks_the_backing_file_keeping_the_blocks_before_the_end(tmp_path):
    runner, sleeps = FakeRunner(), []
    tgt, backing = staged(tmp_path, runner, sleeps)
    tgt.resize_lun(1, 3, "Zp$3Rt7/xY?b", 512 << 10)
    assert backing.stat().st_size == 512 << 10 and backing.read_bytes()[:10] == b"ONTAP-DATA"


def test_resize_lun_retries_a_delete_tgtd_refuses_while_the_lu_is_busy(tmp_path):
    runner, sleeps = BusyRunner(busy=2), []
    tgt, backing = staged(tmp_path, runner, sleeps)
    tgt.resize_lun(1, 3, "Zp$3Rt7/xY?b", 2 << 20)
    deletes = [argv for argv in runner.argvs if argv[4:7] == ("delete", "--mode", "logicalunit")]
    assert len(deletes) == 3 and len(sleeps) == 2
    assert runner.argvs[-1][4:7] == ("update", "--mode", "logicalunit")
    assert backing.read_bytes()[:10] == b"ONTAP-DATA"


def test_resize_lun_gives_up_on_a_busy_lu_after_a_bounded_wait_and_keeps_the_file(tmp_path):
    runner, sleeps = BusyRunner(busy=1000), []
    tgt, backing = staged(tmp_path, runner, sleeps)
    with pytest.raises(TgtError, match="still active"):
        tgt.resize_lun(1, 3, "Zp$3Rt7/xY?b", 2 << 20)
    assert 0 < sum(sleeps) <= 10 and backing.read_bytes()[:10] == b"ONTAP-DATA"
    assert not any(argv[4:7] == ("new", "--mode", "logicalunit") for argv in runner.argvs)


def test_resize_lun_does_not_retry_other_refusals(tmp_path):
    runner, sleeps = FakeRunner(), []
    tgt, _ = staged(tmp_path, runner, sleeps)
    runner.reply(
        ["tgtadm", "--lld", "iscsi", "--op", "delete", "--mode", "logicalunit"],
        exit_code=22,
        stderr="tgtadm: can't find the logical unit\n",
    )
    with pytest.raises(TgtError, match="can't find"):
        tgt.resize_lun(1, 3, "Zp$3Rt7/xY?b", 2 << 20)
    assert sleeps == []


def test_resize_lun_of_an_lu_whose_backing_file_is_gone_leaves_the_lu_alone(tmp_path):
    runner, sleeps = FakeRunner(), []
    tgt, backing = staged(tmp_path, runner, sleeps)
    backing.unlink()
    with pytest.raises(FileNotFoundError):
        tgt.resize_lun(1, 3, "Zp$3Rt7/xY?b", 2 << 20)
    assert runner.argvs == []
