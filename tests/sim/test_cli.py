"""``python -m ontap_sim`` prints its URL, serves, and exits cleanly on SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests


@pytest.mark.allow_subprocess
def test_standalone_run_with_seed_and_tls(tmp_path: Path) -> None:
    seed = tmp_path / "seed.json"
    seed.write_text(
        json.dumps({"cluster": {"name": "standalone", "version": "9.7"}, "svms": [{"name": "s"}]})
    )
    argv = [
        sys.executable,
        "-m",
        "ontap_sim",
        "--listen",
        "127.0.0.1:0",
        "--tls",
        "--seed",
        str(seed),
        "--user",
        "u",
        "--password",
        "pw",
    ]
    process = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        base_url = process.stdout.readline().strip()
        ca = process.stdout.readline().strip().removeprefix("CA certificate: ")
        reply = requests.get(base_url + "/api/cluster", auth=("u", "pw"), verify=ca, timeout=5)
        assert base_url.startswith("https://127.0.0.1:") and reply.json()["name"] == "standalone"
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
