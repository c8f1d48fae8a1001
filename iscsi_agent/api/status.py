"""The one table from error classes to HTTP statuses, and the JSON error body every refusal carries.

An error's status is that of the nearest class in its MRO found in the table, so a new error lands
on its family's status without an edit here, and a more precise status is one line. An expected
condition is never 500 (a device held, changed or not the LUN is a 409 whose details say what);
500 is a bug. Anything that is not an AgentError is a bug too: the client gets ``internal_error``
and the log gets the traceback. tests/unit/api/test_status_every_error.py holds every class to
its status.
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from iscsi_agent.api import errors as api
from iscsi_agent.array.errors import ArrayError, ArrayTimeout
from iscsi_agent.errors import AgentError
from iscsi_agent.host import errors as host
from iscsi_agent.journal.errors import JournalIoError
from iscsi_agent.service.errors import DevicesLeftBehind, NoUsablePortal, TargetMismatch, WrongDevice
from iscsi_agent.service.igroup import IgroupConflict
from iscsi_agent.service_api import (
    NotAttached,
    PathDown,
    ReconcileBusy,
    VolumeAmbiguous,
    VolumeInUse,
    VolumeNotFound,
)

STATUS_BY_ERROR: Mapping[type[AgentError], HTTPStatus] = {
    # the request itself
    api.RequestError: HTTPStatus.BAD_REQUEST,
    api.PeerNotAllowed: HTTPStatus.FORBIDDEN,
    api.RouteNotFound: HTTPStatus.NOT_FOUND,
    api.MethodNotAllowed: HTTPStatus.METHOD_NOT_ALLOWED,
    api.RequestTimeout: HTTPStatus.REQUEST_TIMEOUT,
    api.LengthRequired: HTTPStatus.LENGTH_REQUIRED,
    api.BodyTooLarge: HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
    api.HeadTooLarge: HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
    api.Overloaded: HTTPStatus.SERVICE_UNAVAILABLE,
    # the caller's volume
    VolumeNotFound: HTTPStatus.NOT_FOUND,
    NotAttached: HTTPStatus.NOT_FOUND,
    VolumeAmbiguous: HTTPStatus.BAD_REQUEST,
    # expected conditions of the host's devices and the array's igroups: the facts are in details
    VolumeInUse: HTTPStatus.CONFLICT,
    PathDown: HTTPStatus.CONFLICT,
    host.DeviceInUse: HTTPStatus.CONFLICT,
    host.DeviceChanged: HTTPStatus.CONFLICT,
    host.IdentityUnreadable: HTTPStatus.CONFLICT,
    WrongDevice: HTTPStatus.CONFLICT,
    DevicesLeftBehind: HTTPStatus.CONFLICT,
    IgroupConflict: HTTPStatus.CONFLICT,
    # what lies behind the agent: the array, its iSCSI target, the host's iSCSI stack (iscsiadm and
    # iscsid, the kernel's SCSI layer, multipath); their timeouts
    ArrayError: HTTPStatus.BAD_GATEWAY,
    host.HostError: HTTPStatus.BAD_GATEWAY,
    NoUsablePortal: HTTPStatus.BAD_GATEWAY,
    TargetMismatch: HTTPStatus.BAD_GATEWAY,
    ArrayTimeout: HTTPStatus.GATEWAY_TIMEOUT,
    host.CommandTimeout: HTTPStatus.GATEWAY_TIMEOUT,
    host.IscsiTimeout: HTTPStatus.GATEWAY_TIMEOUT,
    host.WaitTimeout: HTTPStatus.GATEWAY_TIMEOUT,
    # the agent cannot take the work now
    ReconcileBusy: HTTPStatus.SERVICE_UNAVAILABLE,
    JournalIoError: HTTPStatus.SERVICE_UNAVAILABLE,
    # a bug, or an error raised only where no request is served (start-up, the client)
    AgentError: HTTPStatus.INTERNAL_SERVER_ERROR,
}

INTERNAL_ERROR = "internal_error"


def status_for(error: AgentError) -> HTTPStatus:
    for cls in type(error).__mro__:
        status = STATUS_BY_ERROR.get(cls)
        if status is not None:
            return status
    raise AssertionError("AgentError is in the table")  # pragma: no cover


def error_body(error: AgentError) -> dict[str, Any]:
    return {"error": {"code": error.code, "message": error.message, "details": error.details}}


def internal_error_body() -> dict[str, Any]:
    """What a client sees of a bug: no traceback or internals, which stay in the log."""
    return {
        "error": {"code": INTERNAL_ERROR, "message": "internal error; see the agent's log", "details": {}}
    }
