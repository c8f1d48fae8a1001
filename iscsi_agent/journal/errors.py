"""The journal's errors, one shallow tree under AgentError; every one names the journal file.

JournalError                  journal_error
├── JournalUnreadable         journal_unreadable     not a SQLite database, malformed, or not ours; (path, reason)
├── JournalTooNew             journal_too_new        written by a newer agent; (path, found_version, known_version)
├── JournalInUse              journal_in_use         another process has it open; (path)
├── JournalIoError            journal_io_failed      SQLite could not read or write it (disk full, I/O); (path, reason)
├── JournalUnsafe             journal_unsafe         another user could change or redirect it: the state folder is
│                                                    not root's 0700 folder, or a file of it is a link; (path, reason)
└── JournalMisuse             journal_misuse         a transition the record forbids: a step settled twice,
                                                     an unknown operation, a finish with a step still open

An unreadable or too-new file is never reset or rewritten: the operator decides what to do with it,
because it may hold the only record of maps and sessions the agent made.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from iscsi_agent.errors import AgentError


class JournalError(AgentError):
    code = "journal_error"

    def __init__(self, path: Path, message: str, **details: Any) -> None:
        super().__init__(f"journal {path}: {message}", path=str(path), **details)
        self.path = path


class JournalUnreadable(JournalError):
    code = "journal_unreadable"

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(
            path, f"{reason}; left as it is (move it aside to start with an empty journal)", reason=reason
        )


class JournalTooNew(JournalError):
    code = "journal_too_new"

    def __init__(self, path: Path, found_version: int, known_version: int) -> None:
        super().__init__(
            path,
            f"schema version {found_version} was written by a newer agent; this agent knows versions "
            f"up to {known_version} and leaves the file as it is",
            found_version=found_version,
            known_version=known_version,
        )
        self.found_version = found_version
        self.known_version = known_version


class JournalInUse(JournalError):
    code = "journal_in_use"

    def __init__(self, path: Path) -> None:
        super().__init__(path, "another agent process has it open")


class JournalIoError(JournalError):
    code = "journal_io_failed"

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(path, reason, reason=reason)


class JournalUnsafe(JournalError):
    """Refused before anything is read or written: a journal others could replace would steer recovery."""

    code = "journal_unsafe"

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(path, f"refused: {reason}", reason=reason)


class JournalMisuse(JournalError):
    code = "journal_misuse"
