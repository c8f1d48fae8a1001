"""The one table from error classes to HTTP statuses, and the JSON error body every refusal carries.

An error's status is that of the nearest class in its MRO found in the table, so a new error lands
on its family's status without an edit here, and a more precise status is one line. Anything that
is not an AgentError is a bug: the client gets ``internal_error`` and the log gets the traceback.
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from iscsi_agent.api import errors as api
from iscsi_agent.array.errors import ArrayError, ArrayTimeout
from iscsi_agent.errors import AgentError
from iscsi_agent.host import errors as host
from iscsi_agent.service.errors import NoUsablePortal, TargetMismatch
from iscsi_agent.service.igroup import IgroupConflict
from iscsi_agent.service_api import (
    NotAttached,
    ReconcileBusy,
    VolumeAmbiguous,
    VolumeInUse,
    VolumeNotFound,
)

STATUS_BY_ERROR: Mapping[type[AgentError], HTTPStatus] = {
    # the request itself
    api.BadRequest: HTTPStatus.BAD_REQUEST,
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
    VolumeInUse: HTTPStatus.CONFLICT,
    host.DeviceInUse: HTTPStatus.CONFLICT,
    # what lies behind the agent: the array and its iSCSI target
    ArrayError: HTTPStatus.BAD_GATEWAY,
    host.IscsiLoginFailed: HTTPStatus.BAD_GATEWAY,
    host.IscsiAuthFailed: HTTPStatus.BAD_GATEWAY,
    host.IscsiConnectionFailed: HTTPStatus.BAD_GATEWAY,
    NoUsablePortal: HTTPStatus.BAD_GATEWAY,
    TargetMismatch: HTTPStatus.BAD_GATEWAY,
    IgroupConflict: HTTPStatus.CONFLICT,
    ArrayTimeout: HTTPStatus.GATEWAY_TIMEOUT,
    host.IscsiTimeout: HTTPStatus.GATEWAY_TIMEOUT,
    host.WaitTimeout: HTTPStatus.GATEWAY_TIMEOUT,
    ReconcileBusy: HTTPStatus.SERVICE_UNAVAILABLE,
    # the agent's own failures: config, host, anything not named above
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
