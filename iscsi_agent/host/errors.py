"""The host layer's errors, one shallow tree under AgentError.

HostError                      host_error
├── InitiatorNameError         initiator_name_invalid   (file, line)
├── IscsiadmError              iscsiadm_failed          (argv, exit_code, stderr; secrets masked)
│   ├── IscsiTimeout           iscsi_timeout            exit 8, or the program hung
│   ├── IscsiAuthFailed        iscsi_auth_failed        exit 24
│   ├── IscsiLoginFailed       iscsi_login_failed       exit 19
│   ├── IscsiTransportMissing  iscsi_transport_missing  exit 12
│   ├── IscsidUnreachable      iscsid_unreachable       exit 20
│   ├── IscsiNoRecords         iscsi_no_records         exit 21 where it is a fault
│   └── IscsiSessionExists     iscsi_session_exists     exit 15 where it is a fault
├── SysfsError                 sysfs_error              a kernel attribute could not be read or written
├── WaitTimeout                timeout                  (waited_for, timeout, seen)
│   └── DeviceTimeout          device_timeout           (host, lun, step reached)
├── DeviceInUse                device_in_use            (device, holder)
└── MultipathError             multipath_failed
"""

from __future__ import annotations

from iscsi_agent.errors import AgentError


class HostError(AgentError):
    code = "host_error"


class InitiatorNameError(HostError):
    code = "initiator_name_invalid"


class IscsiadmError(HostError):
    code = "iscsiadm_failed"


class IscsiTimeout(IscsiadmError):
    code = "iscsi_timeout"


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


class SysfsError(HostError):
    code = "sysfs_error"


class WaitTimeout(HostError):
    code = "timeout"


class DeviceTimeout(WaitTimeout):
    code = "device_timeout"


class DeviceInUse(HostError):
    code = "device_in_use"


class MultipathError(HostError):
    code = "multipath_failed"
