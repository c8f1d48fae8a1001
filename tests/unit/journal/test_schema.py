"""The journal file is private, checked before anything is written to it, never reset when it cannot
be read or was written by a newer agent, held by one agent at a time, and migrated from every
earlier schema version."""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from iscsi_agent.journal import schema
from iscsi_agent.journal.errors import (
    JournalError,
    JournalInUse,
    JournalIoError,
    JournalTooNew,
    JournalUnreadable,
    JournalUnsafe,
)
from iscsi_agent.journal.model import Kind, Step
from iscsi_agent.journal.store import Journal
from tests.second_uid import NOBODY, folder_nobody_can_reach, python_as_nobody
from tests.unit.journal.fakes import ATTACHMENT, FakeWallClock, an_attachment


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_journal_is_private_in_a_private_state_directory(path, clock):
    with Journal.open(path, clock) as journal:
        journal.put_attachment(ATTACHMENT)
        wal = path.with_name(path.name + "-wal")
        assert wal.exists()
        assert {p.name: mode(p) for p in path.parent.iterdir()} == {
            "journal.sqlite3": 0o600,
            "journal.sqlite3-wal": 0o600,
            "journal.sqlite3-shm": 0o600,
            "journal.sqlite3.lock": 0o600,
        }
    assert mode(path.parent) == 0o700


def test_a_new_journal_is_at_the_current_version_in_wal_mode_with_every_commit_synced(journal, path):
    with sqlite3.connect(path) as db:
        assert schema.user_version(db) == schema.SCHEMA_VERSION == len(schema.MIGRATIONS)
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()
    assert journal._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_an_empty_file_becomes_a_journal(path, clock):
    """What a crash right after the file was created leaves."""
    path.parent.mkdir(mode=0o700)
    path.touch(mode=0o600)
    with Journal.open(path, clock) as journal:
        assert journal.attachments() == [] and journal.in_flight() == []


def corrupt(path: Path, how: str, clock: FakeWallClock) -> None:
    if how == "not a database":
        path.write_text("[agent]\nstate_dir = /var/lib/iscsi-agent\n")
        return
    with Journal.open(path, clock) as journal:
        for number in range(1, 41):
            journal.put_attachment(an_attachment(number))
    data = path.read_bytes()
    page = 4096
    if how == "a page overwritten":
        path.write_bytes(data[:page] + b"\xa5" * page + data[2 * page :])
    elif how == "cut short":
        path.write_bytes(data[: len(data) // 2])
    elif how == "a header and nothing else":
        path.write_bytes(data[:100])


@pytest.mark.parametrize(
    "how", ["not a database", "a page overwritten", "cut short", "a header and nothing else"]
)
def test_an_unreadable_file_is_refused_naming_it_and_left_as_it_was(path, clock, how):
    path.parent.mkdir(mode=0o700)
    corrupt(path, how, clock)
    before = path.read_bytes()

    with pytest.raises(JournalUnreadable) as caught:
        Journal.open(path, clock)

    assert str(path) in str(caught.value)
    assert caught.value.code == "journal_unreadable"
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["journal.sqlite3", "journal.sqlite3.lock"]
    with pytest.raises(JournalUnreadable):  # and it stays refused: nothing was "repaired"
        Journal.open(path, clock)


def test_a_journal_of_a_newer_agent_is_refused_naming_the_file_and_both_versions(path, clock):
    with Journal.open(path, clock) as journal:
        journal.put_attachment(ATTACHMENT)
    newer = schema.SCHEMA_VERSION + 1
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {newer}")
    db.close()
    before = path.read_bytes()

    with pytest.raises(JournalTooNew) as caught:
        Journal.open(path, clock)

    error = caught.value
    assert (error.found_version, error.known_version) == (newer, schema.SCHEMA_VERSION)
    assert str(path) in str(error)
    assert f"version {newer}" in str(error) and f"up to {schema.SCHEMA_VERSION}" in str(error)
    assert path.read_bytes() == before


def test_a_database_that_is_not_a_journal_is_refused(path, clock):
    path.parent.mkdir(mode=0o700)
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE inventory (host TEXT)")
    db.close()
    with pytest.raises(JournalUnreadable, match="holds tables but no journal schema version: inventory"):
        Journal.open(path, clock)


def test_a_state_directory_that_cannot_be_made_is_an_error_naming_it(tmp_path, clock):
    (tmp_path / "var").write_text("a file where a directory should be")
    with pytest.raises(JournalIoError, match="cannot create the state directory") as caught:
        Journal.open(tmp_path / "var" / "state" / "journal.sqlite3", clock)
    assert caught.value.details["path"] == str(tmp_path / "var" / "state")


def test_only_one_agent_holds_the_journal_at_a_time(journal, path, clock):
    with pytest.raises(JournalInUse) as caught:
        Journal.open(path, clock)
    assert str(path) in str(caught.value)
    journal.put_attachment(ATTACHMENT)  # the holder is not disturbed
    journal.close()
    with Journal.open(path, clock) as next_agent:
        assert next_agent.attachment(ATTACHMENT.lun_uuid) is not None


# --- migrations -----------------------------------------------------------------------------
# For every released version N, a journal as version N wrote it, and what must survive migration.
# A new migration N -> N+1 comes with SEEDS[N]: test_every_earlier_version_has_a_seed says so.


def seed_version_0(db: sqlite3.Connection) -> set[str]:
    """Version 0 is an empty database: nothing to keep."""
    return set()


def seed_version_1(db: sqlite3.Connection) -> set[str]:
    """Version 1 as the first daemon wrote it: an attachment, and an attach the agent died in."""
    db.execute(
        "INSERT INTO attachment VALUES ('uuid-1', '/vol/vol1/lun1', 'lun1', 'svm1', 'serial-1', "
        "'3600a0980736572', 1, 'ig1', 1, 'iqn.t', '[\"127.0.0.1:3260\"]', 0, '/dev/sdb', 'attached', "
        "'2026-11-30T10:00:00.000+00:00', '2026-11-30T10:00:00.000+00:00')"
    )
    db.execute(
        "INSERT INTO operation (kind, volume, lun_uuid, started_at) VALUES "
        "('attach', 'lun2', 'uuid-2', '2026-11-30T10:01:00.000+00:00')"
    )
    db.execute(
        'INSERT INTO step VALUES (1, 1, \'map\', \'{"lun_path": "/vol/vol1/lun2", "igroup": "ig1"}\', '
        "'intended', '2026-11-30T10:01:00.000+00:00', NULL, NULL, NULL, NULL)"
    )
    return {"uuid-1"}


def seed_version_2(db: sqlite3.Connection) -> set[str]:
    """Version 2 wrote the rows version 1 did (its attachments without an igroup UUID)."""
    return seed_version_1(db)


SEEDS: dict[int, Callable[[sqlite3.Connection], set[str]]] = {
    0: seed_version_0,
    1: seed_version_1,
    2: seed_version_2,
}


def test_every_earlier_version_has_a_seed():
    assert set(SEEDS) == set(range(schema.SCHEMA_VERSION))


def journal_at(path: Path, version: int) -> set[str]:
    """A journal file at ``version``, built with the migrations up to it and seeded as that version."""
    path.parent.mkdir(mode=0o700)
    with sqlite3.connect(path) as db:
        for migration in schema.MIGRATIONS[:version]:
            migration(db)
        db.execute(f"PRAGMA user_version = {version}")
        kept = SEEDS[version](db)
    db.close()
    return kept


def schema_of(path: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(path) as db:
        found = db.execute("SELECT name, sql FROM sqlite_master ORDER BY name").fetchall()
    db.close()
    return found


@pytest.mark.parametrize("version", range(schema.SCHEMA_VERSION))
def test_a_journal_of_every_earlier_version_migrates_and_keeps_its_attachments(tmp_path, clock, version):
    old = tmp_path / "old" / "journal.sqlite3"
    kept = journal_at(old, version)
    fresh = tmp_path / "fresh" / "journal.sqlite3"
    Journal.open(fresh, clock).close()

    with Journal.open(old, clock) as migrated:
        assert {record.attachment.lun_uuid for record in migrated.attachments()} == kept
        assert {record.attachment.igroup_uuid for record in migrated.attachments()} <= {""}
        assert [op.lun_uuid for op in migrated.in_flight()] == (["uuid-2"] if version else [])
        op = migrated.begin(Kind.ATTACH, "lun0")  # and it takes new records
        migrated.intend(op, Step.LOOKUP)

    with sqlite3.connect(old) as db:
        assert schema.user_version(db) == schema.SCHEMA_VERSION
    db.close()
    assert schema_of(old) == schema_of(fresh)


def test_a_migration_that_fails_leaves_the_previous_version_whole(path, clock, monkeypatch):
    Journal.open(path, clock).close()
    before = schema_of(path)

    def broken(db: sqlite3.Connection) -> None:
        db.execute("CREATE TABLE half_done (x)")
        db.execute("ALTER TABLE no_such_table ADD COLUMN y")

    monkeypatch.setattr(schema, "MIGRATIONS", (*schema.MIGRATIONS, broken))
    monkeypatch.setattr(schema, "SCHEMA_VERSION", len(schema.MIGRATIONS))
    with pytest.raises(JournalError, match="no_such_table"):
        Journal.open(path, clock)

    monkeypatch.undo()
    assert schema_of(path) == before
    with sqlite3.connect(path) as db:
        assert schema.user_version(db) == schema.SCHEMA_VERSION
    db.close()


# --- the state folder and the journal's files: root's alone, never reached through a link -----


@pytest.mark.parametrize("mode", [0o755, 0o750, 0o701], ids=oct)
def test_a_state_folder_open_to_others_is_refused_naming_it(path, clock, mode):
    path.parent.mkdir()
    path.parent.chmod(mode)
    with pytest.raises(
        JournalUnsafe, match=rf"state folder {path.parent} is open to group or others \(mode 0{mode:o}"
    ):
        Journal.open(path, clock)
    assert list(path.parent.iterdir()) == []


def test_a_state_folder_owned_by_another_user_is_refused(path, clock):
    path.parent.mkdir(mode=0o700)
    os.chown(path.parent, NOBODY, NOBODY)
    with pytest.raises(
        JournalUnsafe, match=rf"state folder {path.parent} is owned by uid {NOBODY}, not root"
    ) as caught:
        Journal.open(path, clock)
    assert caught.value.code == "journal_unsafe" and caught.value.details["path"] == str(path)
    assert list(path.parent.iterdir()) == []


def test_a_state_folder_that_is_a_link_is_not_followed(path, clock, tmp_path):
    (tmp_path / "elsewhere").mkdir(mode=0o700)
    path.parent.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(JournalUnsafe, match=rf"state folder {path.parent} is a symbolic link"):
        Journal.open(path, clock)
    assert list((tmp_path / "elsewhere").iterdir()) == []


@pytest.mark.parametrize(
    "name", ["journal.sqlite3", "journal.sqlite3.lock", "journal.sqlite3-wal", "journal.sqlite3-shm"]
)
def test_a_journal_file_that_is_a_link_is_not_followed_and_its_target_is_untouched(
    path, clock, tmp_path, name
):
    path.parent.mkdir(mode=0o700)
    target = tmp_path / "root-only"
    target.write_bytes(b"keep me")
    (path.parent / name).symlink_to(target)
    with pytest.raises(JournalUnsafe, match=rf"{path.parent / name} is a symbolic link"):
        Journal.open(path, clock)
    assert target.read_bytes() == b"keep me" and (path.parent / name).is_symlink()


@pytest.mark.allow_subprocess
def test_a_journal_link_planted_by_another_user_in_a_state_folder_of_theirs_is_not_written_through(clock):
    """What was proven: root wrote a database through a link another uid planted in the state folder."""
    with folder_nobody_can_reach() as folder:
        target = folder / "root-only"
        target.write_bytes(b"keep me")
        target.chmod(0o600)
        state = folder / "state"  # the operator's, given to nobody (or made by a package of theirs)
        state.mkdir(mode=0o700)
        os.chown(state, NOBODY, NOBODY)
        plant = "import os, sys; os.symlink(sys.argv[1], sys.argv[2])"
        python_as_nobody(plant, str(target), str(state / "journal.sqlite3"))
        with pytest.raises(JournalUnsafe, match=rf"state folder {state} is owned by uid {NOBODY}"):
            Journal.open(state / "journal.sqlite3", clock)
        assert target.read_bytes() == b"keep me"
        assert sorted(p.name for p in state.iterdir()) == ["journal.sqlite3"]
