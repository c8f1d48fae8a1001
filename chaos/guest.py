"""Inside the VM: the iSCSI stack, then the soak; its report is printed and written for the host.

Usage: python -m chaos.guest RESULTS_DIR --seed N --steps M [--api rest|zapi] [--burst FEWEST,MOST]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from chaos.soak import run
from tests.vmtier.guest import start_stack


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="chaos.guest")
    parser.add_argument("results", type=Path)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--api", choices=("rest", "zapi"))
    parser.add_argument("--burst", default="8,16")
    args = parser.parse_args(argv)
    fewest, most = (int(n) for n in args.burst.split(","))
    with (args.results / "stack.log").open("w") as log:
        start_stack(log)
    report = run(args.seed, args.steps, args.results, args.api, burst=(fewest, most))
    print(report.render(), flush=True)
    (args.results / "report.json").write_text(
        json.dumps(
            {"seed": report.seed, "steps": report.steps, "failures": [vars(f) for f in report.failures]}
        )
    )
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
