"""Test-wide plugins: the host guard, the VM tier, and the ONTAP simulator fixtures."""

pytest_plugins = ["tests.hostguard", "tests.vmtier.plugin", "ontap_sim.pytest_plugin"]
