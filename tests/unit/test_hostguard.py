"""The host guard itself: a host-side test that reaches the real host fails, whatever the route."""

import socket
import subprocess

import pytest

from tests.hostguard import HostAccessError


def test_opening_sysfs_fails():
    with pytest.raises(HostAccessError, match="/sys/class/scsi_host"):
        open("/sys/class/scsi_host")


def test_opening_a_device_node_fails_but_dev_null_is_harmless():
    with pytest.raises(HostAccessError):
        open("/dev/sda", "rb")
    with open("/dev/null", "rb") as null:
        assert null.read() == b""


def test_starting_a_program_fails():
    with pytest.raises(HostAccessError, match="started a program"):
        subprocess.run(["true"], check=False)


@pytest.mark.allow_subprocess
def test_a_test_may_declare_that_it_starts_programs():
    assert subprocess.run(["true"], check=False).returncode == 0


def test_a_netlink_socket_fails():
    with pytest.raises(HostAccessError, match="netlink"):
        socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)


def test_connecting_off_loopback_fails_before_any_packet_leaves():
    with socket.socket() as sock, pytest.raises(HostAccessError, match="not loopback"):
        sock.connect(("192.0.2.1", 9))
