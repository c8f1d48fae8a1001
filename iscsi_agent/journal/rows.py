"""Journal values to SQLite rows and back: JSON for parameters and portals, ISO 8601 UTC for times.

Decoding raises ValueError on anything this code did not write (an unknown enum value, bad JSON),
which the store reports as an unreadable journal.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from iscsi_agent.journal.model import (
    Attachment,
    AttachmentRecord,
    AttachmentState,
    Kind,
    Operation,
    OperationId,
    ParamValue,
    Step,
    StepId,
    StepRecord,
    StepStatus,
)
from iscsi_agent.portal import Portal

ATTACHMENT_COLUMNS = (
    "lun_uuid",
    "lun_path",
    "volume",
    "svm",
    "serial",
    "wwid",
    "lun_id",
    "igroup",
    "map_created",
    "target_iqn",
    "portals",
    "multipath",
    "device",
    "state",
    "igroup_uuid",
)


def attachment_row(attachment: Attachment) -> dict[str, object]:
    """The ``ATTACHMENT_COLUMNS`` of an attachment, for named SQL parameters."""
    row: dict[str, object] = {name: getattr(attachment, name) for name in ATTACHMENT_COLUMNS}
    row["portals"] = json.dumps([str(portal) for portal in attachment.portals])
    row["state"] = attachment.state.value
    return row


def attachment_record(row: sqlite3.Row) -> AttachmentRecord:
    attachment = Attachment(
        lun_uuid=row["lun_uuid"],
        lun_path=row["lun_path"],
        volume=row["volume"],
        svm=row["svm"],
        serial=row["serial"],
        wwid=row["wwid"],
        lun_id=row["lun_id"],
        igroup=row["igroup"],
        map_created=bool(row["map_created"]),
        target_iqn=row["target_iqn"],
        portals=tuple(Portal.parse(text) for text in json.loads(row["portals"])),
        multipath=bool(row["multipath"]),
        state=AttachmentState(row["state"]),
        device=row["device"],
        igroup_uuid=row["igroup_uuid"],
    )
    return AttachmentRecord(attachment, parse_time(row["created_at"]), parse_time(row["updated_at"]))


def operations(rows: Sequence[sqlite3.Row], step_rows: Sequence[sqlite3.Row]) -> list[Operation]:
    """Operations from their rows and the rows of their steps (ordered by operation, then seq)."""
    steps: dict[int, list[StepRecord]] = {row["id"]: [] for row in rows}
    for row in step_rows:
        steps[row["operation_id"]].append(step_record(row))
    return [
        Operation(
            id=OperationId(row["id"]),
            kind=Kind(row["kind"]),
            volume=row["volume"],
            lun_uuid=row["lun_uuid"],
            started_at=parse_time(row["started_at"]),
            steps=tuple(steps[row["id"]]),
        )
        for row in rows
    ]


def step_record(row: sqlite3.Row) -> StepRecord:
    return StepRecord(
        id=StepId(OperationId(row["operation_id"]), row["seq"]),
        step=Step(row["name"]),
        params=decode_values(row["params"]),
        status=StepStatus(row["status"]),
        intended_at=parse_time(row["intended_at"]),
        settled_at=None if row["settled_at"] is None else parse_time(row["settled_at"]),
        result=None if row["result"] is None else decode_values(row["result"]),
        error_code=row["error_code"],
        error_message=row["error_message"],
    )


def encode_values(values: Mapping[str, ParamValue]) -> str:
    return json.dumps(values, sort_keys=True, allow_nan=False)


def decode_values(text: str) -> dict[str, ParamValue]:
    """JSON lists come back as tuples, so records stay immutable values."""
    values = json.loads(text)
    if not isinstance(values, dict):
        raise ValueError(f"expected a JSON object, found {text[:40]!r}")
    return {key: tuple(value) if isinstance(value, list) else value for key, value in values.items()}


def format_time(moment: datetime) -> str:
    """ISO 8601 in UTC to the millisecond: readable in a sqlite3 shell, and ordered as text."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text)
