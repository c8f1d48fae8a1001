"""Every error class the agent defines has the HTTP status it was given on purpose.

The classes are found by walking AgentError's subclasses after importing every module of the
package, so a new error cannot slip into 500 unnoticed: it fails here until its status is chosen.
An expected condition (a device held, changed, not the LUN, unreadable) is a 409 with the facts in
``details``; the array and the host's iSCSI stack failing are 502, their timeouts 504; 500 is left
for bugs, and for errors raised only where no request is served (start-up, the command-line client).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator
from http import HTTPStatus

import iscsi_agent
from iscsi_agent.api.status import status_for
from iscsi_agent.errors import AgentError

BUG = 500  # raised only at start-up or in the client: over the API it can only be a bug

EXPECTED: dict[str, int] = {
    "iscsi_agent.errors.AgentError": BUG,
    # the request itself
    "iscsi_agent.api.errors.RequestError": 400,
    "iscsi_agent.api.errors.BadRequest": 400,
    "iscsi_agent.api.errors.MalformedRequest": 400,
    "iscsi_agent.api.errors.PeerNotAllowed": 403,
    "iscsi_agent.api.errors.RouteNotFound": 404,
    "iscsi_agent.api.errors.MethodNotAllowed": 405,
    "iscsi_agent.api.errors.RequestTimeout": 408,
    "iscsi_agent.api.errors.LengthRequired": 411,
    "iscsi_agent.api.errors.BodyTooLarge": 413,
    "iscsi_agent.api.errors.HeadTooLarge": 431,
    "iscsi_agent.api.errors.Overloaded": 503,
    # the caller's volume
    "iscsi_agent.service_api.ServiceError": BUG,  # a service error with no status of its own
    "iscsi_agent.service_api.VolumeNotFound": 404,
    "iscsi_agent.service_api.NotAttached": 404,
    "iscsi_agent.service_api.VolumeAmbiguous": 400,
    "iscsi_agent.service_api.VolumeInUse": 409,
    "iscsi_agent.service_api.PathDown": 409,
    "iscsi_agent.service_api.ReconcileBusy": 503,
    # expected conditions of the host's devices: 409, the facts in details
    "iscsi_agent.host.errors.DeviceInUse": 409,
    "iscsi_agent.host.errors.DeviceChanged": 409,
    "iscsi_agent.host.errors.IdentityUnreadable": 409,
    "iscsi_agent.service.errors.WrongDevice": 409,
    "iscsi_agent.service.errors.DevicesLeftBehind": 409,
    "iscsi_agent.service.igroup.IgroupConflict": 409,
    # the array
    "iscsi_agent.array.errors.ArrayError": 502,
    "iscsi_agent.array.errors.ArrayUnreachable": 502,
    "iscsi_agent.array.errors.ArrayTlsError": 502,
    "iscsi_agent.array.errors.ArrayAuthFailed": 502,
    "iscsi_agent.array.errors.ArrayRedirected": 502,
    "iscsi_agent.array.errors.ArrayNotFound": 502,
    "iscsi_agent.array.errors.ArrayResponseError": 502,
    "iscsi_agent.array.errors.ArrayInvalidRequest": 502,
    "iscsi_agent.array.errors.ArrayApiError": 502,
    "iscsi_agent.array.errors.ArrayAlreadyExists": 502,
    "iscsi_agent.array.errors.ArrayAlreadyMapped": 502,
    "iscsi_agent.array.errors.ArrayNotMapped": 502,
    "iscsi_agent.array.errors.ArrayMappedElsewhere": 502,
    "iscsi_agent.array.errors.ArrayTimeout": 504,
    "iscsi_agent.service.errors.NoUsablePortal": 502,
    "iscsi_agent.service.errors.TargetMismatch": 502,
    # the host's iSCSI stack: iscsiadm and iscsid, the kernel, multipath
    "iscsi_agent.host.errors.HostError": 502,
    "iscsi_agent.host.errors.CommandError": 502,
    "iscsi_agent.host.errors.CommandNotFound": 502,
    "iscsi_agent.host.errors.CommandFailed": 502,
    "iscsi_agent.host.errors.InitiatorNameError": 502,
    "iscsi_agent.host.errors.IscsiadmError": 502,
    "iscsi_agent.host.errors.IscsiConnectionFailed": 502,
    "iscsi_agent.host.errors.IscsiAuthFailed": 502,
    "iscsi_agent.host.errors.IscsiLoginFailed": 502,
    "iscsi_agent.host.errors.IscsiTransportMissing": 502,
    "iscsi_agent.host.errors.IscsidUnreachable": 502,
    "iscsi_agent.host.errors.IscsiNoRecords": 502,
    "iscsi_agent.host.errors.IscsiSessionExists": 502,
    "iscsi_agent.host.errors.IscsiRecordError": 502,
    "iscsi_agent.host.errors.SysfsError": 502,
    "iscsi_agent.host.errors.MultipathError": 502,
    "iscsi_agent.host.errors.CommandTimeout": 504,
    "iscsi_agent.host.errors.IscsiTimeout": 504,
    "iscsi_agent.host.errors.WaitTimeout": 504,
    "iscsi_agent.host.errors.DeviceTimeout": 504,
    "iscsi_agent.host.errors.KernelCallTimeout": 504,
    # the journal: a write that fails (disk full, I/O) is the agent's state dir, not a bug
    "iscsi_agent.journal.errors.JournalIoError": 503,
    "iscsi_agent.journal.errors.JournalError": BUG,
    "iscsi_agent.journal.errors.JournalMisuse": BUG,
    "iscsi_agent.journal.errors.JournalUnreadable": BUG,  # start-up only
    "iscsi_agent.journal.errors.JournalTooNew": BUG,  # start-up only
    "iscsi_agent.journal.errors.JournalInUse": BUG,  # start-up only
    "iscsi_agent.journal.errors.JournalUnsafe": BUG,  # start-up only
    "iscsi_agent.config.ConfigError": BUG,  # start-up only
    "iscsi_agent.api.listener.ListenerError": BUG,  # start-up only
    "iscsi_agent.api.client.AgentUnreachable": BUG,  # the client's
    "iscsi_agent.api.client.AgentBadAnswer": BUG,  # the client's
    "iscsi_agent.api.client.AgentRefused": BUG,  # the client's
    "iscsi_agent.libvirt.domain.DomainXmlInvalid": BUG,  # the libvirt hook's, a client
    "iscsi_agent.libvirt.actions.HookRefused": BUG,  # the libvirt hook's, a client
    "iscsi_agent.api.client.AgentNotRoot": BUG,  # the client's
}


def every_error_class() -> Iterator[type[AgentError]]:
    """Imported at collection, outside the host guard: some modules read the host when imported
    (pyroute2 reads /proc/net/psched), which the agent's own start-up does as well."""
    for module in pkgutil.walk_packages(iscsi_agent.__path__, "iscsi_agent."):
        importlib.import_module(module.name)

    def below(cls: type[AgentError]) -> Iterator[type[AgentError]]:
        yield cls
        for sub in cls.__subclasses__():
            yield from below(sub)

    yield from below(AgentError)


ERROR_CLASSES = tuple(every_error_class())


def name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def instance(cls: type[AgentError]) -> AgentError:
    error = cls.__new__(cls)
    AgentError.__init__(error, "walked")
    return error


def test_every_error_class_answers_the_status_chosen_for_it():
    wrong = {}
    for cls in ERROR_CLASSES:
        assert name(cls) in EXPECTED, (
            f"{name(cls)} ({cls.code}): choose its HTTP status here and in api/status.py"
        )
        status = status_for(instance(cls))
        if status != HTTPStatus(EXPECTED[name(cls)]):
            wrong[name(cls)] = (status.value, EXPECTED[name(cls)])
    assert wrong == {}


def test_the_walk_finds_every_layers_errors():
    found = {name(cls) for cls in ERROR_CLASSES}
    assert set(EXPECTED) == found  # no class listed here that the agent no longer has
