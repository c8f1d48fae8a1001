"""`iscsi-agentctl` against the real server with a fake service: output, --json, and exit codes 0 / 1 / 2."""

import io
import json
import os
import subprocess
import sys

import pytest

from iscsi_agent.ctl import DEFAULT_SOCKET, main
from iscsi_agent.service_api import ReconcileAction
from tests.second_uid import NOBODY, argv_as_nobody, folder_nobody_can_reach
from tests.unit.api.fakes import TARGET


def ctl(agent, *argv):
    out, err = io.StringIO(), io.StringIO()
    code = main(["--socket", str(agent), *argv], out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_attach_prints_the_device_and_how_it_is_reached(agent):
    code, out, err = ctl(agent, "attach", "/vol/vol1/lun0")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == "attached /vol/vol1/lun0"
    assert lines[1].startswith("  device     /dev/disk/by-id/wwn-0x600a0980")
    assert lines[3:] == [
        f"  lun        1 on {TARGET}",
        "  portals    127.0.0.1:3260, [fe80::1]:3261",
        "  multipath  no",
    ]
    assert ctl(agent, "attach", "/vol/vol1/lun0")[1].startswith("already attached /vol/vol1/lun0\n")


def test_json_prints_the_agents_answer_as_it_came(agent):
    code, out, _ = ctl(agent, "--json", "attach", "/vol/vol1/lun0")
    assert code == 0 and json.loads(out)["connection_info"]["driver_volume_type"] == "iscsi"
    code, out, _ = ctl(agent, "list", "--json")  # the option also goes after the command
    assert code == 0 and [item["volume"] for item in json.loads(out)["attachments"]] == ["/vol/vol1/lun0"]


def test_list_prints_a_table_or_says_there_is_nothing(agent):
    assert ctl(agent, "list")[1] == "no attachments\n"
    ctl(agent, "attach", "/vol/vol1/lun0")
    ctl(agent, "attach", "/vol/vol1/lun3")
    header, first, second = ctl(agent, "list")[1].splitlines()
    assert header.split() == ["VOLUME", "DEVICE", "LUN", "PORTALS", "STATE"]
    assert first.startswith("/vol/vol1/lun0  /dev/disk/by-id/wwn-0x") and first.endswith(
        "1    127.0.0.1:3260, [fe80::1]:3261  attached"
    )
    assert second.startswith("/vol/vol1/lun3  ")


def test_detach_sends_the_path_percent_encoded_and_force_when_asked(agent, service):
    ctl(agent, "attach", "/vol/vol1/lun0")
    assert ctl(agent, "detach", "/vol/vol1/lun0") == (0, "detached /vol/vol1/lun0\n", "")
    assert ctl(agent, "detach", "--force", "/vol/vol1/lun0")[0] == 0
    assert service.calls[-2:] == [("detach", "/vol/vol1/lun0", False), ("detach", "/vol/vol1/lun0", True)]


def test_resize_prints_the_device_and_its_new_size(agent, service):
    ctl(agent, "attach", "/vol/vol1/lun0")
    service.sizes["/vol/vol1/lun0"] = 3 << 30
    code, out, err = ctl(agent, "resize", "/vol/vol1/lun0")
    assert (code, err) == (0, "")
    assert out == f"resized /vol/vol1/lun0: {service.attached['/vol/vol1/lun0'].device} is {3 << 30} bytes\n"
    assert service.calls[-1] == ("resize", "/vol/vol1/lun0")


def test_an_error_exits_1_with_the_agents_code_and_message_on_stderr(agent, service):
    service.in_use["/vol/vol1/lun0"] = ("mounted on /mnt/data",)
    code, out, err = ctl(agent, "detach", "/vol/vol1/lun0")
    assert (code, out) == (1, "")
    assert err == (
        "iscsi-agentctl: volume_in_use: /vol/vol1/lun0 is in use: mounted on /mnt/data; "
        "stop that use and detach again\n"
    )


def test_an_error_with_json_also_prints_the_agents_error_body(agent):
    code, out, err = ctl(agent, "--json", "attach", "/vol/vol1/nope")
    assert code == 1 and json.loads(out)["error"]["code"] == "volume_not_found"
    assert err.startswith("iscsi-agentctl: volume_not_found: ")


def test_status_prints_the_agents_health(agent):
    code, out, _ = ctl(agent, "status")
    assert code == 0 and out.splitlines() == [
        "status          ok",
        "array           reachable (rest)",
        "sessions        2",
        "attachments     0",
        "last reconcile  2026-12-01T23:00:00+00:00",
    ]


def test_status_names_every_problem_that_degrades_health(agent, service):
    service.problems = ["sdc (6:0:0:3) held by mounted at /srv/data"]
    code, out, _ = ctl(agent, "status")
    assert code == 0 and out.splitlines()[0] == "status          degraded"
    assert out.splitlines()[-1] == "problem         sdc (6:0:0:3) held by mounted at /srv/data"


def test_reconcile_prints_what_was_done_or_would_be(agent, service):
    assert ctl(agent, "reconcile")[1] == "nothing to do\n"
    service.actions.append(ReconcileAction("remove_stale_device", "/dev/sdc", "WWID changed", False))
    assert ctl(agent, "reconcile", "--dry-run")[1].splitlines()[1].split(None, 3) == [
        "would",
        "remove_stale_device",
        "/dev/sdc",
        "WWID changed",
    ]
    assert service.calls[-1] == ("reconcile", True)
    assert ctl(agent, "reconcile")[1].splitlines()[1].startswith("done ")


def test_no_agent_at_the_socket_exits_1_saying_so(socket_dir):
    code, _, err = ctl(socket_dir / "absent.sock", "status")
    assert code == 1 and err.startswith(
        f"iscsi-agentctl: agent_unreachable: no answer from the agent at {socket_dir}"
    )


@pytest.mark.parametrize(
    "argv", [[], ["frobnicate"], ["attach"], ["detach"], ["list", "extra"], ["--timeout", "x", "list"]]
)
def test_a_usage_error_exits_2(argv):
    with pytest.raises(SystemExit) as exited:
        main(argv, out=io.StringIO(), err=io.StringIO())
    assert exited.value.code == 2


def test_the_default_socket_is_the_contracts():
    assert DEFAULT_SOCKET == "/run/iscsi-agent/agent.sock"


SERVE_ONE_AS_NOBODY = """
import socket, sys
server = socket.socket(socket.AF_UNIX)
server.bind(sys.argv[1])
server.listen()
print("ready", flush=True)
server.settimeout(60)
connection, _ = server.accept()
connection.settimeout(60)
print(len(connection.recv(65536)), flush=True)  # what came first, or 0 when the client just closed
"""


@pytest.mark.allow_subprocess
def test_the_client_sends_nothing_to_a_socket_served_by_another_user():
    """Anyone who can create the socket path first (a lapsed folder, a wrong --socket) would get the
    request, a volume name and all; the agent runs as root, so a peer that is not root is not it."""
    with folder_nobody_can_reach() as folder:
        (folder / "run").mkdir()
        os.chown(folder / "run", NOBODY, NOBODY)
        path = folder / "run" / "agent.sock"
        server = subprocess.Popen(
            argv_as_nobody(sys.executable, "-c", SERVE_ONE_AS_NOBODY, str(path)),
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert server.stdout is not None and server.stdout.readline() == "ready\n"
            code, out, err = ctl(path, "attach", "/vol/vol1/lun0")
            received, _ = server.communicate(timeout=30)
        finally:
            server.kill()
            server.wait(timeout=30)
    assert received == "0\n"
    assert (code, out) == (1, "")
    assert err == (
        f"iscsi-agentctl: agent_not_root: the process serving {path} runs as uid {NOBODY}, not root "
        "(not the agent); nothing was sent to it\n"
    )
