"""The attachments this agent owns are kept by LUN UUID and survive a restart (GET /v1/attachments)."""

from __future__ import annotations

import dataclasses
import sqlite3
from datetime import timedelta

import pytest

from iscsi_agent.journal.errors import JournalUnreadable
from iscsi_agent.journal.model import Attachment, AttachmentState
from iscsi_agent.journal.store import Journal
from tests.unit.journal.fakes import ATTACHMENT, START, an_attachment


def test_an_attachment_reads_back_exactly_as_it_was_put(journal):
    journal.put_attachment(ATTACHMENT)
    record = journal.attachment(ATTACHMENT.lun_uuid)
    assert record.attachment == ATTACHMENT
    assert record.created_at == record.updated_at == START


def test_an_attachment_not_yet_handed_out_has_no_device(journal):
    attaching = an_attachment(state=AttachmentState.ATTACHING, device=None, map_created=False)
    journal.put_attachment(attaching)
    assert journal.attachment(attaching.lun_uuid).attachment == attaching


def test_attachments_survive_a_restart(path, clock):
    with Journal.open(path, clock) as journal:
        journal.put_attachment(ATTACHMENT)
        clock.advance(1)
        journal.put_attachment(an_attachment(1, state=AttachmentState.DETACHING))
    with Journal.open(path, clock) as restarted:
        assert [record.attachment for record in restarted.attachments()] == [
            ATTACHMENT,
            an_attachment(1, state=AttachmentState.DETACHING),
        ]


def test_putting_an_attachment_again_replaces_its_facts_and_keeps_when_it_was_first_recorded(journal, clock):
    journal.put_attachment(an_attachment(state=AttachmentState.ATTACHING, device=None))
    clock.advance(7)
    journal.put_attachment(ATTACHMENT)

    [record] = journal.attachments()
    assert record.attachment == ATTACHMENT
    assert (record.created_at, record.updated_at) == (START, START + timedelta(seconds=7))


def test_attachments_are_listed_in_the_order_they_were_first_recorded(journal, clock):
    for number in (3, 1, 2):
        journal.put_attachment(an_attachment(number))
        clock.advance(1)
    journal.put_attachment(an_attachment(3, state=AttachmentState.DETACHING))
    assert [record.attachment.lun_id for record in journal.attachments()] == [3, 1, 2]


def test_removing_an_attachment_forgets_it_and_says_whether_there_was_one(journal):
    journal.put_attachment(ATTACHMENT)
    assert journal.remove_attachment(ATTACHMENT.lun_uuid) is True
    assert journal.remove_attachment(ATTACHMENT.lun_uuid) is False
    assert journal.attachment(ATTACHMENT.lun_uuid) is None
    assert journal.attachments() == []


def test_an_attachment_has_no_place_for_a_secret(journal):
    journal.put_attachment(ATTACHMENT)
    journal.close()
    with sqlite3.connect(journal.path) as db:
        columns = [row[1] for row in db.execute("PRAGMA table_info(attachment)")]
    names = [field.name for field in dataclasses.fields(Attachment)] + columns
    assert not [name for name in names if "secret" in name or "password" in name or "chap" in name]


def test_a_record_this_agent_did_not_write_is_reported_not_guessed(path, clock):
    with Journal.open(path, clock) as journal:
        journal.put_attachment(ATTACHMENT)
    with sqlite3.connect(path) as db:
        db.execute("UPDATE attachment SET state = 'half-attached'")
    db.close()
    with Journal.open(path, clock) as journal, pytest.raises(JournalUnreadable) as caught:
        journal.attachments()
    assert str(path) in str(caught.value)
    assert "half-attached" in str(caught.value)


def test_attachments_read_again_show_every_change_made_through_the_journal(journal, clock):
    journal.put_attachment(an_attachment(1))
    assert [r.attachment.lun_id for r in journal.attachments()] == [1]
    clock.advance(1)
    journal.put_attachment(an_attachment(2))
    assert [r.attachment.lun_id for r in journal.attachments()] == [1, 2]
    journal.put_attachment(an_attachment(1, state=AttachmentState.DETACHING))
    assert [r.attachment.state for r in journal.attachments()] == [
        AttachmentState.DETACHING,
        AttachmentState.ATTACHED,
    ]
    journal.remove_attachment(an_attachment(2).lun_uuid)
    assert [r.attachment.lun_id for r in journal.attachments()] == [1]


def test_attachments_read_again_show_a_change_another_connection_made_to_the_file(journal):
    journal.put_attachment(ATTACHMENT)
    assert journal.attachments()[0].attachment.lun_id == ATTACHMENT.lun_id
    with sqlite3.connect(journal.path) as db:  # an operator's shell, past the agent's lock
        db.execute("UPDATE attachment SET lun_id = 42")
    db.close()
    assert journal.attachments()[0].attachment.lun_id == 42


def test_a_list_of_attachments_handed_out_is_the_callers_to_change(journal):
    journal.put_attachment(ATTACHMENT)
    journal.attachments().clear()
    assert [r.attachment for r in journal.attachments()] == [ATTACHMENT]
