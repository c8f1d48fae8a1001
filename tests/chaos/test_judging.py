"""The chaos soak's judgements that need no VM: what the contract allows in an answer, WWID forms, a
handed-out device that is gone."""

from __future__ import annotations

import json
import random
from types import SimpleNamespace

from chaos import actions, host
from chaos.client import Answer, contract_problem
from chaos.context import Context
from chaos.host import wwid_of_serial
from chaos.invariants import bare_wwid
from chaos.world import World


def error(status: int, code: str = "device_in_use", **extra: object) -> bytes:
    return json.dumps({"error": {"code": code, "message": "held by pid 12", "details": {}, **extra}}).encode()


def test_documented_answers_pass():
    assert contract_problem(201, b'{"volume": "/vol/vol1/lun0", "device": "/dev/disk/by-id/wwn-0x6"}') == ""
    assert contract_problem(409, error(409)) == ""
    assert contract_problem(503, error(503, "reconcile_busy")) == ""


def test_a_500_is_a_finding_even_with_a_well_formed_body():
    assert contract_problem(500, error(500, "internal_error")).startswith("500")


def test_an_undocumented_status_a_non_json_body_or_a_bare_error_is_a_finding():
    assert "undocumented status 418" in contract_problem(418, error(418))
    assert "not JSON" in contract_problem(502, b"<html>Bad Gateway</html>")
    assert "documented error body" in contract_problem(404, b'{"message": "no such volume"}')
    assert "documented error body" in contract_problem(409, error(409, code="Device In Use"))


def test_wwids_compare_in_every_form_the_host_and_the_agent_write():
    wwid = wwid_of_serial("wH5?k2Lm/9Qa")
    assert wwid == "600a09807748353f6b324c6d2f395161"
    assert bare_wwid("naa." + wwid) == bare_wwid("3" + wwid) == bare_wwid(wwid) == wwid


def test_a_handed_out_device_gone_when_the_soak_opens_it_is_an_identity_failure(monkeypatch):
    wwid = wwid_of_serial("wH5?k2Lm/9Qa")
    monkeypatch.setattr(actions, "serial", lambda sim, volume: "wH5?k2Lm/9Qa")
    monkeypatch.setattr(host, "node_of", lambda device: "dm-3")
    monkeypatch.setattr(host, "slaves", lambda node: ["sdc", "sdd"])
    monkeypatch.setattr(host, "fresh_wwid", lambda disk: wwid)
    monkeypatch.setattr(host, "vanished", lambda device, node: "/dev/dm-3 exists; ... is back")

    def gone(device: str, data: bytes) -> None:
        raise FileNotFoundError(2, "No such file or directory", device)

    monkeypatch.setattr(host, "write_block", gone)
    ctx = Context(
        rig=SimpleNamespace(sim=None),
        client=None,
        world=World(seed=12, initiator="iqn.1993-08.org.debian:01:host"),
        rng=random.Random(12),
    )  # type: ignore[arg-type]
    device = f"/dev/mapper/3{wwid}"

    actions.handed_out(ctx, "/vol/vol1/lun14", Answer("POST", "/v1/attachments", 201, {"device": device}))

    assert [(f.check, f.message) for f in ctx.failures] == [
        (
            "identity",
            f"attach /vol/vol1/lun14 handed out {device}, gone when opened: /dev/dm-3 exists; ... is back",
        )
    ]
    assert "/vol/vol1/lun14" not in ctx.world.markers  # nothing written: nothing to read back
