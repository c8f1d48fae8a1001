"""The soak's moves. Each draws what it does from the seeded random source first, then does it;
calls to the daemon go through the client (every answer is judged at the settle), and what the
soak changes behind the agent's back is recorded in the world so the invariants can account for it."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from chaos import host
from chaos.client import Answer
from chaos.context import Context
from chaos.rig import SPARES, VOLUMES
from chaos.world import Marked, host_maps, map_into, own_igroup, serial, unmap

PORTALS = ("127.0.0.1", "127.0.0.2")


def handed_out(ctx: Context, volume: str, answer: Answer) -> None:
    """An attach answered with a device: it must be that LUN, fresh from the device; then mark it."""
    body = answer.body if isinstance(answer.body, dict) else {}
    device = str(body.get("device", ""))
    expected = host.wwid_of_serial(serial(ctx.rig.sim, volume))
    ctx.checks["identity"] += 1
    node = host.node_of(device)
    if node is None:
        ctx.fail(
            "identity", f"attach {volume} answered {answer.status} with {device!r}, which does not exist"
        )
        return
    seen = {disk: host.fresh_wwid(disk) for disk in host.slaves(node)}
    wrong = {disk: wwid for disk, wwid in seen.items() if wwid != expected}
    if not seen or wrong:
        ctx.fail(
            "identity",
            f"attach {volume} handed out {device} ({node}) whose paths answer {wrong or seen}, not {expected}",
        )
        return
    if volume not in ctx.world.markers:
        generation = ctx.world.next_generation()
        try:
            host.write_block(device, host.marker(ctx.world.seed, volume, generation))
        except FileNotFoundError:  # a hypervisor opening it now would fail the same way
            ctx.fail(
                "identity",
                f"attach {volume} handed out {device}, gone when opened: {host.vanished(device, node)}",
            )
            return
        ctx.world.markers[volume] = Marked(generation, device)


def one_call(ctx: Context, volume: str, attach: bool) -> Answer:
    if attach:
        answer = ctx.client.attach(volume)
        if answer.status in (200, 201):
            handed_out(ctx, volume, answer)
        elif answer.status == 0:
            ctx.world.markers.pop(volume, None)  # cut: whatever happened, the marker proves nothing now
        return answer
    answer = ctx.client.detach(volume)
    if answer.status in (0, 200):
        ctx.world.markers.pop(volume, None)
    return answer


def draw_burst(ctx: Context) -> list[tuple[str, bool]]:
    count = ctx.rng.randint(*ctx.burst)
    return [(volume, ctx.rng.random() < 0.6) for volume in ctx.rng.sample(VOLUMES, count)]


def run_burst(ctx: Context, calls: list[tuple[str, bool]], during: Callable[[], None] | None = None) -> str:
    """The calls in parallel; ``during`` runs while they are in flight."""
    with ThreadPoolExecutor(len(calls)) as pool:
        futures: list[Future[Answer]] = [pool.submit(one_call, ctx, v, a) for v, a in calls]
        if during is not None:
            during()
        answers = [future.result() for future in futures]
    attaches = sum(1 for _, attach in calls if attach)
    tally: dict[str, int] = {}
    for answer in answers:
        key = (
            answer.cut.split(":")[0]
            if answer.cut
            else f"{answer.status}{' ' + answer.code if answer.code else ''}"
        )
        tally[key] = tally.get(key, 0) + 1
    return f"{attaches} attach, {len(calls) - attaches} detach -> " + ", ".join(
        f"{k} x{n}" for k, n in sorted(tally.items())
    )


def burst(ctx: Context) -> str:
    return run_burst(ctx, draw_burst(ctx))


def reconcile(ctx: Context) -> str:
    dry_run = ctx.rng.random() < 0.25
    answer = ctx.client.reconcile(dry_run=dry_run)
    count = len(answer.body.get("actions", [])) if isinstance(answer.body, dict) else 0
    return f"{'dry run' if dry_run else 'pass'} -> {answer} ({count} actions)"


def kill(ctx: Context) -> str:
    calls = draw_burst(ctx)
    delay = ctx.rng.uniform(0.2, 8.0)

    def kill_later() -> None:
        time.sleep(delay)
        ctx.rig.kill_agent()

    ctx.killed = True
    said = run_burst(ctx, calls, during=kill_later)
    figures = ctx.rig.start_agent(ctx.rig.multipath)
    return f"SIGKILL after {delay:.1f} s during {said}; up again in {figures.get('answering_s', 0):.1f} s"


def unmap_behind(ctx: Context) -> str:
    mapped = sorted(host_maps(ctx.rig.sim, ctx.world.initiator))
    if not mapped:
        return "nothing mapped to unmap"
    path = ctx.rng.choice(mapped)
    lun_id = unmap(ctx.rig.sim, path, ctx.world.initiator)
    ctx.world.markers.pop(path, None)  # the mirror drops the LU's data with its map
    ctx.world.operator_maps.discard(path)
    return f"array: {path} unmapped from this host (was LUN {lun_id})"


def reuse_id(ctx: Context) -> str:
    mapped = host_maps(ctx.rig.sim, ctx.world.initiator)
    volumes = sorted(path for path in mapped if path in VOLUMES)
    spares = sorted(set(SPARES) - set(mapped))
    igroup = own_igroup(ctx.rig.sim, ctx.world.initiator)
    if not volumes or not spares or igroup is None:
        return "no mapped volume or free spare to reuse an id with"
    path, spare = ctx.rng.choice(volumes), ctx.rng.choice(spares)
    lun_id = unmap(ctx.rig.sim, path, ctx.world.initiator)
    ctx.world.markers.pop(path, None)
    ctx.world.operator_maps.discard(path)
    map_into(ctx.rig.sim, spare, igroup, lun_id)
    ctx.world.operator_maps.add(spare)
    return f"array: {path} unmapped, LUN {lun_id} given to {spare} in {igroup}"


def premap(ctx: Context) -> str:
    mapped = host_maps(ctx.rig.sim, ctx.world.initiator)
    listed = ctx.client.attachments()
    # not a volume the journal lists: the agent recorded its own map of it, and ONTAP cannot tell two
    # maps of one LUN in one igroup apart, so the agent's detach may rightly remove that one
    attached = (
        {a["volume"] for a in listed.body.get("attachments", [])} if listed.status == 200 else set(VOLUMES)
    )
    free = sorted(set(VOLUMES) - set(mapped) - attached)
    igroup = own_igroup(ctx.rig.sim, ctx.world.initiator)
    if not free or igroup is None:
        return "no unmapped, unattached volume or no igroup to map into"
    path = ctx.rng.choice(free)
    lun_id = map_into(ctx.rig.sim, path, igroup)
    ctx.world.operator_maps.add(path)
    return f"array: an operator maps {path} to {igroup} as LUN {lun_id}"


def portal_down(ctx: Context) -> str:
    address = ctx.rng.choice(PORTALS)
    calls = draw_burst(ctx)
    tgt = ctx.rig.tgt
    tgt.remove_portal(address)
    dropped = tgt.connections(ctx.rig.tid)
    for session, connection in dropped:
        tgt.drop_connection(ctx.rig.tid, session, connection)
    try:
        said = run_burst(ctx, calls)
    finally:
        tgt.add_portal(address)
    return f"tgtd portal {address}:3260 down ({len(dropped)} connections cut) during {said}; back up"


def array_fault(ctx: Context) -> str:
    kind, params = ctx.rng.choice(
        [
            ("timeout", {"seconds": 3}),
            ("latency", {"seconds": 10}),  # past the agent's 8 s read timeout
            ("http_status", {"status": 500}),
            ("http_status", {"status": 503}),
            ("http_status", {"status": 502, "applied": True}),
            ("reset", {}),
            ("lost_reply", {}),
            ("broken_reply", {}),
        ]
    )
    rest = ctx.rig.api == "rest"
    match = ctx.rng.choice(
        [
            "*",
            "POST /api/protocols/san/lun-maps",
            "DELETE /api/protocols/san/lun-maps",
            "GET /api/protocols/san/lun-maps",
        ]
        if rest
        else ["*", "lun-map", "lun-unmap", "lun-map-list-info"]
    )
    times = ctx.rng.randint(1, 3)
    ctx.rig.sim.faults.inject(match, kind, times=times, **params)
    ctx.faults[kind] += 1
    said = run_burst(ctx, draw_burst(ctx))
    return f"array fault {kind} {params or ''} x{times} on {match!r} during {said}"


def hold(ctx: Context) -> str:
    answer = ctx.client.attachments()
    attached = answer.body.get("attachments", []) if isinstance(answer.body, dict) else []
    held = {holder.volume for holder in ctx.world.holders}
    usable = sorted(
        (a["volume"], a["device"]) for a in attached if a["volume"] not in held and host.node_of(a["device"])
    )
    if not usable:
        return "nothing attached to hold"
    volume, device = ctx.rng.choice(usable)
    until = ctx.step + ctx.rng.randint(1, 6)
    ctx.world.holders.append(host.Holder(device, volume, until))
    return f"{volume} ({device}) held open until step {until}"


ACTIONS: dict[str, tuple[int, Callable[[Context], str]]] = {
    "burst": (30, burst),
    "reconcile": (6, reconcile),
    "kill": (8, kill),
    "unmap": (6, unmap_behind),
    "reuse_id": (5, reuse_id),
    "premap": (3, premap),
    "portal_down": (6, portal_down),
    "array_fault": (10, array_fault),
    "hold": (6, hold),
}


def draw(ctx: Context) -> str:
    names = list(ACTIONS)
    return ctx.rng.choices(names, weights=[ACTIONS[name][0] for name in names])[0]
