"""`curl --unix-socket` works against the socket API, as shared/design.md promises operators."""

import json
import shutil
import subprocess

import pytest

pytestmark = [
    pytest.mark.allow_subprocess,
    pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed (Debian package curl)"),
]


def curl(agent, *args):
    done = subprocess.run(
        ["curl", "-sS", "--unix-socket", str(agent), "-w", "\n%{http_code}", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
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
