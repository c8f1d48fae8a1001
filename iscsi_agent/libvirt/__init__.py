"""The libvirt qemu hook: attaches the volumes a domain declares before it starts, detaches them after."""
