"""``python -m bench`` runs every benchmark: array calls and the reconciler (a pass over 2,000 devices,
a fleet's passes against one array) on this machine, then the host-side figures from one VM run
(``bench.vm``). ``python -m bench array``, ``reconcile`` or ``vm`` runs one of them;
``--quick`` samples less (a smoke run of the whole flow); ``--only=calls,daemon`` measures only those
phases in the VM (calls, single, parallel, multipath, daemon); ``--cycles=1000`` runs that many of the
daemon's attach/detach cycles (the memory check)."""

import sys

from bench import array_calls, reconcile, vm

wanted = [arg for arg in sys.argv[1:] if not arg.startswith("--")] or ["array", "reconcile", "vm"]
code = 0
if "array" in wanted:
    code |= array_calls.main()
    print(flush=True)
if "reconcile" in wanted:
    code |= reconcile.main()
    print(flush=True)
if "vm" in wanted:
    code |= vm.main([arg for arg in sys.argv[1:] if arg.startswith("--")])
sys.exit(code)
