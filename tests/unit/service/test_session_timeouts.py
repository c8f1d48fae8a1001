"""How long a session holds I/O while it reconnects fits the mode (``[iscsi] replacement_timeout``).

One path: the session rides out an outage of up to two minutes (open-iscsi's 120 s), since failing
I/O fails the volume. Multipath: 5 s (NetApp's host guide), so a dead path fails soon and
dm-multipath retries on another. The node record carries it to every login; a session already
live keeps what it logged in with unless it is changed in sysfs (its ``recovery_tmo``), which the
agent does for every session an attach uses and, at start, for every session its attachments use.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import pytest

from iscsi_agent.config import Config
from tests.unit.service.conftest import Host, config_for

LUN1, LUN2 = "/vol/vol1/lun1", "/vol/vol1/lun2"
REPLACEMENT_TIMEOUT = "node.session.timeo.replacement_timeout"


def record_timeouts(host: Host) -> list[str]:
    return [record[REPLACEMENT_TIMEOUT] for record in host.initiator.records.values()]


def session_timeouts(host: Host) -> dict[str, str]:
    """Portal -> the recovery_tmo each session shows in sysfs."""
    return {
        portal: host.tree.session_attr(session.sid, "recovery_tmo").read_text().strip()
        for (_, portal), session in host.initiator.sessions.items()
    }


def multipath(host: Host, tmp_path: Path) -> Config:
    return config_for(host.sim, host.tree.root, tmp_path / "state", multipath=True)


def test_without_multipath_the_record_and_the_session_hold_io_for_two_minutes(host: Host):
    host.service.attach(LUN1)
    assert record_timeouts(host) == ["120"]
    assert list(session_timeouts(host).values()) == ["120"]


def test_with_multipath_every_record_and_session_fail_a_dead_path_after_5_s(host: Host, tmp_path: Path):
    host.with_config(multipath(host, tmp_path))
    host.service.attach(LUN1)
    assert len(host.initiator.sessions) > 1
    assert set(record_timeouts(host)) == {"5"}
    assert set(session_timeouts(host).values()) == {"5"}


def test_a_replacement_timeout_given_in_the_config_is_used_in_either_mode(host: Host, tmp_path: Path):
    config = multipath(host, tmp_path)
    host.with_config(
        dataclasses.replace(config, iscsi=dataclasses.replace(config.iscsi, replacement_timeout=20))
    )
    host.service.attach(LUN1)
    assert set(record_timeouts(host)) == {"20"} and set(session_timeouts(host).values()) == {"20"}


def test_a_live_session_from_before_multipath_was_switched_on_gets_5_s_when_an_attach_uses_it(
    host: Host, tmp_path: Path
):
    first, _ = host.service.attach(LUN1)
    [portal] = first.portals
    assert session_timeouts(host) == {str(portal): "120"}
    host.with_config(multipath(host, tmp_path))
    logins = len(host.initiator.iscsiadm_calls)

    host.service.attach(LUN2)
    assert set(session_timeouts(host).values()) == {"5"}
    reused = [call for call in host.initiator.iscsiadm_calls[logins:] if str(portal) in call]
    assert reused == []  # the live session was reused as it is: no iscsiadm call, only its sysfs value


def test_at_start_the_sessions_the_attachments_use_get_the_timeout_of_the_mode(host: Host, tmp_path: Path):
    host.service.attach(LUN1)
    host.config = multipath(host, tmp_path)  # the agent restarted with multipath switched on
    host.restart()

    host.services.fit_session_timeouts()
    assert set(session_timeouts(host).values()) == {"5"}


def test_a_session_whose_timeout_the_kernel_will_not_change_keeps_it_and_the_attach_goes_on(
    host: Host, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    host.service.attach(LUN1)
    [(sid, portal)] = [(session.sid, key[1]) for key, session in host.initiator.sessions.items()]
    host.initiator.recovering.add(sid)  # it fails right after the attach found it logged in
    host.with_config(multipath(host, tmp_path))

    with caplog.at_level(logging.WARNING):
        second, _ = host.service.attach(LUN2)
    assert second.device is not None and host.tree.session_attr(sid, "recovery_tmo").read_text() == "120\n"
    assert f"session{sid}" in caplog.text and portal in caplog.text and "recovery timeout" in caplog.text
