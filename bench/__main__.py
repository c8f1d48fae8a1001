"""``python -m bench`` runs every benchmark: array calls on this machine, then the host-side figures
from one VM run (``bench.vm``). ``python -m bench array`` or ``python -m bench vm`` runs one of them;
``--quick`` samples less (a smoke run of the whole flow)."""

import sys

from bench import array_calls, vm

wanted = [arg for arg in sys.argv[1:] if arg != "--quick"] or ["array", "vm"]
code = 0
if "array" in wanted:
    code |= array_calls.main()
    print(flush=True)
if "vm" in wanted:
    code |= vm.main(quick="--quick" in sys.argv)
sys.exit(code)
