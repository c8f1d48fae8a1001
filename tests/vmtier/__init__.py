"""The real-kernel test tier: boot a QEMU VM once, run the vm-marked tests inside, report them here."""
