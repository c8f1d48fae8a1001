"""``python -m chaos [--seed N] [--steps M] [--api rest|zapi]``: boots the VM and runs the soak inside;
its lines stream here. The seed (random unless given) is printed first, so any run can be repeated.
Exit code: the soak's (1 on any invariant failure)."""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

from tests.vmtier.boot import find_kernel, missing_prerequisites, run_streaming

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_STEPS = 500
VM_TIMEOUT = 6 * 3600.0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m chaos", description=__doc__)
    parser.add_argument("--seed", type=int, default=None, help="random when not given; printed either way")
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    parser.add_argument("--api", choices=("rest", "zapi"), help="drawn from the seed when not given")
    parser.add_argument("--burst", default="8,16", help="the fewest and most calls of a burst, e.g. 3,6")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 1_000_000)
    print(
        f"chaos: seed {seed}, {args.steps} steps (rerun: make chaos SEED={seed} STEPS={args.steps})",
        flush=True,
    )
    missing = missing_prerequisites()
    if missing:
        print(f"chaos: missing {', '.join(missing)} (make deps installs them)", file=sys.stderr)
        return 2
    kernel = find_kernel()
    assert kernel is not None
    results = Path(tempfile.mkdtemp(prefix="iscsi-agent-chaos-"))
    guest = [
        sys.executable,
        "-m",
        "chaos.guest",
        str(results),
        "--seed",
        str(seed),
        "--steps",
        str(args.steps),
    ]
    if args.api:
        guest += ["--api", args.api]
    guest += ["--burst", args.burst]
    began = time.monotonic()
    code = run_streaming(kernel, results, ROOT, guest, VM_TIMEOUT)
    if code is None:
        print(f"chaos: the VM did not finish within {VM_TIMEOUT:g} s; logs in {results}", file=sys.stderr)
        return 1
    print(
        f"chaos: seed {seed} finished with exit code {code} after {time.monotonic() - began:.0f} s; "
        f"logs in {results}"
    )
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
