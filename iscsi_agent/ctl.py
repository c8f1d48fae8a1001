"""`iscsi-agentctl`: the socket API from a shell: attach, detach, resize, list, status, reconcile.

Human lines by default, the agent's own JSON with ``--json``. Exit codes follow shared/design.md:
0 success, 1 an error (its code and message on stderr), 2 a usage error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TextIO

from iscsi_agent.api.client import DEFAULT_TIMEOUT, AgentClient, AgentRefused, Answer
from iscsi_agent.errors import AgentError

DEFAULT_SOCKET = "/run/iscsi-agent/agent.sock"
EXIT_OK, EXIT_ERROR = 0, 1


def main(argv: Sequence[str] | None = None, *, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    args = _parser().parse_args(argv)
    client = AgentClient(args.socket, args.timeout)
    try:
        answer: Answer = args.call(client, args)
    except AgentError as exc:
        if args.json and isinstance(exc, AgentRefused):
            print(exc.text, end="", file=out)
        print(f"iscsi-agentctl: {exc.code}: {exc}", file=err)
        return EXIT_ERROR
    if args.json:
        print(answer.text, end="", file=out)
    else:
        for line in args.render(answer, args):
            print(line, file=out)
    return EXIT_OK


_OPTIONS_LATE = dict.fromkeys(("socket", "json", "timeout"), argparse.SUPPRESS)


def _add_options(parser: argparse.ArgumentParser, defaults: Mapping[str, Any]) -> None:
    """The options go before or after the command; after it, SUPPRESS keeps unset ones from resetting."""
    parser.add_argument(
        "--socket", default=defaults["socket"], help=f"the agent's socket (default {DEFAULT_SOCKET})"
    )
    parser.add_argument(
        "--json", action="store_true", default=defaults["json"], help="print the agent's JSON"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=defaults["timeout"],
        help=f"seconds to wait for the agent (default {DEFAULT_TIMEOUT:g})",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="iscsi-agentctl", description="Ask the iSCSI node agent to attach or detach volumes"
    )
    _add_options(parser, {"socket": DEFAULT_SOCKET, "json": False, "timeout": DEFAULT_TIMEOUT})
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(
        name: str, summary: str, call: Callable[..., Answer], render: Callable[..., list[str]]
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=summary)
        _add_options(sub, _OPTIONS_LATE)
        sub.set_defaults(call=call, render=render)
        return sub

    attach = command("attach", "attach a volume (LUN path, name or UUID)", _attach, _render_attachment)
    attach.add_argument("volume")
    detach = command("detach", "detach a volume", _detach, _render_detachment)
    detach.add_argument("volume")
    detach.add_argument(
        "--force", action="store_true", help="detach even if in use or not known to the agent"
    )
    resize = command(
        "resize",
        "bring an attached volume's devices to its LUN's size on the array",
        _resize,
        _render_resized,
    )
    resize.add_argument("volume")
    command("list", "list the volumes attached by the agent", _list, _render_list)
    command("status", "the agent's health", _status, _render_status)
    reconcile = command("reconcile", "run a reconciler pass now", _reconcile, _render_actions)
    reconcile.add_argument("--dry-run", action="store_true", help="report what it would do, change nothing")
    return parser


def _attach(client: AgentClient, args: argparse.Namespace) -> Answer:
    return client.attach(args.volume)


def _detach(client: AgentClient, args: argparse.Namespace) -> Answer:
    return client.detach(args.volume, force=args.force)


def _resize(client: AgentClient, args: argparse.Namespace) -> Answer:
    return client.resize(args.volume)


def _list(client: AgentClient, args: argparse.Namespace) -> Answer:
    return client.attachments()


def _status(client: AgentClient, args: argparse.Namespace) -> Answer:
    return client.health()


def _reconcile(client: AgentClient, args: argparse.Namespace) -> Answer:
    return client.reconcile(dry_run=args.dry_run)


# -- human output: the agent's JSON read leniently, so an older or newer agent still prints ---------


def _render_attachment(answer: Answer, args: argparse.Namespace) -> list[str]:
    payload = answer.payload
    verb = "attached" if answer.status == 201 else "already attached"
    return [
        f"{verb} {payload.get('volume')}",
        f"  device     {payload.get('device')}",
        f"  wwid       {payload.get('wwid')}",
        f"  lun        {payload.get('lun_id')} on {payload.get('target_iqn')}",
        f"  portals    {', '.join(map(str, payload.get('portals') or [])) or '-'}",
        f"  multipath  {'yes' if payload.get('multipath') else 'no'}",
    ]


def _render_detachment(answer: Answer, args: argparse.Namespace) -> list[str]:
    return [f"detached {answer.payload.get('volume')}"]


def _render_resized(answer: Answer, args: argparse.Namespace) -> list[str]:
    payload = answer.payload
    return [f"resized {payload.get('volume')}: {payload.get('device')} is {payload.get('size_bytes')} bytes"]


def _render_list(answer: Answer, args: argparse.Namespace) -> list[str]:
    rows = [
        [
            str(item.get("volume")),
            str(item.get("device")),
            str(item.get("lun_id")),
            ", ".join(map(str, item.get("portals") or [])),
            str(item.get("state", "attached")),  # an agent before states listed attached volumes only
        ]
        for item in answer.payload.get("attachments") or []
    ]
    if not rows:
        return ["no attachments"]
    return _table(["VOLUME", "DEVICE", "LUN", "PORTALS", "STATE"], rows)


def _render_status(answer: Answer, args: argparse.Namespace) -> list[str]:
    payload = answer.payload
    array = payload.get("array")
    if not isinstance(array, dict):
        array = {}
    if array.get("reachable"):
        array_text = f"reachable ({array.get('api') or 'api not detected'})"
    else:
        array_text = f"unreachable ({array.get('error') or 'no error recorded'})"
    return [
        f"status          {payload.get('status')}",
        f"array           {array_text}",
        f"sessions        {payload.get('sessions')}",
        f"attachments     {payload.get('attachments')}",
        f"last reconcile  {payload.get('last_reconcile') or 'never'}",
        *(f"problem         {problem}" for problem in payload.get("problems") or ()),
    ]


def _render_actions(answer: Answer, args: argparse.Namespace) -> list[str]:
    actions = answer.payload.get("actions") or []
    if not actions:
        return ["nothing to do"]
    undone = "would" if args.dry_run else "failed"
    rows = [
        [
            "done" if item.get("done") else undone,
            str(item.get("action")),
            str(item.get("target")),
            str(item.get("reason")),
        ]
        for item in actions
    ]
    return _table(["", "ACTION", "TARGET", "REASON"], rows)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(len(header))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]


if __name__ == "__main__":
    sys.exit(main())
