"""The fault points of an attach, a detach and of start-up recovery, in the order an operation reaches
them (``iscsi_agent.faults``): the unit tier and the VM tier kill the agent at each of these."""

ATTACH_POINTS = [
    "attach.begun",
    "attach.igroup.intended",
    "attach.igroup.done",
    "attach.map.intended",
    "attach.map.done",
    "attach.login.intended",
    "attach.login.done",
    "attach.scan.intended",
    "attach.scan.done",
    "attach.handed_out.intended",
    "attach.handed_out.done",
]
DETACH_POINTS = [
    "detach.begun",
    "detach.remove_paths.intended",
    "detach.remove_paths.done",
    "detach.unmap.intended",
    "detach.unmap.done",
    "detach.logout.intended",
    "detach.logout.done",
]
RECOVERY_POINTS = [
    "recovery.settled",
    "recovery.remove_paths.intended",
    "recovery.remove_paths.done",
    "recovery.unmap.intended",
    "recovery.unmap.done",
    "recovery.logout.intended",
    "recovery.logout.done",
]
