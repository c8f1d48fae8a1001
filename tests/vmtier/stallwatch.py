"""In the guest, beside the tests: one line a minute on the console, and the kernel stack of every task
stuck in uninterruptible sleep (D state) for two samples running.

A test hung in D state cannot be stopped by pytest-timeout's signal (the kernel delivers it only when
the task wakes), and the guest's log lives on the shared folder, which a stalled filesystem takes with
it. The console is neither: it reaches the host's pipe even then, and a silent console says the guest
itself stopped. Reads /proc only; writes only to the file descriptor it is given.
Usage: python -m tests.vmtier.stallwatch [INTERVAL_SECONDS]
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
INTERVAL = 60.0
STACK_LINES = 24


@dataclass(frozen=True)
class Task:
    pid: int
    comm: str
    state: str
    wchan: str


def tasks(proc: Path = PROC) -> Iterator[Task]:
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            wchan = (entry / "wchan").read_text()
        except OSError:  # gone between the listing and the read
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        yield Task(int(entry.name), comm, stat[stat.rindex(")") + 2], wchan or "-")


def kernel_stack(pid: int, proc: Path = PROC) -> str:
    try:
        lines = (proc / str(pid) / "stack").read_text().splitlines()
    except OSError as exc:
        return f"    (no stack: {exc.strerror})"
    return "\n".join(f"    {line}" for line in lines[:STACK_LINES])


def sample_line(elapsed: float, stuck: list[Task], proc: Path = PROC) -> str:
    load = " ".join((proc / "loadavg").read_text().split()[:3])
    available = next(
        line.split()[1]
        for line in (proc / "meminfo").read_text().splitlines()
        if line.startswith("MemAvailable:")
    )
    held = " ".join(f"{task.pid}({task.comm}):{task.wchan}" for task in stuck) or "none"
    return f"[stallwatch {elapsed:6.0f}s] load {load}; MemAvailable {int(available) // 1024} MiB; D state: {held}"


def watch(out: int, interval: float = INTERVAL) -> None:
    started = time.monotonic()
    stuck_before: set[int] = set()
    reported: set[int] = set()
    while True:
        time.sleep(interval)
        stuck = [task for task in tasks() if task.state == "D"]
        lines = [sample_line(time.monotonic() - started, stuck)]
        for task in stuck:
            if task.pid in stuck_before and task.pid not in reported:
                reported.add(task.pid)
                lines.append(f"  {task.pid} ({task.comm}) in D state for {interval:g}s or more, at:")
                lines.append(kernel_stack(task.pid))
        stuck_before = {task.pid for task in stuck}
        os.write(out, ("\n".join(lines) + "\n").encode(errors="replace"))


if __name__ == "__main__":
    watch(sys.stdout.fileno(), float(sys.argv[1]) if len(sys.argv) > 1 else INTERVAL)
