"""`curl --unix-socket` works against the socket API, as shared/design.md promises operators."""

import json
import os
import shutil
import subprocess

import pytest

pytestmark = [
    pytest.mark.allow_subprocess,
    pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed (Debian package curl)"),
]


def curl(agent, *args, user=None):
    """``user``: run curl as that uid, with the same number as its only group."""
    done = subprocess.run(
        ["curl", "-sS", "--unix-socket", str(agent), "-w", "\n%{http_code}", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
        **({"user": user, "group": user, "extra_groups": []} if user is not None else {}),
    )
    body, _, status = done.stdout.rpartition("\n")
    return int(status), json.loads(body)


def test_curl_attaches_shows_and_detaches(agent):
    status, body = curl(agent, "-d", '{"volume": "/vol/vol1/lun0"}', "http://localhost/v1/attachments")
    assert status == 201 and body["volume"] == "/vol/vol1/lun0"
    assert curl(agent, "http://localhost/v1/attachments/%2Fvol%2Fvol1%2Flun0")[0] == 200
    assert curl(agent, "-X", "DELETE", "http://localhost/v1/attachments/%2Fvol%2Fvol1%2Flun0") == (
        200,
        {"volume": "/vol/vol1/lun0", "detached": True},
    )


def test_curl_sees_json_errors(agent):
    status, body = curl(
        agent, "-X", "DELETE", "http://localhost/v1/attachments/%2Fvol%2Fvol1%2Flun0?force=maybe"
    )
    assert status == 400 and body["error"]["code"] == "bad_request"
    status, body = curl(agent, "http://localhost/v1/nowhere")
    assert status == 404 and body["error"]["code"] == "not_found"


def test_curl_sending_a_large_body_gets_413(agent, tmp_path):
    big = tmp_path / "big.json"
    big.write_text(json.dumps({"volume": "x" * 2_000_000}))
    status, body = curl(agent, "--data-binary", f"@{big}", "http://localhost/v1/attachments")
    assert status == 413 and body["error"]["code"] == "body_too_large"


@pytest.mark.skipif(os.getuid() != 0, reason="running curl as another user needs root")
def test_another_user_is_stopped_by_the_socket_mode_then_by_the_peer_check(agent, socket_dir):
    nobody = 65534
    socket_dir.chmod(0o755)
    with pytest.raises(subprocess.CalledProcessError) as refused:
        curl(agent, "http://localhost/v1/health", user=nobody)
    assert refused.value.returncode == 7  # could not connect: the mode is 0660, root:root
    agent.chmod(0o666)
    status, body = curl(agent, "http://localhost/v1/health", user=nobody)
    assert status == 403 and body["error"]["code"] == "peer_not_allowed"
    assert (body["error"]["details"]["uid"], body["error"]["details"]["gid"]) == (nobody, nobody)
