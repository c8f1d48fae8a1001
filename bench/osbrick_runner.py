"""os-brick's ISCSIConnector driven in-process as root, one JSON request a line on stdin.

Runs under the bench's own venv (os-brick 7.1.1 from PyPI, never in the product's venv), so it
imports nothing from the agent. os-brick normally reaches root through oslo.privsep's daemon;
here the process already is root, so the privsep contexts are put in client mode off and every
privileged call runs in this process (what os-brick's own functional tests do), and its
``connect_volume`` lock lives in a folder of the bench's.

Requests and answers (one line each)::

    {"op": "connect", "props": {...}, "multipath": false}     -> {"seconds": 1.2, "device": {...}}
    {"op": "connect_many", "props": [{...}, ...]}             -> {"seconds": 9.9, "devices": [...]}
    {"op": "disconnect", "props": {...}, "device": {...}, "multipath": false} -> {"seconds": 0.4}
    {"op": "disconnect_many", "props": [...], "devices": [...]} -> {"seconds": 3.1}

An exception is answered as ``{"error": "..."}``; the process then keeps reading.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from typing import Any


def _connectors(lock_path: str) -> dict[bool, Any]:
    import os_brick
    from os_brick import privileged
    from os_brick.initiator import connector
    from oslo_config import cfg

    cfg.CONF([], project="bench-os-brick", default_config_files=[])
    cfg.CONF.set_override("lock_path", lock_path, group="oslo_concurrency")
    os_brick.setup(cfg.CONF)
    # Already root: run privileged calls here instead of through a privsep daemon.
    privileged.default.set_client_mode(False)
    privileged.brick_privsep_hide_output.set_client_mode(False)
    return {
        multipath: connector.InitiatorConnector.factory("ISCSI", None, use_multipath=multipath)
        for multipath in (False, True)
    }


def _timed(action: Any) -> tuple[float, Any]:
    started = time.monotonic()
    result = action()
    return time.monotonic() - started, result


def handle(connectors: dict[bool, Any], request: dict[str, Any]) -> dict[str, Any]:
    op = request["op"]
    iscsi = connectors[bool(request.get("multipath", False))]
    if op == "connect":
        seconds, device = _timed(lambda: iscsi.connect_volume(request["props"]))
        return {"seconds": seconds, "device": device}
    if op == "disconnect":
        seconds, _ = _timed(lambda: iscsi.disconnect_volume(request["props"], request["device"]))
        return {"seconds": seconds}
    if op == "connect_many":
        with ThreadPoolExecutor(len(request["props"])) as pool:
            seconds, devices = _timed(lambda: list(pool.map(iscsi.connect_volume, request["props"])))
        return {"seconds": seconds, "devices": devices}
    if op == "disconnect_many":
        pairs = list(zip(request["props"], request["devices"], strict=True))
        with ThreadPoolExecutor(len(pairs)) as pool:
            seconds, _ = _timed(lambda: list(pool.map(lambda p: iscsi.disconnect_volume(*p), pairs)))
        return {"seconds": seconds}
    raise ValueError(f"unknown op {op!r}")


def main(lock_path: str) -> int:
    try:
        connectors = _connectors(lock_path)
    except Exception as exc:  # noqa: BLE001 - reported to the bench, which prints "not measured"
        print(json.dumps({"error": f"os-brick could not be set up: {exc!r}"}), flush=True)
        return 1
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            answer = handle(connectors, json.loads(line))
        except Exception as exc:  # noqa: BLE001 - answered, the bench decides
            answer = {"error": f"{exc!r}", "trace": traceback.format_exc()[-2000:]}
        print(json.dumps(answer), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
