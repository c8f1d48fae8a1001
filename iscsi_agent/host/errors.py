"""The host layer's errors, one shallow tree under AgentError.

AgentError
└── HostError                      host_error
    ├── CommandError               command_failed           could not start the program (argv masked)
    │   ├── CommandNotFound        command_not_found        missing or not executable (argv)
    │   ├── CommandTimeout         command_timeout          killed at its deadline (argv, timeout)
    │   └── CommandFailed          command_failed           ran and exited non-zero (argv, exit_code, stderr)
    ├── InitiatorNameError         initiator_name_invalid   (file, line)
    ├── IscsiadmError              iscsiadm_failed          (argv, exit_code, stderr)
    │   ├── IscsiTimeout           iscsi_timeout            exit 8, 11 or 33, or iscsiadm itself hung
    │   ├── IscsiConnectionFailed  iscsi_connection_failed  exit 4: could not connect to the portal
    │   ├── IscsiAuthFailed        iscsi_auth_failed        exit 24
    │   ├── IscsiLoginFailed       iscsi_login_failed       exit 19 (fatal) or 5 (login broke off)
    │   ├── IscsiTransportMissing  iscsi_transport_missing  exit 12
    │   ├── IscsidUnreachable      iscsid_unreachable       exit 20, or 18 (lost mid-request)
    │   ├── IscsiNoRecords         iscsi_no_records         exit 21 where it is a fault
    │   ├── IscsiSessionExists     iscsi_session_exists     exit 15 where it is a fault
    │   └── IscsiRecordError       iscsi_record_failed      a record file the agent writes itself (file or name)
    ├── SysfsError                 sysfs_error              a kernel attribute could not be read or written
    ├── WaitTimeout                timeout                  (waited_for, timeout, seen)
    │   ├── DeviceTimeout          device_timeout           (host, lun, step reached)
    │   └── KernelCallTimeout      kernel_call_timeout      (device, step; the call is left blocked)
    ├── DeviceInUse                device_in_use            (device, holder)
    ├── DeviceChanged              device_changed           (device, address, changed, expected, found)
    ├── IdentityUnreadable         identity_unreadable      (device, address, unreadable)
    └── MultipathError             multipath_failed

iscsiadm's other exit codes (iscsiadm(8), EXIT STATUS) raise IscsiadmError itself, with the code's
meaning in the message. The Command* errors come from ``host.command``'s runner; the modules that
run a program turn them into their own errors where they mean more (IscsiTimeout for a hung iscsiadm).
"""

from __future__ import annotations

from collections.abc import Sequence

from iscsi_agent.errors import AgentError


class HostError(AgentError):
    code = "host_error"


class CommandError(HostError):
    """A program could not be run, or ran and failed."""

    code = "command_failed"


class CommandNotFound(CommandError):
    code = "command_not_found"


class CommandTimeout(CommandError):
    code = "command_timeout"


class CommandFailed(CommandError):
    """The program ran and exited non-zero; callers map exit codes to their own errors."""

    def __init__(self, argv: Sequence[str], exit_code: int, stderr: str, stdout: str = "") -> None:
        super().__init__(
            f"{' '.join(argv)} exited {exit_code}: {stderr.strip() or stdout.strip() or 'no output'}",
            argv=list(argv),
            exit_code=exit_code,
            stderr=stderr,
        )
        self.argv = list(argv)
        self.exit_code = exit_code
        self.stderr = stderr
        self.stdout = stdout


class InitiatorNameError(HostError):
    code = "initiator_name_invalid"


class IscsiadmError(HostError):
    code = "iscsiadm_failed"


class IscsiTimeout(IscsiadmError):
    code = "iscsi_timeout"


class IscsiConnectionFailed(IscsiadmError):
    code = "iscsi_connection_failed"


class IscsiAuthFailed(IscsiadmError):
    code = "iscsi_auth_failed"


class IscsiLoginFailed(IscsiadmError):
    code = "iscsi_login_failed"


class IscsiTransportMissing(IscsiadmError):
    code = "iscsi_transport_missing"


class IscsidUnreachable(IscsiadmError):
    code = "iscsid_unreachable"


class IscsiNoRecords(IscsiadmError):
    code = "iscsi_no_records"


class IscsiSessionExists(IscsiadmError):
    code = "iscsi_session_exists"


class IscsiRecordError(IscsiadmError):
    """A node or discovery record file could not be written as asked (``host.iscsi_db``)."""

    code = "iscsi_record_failed"


class SysfsError(HostError):
    code = "sysfs_error"


class WaitTimeout(HostError):
    code = "timeout"


class DeviceTimeout(WaitTimeout):
    code = "device_timeout"


class KernelCallTimeout(WaitTimeout):
    """A flush, rescan or delete that did not return in time; its thread is left blocked in the kernel."""

    code = "kernel_call_timeout"


class DeviceInUse(HostError):
    code = "device_in_use"


class DeviceChanged(HostError):
    """The SCSI address no longer holds the device (name, number, node or identity) a removal checked."""

    code = "device_changed"


class IdentityUnreadable(HostError):
    """The device's identity could not be read: never a reason to act on it, always a reason not to."""

    code = "identity_unreadable"


class MultipathError(HostError):
    code = "multipath_failed"
