"""A seeded chaos soak of the real daemon in the VM: parallel attaches and detaches, kills, array and
portal faults and changes behind the agent's back, with the invariants checked after each settle."""
