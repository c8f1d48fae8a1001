"""The journal file on disk: created private, checked before use, locked to one agent, migrated.

Opening never rewrites a file it does not understand. Before SQLite may write anything, the
header must read "SQLite format 3", ``PRAGMA quick_check`` must pass, and the schema version
(``PRAGMA user_version``) must be one this code knows; an empty database (version 0, no tables)
is a new journal. Older versions are brought forward by ``MIGRATIONS``: entry N turns version N
into N+1, each in its own transaction together with the version bump, so a crash mid-migration
leaves the previous version intact.

Durability: WAL with ``synchronous=FULL``, so every commit is on disk (the WAL is fsynced) before
``intend`` returns, and the step after it may be taken. ``NORMAL`` would fsync only at
checkpoints: a power cut could lose the intent of a map that the array had already made, and
recovery would never undo it. The cost, one fsync per record, is small beside an array call or
an iSCSI login.

Trust: a journal drives start-up recovery (maps removed, sessions logged out), so no one but root
may change it. The state folder must be root's, mode 0700 and not a link; then no one else can
create, replace or link anything in it, and the journal, its lock and SQLite's -wal and -shm files
are checked not to be links (or anything but regular files) before SQLite opens them by name.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import sqlite3
import stat
from collections.abc import Callable, Sequence
from pathlib import Path

from iscsi_agent.journal.errors import (
    JournalInUse,
    JournalIoError,
    JournalTooNew,
    JournalUnreadable,
    JournalUnsafe,
)
from iscsi_agent.safe_paths import OPEN_TO_OTHERS, file_problem, folder_problem, open_no_follow, open_problem

log = logging.getLogger(__name__)

SQLITE_HEADER = b"SQLite format 3\x00"
BUSY_TIMEOUT = 5.0  # seconds; only another process (an operator's sqlite3 shell) can make us wait


def _create_version_1(db: sqlite3.Connection) -> None:
    db.execute(
        """CREATE TABLE attachment (
            lun_uuid TEXT PRIMARY KEY,
            lun_path TEXT NOT NULL,
            volume TEXT NOT NULL,        -- as the client named it
            svm TEXT NOT NULL,
            serial TEXT NOT NULL,
            wwid TEXT NOT NULL,
            lun_id INTEGER NOT NULL,
            igroup TEXT NOT NULL,
            map_created INTEGER NOT NULL,  -- 1: the agent made the map, detach removes it
            target_iqn TEXT NOT NULL,
            portals TEXT NOT NULL,       -- JSON list of "address:port"
            multipath INTEGER NOT NULL,
            device TEXT,                 -- the path handed out, once it was
            state TEXT NOT NULL,         -- attaching | attached | detaching
            created_at TEXT NOT NULL,    -- ISO 8601, UTC
            updated_at TEXT NOT NULL
        )"""
    )
    db.execute(
        """CREATE TABLE operation (
            id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused, even after pruning
            kind TEXT NOT NULL,          -- attach | detach
            volume TEXT NOT NULL,
            lun_uuid TEXT,
            started_at TEXT NOT NULL,
            finished_at TEXT,            -- NULL while in flight
            outcome TEXT,
            error_code TEXT
        )"""
    )
    db.execute("CREATE INDEX operation_in_flight ON operation (id) WHERE finished_at IS NULL")
    db.execute(
        """CREATE TABLE step (
            operation_id INTEGER NOT NULL REFERENCES operation (id) ON DELETE CASCADE,
            seq INTEGER NOT NULL,
            name TEXT NOT NULL,
            params TEXT NOT NULL,        -- JSON object, written before the step is taken
            status TEXT NOT NULL,        -- intended | done | failed
            intended_at TEXT NOT NULL,
            settled_at TEXT,
            result TEXT,                 -- JSON object
            error_code TEXT,
            error_message TEXT,
            PRIMARY KEY (operation_id, seq)
        ) WITHOUT ROWID"""
    )


def _allow_reconcile_operations(db: sqlite3.Connection) -> None:
    """Version 2: operations of kind ``reconcile`` (a reconciler pass's journalled actions).

    No table changes, only what the rows may hold: an agent that knows version 1 would read such a
    row as damage, so the version says "newer" to it instead (JournalTooNew), naming both versions.
    """


def _keep_igroup_uuids(db: sqlite3.Connection) -> None:
    """Version 3: an attachment keeps its map's igroup UUID, so the detach names the map without a read.

    Attachments recorded before have none (""): their detach reads the map, as it did.
    """
    db.execute("ALTER TABLE attachment ADD COLUMN igroup_uuid TEXT NOT NULL DEFAULT ''")


Migration = Callable[[sqlite3.Connection], None]
MIGRATIONS: Sequence[Migration] = (_create_version_1, _allow_reconcile_operations, _keep_igroup_uuids)
"""``MIGRATIONS[n]`` turns a version-n journal into version n+1; append, never edit a released one."""
SCHEMA_VERSION = len(MIGRATIONS)


def lock(path: Path) -> int:
    """Hold ``<path>.lock`` for this process: two agents on one journal would undo each other's work.

    The lock (flock) goes with the descriptor, so a killed agent leaves none behind.
    """
    _make_private_dir(path.parent)
    problem = folder_problem(path.parent, OPEN_TO_OTHERS)
    if problem:
        raise JournalUnsafe(path, f"state folder {path.parent} {problem}")
    fd = _open_own_file(path, path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise JournalInUse(path) from None
    return fd


def connect(path: Path) -> sqlite3.Connection:
    """A connection to a checked, current journal at ``path`` (created, mode 0600, if missing).

    Call it holding ``lock(path)``, which has checked the state folder.
    """
    _create_private_file(path)
    _check_header(path)
    _check_no_links(path, ("-wal", "-shm"))
    db = sqlite3.connect(path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False)
    try:
        _check_contents(db, path)
        _configure(db, path)
        _migrate(db, path)
    except sqlite3.OperationalError as exc:
        db.close()
        raise JournalIoError(path, str(exc)) from exc
    except sqlite3.DatabaseError as exc:
        db.close()
        raise JournalUnreadable(path, str(exc)) from exc
    except BaseException:
        db.close()
        raise
    return db


def user_version(db: sqlite3.Connection) -> int:
    version: int = db.execute("PRAGMA user_version").fetchone()[0]
    return version


def _make_private_dir(directory: Path) -> None:
    try:
        directory.mkdir(mode=0o700, parents=True)
    except FileExistsError:
        return
    except OSError as exc:
        raise JournalIoError(directory, f"cannot create the state directory: {exc.strerror}") from exc
    log.info("created state directory %s", directory)


def _create_private_file(path: Path) -> None:
    """Create the file ourselves, so that it is 0600 from the start (SQLite gives its WAL the same mode)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        return
    except OSError as exc:
        raise JournalIoError(path, f"cannot create: {exc.strerror}") from exc
    os.close(fd)
    _sync_dir(path.parent)
    log.info("created journal %s", path)


def _sync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _open_own_file(journal: Path, path: Path, flags: int) -> int:
    """A descriptor of ``path``, a regular file of root's, opened without following a link."""
    try:
        fd = open_no_follow(path, flags, 0o600)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENXIO):  # ENXIO: a socket, or a FIFO no one reads
            raise JournalUnsafe(journal, f"{path} {open_problem(exc)}") from None
        raise JournalIoError(journal, f"cannot open {path}: {exc.strerror}") from exc
    problem = file_problem(os.fstat(fd))
    if problem:
        os.close(fd)
        raise JournalUnsafe(journal, f"{path} {problem}")
    return fd


def _check_no_links(path: Path, suffixes: Sequence[str]) -> None:
    """SQLite opens its -wal and -shm files by name: refuse a link or a non-file there first."""
    for suffix in suffixes:
        companion = path.with_name(path.name + suffix)
        try:
            mode = os.lstat(companion).st_mode
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise JournalIoError(path, f"cannot examine {companion}: {exc.strerror}") from exc
        if stat.S_ISLNK(mode):
            raise JournalUnsafe(path, f"{companion} is a symbolic link (not followed)")
        if not stat.S_ISREG(mode):
            raise JournalUnsafe(path, f"{companion} is not a regular file")


def _check_header(path: Path) -> None:
    fd = _open_own_file(path, path, os.O_RDONLY)
    try:
        with os.fdopen(fd, "rb") as file:
            header = file.read(len(SQLITE_HEADER))
    except OSError as exc:
        raise JournalIoError(path, f"cannot read: {exc.strerror}") from exc
    if header and header != SQLITE_HEADER:
        raise JournalUnreadable(path, "not a SQLite database")


def _check_contents(db: sqlite3.Connection, path: Path) -> None:
    """Refuse what this code must not write to: a damaged file, a newer schema, someone else's tables."""
    problems = [row[0] for row in db.execute("PRAGMA quick_check")]
    if problems != ["ok"]:
        raise JournalUnreadable(path, "damaged: " + "; ".join(problems[:5]))
    version = user_version(db)
    if version > SCHEMA_VERSION:
        raise JournalTooNew(path, version, SCHEMA_VERSION)
    if version == 0:
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master ORDER BY name")]
        if tables:
            raise JournalUnreadable(path, "holds tables but no journal schema version: " + ", ".join(tables))


def _configure(db: sqlite3.Connection, path: Path) -> None:
    mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if mode != "wal":
        raise JournalIoError(path, f"SQLite would not use WAL mode here (it stayed in {mode} mode)")
    db.execute("PRAGMA synchronous = FULL")
    db.execute("PRAGMA foreign_keys = ON")


def _migrate(db: sqlite3.Connection, path: Path) -> None:
    for version in range(user_version(db), SCHEMA_VERSION):
        db.execute("BEGIN IMMEDIATE")
        try:
            MIGRATIONS[version](db)
            db.execute(f"PRAGMA user_version = {version + 1}")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        if version:
            log.info("journal %s: schema migrated from version %d to %d", path, version, version + 1)
