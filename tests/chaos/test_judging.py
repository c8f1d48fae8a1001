"""The chaos soak's judgements that need no VM: what the contract allows in an answer, WWID forms."""

from __future__ import annotations

import json

from chaos.client import contract_problem
from chaos.host import wwid_of_serial
from chaos.invariants import bare_wwid


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
