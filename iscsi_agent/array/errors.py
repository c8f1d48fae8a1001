"""The array layer's errors, one shallow tree under AgentError.

    ArrayError                     array_error
    ├── ArrayUnreachable           array_unreachable      refused, reset, DNS; (url, reason)
    │   └── ArrayTlsError          array_tls_failed       certificate not trusted, handshake failed
    ├── ArrayTimeout               array_timeout          no answer within the read timeout
    ├── ArrayAuthFailed            array_auth_failed      HTTP 401: wrong user, password or certificate
    ├── ArrayRedirected            array_redirected       HTTP 3xx, not followed; (url, http_status, location)
    ├── ArrayNotFound              array_not_found        (kind: lun|igroup|svm|iscsi_service|lun_map, name)
    ├── ArrayResponseError         array_bad_response     a reply lacks what the agent needs; (api, missing)
    ├── ArrayInvalidRequest        array_invalid_request  refused before sending: the array would refuse it; (api, problem)
    └── ArrayApiError              array_api_error        the array refused; (api, array_code, array_message, http_status)
        ├── ArrayAlreadyExists     array_already_exists   igroup or initiator already there
        │   └── ArrayAlreadyMapped array_already_mapped   the LUN is already mapped to that igroup
        ├── ArrayMappedElsewhere   array_mapped_elsewhere the host already sees the LUN through another
        │                                                 igroup; (path, igroup, lun_id, requested_igroup)
        └── ArrayNotMapped         array_not_mapped       unmap of a map that does not exist

Timeouts and unreachability are "transport" failures: the request may or may not have been
applied, which is why writes re-read state after one (see ``iscsi_agent.array.recovery``). A
reply cut off mid-body and a gateway's 502/503 are ArrayUnreachable, its 504 ArrayTimeout, for
the same reason (with ``http_status`` in the details).
The client resolves the race codes itself, so callers mostly meet the first six.
"""

from __future__ import annotations

from typing import Any

from iscsi_agent.errors import AgentError


class ArrayError(AgentError):
    code = "array_error"


class ArrayUnreachable(ArrayError):
    code = "array_unreachable"


class ArrayTlsError(ArrayUnreachable):
    code = "array_tls_failed"


class ArrayTimeout(ArrayError):
    code = "array_timeout"


TRANSPORT_ERRORS = (ArrayUnreachable, ArrayTimeout)
"""Failures after which nobody knows whether the array applied the request."""


class ArrayAuthFailed(ArrayError):
    code = "array_auth_failed"


class ArrayRedirected(ArrayError):
    """Something answered a redirect in the array's name; the agent talks only to the configured address."""

    code = "array_redirected"


class ArrayNotFound(ArrayError):
    code = "array_not_found"

    def __init__(self, kind: str, name: str, **details: Any) -> None:
        super().__init__(f"{kind} {name} not found on the array", kind=kind, name=name, **details)
        self.kind = kind
        self.name = name


class ArrayResponseError(ArrayError):
    """The array answered, but not with something the agent can use."""

    code = "array_bad_response"

    def __init__(self, api: str, problem: str, **details: Any) -> None:
        super().__init__(f"{api}: {problem}", api=api, **details)
        self.api = api


class ArrayInvalidRequest(ArrayError):
    """A request the agent does not send, because the array would refuse it halfway through a change."""

    code = "array_invalid_request"

    def __init__(self, api: str, problem: str, **details: Any) -> None:
        super().__init__(f"{api}: {problem}", api=api, problem=problem, **details)
        self.api = api
        self.problem = problem


class ArrayApiError(ArrayError):
    """The array refused a request; ``array_code`` is the ZAPI errno or REST error code, as a string."""

    code = "array_api_error"

    def __init__(self, api: str, array_code: str, array_message: str, http_status: int | None = None) -> None:
        super().__init__(
            f"{api} failed: {array_message or 'no message'} (array code {array_code})",
            api=api,
            array_code=array_code,
            array_message=array_message,
            http_status=http_status,
        )
        self.api = api
        self.array_code = array_code
        self.array_message = array_message
        self.http_status = http_status


class ArrayAlreadyExists(ArrayApiError):
    code = "array_already_exists"


class ArrayAlreadyMapped(ArrayAlreadyExists):
    code = "array_already_mapped"


class ArrayNotMapped(ArrayApiError):
    code = "array_not_mapped"


class ArrayMappedElsewhere(ArrayApiError):
    """The array refused a map because the host's initiator already sees the LUN through another igroup.

    ONTAP lets a LUN reach an initiator once: ``igroup`` and ``lun_id`` name the map it already
    has (found by re-reading the LUN's maps and the igroups holding ``initiators``), so an attach
    can use that map instead of ours (``requested_igroup``). Not an ArrayAlreadyExists: the LUN is
    not mapped to the igroup that was asked for.
    """

    code = "array_mapped_elsewhere"

    def __init__(
        self,
        refused: ArrayApiError,
        *,
        path: str,
        requested_igroup: str,
        igroup: str,
        lun_id: int,
        initiators: tuple[str, ...],
    ) -> None:
        super().__init__(refused.api, refused.array_code, refused.array_message, refused.http_status)
        self.message = (
            f"{path} is already visible to {', '.join(initiators)} through igroup {igroup} as LUN {lun_id}; "
            f"not mapped to {requested_igroup} (array code {refused.array_code})"
        )
        self.args = (self.message,)
        self.details.update(
            path=path, requested_igroup=requested_igroup, igroup=igroup, lun_id=lun_id, initiators=initiators
        )
        self.path = path
        self.requested_igroup = requested_igroup
        self.igroup = igroup
        self.lun_id = lun_id
        self.initiators = initiators
