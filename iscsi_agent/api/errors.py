"""Errors in a request itself, found before the service is asked anything.

    RequestError            request_error
    ├── BadRequest          bad_request          a body, field, query parameter or volume is wrong; (field | parameter)
    │   └── MalformedRequest malformed_request   not HTTP/1.x as this server reads it
    ├── PeerNotAllowed      peer_not_allowed     SO_PEERCRED uid/gid not in allowed_uids/allowed_gids; (pid, uid, gid)
    ├── RouteNotFound       not_found            no such path; (path)
    ├── MethodNotAllowed    method_not_allowed   the path exists, the method does not; (method, allow)
    ├── RequestTimeout      request_timeout      the head or body did not arrive in time; (part, timeout)
    ├── LengthRequired      length_required      a body without Content-Length (chunked is refused)
    ├── BodyTooLarge        body_too_large       Content-Length over the limit; (content_length, limit)
    ├── HeadTooLarge        head_too_large       request line and headers over the limit; (limit)
    └── Overloaded          overloaded           every connection slot is busy

``ClientGone`` is not an error to report: the client hung up, and there is nobody to answer.
"""

from __future__ import annotations

from iscsi_agent.errors import AgentError


class RequestError(AgentError):
    code = "request_error"

    def headers(self) -> dict[str, str]:
        """Response headers this refusal needs besides the JSON body."""
        return {}


class BadRequest(RequestError):
    code = "bad_request"


class MalformedRequest(BadRequest):
    code = "malformed_request"


class PeerNotAllowed(RequestError):
    code = "peer_not_allowed"

    def __init__(self, pid: int, uid: int, gid: int) -> None:
        super().__init__(
            f"peer uid {uid} gid {gid} is not in allowed_uids or allowed_gids", pid=pid, uid=uid, gid=gid
        )


class RouteNotFound(RequestError):
    code = "not_found"

    def __init__(self, path: str) -> None:
        super().__init__(f"no such path: {path}", path=path)


class MethodNotAllowed(RequestError):
    code = "method_not_allowed"

    def __init__(self, method: str, allow: tuple[str, ...]) -> None:
        super().__init__(f"{method} is not allowed here; use {', '.join(allow)}", method=method, allow=allow)
        self.allow = allow

    def headers(self) -> dict[str, str]:
        return {"Allow": ", ".join(self.allow)}


class RequestTimeout(RequestError):
    code = "request_timeout"

    def __init__(self, part: str, timeout: float) -> None:
        super().__init__(f"the request {part} did not arrive within {timeout:g}s", part=part, timeout=timeout)


class LengthRequired(RequestError):
    code = "length_required"


class BodyTooLarge(RequestError):
    code = "body_too_large"

    def __init__(self, content_length: int, limit: int) -> None:
        super().__init__(
            f"a body of {content_length} bytes is over the limit of {limit}",
            content_length=content_length,
            limit=limit,
        )


class HeadTooLarge(RequestError):
    code = "head_too_large"


class Overloaded(RequestError):
    code = "overloaded"

    def __init__(self) -> None:
        super().__init__("every connection slot is busy; try again")

    def headers(self) -> dict[str, str]:
        return {"Retry-After": "1"}


class ClientGone(Exception):
    """The client closed the connection before its request was complete."""
