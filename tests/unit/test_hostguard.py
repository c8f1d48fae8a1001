"""The host guard itself: a host-side test that reaches the real host fails, whatever the route."""

import glob
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.hostguard import HostAccessError

REPO = Path(__file__).resolve().parents[2]


def test_opening_sysfs_fails():
    with pytest.raises(HostAccessError, match="/sys/class/scsi_host"), open("/sys/class/scsi_host"):
        pass


def test_opening_a_device_node_fails_but_dev_null_is_harmless():
    with pytest.raises(HostAccessError), open("/dev/sda", "rb"):
        pass
    with open("/dev/null", "rb") as null:
        assert null.read() == b""


@pytest.mark.parametrize(
    "list_folder",
    [os.listdir, os.scandir, lambda path: list(Path(path).iterdir()), lambda path: next(os.walk(path))],
    ids=["listdir", "scandir", "iterdir", "walk"],
)
def test_listing_a_host_folder_fails(list_folder):
    with pytest.raises(HostAccessError, match="'/sys/class/scsi_host'"):
        list_folder("/sys/class/scsi_host")


def test_globbing_a_host_folder_fails():
    with pytest.raises(HostAccessError, match="/dev/disk/by-path"):
        glob.glob("/dev/disk/by-path/ip-*")
    with pytest.raises(HostAccessError, match="/sys/block"):
        list(Path("/sys/block").glob("sd*"))


def _os(name):
    """os.<name> looked up when called: the guard wraps the calls that raise no audit event only while
    a test runs, so a reference taken at import time (`from os import stat`) is not seen."""

    def call(path):
        return getattr(os, name)(path)

    return call


@pytest.mark.parametrize(
    ("look", "path"),
    [
        (_os("stat"), "/dev/sda"),
        (_os("lstat"), "/sys/block/sda"),
        (_os("readlink"), "/sys/block/sda"),
        (lambda path: os.access(path, os.W_OK), "/sys/block/sda/device/delete"),
        (os.path.exists, "/run/udev/data/b8:0"),
        (lambda path: Path(path).exists(), "/dev/disk/by-id"),
        (lambda path: Path(path).is_dir(), "/sys/class/iscsi_session"),
        (lambda path: Path(path).is_symlink(), "/dev/disk/by-path/x"),
        (lambda path: Path(path).resolve(), "/sys/class/scsi_device/2:0:0:1/device"),
        (os.path.realpath, "/dev/mapper/mpatha"),
    ],
    ids=[
        "stat",
        "lstat",
        "readlink",
        "access",
        "os.path.exists",
        "exists",
        "is_dir",
        "is_symlink",
        "resolve",
        "realpath",
    ],
)
def test_looking_at_a_host_path_without_opening_it_fails(look, path):
    with pytest.raises(HostAccessError, match="on the real host"):
        look(path)


@pytest.mark.parametrize(
    "change",
    [
        lambda: os.unlink("/run/iscsi-agent-no-such/agent.sock"),
        lambda: os.rmdir("/run/iscsi-agent-no-such/folder"),
        lambda: os.mkdir("/run/iscsi-agent-no-such/folder"),
        lambda: shutil.rmtree("/etc/iscsi/nodes/no-such-target"),
        lambda: os.chmod("/dev/no-such-disk", 0o600),
        lambda: os.truncate("/var/lib/iscsi-agent/no-such-state", 0),
    ],
    ids=["unlink", "rmdir", "mkdir", "rmtree", "chmod", "truncate"],
)
def test_changing_a_host_path_fails_before_the_change(change):
    # Each path's folder is missing, so not even a broken guard changes the host.
    with pytest.raises(HostAccessError, match="on the real host"):
        change()


def test_moving_a_file_onto_the_host_fails(tmp_path):
    # The destinations' folders are missing, so not even a broken guard changes the host.
    (tmp_path / "wwids").write_text("")
    with pytest.raises(HostAccessError, match="/etc/multipath/no-such/wwids"):
        os.rename(tmp_path / "wwids", "/etc/multipath/no-such/wwids")
    with pytest.raises(HostAccessError, match=r"/run/iscsi-agent-no-such/agent\.sock"):
        os.symlink(tmp_path / "wwids", "/run/iscsi-agent-no-such/agent.sock")


def test_a_symlink_out_of_a_temporary_folder_is_followed(tmp_path):
    (tmp_path / "classes").symlink_to("/sys/class")
    (tmp_path / "tree/sys/block").mkdir(parents=True)
    (tmp_path / "tree/sys/block/sda").symlink_to("../../../" * 8 + "sys/devices/sda")  # climbs out
    with (
        pytest.raises(HostAccessError, match=r"which is '/sys/class/scsi_host'"),
        open(tmp_path / "classes/scsi_host"),
    ):
        pass
    with pytest.raises(HostAccessError, match=r"which is '/sys/class'"):
        os.listdir(tmp_path / "classes")
    with pytest.raises(HostAccessError, match=r"which is '/sys/devices/sda/device'"):
        (tmp_path / "tree/sys/block/sda/device").exists()


def test_a_symlink_that_points_at_the_host_may_still_be_made_read_and_removed(tmp_path):
    link = tmp_path / "sdb"
    link.symlink_to("/dev/sdb")  # a synthetic /proc/<pid>/fd entry or udev link does this
    assert os.readlink(link) == "/dev/sdb"
    assert link.is_symlink()
    link.unlink()
    assert not os.path.lexists(link)


@pytest.mark.parametrize(
    "path",
    [
        "/proc/self/mountinfo",
        "/proc/mounts",
        "/proc/self/fd",
        f"/proc/{os.getpid()}/fd",
        "/proc/1/comm",
        "/proc/thread-self/comm",
        "/proc/net/route",
        "/proc/partitions",
        "/proc",
    ],
)
def test_reading_a_process_or_the_mount_table_fails(path):
    with pytest.raises(HostAccessError, match="on the real host"):
        if os.path.basename(path) in ("fd", "proc"):
            os.listdir(path)
        else:
            with open(path):
                pass


def test_a_guard_error_is_not_an_exception_so_product_code_cannot_swallow_it():
    def read_host_name() -> str:
        try:
            with open("/sys/class/scsi_host/host0/proc_name") as attr:
                return attr.read()
        except Exception:  # noqa: BLE001  (what a product's "best effort" read does)
            return ""

    with pytest.raises(HostAccessError, match="/sys/class/scsi_host/host0/proc_name"):
        read_host_name()
    assert not issubclass(HostAccessError, Exception)


def test_the_guard_leaves_a_temporary_tree_usable(tmp_path):
    tree = tmp_path / "tree"
    (tree / "sys/block/sda").mkdir(parents=True)
    (tree / "sys/class").mkdir()
    (tree / "sys/class/sda").symlink_to("../block/sda")
    assert (tree / "sys/class/sda").resolve() == tree / "sys/block/sda"
    assert os.stat in os.supports_dir_fd and os.stat in os.supports_follow_symlinks
    shutil.rmtree(tree)
    assert not tree.exists()


CHILD_TESTS = """
import os
import threading


def read_sessions():
    try:
        return os.listdir("/sys/class/iscsi_session")
    except Exception:
        return []


def test_swallowed_by_the_code_under_test():
    assert read_sessions() == []


def test_swallowed_in_another_thread():
    worker = threading.Thread(target=lambda: swallow_everything(read_sessions))
    worker.start()
    worker.join()


def swallow_everything(call):
    try:
        call()
    except BaseException:
        pass
"""


@pytest.mark.allow_subprocess
def test_pytest_reports_a_swallowed_host_access_as_a_failure(tmp_path):
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_child.py").write_text(textwrap.dedent(CHILD_TESTS))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "tests.hostguard",
            "-p",
            "no:cacheprovider",
            "test_child.py",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    out = child.stdout
    assert child.returncode == 1, out
    assert "1 failed, 1 passed, 1 error" in out, out
    assert "FAILED test_child.py::test_swallowed_by_the_code_under_test" in out, out
    assert "HostAccessError: test touched '/sys/class/iscsi_session' on the real host (os.listdir)" in out, (
        out
    )
    assert "ERROR test_child.py::test_swallowed_in_another_thread" in out, out
    assert "HostAccessError: in another thread: test touched '/sys/class/iscsi_session'" in out, out


def test_starting_a_program_fails():
    with pytest.raises(HostAccessError, match="started a program"):
        subprocess.run(["true"], check=False)


@pytest.mark.allow_subprocess
def test_a_test_may_declare_that_it_starts_programs():
    assert subprocess.run(["true"], check=False).returncode == 0


def test_signalling_another_process_fails():
    with pytest.raises(HostAccessError, match="signalled process 1"):
        os.kill(1, 0)


def test_a_netlink_socket_fails():
    with pytest.raises(HostAccessError, match="netlink"):
        socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)


def test_a_unix_socket_at_a_host_path_fails_but_one_in_a_temporary_folder_works(tmp_path):
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        with pytest.raises(HostAccessError, match="/run/iscsi-agent-no-such/notify"):
            sock.sendto(b"READY=1", "/run/iscsi-agent-no-such/notify")  # as sdnotify would
        with pytest.raises(HostAccessError, match=r"/run/iscsi-agent-no-such/agent\.sock"):
            sock.bind("/run/iscsi-agent-no-such/agent.sock")
        sock.bind(str(tmp_path / "agent.sock"))


def test_a_journal_database_on_the_host_fails(tmp_path):
    with pytest.raises(HostAccessError, match=r"/var/lib/iscsi-agent/no-such/journal\.db"):
        sqlite3.connect("/var/lib/iscsi-agent/no-such/journal.db")
    sqlite3.connect(tmp_path / "journal.db").close()


def test_connecting_off_loopback_fails_before_any_packet_leaves():
    with socket.socket() as sock, pytest.raises(HostAccessError, match="not loopback"):
        sock.connect(("192.0.2.1", 9))
