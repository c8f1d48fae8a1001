"""Everything the agent does on the compute host: iscsiadm, sysfs, devices, multipath."""
