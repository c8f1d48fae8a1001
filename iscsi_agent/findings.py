"""What one step of `iscsi-agent check` found: its status, what was seen, and the fix when it is not ok."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Status(enum.Enum):
    OK = "ok"
    WARNING = "warning"  # passes, but says what is at risk
    FAILED = "FAILED"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class Step:
    name: str
    status: Status
    detail: str
    fix: str = ""  # the exact configuration line or command that puts it right
