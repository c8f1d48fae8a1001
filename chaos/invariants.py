"""What must hold after every settle (all calls answered, a reconcile pass): each check returns what it
found wrong, one sentence per finding, and counts itself."""

from __future__ import annotations

from typing import Any

from chaos import host
from chaos.client import Answer
from chaos.context import Context
from chaos.world import host_igroups, host_maps, serial
from tests.vmtier.daemon import open_fds, proc_status

MAX_FDS = 256
MAX_THREADS = 64
MAX_RSS_GROWTH_KIB = 64 * 1024


def bare_wwid(text: str) -> str:
    """A WWID as ``600a0980…``, whether written naa.600a…, 3600a… or 600a…."""
    text = text.removeprefix("naa.")
    return text[1:] if text.startswith("3600a0980") else text


def answers(ctx: Context, taken: list[Answer]) -> list[str]:
    found = [f"{answer}: {answer.problem}" for answer in taken if answer.problem]
    if not ctx.killed:
        found += [
            f"{answer}: no answer while the agent was not being killed" for answer in taken if answer.cut
        ]
    return found


def identity(ctx: Context, attached: list[dict[str, Any]]) -> list[str]:
    """Every device the journal lists that exists answers, fresh, with its own LUN's WWID."""
    found = []
    mapped = host_maps(ctx.rig.sim, ctx.world.initiator)
    for attachment in attached:
        node = host.node_of(attachment["device"])
        if node is None:
            continue  # gone with an unmap behind the back; the accounting judges what is left
        volume, wwid = attachment["volume"], bare_wwid(attachment["wwid"])
        if volume in mapped and wwid != host.wwid_of_serial(serial(ctx.rig.sim, volume)):
            found.append(f"{volume}: the journal's WWID {wwid} is not its LUN's")
        for disk in host.slaves(node):
            fresh = host.fresh_wwid(disk)
            if fresh is not None and fresh != wwid:
                found.append(
                    f"{volume}: {attachment['device']} ({node}, path {disk}) answers as {fresh}, not {wwid}"
                )
    return found


def data(ctx: Context, attached: list[dict[str, Any]]) -> list[str]:
    """Each marker written at attach reads back from the volume's device, and its volume is still attached."""
    found = []
    by_volume = {a["volume"]: a for a in attached}
    for volume, marked in sorted(ctx.world.markers.items()):
        attachment = by_volume.get(volume)
        if attachment is None:
            found.append(
                f"{volume}: handed out (marker {marked.generation}) and no longer listed as attached"
            )
            del ctx.world.markers[volume]
            continue
        if host.node_of(attachment["device"]) is None:
            found.append(f"{volume}: attached and mapped, but its device {attachment['device']} is gone")
            continue
        try:
            block = host.read_block(attachment["device"])
        except OSError as exc:
            found.append(f"{volume}: reading its marker from {attachment['device']} failed: {exc}")
            continue
        if block != host.marker(ctx.world.seed, volume, marked.generation):
            found.append(
                f"{volume}: the marker written to {marked.device} does not read back from {attachment['device']}"
            )
    return found


def accounting(ctx: Context, attached: list[dict[str, Any]]) -> list[str]:
    """No map, igroup, session, disk, dm map or link that the journal and the array cannot account for."""
    found = []
    sim, initiator = ctx.rig.sim, ctx.world.initiator
    journal = {a["volume"] for a in attached}
    mapped = host_maps(sim, initiator)
    for path in sorted(set(mapped) - journal - ctx.world.operator_maps):
        found.append(
            f"array: {path} mapped to this host at LUN {mapped[path]}, neither attached nor an operator's map"
        )
    for path in sorted(ctx.world.operator_maps - set(mapped)):
        found.append(f"array: the operator's map of {path} is gone (the agent removed a map it did not make)")
    igroups = host_igroups(sim, initiator)
    if len(igroups) > 1:
        found.append(f"array: {len(igroups)} igroups hold this host's initiator: {igroups}")
    wanted = {
        bare_wwid(a["wwid"]) for a in attached if a["volume"] in mapped
    }  # an attachment whose LUN was unmapped behind the back keeps no device
    held = ctx.world.held_nodes()
    held_disks = {
        disk for node in held for disk in (host.slaves(node) if host.node_of(f"/dev/{node}") else [])
    }
    for disk in host.disks():
        if disk in held_disks:
            continue
        fresh = host.fresh_wwid(disk)
        if fresh not in wanted:
            found.append(
                f"host: disk {disk} answers as {fresh}, which no attachment of a mapped LUN accounts for"
            )
    for node, name in sorted(host.multipath_maps().items()):
        if node not in held and bare_wwid(name) not in wanted:
            found.append(f"host: multipath map {name} ({node}) that no attachment accounts for")
    found += [f"host: udev link {link} to a node that is gone" for link in host.dangling_links()]
    portals = {portal for a in attached for portal in a.get("portals", [])}
    for session in host.sessions():
        if not session.disks and session.portal not in portals:
            found.append(f"host: session {session.sid} to {session.portal} carries no disk and no attachment")
    return found


def resources(ctx: Context, ready_rss_kib: int) -> list[str]:
    pid = ctx.rig.pid
    status, fds = proc_status(pid), open_fds(pid)
    found = []
    if fds > MAX_FDS:
        found.append(f"agent: {fds} open fds (bound {MAX_FDS})")
    if status["Threads"] > MAX_THREADS:
        found.append(f"agent: {status['Threads']} threads (bound {MAX_THREADS})")
    if status["VmRSS"] - ready_rss_kib > MAX_RSS_GROWTH_KIB:
        found.append(
            f"agent: RSS {status['VmRSS']} KiB, {status['VmRSS'] - ready_rss_kib} KiB over its start"
        )
    return found
