"""``Journal``: the attach/detach service writes each step here before taking it; recovery reads it back.

One SQLite connection is shared by every worker thread behind a lock, and every call is one short
transaction: SQLite takes one writer at a time anyway, and the lock turns what would be
``database is locked`` retries between threads into a plain wait of a few milliseconds. Nothing
else writes the file (``schema.lock``); an operator's read-only ``sqlite3`` shell may read it at
any time, WAL lets it.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self

from iscsi_agent.journal import rows, schema
from iscsi_agent.journal.errors import JournalIoError, JournalMisuse, JournalUnreadable
from iscsi_agent.journal.model import (
    STEP_PARAMS,
    Attachment,
    AttachmentRecord,
    Kind,
    Operation,
    OperationId,
    Outcome,
    ParamValue,
    Step,
    StepId,
    StepStatus,
)

FILE_NAME = "journal.sqlite3"  # under [agent] state_dir
INTERRUPTED = "interrupted"  # the error code of a step whose outcome the agent never learned
_SECRET_WORDS = ("secret", "password", "passwd")


class WallClock(Protocol):
    """Seconds since the epoch, as ``time.time``: records carry wall time an operator can read."""

    def time(self) -> float: ...


class SystemWallClock:
    def time(self) -> float:
        return time.time()


class Journal:
    """The durable record of attachments and of every step of an attach or detach.

    Write a step's intent (``intend``) before taking it and settle it (``record_done`` or
    ``record_failed``) after; ``finish`` an operation once none of its steps is open.
    """

    def __init__(self, path: Path, db: sqlite3.Connection, lock_fd: int, clock: WallClock) -> None:
        self.path = path
        self._db = db
        self._db.row_factory = sqlite3.Row
        self._lock_fd = lock_fd
        self._clock = clock
        self._lock = threading.Lock()
        self._closed = False
        # (the file's mark when read, what was read): see ``attachments``
        self._attachments_seen: tuple[tuple[int, int], tuple[AttachmentRecord, ...]] | None = None

    @classmethod
    def open(cls, path: Path, clock: WallClock | None = None) -> Journal:
        """Open (or create) the journal at ``path``, migrated to the current schema.

        Raises JournalInUse when another agent holds it, JournalUnreadable or JournalTooNew when
        the file must not be touched; in every case the file is left as it was.
        """
        lock_fd = schema.lock(path)
        try:
            db = schema.connect(path)
        except BaseException:
            os.close(lock_fd)
            raise
        return cls(path, db, lock_fd, clock or SystemWallClock())

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._db.close()
            os.close(self._lock_fd)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # --- operations and their steps ---------------------------------------------------------
    def check_writable(self) -> None:
        """Commit a write that changes nothing (the schema version, set to itself): whether the next
        step of an operation could be recorded now. Raises JournalIoError when it could not."""
        with self._transaction() as db:
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
            db.execute(f"PRAGMA user_version = {version}")

    def begin(self, kind: Kind, volume: str, lun_uuid: str | None = None) -> OperationId:
        """Start an attach or detach of ``volume`` (as the client named it)."""
        with self._transaction() as db:
            cursor = db.execute(
                "INSERT INTO operation (kind, volume, lun_uuid, started_at) VALUES (?, ?, ?, ?)",
                (kind.value, volume, lun_uuid, self._now()),
            )
        assert cursor.lastrowid is not None
        return OperationId(cursor.lastrowid)

    def identify(self, op: OperationId, lun_uuid: str) -> None:
        """Name the LUN an operation concerns, once the lookup found it."""
        with self._transaction() as db:
            self._require_open_operation(db, op)
            db.execute("UPDATE operation SET lun_uuid = ? WHERE id = ?", (lun_uuid, op))

    def intend(self, op: OperationId, step: Step, **params: ParamValue) -> StepId:
        """Record that ``step`` is about to be taken; it is on disk when this returns.

        ``params`` must hold at least ``STEP_PARAMS[step]``: what recovery needs to find the step's
        effect when the agent dies before learning its outcome.
        """
        missing = STEP_PARAMS[step] - params.keys()
        if missing:
            raise JournalMisuse(
                self.path, f"{step.value} intent lacks {', '.join(sorted(missing))}", step=step.value
            )
        encoded = self._encode(params)
        with self._transaction() as db:
            self._require_open_operation(db, op)
            seq = db.execute(
                "SELECT COALESCE(MAX(seq), 0) + 1 FROM step WHERE operation_id = ?", (op,)
            ).fetchone()[0]
            db.execute(
                "INSERT INTO step (operation_id, seq, name, params, status, intended_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (op, seq, step.value, encoded, StepStatus.INTENDED.value, self._now()),
            )
        return StepId(op, seq)

    def record_done(self, step: StepId, **result: ParamValue) -> None:
        """The step was taken; ``result`` is what it learned (a LUN id, whether a map was created)."""
        self._settle(step, StepStatus.DONE, self._encode(result), None, None)

    def record_failed(self, step: StepId, code: str, message: str) -> None:
        """The step failed with an error of this ``code`` (an AgentError's code) and message."""
        self._settle(step, StepStatus.FAILED, None, code, message)

    def finish(self, op: OperationId, outcome: Outcome, error_code: str | None = None) -> None:
        """Close an operation; every step it intended must have been settled first."""
        if (outcome is Outcome.FAILED) != (error_code is not None):
            raise JournalMisuse(
                self.path, f"operation {op}: an error code goes with a failure, and only then"
            )
        with self._transaction() as db:
            self._require_open_operation(db, op)
            open_step = db.execute(
                "SELECT seq, name FROM step WHERE operation_id = ? AND status = ? ORDER BY seq LIMIT 1",
                (op, StepStatus.INTENDED.value),
            ).fetchone()
            if open_step is not None:
                raise JournalMisuse(
                    self.path,
                    f"operation {op} cannot finish: step {op}.{open_step[0]} ({open_step[1]}) is open",
                )
            db.execute(
                "UPDATE operation SET finished_at = ?, outcome = ?, error_code = ? WHERE id = ?",
                (self._now(), outcome.value, error_code, op),
            )

    def settle_interrupted(self, op: OperationId) -> int:
        """Settle as failed (``interrupted``) every step of ``op`` whose outcome was never written.

        Recovery calls this once it has read the operation: its own undo steps follow as new steps
        of the same operation, so a recovery that is itself interrupted leaves a record the next
        one reads the same way. Returns how many steps were open.
        """
        with self._transaction() as db:
            self._require_open_operation(db, op)
            cursor = db.execute(
                "UPDATE step SET status = ?, settled_at = ?, error_code = ?, error_message = ?"
                " WHERE operation_id = ? AND status = ?",
                (
                    StepStatus.FAILED.value,
                    self._now(),
                    INTERRUPTED,
                    "the agent stopped before it learned the outcome",
                    op,
                    StepStatus.INTENDED.value,
                ),
            )
        return cursor.rowcount

    def in_flight(self) -> list[Operation]:
        """Operations begun and never finished, oldest first, each with its steps in order."""
        with self._transaction() as db:
            operations = db.execute(
                "SELECT id, kind, volume, lun_uuid, started_at FROM operation"
                " WHERE finished_at IS NULL ORDER BY id"
            ).fetchall()
            steps = db.execute(
                "SELECT * FROM step WHERE operation_id IN"
                " (SELECT id FROM operation WHERE finished_at IS NULL) ORDER BY operation_id, seq"
            ).fetchall()
        with self._decoding():
            return rows.operations(operations, steps)

    def last_left_unmapped(self, lun_uuid: str, igroup: str, *, asking: OperationId) -> bool:
        """Whether the last map change this agent made to the LUN, in operations that have finished,
        was to take it out of ``igroup`` (an unmap that was done, or found nothing to remove).

        Then the agent knows the map was not there when that operation finished, without asking the
        array; anything else (no record, a map, another operation of the LUN still open) is not
        knowledge. ``asking`` is the operation that asks, itself open.
        """
        with self._transaction() as db:
            if db.execute(
                "SELECT 1 FROM operation WHERE lun_uuid = ? AND finished_at IS NULL AND id != ? LIMIT 1",
                (lun_uuid, asking),
            ).fetchone():
                return False
            last = db.execute(
                "SELECT step.name, step.status, step.params FROM step JOIN operation"
                " ON step.operation_id = operation.id WHERE operation.lun_uuid = ?"
                " AND step.name IN (?, ?) AND step.status != ?"
                " ORDER BY operation.id DESC, step.seq DESC LIMIT 1",
                (lun_uuid, Step.MAP.value, Step.UNMAP.value, StepStatus.FAILED.value),
            ).fetchone()
        if last is None or last[0] != Step.UNMAP.value or last[1] != StepStatus.DONE.value:
            return False
        with self._decoding():
            return rows.decode_values(last[2]).get("igroup") == igroup

    def attached_since(self, lun_uuid: str, op: OperationId) -> bool:
        """Whether an attach of the LUN begun after ``op`` succeeded. Operation ids only grow, so
        this orders operations as they happened, whatever the wall clock did meanwhile."""
        with self._transaction() as db:
            found = db.execute(
                "SELECT 1 FROM operation WHERE lun_uuid = ? AND kind = ? AND id > ? AND outcome = ? LIMIT 1",
                (lun_uuid, Kind.ATTACH.value, op, Outcome.SUCCEEDED.value),
            ).fetchone()
        return found is not None

    def prune(self, finished_before: datetime) -> int:
        """Forget operations that finished before ``finished_before``; those in flight always stay,
        and so does the history of a LUN with an operation in flight (recovery reads it)."""
        with self._transaction() as db:
            cursor = db.execute(
                "DELETE FROM operation WHERE finished_at IS NOT NULL AND finished_at < ?"
                " AND (lun_uuid IS NULL OR lun_uuid NOT IN"
                " (SELECT lun_uuid FROM operation WHERE finished_at IS NULL AND lun_uuid IS NOT NULL))",
                (rows.format_time(finished_before),),
            )
        return cursor.rowcount

    # --- attachments ------------------------------------------------------------------------
    def put_attachment(self, attachment: Attachment) -> None:
        """Record an attachment, or replace what is known of it (its first record time stays)."""
        row = rows.attachment_row(attachment)
        row["now"] = self._now()
        with self._transaction() as db:
            db.execute(_UPSERT_ATTACHMENT, row)

    def attachment(self, lun_uuid: str) -> AttachmentRecord | None:
        with self._transaction() as db:
            found = db.execute("SELECT * FROM attachment WHERE lun_uuid = ?", (lun_uuid,)).fetchone()
        with self._decoding():
            return None if found is None else rows.attachment_record(found)

    def attachments(self) -> list[AttachmentRecord]:
        """Every attachment, in the order they were first recorded.

        Decoded again only when the file changed since the last read: a reconciler pass reads every
        attachment each interval, and decoding a thousand rows costs more than the rest of its
        journal work. The file's mark is exact: the connection's count of rows it changed, and
        SQLite's ``data_version``, which moves with every commit another connection makes."""
        with self._transaction() as db:
            mark = (db.total_changes, db.execute("PRAGMA data_version").fetchone()[0])
            seen = self._attachments_seen
            if seen is not None and seen[0] == mark:
                return list(seen[1])
            found = db.execute("SELECT * FROM attachment ORDER BY created_at, lun_uuid").fetchall()
        with self._decoding():
            records = tuple(rows.attachment_record(row) for row in found)
        self._attachments_seen = (mark, records)
        return list(records)

    def remove_attachment(self, lun_uuid: str) -> bool:
        """Forget an attachment once detached; False when there was none."""
        with self._transaction() as db:
            cursor = db.execute("DELETE FROM attachment WHERE lun_uuid = ?", (lun_uuid,))
        return cursor.rowcount > 0

    # --- inside -----------------------------------------------------------------------------
    def _settle(
        self, step: StepId, status: StepStatus, result: str | None, code: str | None, message: str | None
    ) -> None:
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE step SET status = ?, settled_at = ?, result = ?, error_code = ?, error_message = ?"
                " WHERE operation_id = ? AND seq = ? AND status = ?",
                (
                    status.value,
                    self._now(),
                    result,
                    code,
                    message,
                    step.operation,
                    step.seq,
                    StepStatus.INTENDED.value,
                ),
            )
            if cursor.rowcount == 0:
                raise JournalMisuse(self.path, f"step {step} was never intended or is already settled")

    def _require_open_operation(self, db: sqlite3.Connection, op: OperationId) -> None:
        row = db.execute("SELECT finished_at FROM operation WHERE id = ?", (op,)).fetchone()
        if row is None:
            raise JournalMisuse(self.path, f"no operation {op}")
        if row[0] is not None:
            raise JournalMisuse(self.path, f"operation {op} has finished")

    def _encode(self, values: Mapping[str, ParamValue]) -> str:
        for key in values:
            if any(word in key.lower() for word in _SECRET_WORDS):
                raise JournalMisuse(self.path, f"{key!r} looks like a secret, which the journal never keeps")
        return rows.encode_values(values)

    def _now(self) -> str:
        return rows.format_time(datetime.fromtimestamp(self._clock.time(), UTC))

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One short transaction, taken for writing at once so it never has to upgrade mid-way."""
        with self._lock:
            db = self._db
            try:
                db.execute("BEGIN IMMEDIATE")
                try:
                    yield db
                    db.execute("COMMIT")
                except BaseException:
                    if db.in_transaction:
                        db.execute("ROLLBACK")
                    raise
            except sqlite3.OperationalError as exc:  # disk full, I/O error, locked past the timeout
                raise JournalIoError(self.path, str(exc)) from exc
            except sqlite3.DatabaseError as exc:
                if type(exc) is not sqlite3.DatabaseError:
                    raise  # integrity and programming errors are bugs here, not the file's fault
                raise JournalUnreadable(self.path, str(exc)) from exc

    @contextmanager
    def _decoding(self) -> Iterator[None]:
        try:
            yield
        except ValueError as exc:  # an unknown enum value, bad JSON or time: hand-edited or damaged
            raise JournalUnreadable(self.path, f"a record this agent cannot read: {exc}") from exc


_UPSERT_ATTACHMENT = (
    f"INSERT INTO attachment ({', '.join(rows.ATTACHMENT_COLUMNS)}, created_at, updated_at)"
    f" VALUES ({', '.join(':' + name for name in rows.ATTACHMENT_COLUMNS)}, :now, :now)"
    " ON CONFLICT (lun_uuid) DO UPDATE SET "
    + ", ".join(f"{name} = excluded.{name}" for name in (*rows.ATTACHMENT_COLUMNS[1:], "updated_at"))
)
