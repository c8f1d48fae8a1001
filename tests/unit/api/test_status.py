"""One table maps every error class to its HTTP status; the nearest class in an error's MRO wins."""

from http import HTTPStatus

import pytest

from iscsi_agent.api import errors as api
from iscsi_agent.api.status import STATUS_BY_ERROR, error_body, internal_error_body, status_for
from iscsi_agent.array import errors as array
from iscsi_agent.config import ConfigError
from iscsi_agent.errors import AgentError
from iscsi_agent.host import errors as host
from iscsi_agent.service.errors import NoUsablePortal, TargetMismatch, WrongDevice
from iscsi_agent.service.igroup import IgroupConflict
from iscsi_agent.service_api import (
    NotAttached,
    ReconcileBusy,
    VolumeAmbiguous,
    VolumeInUse,
    VolumeNotFound,
)


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (api.BadRequest("volume: must not be empty"), 400),
        (api.MalformedRequest("Bad request syntax"), 400),
        (VolumeAmbiguous("lun0", ["/vol/a/lun0", "/vol/b/lun0"]), 400),
        (api.PeerNotAllowed(42, 1000, 1000), 403),
        (api.RouteNotFound("/v2"), 404),
        (VolumeNotFound("/vol/vol1/nope"), 404),
        (NotAttached("/vol/vol1/lun0"), 404),
        (api.MethodNotAllowed("PUT", ("GET",)), 405),
        (api.RequestTimeout("head", 10), 408),
        (VolumeInUse("/vol/vol1/lun0", ["/mnt/data"]), 409),
        (host.DeviceInUse("sdb is mounted on /mnt"), 409),
        (api.LengthRequired("send Content-Length"), 411),
        (api.BodyTooLarge(70000, 65536), 413),
        (api.HeadTooLarge("the request head is over 16384 bytes"), 431),
        (array.ArrayUnreachable("connection refused"), 502),
        (array.ArrayAuthFailed("401"), 502),
        (array.ArrayNotFound("svm", "svm1"), 502),
        (array.ArrayAlreadyMapped("lun-map-create", "13007", "already mapped"), 502),
        (host.IscsiLoginFailed("iscsiadm exit 19"), 502),
        (host.IscsiAuthFailed("iscsiadm exit 24"), 502),
        (host.IscsiConnectionFailed("iscsiadm exit 4"), 502),
        (NoUsablePortal("no LIF is routable"), 502),
        (TargetMismatch("discovery offers another target"), 502),
        (IgroupConflict("igroup openstack-h-1 holds other hosts' initiators"), 409),
        (ReconcileBusy(30.0), 503),
        (WrongDevice("LUN 3 holds another LUN's device, in use"), 409),
        (api.Overloaded(), 503),
        (array.ArrayTimeout("no answer in 30s"), 504),
        (host.IscsiTimeout("iscsiadm exit 8"), 504),
        (host.DeviceTimeout("no device for lun 3"), 504),
        (host.IscsidUnreachable("iscsiadm exit 20"), 502),
        (ConfigError("agent.conf [array] timeout"), 500),
        (AgentError("anything else"), 500),
    ],
)
def test_each_error_gets_the_status_of_its_nearest_class(error, status):
    assert status_for(error) == HTTPStatus(status)


def test_every_class_in_the_table_is_an_agent_error_with_a_stable_code():
    for cls in STATUS_BY_ERROR:
        assert issubclass(cls, AgentError) and cls.code.islower() and " " not in cls.code


def test_the_error_body_carries_code_message_and_details():
    assert error_body(api.BodyTooLarge(70000, 65536)) == {
        "error": {
            "code": "body_too_large",
            "message": "a body of 70000 bytes is over the limit of 65536",
            "details": {"content_length": 70000, "limit": 65536},
        }
    }


def test_a_bug_shows_the_client_nothing_of_its_internals():
    assert internal_error_body() == {
        "error": {"code": "internal_error", "message": "internal error; see the agent's log", "details": {}}
    }


def test_refusals_that_need_headers_carry_them():
    assert api.Overloaded().headers() == {"Retry-After": "1"}
    assert api.MethodNotAllowed("PUT", ("GET", "POST")).headers() == {"Allow": "GET, POST"}
    assert api.BadRequest("x").headers() == {}
