"""The host-side benchmark table, from the ``bench.json`` one VM run wrote (pure: dict in, text out)."""

from __future__ import annotations

from typing import Any

NOT_MEASURED = "not measured"


def _err(value: Any) -> str | None:
    if value is None:
        return f"{NOT_MEASURED} (no result)"
    if isinstance(value, dict) and "error" in value:
        return f"{NOT_MEASURED} ({value['error']})"
    return None


def _ratio(top: float | None, bottom: float | None) -> str:
    return f"{top / bottom:.2f}x" if top is not None and bottom else "-"


def _secs(value: float | None) -> str:
    return f"{value:.2f}" if value is not None else "-"


def calls_section(results: dict[str, Any]) -> list[str]:
    lines = ["Array calls per attach/detach (counted by the simulator) and iscsiadm calls, agent in-process"]
    rows = [
        ("attach cold (new host, first LUN)", "<= 4"),
        ("attach warm, second LUN on a live session", "1"),
        ("attach warm, first LUN of the target", "1"),
        ("detach, another LUN stays", "1"),
        ("detach, last LUN of the target", "1"),
    ]
    lines.append(f"  {'':44} {'ZAPI':>5} {'REST':>5} {'goal':>5}   {'iscsiadm (REST)':>15}")
    counts = {api: results.get(f"calls {api}") for api in ("zapi", "rest")}
    for api, value in counts.items():
        if _err(value):
            lines.append(f"  {api}: {_err(value)}")
    for name, goal in rows:
        cells = []
        for api in ("zapi", "rest"):
            value = counts[api]
            ok = not _err(value) and name in value and not _err(value[name])
            cells.append(f"{value[name]['array']:>5}" if ok else f"{'-':>5}")
        rest = counts["rest"]
        iscsiadm = (
            rest[name]["iscsiadm"] if not _err(rest) and name in rest and not _err(rest[name]) else None
        )
        shown = "-" if iscsiadm is None else str(len(iscsiadm))
        lines.append(f"  {name:44} {' '.join(cells)} {goal:>5}   {shown:>15}")
    lines.append("  the array requests, where a count is above its goal:")
    for name, goal in rows:
        for api in ("zapi", "rest"):
            value = counts[api]
            if _err(value) or name not in value or _err(value[name]):
                if not _err(value) and name in value:
                    lines.append(f"    {api} {name}: {_err(value[name])}")
                continue
            if value[name].get("first_try_failed"):
                lines.append(
                    f"    {api} {name}: first try failed, counted on the second: {value[name]['first_try_failed']}"
                )
            if "array_requests" not in value[name]:
                continue
            if value[name]["array"] > int(goal.strip("<= ")):
                lines.append(f"    {api} {name}: {', '.join(value[name]['array_requests'])}")
    lines.append(
        "  iscsiadm goal: first LUN of a target <= 4, second LUN on a live session 0; the calls (REST run):"
    )
    rest = counts["rest"]
    if not _err(rest):
        for name in (
            "attach cold (new host, first LUN)",
            "attach warm, first LUN of the target",
            "attach warm, second LUN on a live session",
        ):
            if name in rest and not _err(rest[name]):
                calls = [call if len(call) <= 60 else call[:57] + "..." for call in rest[name]["iscsiadm"]]
                lines.append(f"    {name}: {'; '.join(calls) or 'none'}")
    return lines


def _median(summary: dict[str, Any], impl: str, key: str) -> float | None:
    value = summary.get(impl)
    if _err(value) or key not in value:
        return None
    return float(value[key]["median"])


def timing_section(results: dict[str, Any]) -> list[str]:
    single = results.get("single")
    rounds = results.get("rounds", "?")
    lines = [
        f"Wall time in seconds, median of {rounds} rounds (order rotated each round); ratios over the raw floor"
    ]
    lines.append(
        f"  {'':40} {'agent':>7} {'floor':>7} {'os-brick':>8} {'agent/floor':>11} {'goal':>6} {'os-brick/floor':>14}"
    )
    if _err(single):
        lines.append(f"  {_err(single)}")
    else:
        for key, name, goal in (
            ("first", "attach, first LUN of the target", "1.2x"),
            ("second", "attach, second LUN on a live session", "1.2x"),
            ("detach", "detach of one LUN (session stays)", "1.3x"),
        ):
            agent, base, brick = (_median(single, impl, key) for impl in ("agent", "floor", "os-brick"))
            lines.append(
                f"  {name:40} {_secs(agent):>7} {_secs(base):>7} {_secs(brick):>8} "
                f"{_ratio(agent, base):>11} {goal:>6} {_ratio(brick, base):>14}"
            )
        for impl in ("agent", "floor", "os-brick"):
            if _err(single.get(impl)):
                lines.append(f"  {impl}: {_err(single.get(impl))}")
    parallel = results.get("parallel")
    if _err(parallel):
        lines.append(f"  parallel: {_err(parallel)}")
    else:
        seconds = {
            impl: (None if _err(parallel.get(impl)) else float(parallel[impl]["seconds"]))
            for impl in ("agent", "floor", "os-brick")
        }
        n = results.get("parallel_count", "?")
        lines.append(
            f"  {f'{n} attaches in parallel (floor batched)':40} {_secs(seconds['agent']):>7} "
            f"{_secs(seconds['floor']):>7} {_secs(seconds['os-brick']):>8} "
            f"{_ratio(seconds['agent'], seconds['floor']):>11} {'1.2x':>6} "
            f"{_ratio(seconds['os-brick'], seconds['floor']):>14}"
        )
        for impl in ("agent", "floor", "os-brick"):
            if _err(parallel.get(impl)):
                lines.append(f"  parallel {impl}: {_err(parallel.get(impl))}")
    multipath = results.get("multipath")
    if _err(multipath):
        lines.append(f"  multipath: {_err(multipath)}")
    else:
        agent = None if _err(multipath.get("agent")) else float(multipath["agent"]["seconds"])
        brick = None if _err(multipath.get("os-brick")) else float(multipath["os-brick"]["seconds"])
        lines.append(
            f"  multipath attach over 2 portals: agent {_secs(agent)} s, os-brick {_secs(brick)} s, "
            f"agent/os-brick {_ratio(agent, brick)} (goal <= 0.50x)"
        )
        if not _err(multipath.get("agent")) and multipath["agent"].get("detach_error"):
            lines.append(
                f"  multipath agent detach without force refused: {multipath['agent']['detach_error']}"
            )
        for impl in ("agent", "os-brick"):
            if _err(multipath.get(impl)):
                lines.append(f"  multipath {impl}: {_err(multipath.get(impl))}")
    return lines


_PHASES = (
    ("first", "attach, first LUN"),
    ("second", "attach, second LUN"),
    ("detach", "detach of one LUN"),
)


def steps_section(results: dict[str, Any]) -> list[str]:
    """Each phase's median split, the agent's steps (as its step metric records them) over the floor's:
    the medians of the parts need not add up to the median of the whole."""
    lines = [
        "Where the time goes, seconds (medians): the agent's steps, journal writes and the rest; the floor's steps"
    ]
    single = results.get("single")
    if _err(single):
        lines.append(f"  single: {_err(single)}")
    else:
        for key, name in _PHASES:
            for impl in ("agent", "floor"):
                lines.append(f"  {name:20} {impl:6} {_split_line(single.get(impl), key)}")
    for key, name in (("parallel", "parallel attaches"), ("multipath", "multipath attach")):
        agent = (results.get(key) or {}).get("agent")
        if _err(agent) or "steps" not in agent:
            lines.append(f"  {name}: {_err(agent) or NOT_MEASURED}")
            continue
        count = results.get("parallel_count", 1) if key == "parallel" else 1
        per = (
            "per attach, step seconds summed over the threads"
            if key == "parallel"
            else "agent; both portals' logins and scans run side by side, their seconds summed"
        )
        steps = ", ".join(f"{step} {seconds / count:.2f}" for step, seconds in _by_size(agent["steps"]))
        lines.append(f"  {name} ({per}): {float(agent['seconds']):.2f} s wall = {steps}")
    return lines


def _split_line(summary: Any, phase: str) -> str:
    if _err(summary):
        return str(_err(summary))
    prefix = f"{phase} step "
    parts = {
        key[len(prefix) :]: float(value["median"]) for key, value in summary.items() if key.startswith(prefix)
    }
    total = float(summary[phase]["median"]) if phase in summary else None
    shown = ", ".join(f"{step} {seconds:.2f}" for step, seconds in _by_size(parts)) or "no split recorded"
    return f"{_secs(total)} = {shown}"


def _by_size(parts: dict[str, float]) -> list[tuple[str, float]]:
    return sorted(parts.items(), key=lambda item: -item[1])


def daemon_section(results: dict[str, Any]) -> list[str]:
    lines = []
    for key, title in (
        ("daemon", "The daemon (iscsi-agent over its socket) in the VM"),
        (
            "daemon on this machine",
            "The daemon on this machine, no VM (start-up and socket figures need no SCSI layer)",
        ),
    ):
        if key in results:
            lines.extend(["" if lines else None, *_daemon(results[key], title)])
    return [line for line in lines if line is not None]


def _daemon(daemon: Any, title: str) -> list[str]:
    lines = [title]
    if _err(daemon):
        return [*lines, f"  {_err(daemon)}"]
    start = daemon.get("start", {})
    lines.append(
        f"  exec to READY=1 {_secs(start.get('ready_s'))} s; exec to the socket answering GET /v1/health "
        f"{_secs(start.get('answering_s'))} s; of that, Python and imports alone {_secs(daemon.get('import_s'))} s"
        f" ({_secs(daemon.get('import_compiled_s'))} s with every module's bytecode cached, as installed)"
    )
    health = daemon.get("health")
    if _err(health):
        lines.append(f"  health: {_err(health)}")
    else:
        lines.append(
            f"  GET /v1/health at {health.get('rate', 200)} req/s target ({health['achieved_rate']:.0f} achieved), "
            f"{health['requests']} requests, a fresh connection each: p50 {health['p50_ms']:.1f} ms, "
            f"p99 {health['p99_ms']:.1f} ms, max {health['max_ms']:.1f} ms, failures {health['failures']}"
        )
    closed = daemon.get("health_closed_loop")
    if closed and not _err(closed):
        lines.append(
            f"  GET /v1/health one at a time ({closed['requests']} requests): p50 {closed['p50_ms']:.1f} ms, "
            f"p99 {closed['p99_ms']:.1f} ms (the daemon's own time per answer, no queueing)"
        )
    cycles = daemon.get("cycles")
    if cycles is None:
        lines.append(f"  RSS at READY {daemon.get('rss_kib_at_ready', 0) / 1024:.1f} MiB")
    elif _err(cycles):
        lines.append(
            f"  RSS at READY {daemon.get('rss_kib_at_ready', 0) / 1024:.1f} MiB; cycles: {_err(cycles)}"
        )
    else:
        rss = ", ".join(f"{k} {v / 1024:.1f} MiB" for k, v in cycles["rss_kib"].items())
        lines.append(
            f"  RSS at READY {daemon.get('rss_kib_at_ready', 0) / 1024:.1f} MiB; {cycles['cycles']} attach/detach "
            f"cycles in {cycles['seconds']:.0f} s: {rss}"
        )
        growth = cycles["growth_after_warm_up_kib"]
        lines.append(
            f"  after warm-up ({cycles['warm_up']} cycles) RSS grew {growth} KiB over the rest "
            f"(goal <= {cycles['growth_goal_kib']} KiB: {'met' if growth <= cycles['growth_goal_kib'] else 'MISSED'}); "
            f"open fds {cycles['before']['fds']} -> {cycles['after']['fds']}, "
            f"threads {cycles['before']['threads']} -> {cycles['after']['threads']} (before the first cycle -> after the last)"
        )
        for refusal in cycles.get("detach_refusals", []):
            lines.append(f"  a detach answered 409 and succeeded on a retry 2 s later: {refusal}")
    return lines


def render(results: dict[str, Any]) -> str:
    lines = [
        "Host-side figures from one VM run (QEMU software emulation: absolute times are slow; read ratios)"
    ]
    phases = results.get("phases")
    if phases and len(phases) < 5:
        lines.append(f"this run measured only: {', '.join(phases)}")
    if results.get("quick"):
        lines.append("a --quick run: one round, 4 parallel attaches, 3 daemon cycles, 200 health requests")
    if results.get("os-brick unavailable"):
        lines.append(f"os-brick: {NOT_MEASURED} ({results['os-brick unavailable']})")
    for section in (calls_section, timing_section, steps_section, daemon_section):
        lines.append("")
        lines.extend(section(results))
    return "\n".join(lines)
