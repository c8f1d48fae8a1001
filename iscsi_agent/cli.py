"""The `iscsi-agent` command: without a command the daemon in the foreground; `check` checks and changes nothing.

Exit codes follow shared/design.md: 0 success, 1 a failed check or unusable configuration,
2 a usage error.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

import sdnotify

from iscsi_agent.array.connect import connect
from iscsi_agent.check import Checker, passed, render
from iscsi_agent.config import DEFAULT_PATH, Config, ConfigError, load_config
from iscsi_agent.daemon import Daemon, install_signal_handlers
from iscsi_agent.errors import AgentError
from iscsi_agent.findings import Status, Step
from iscsi_agent.host.command import SubprocessRunner
from iscsi_agent.host.paths import HostPaths
from iscsi_agent.host.routes import KernelRoutes

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def build_checker(host_root: Path) -> Checker:
    return Checker(
        paths=HostPaths(host_root), runner=SubprocessRunner(), connect=connect, routes=KernelRoutes()
    )


def run_daemon(config: Config) -> int:
    """The daemon in the foreground, logging to stderr (journald adds the time and the unit)."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    stop = threading.Event()
    install_signal_handlers(stop)
    try:
        return Daemon(config, sdnotify.SystemdNotifier(), os.environ, stop).run()
    except AgentError as exc:
        logging.getLogger("iscsi_agent").error("cannot serve: %s", exc)
        return EXIT_FAILED


def main(
    argv: Sequence[str] | None = None,
    *,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
    make_checker: Callable[[Path], Checker] = build_checker,
    daemon: Callable[[Config], int] = run_daemon,
) -> int:
    parser = argparse.ArgumentParser(prog="iscsi-agent", description="iSCSI node agent for NetApp ONTAP LUNs")
    parser.add_argument(
        "--config", type=Path, default=DEFAULT_PATH, help=f"configuration file (default {DEFAULT_PATH})"
    )
    commands = parser.add_subparsers(dest="command")
    check = commands.add_parser("check", help="check configuration, host and array; change nothing")
    check.add_argument("--config", type=Path, default=argparse.SUPPRESS, help="configuration file")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        if args.command is None:
            print(f"iscsi-agent: {exc}", file=err)
        else:
            print(render([Step("config", Status.FAILED, str(exc))]), file=out)
        return EXIT_FAILED
    if args.command is None:
        return daemon(config)
    steps = [Step("config", Status.OK, str(args.config)), *make_checker(config.agent.host_root).run(config)]
    print(render(steps), file=out)
    return EXIT_OK if passed(steps) else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
