"""iscsi-agent: host-side node agent that attaches NetApp ONTAP LUNs over iSCSI."""

__version__ = "0.1.0"
