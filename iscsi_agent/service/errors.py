"""The attach service's own failures, under the ServiceError the API contract declares.

    ServiceError (iscsi_agent.service_api)
    ├── NoUsablePortal        no_usable_portal     no LIF of the SVM is routable from this host
    ├── TargetMismatch        target_mismatch      discovery through a LIF did not offer the SVM's target IQN
    ├── WrongDevice           wrong_device         the device at the LUN id is not that LUN and could not be
    │                                              replaced by the right one (or stays at 0 bytes)
    ├── DevicesLeftBehind     devices_left_behind  a rollback keeps a LUN's map: devices of it are still on
    │                                              the host (recovery removes them, then unmaps)
    └── IgroupConflict        igroup_conflict      (service.igroup) the agent's igroup name is taken by an
                                                   igroup it may not use

Errors of the array and host layers pass through unchanged, with the failed step added to their
message and details, so the API answers with their own codes (array_*, iscsi_*, device_*).
"""

from __future__ import annotations

from iscsi_agent.service_api import ServiceError


class NoUsablePortal(ServiceError):
    code = "no_usable_portal"


class TargetMismatch(ServiceError):
    code = "target_mismatch"


class WrongDevice(ServiceError):
    code = "wrong_device"


class DevicesLeftBehind(ServiceError):
    code = "devices_left_behind"
