"""The bench's VM deadline leaves room for the memory check's cycles: with 1,000 asked for and the
VM's usual hour, a run was cut off before it could report anything."""

from bench import daemon_figures
from bench.vm import VM_TIMEOUT, vm_timeout


def test_the_vm_deadline_covers_the_cycles_asked_for_on_top_of_the_usual_run():
    asked = vm_timeout(["--only=daemon", "--cycles=1000"])
    assert asked - VM_TIMEOUT >= (1000 - daemon_figures.CYCLES) * daemon_figures.CYCLE_SECONDS


def test_without_more_cycles_the_deadline_is_the_usual_one():
    assert vm_timeout([]) == vm_timeout(["--quick"]) == VM_TIMEOUT
