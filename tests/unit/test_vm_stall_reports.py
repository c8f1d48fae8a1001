"""A guest that stops answering still says why: the stall watcher names the tasks stuck in D state with
their kernel stacks, on the console, and a guest cut off at its deadline shows the console's end beside
its log (the log is on the shared folder, which a stall may take with it)."""

from __future__ import annotations

from pathlib import Path

from tests.vmtier.boot import failure_logs
from tests.vmtier.stallwatch import kernel_stack, sample_line, tasks


def fake_proc(root: Path) -> Path:
    (root / "loadavg").write_text("3.10 2.00 1.50 2/180 4242\n")
    (root / "meminfo").write_text("MemTotal:  2000000 kB\nMemFree:  100000 kB\nMemAvailable:  512000 kB\n")
    for pid, comm, state, wchan in ((1, "init", "S", "do_wait"), (57, "virsh (x)", "D", "p9_client_rpc")):
        (root / str(pid)).mkdir()
        (root / str(pid) / "stat").write_text(f"{pid} ({comm}) {state} 0 0 0\n")
        (root / str(pid) / "wchan").write_text(wchan)
    (root / "57" / "stack").write_text("[<0>] p9_client_rpc+0x1/0x2 [9pnet]\n[<0>] v9fs_vfs_lookup+0x3/0x4\n")
    (root / "self").mkdir()
    return root


def test_a_task_in_uninterruptible_sleep_is_named_with_its_wait_channel(tmp_path: Path):
    proc = fake_proc(tmp_path)
    stuck = [task for task in tasks(proc) if task.state == "D"]

    assert [(task.pid, task.comm) for task in stuck] == [(57, "virsh (x)")]
    line = sample_line(125.0, stuck, proc)
    assert (
        line
        == "[stallwatch    125s] load 3.10 2.00 1.50; MemAvailable 500 MiB; D state: 57(virsh (x)):p9_client_rpc"
    )


def test_its_kernel_stack_is_shown_and_a_task_gone_meanwhile_says_so(tmp_path: Path):
    proc = fake_proc(tmp_path)

    assert kernel_stack(57, proc).splitlines() == [
        "    [<0>] p9_client_rpc+0x1/0x2 [9pnet]",
        "    [<0>] v9fs_vfs_lookup+0x3/0x4",
    ]
    assert kernel_stack(99, proc) == "    (no stack: No such file or directory)"


def test_a_guest_cut_off_shows_its_log_and_the_consoles_end():
    shown = failure_logs("tests/vm/test_a.py .", "boot...\n[stallwatch 60s] D state: none\n", None)
    assert shown.startswith("tests/vm/test_a.py .") and shown.endswith("[stallwatch 60s] D state: none\n")


def test_a_guest_that_finished_shows_its_log_alone_and_one_that_wrote_none_its_console():
    assert failure_logs("tests/vm/test_a.py F", "console", 1) == "tests/vm/test_a.py F"
    assert failure_logs("", "set-up failed on the console", 3) == "set-up failed on the console"
