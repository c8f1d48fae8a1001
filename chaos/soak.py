"""The soak's loop: draw an action from the seed, do it, settle, check every invariant; two phases,
multipath off then on; a report of counts and failures at the end. ``run`` is what ``make chaos`` and
the VM tier's short seeds call."""

from __future__ import annotations

import random
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaos import actions, host, invariants
from chaos.client import Answer, Client
from chaos.context import Context, Failure
from chaos.rig import Rig
from chaos.world import World
from tests.vm.cleanup import reset_initiator
from tests.vmtier.daemon import rss_kib

CHECKS = ("answers", "identity", "data", "accounting", "resources")  # and "soak": the run's own errors
SESSION_WAIT = 90.0


@dataclass
class Report:
    seed: int
    steps: int
    api: str
    seconds: float = 0.0
    actions: Counter[str] = field(default_factory=Counter)
    calls: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    checks: Counter[str] = field(default_factory=Counter)
    failures: list[Failure] = field(default_factory=list)

    def failed(self, check: str) -> list[Failure]:
        return [failure for failure in self.failures if failure.check == check]

    def render(self) -> str:
        lines = [
            f"chaos: seed {self.seed}, {self.steps} steps, array API {self.api}, {self.seconds:.0f} s",
            "actions: " + ", ".join(f"{name} {n}" for name, n in sorted(self.actions.items())),
            "faults injected: " + (", ".join(f"{k} {n}" for k, n in sorted(self.faults.items())) or "none"),
            "calls: " + ", ".join(f"{k}: {n}" for k, n in sorted(self.calls.items())),
            "invariant checks: "
            + ", ".join(f"{c} {self.checks[c]} ({len(self.failed(c))} failed)" for c in sorted(self.checks)),
        ]
        distinct: dict[tuple[str, str], list[int]] = {}
        for failure in self.failures:
            distinct.setdefault((failure.check, failure.message), []).append(failure.step)
        lines.append(f"failures: {len(self.failures)} ({len(distinct)} distinct)")
        for (check, message), steps in distinct.items():
            more = f" (again at {len(steps) - 1} later steps)" if len(steps) > 1 else ""
            lines.append(f"  seed {self.seed} step {steps[0]} [{check}] {message}{more}")
        if self.failures:
            lines.append(f"rerun: make chaos SEED={self.seed} STEPS={self.steps}")
        return "\n".join(lines)


def settle(ctx: Context) -> list[Answer]:
    """Faults off, the stack quiet, sessions back, one reconcile pass; the pass's answer is judged too."""
    ctx.rig.sim.faults.clear()
    host.settle_udev()
    deadline = time.monotonic() + SESSION_WAIT
    while time.monotonic() < deadline and any(
        Path(f"/sys/class/iscsi_session/session{s.sid}/state").read_text().strip() != "LOGGED_IN"
        for s in host.sessions()
    ):
        time.sleep(1)
    for _ in range(3):
        if ctx.client.reconcile().status != 503:
            break
        time.sleep(2)
    host.settle_udev()
    return ctx.client.take()


def check(ctx: Context, taken: list[Answer], ready_rss_kib: int) -> None:
    listed = ctx.client.attachments()
    attached: list[dict[str, Any]] = listed.body.get("attachments", []) if listed.status == 200 else []
    taken = [*taken, *ctx.client.take()]
    found = {
        "answers": invariants.answers(ctx, taken),
        "identity": invariants.identity(ctx, attached),
        "data": invariants.data(ctx, attached),
        "accounting": invariants.accounting(ctx, attached),
        "resources": invariants.resources(ctx, ready_rss_kib),
    }
    if not ctx.rig.agent_alive():
        found["answers"].append("the agent died without being killed")
    for name in CHECKS:
        ctx.checks[name] += 1
        for message in found[name]:
            ctx.fail(name, message)


def release_holders(ctx: Context, every: bool = False) -> None:
    for holder in list(ctx.world.holders):
        if every or holder.until_step <= ctx.step:
            holder.release()
            ctx.world.holders.remove(holder)


def switch_phase(ctx: Context, multipath: bool) -> str:
    """Holders let go, everything detached, the agent started again with the other multipath setting."""
    release_holders(ctx, every=True)
    listed = ctx.client.attachments()
    for attachment in listed.body.get("attachments", []) if listed.status == 200 else []:
        ctx.client.detach(attachment["volume"], force=True)
    ctx.world.markers.clear()
    ctx.rig.stop_agent()
    ctx.rig.start_agent(multipath)
    return f"multipath {'on' if multipath else 'off'}: everything detached, the agent started again"


def take(ctx: Context, name: str) -> str:
    if name == "multipath_switch":
        return switch_phase(ctx, not ctx.rig.multipath)
    return actions.ACTIONS[name][1](ctx)


def run(
    seed: int, steps: int, logs: Path, api: str | None = None, burst: tuple[int, int] = (8, 16)
) -> Report:
    rng = random.Random(seed)
    api = api or rng.choice(["rest", "zapi"])
    rig = Rig(api, logs)
    report = Report(seed, steps, api)
    ctx = Context(rig, Client(rig.socket), World(seed, rig.initiator), rng, burst)
    began = time.monotonic()
    try:
        rig.open()
        rig.start_agent(multipath=False)
        ready_rss, pid = rss_kib(rig.pid), rig.pid
        print(
            f"chaos: seed {seed}, {steps} steps, array API {api}; rerun: make chaos SEED={seed} STEPS={steps}",
            flush=True,
        )
        for step in range(1, steps + 1):
            ctx.step, ctx.killed = step, False
            release_holders(ctx)
            started = time.monotonic()
            name = "multipath_switch" if step == steps // 2 + 1 else actions.draw(ctx)
            ctx.actions[name] += 1
            try:
                said = take(ctx, name)
                if not rig.agent_alive():  # an action that failed half-way may leave it down
                    rig.start_agent(rig.multipath)
                taken = settle(ctx)
                if rig.pid != pid:
                    ready_rss, pid = rss_kib(rig.pid), rig.pid
                check(ctx, taken, ready_rss)
            except Exception as exc:  # noqa: BLE001 - the soak's own trouble is a finding too; the run goes on
                said = "the soak itself failed"
                where = traceback.extract_tb(exc.__traceback__)[-1]
                ctx.fail("soak", f"{type(exc).__name__} at {where.name}:{where.lineno}: {str(exc)[:1200]}")
                if not rig.agent_alive():
                    rig.start_agent(rig.multipath)  # when even this fails, the run ends with its report
            print(
                f"step {step}/{steps} [mp {'on' if rig.multipath else 'off'}] {name}: {said} "
                f"({time.monotonic() - started:.1f} s)",
                flush=True,
            )
    except Exception as exc:  # noqa: BLE001 - the agent would not start again: the report says where
        ctx.fail("soak", f"the run stopped: {type(exc).__name__}: {str(exc)[:1200]}")
    finally:
        release_holders(ctx, every=True)
        report.actions, report.faults, report.checks = ctx.actions, ctx.faults, ctx.checks
        report.failures, report.calls = ctx.failures, ctx.client.statuses
        report.seconds = time.monotonic() - began
        rig.close()
        reset_initiator()
    return report
