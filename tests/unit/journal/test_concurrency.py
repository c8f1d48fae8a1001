"""Attaches of different volumes run in parallel threads, all writing to one journal: nothing is lost."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from iscsi_agent.journal.model import AttachmentState, Kind, Outcome, Step, StepStatus
from iscsi_agent.journal.store import Journal
from tests.unit.journal.fakes import an_attachment

THREADS = 16
STEPS = 50
IQN = "iqn.1992-08.com.netapp:sn.0123456789abcdef:vs.3"


def test_sixteen_threads_writing_fifty_steps_each_lose_nothing(path, clock):
    journal = Journal.open(path, clock)
    start = threading.Barrier(THREADS)

    def attach(number: int) -> None:
        start.wait()
        op = journal.begin(Kind.ATTACH, f"lun{number}")
        journal.put_attachment(an_attachment(number, state=AttachmentState.ATTACHING, device=None))
        for lun_id in range(STEPS):
            step = journal.intend(op, Step.SCAN, target_iqn=IQN, lun_id=lun_id)
            journal.record_done(step, found=f"sd{number}-{lun_id}")
        if number % 2:
            journal.finish(op, Outcome.SUCCEEDED)

    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(attach, range(1, THREADS + 1)))  # re-raises what any thread raised
    journal.close()

    with Journal.open(path, clock) as reopened:
        in_flight = reopened.in_flight()
        assert sorted(op.volume for op in in_flight) == sorted(f"lun{n}" for n in range(2, THREADS + 1, 2))
        for op in in_flight:
            number = op.volume.removeprefix("lun")
            assert [step.id.seq for step in op.steps] == list(range(1, STEPS + 1))
            assert [step.params["lun_id"] for step in op.steps] == list(range(STEPS))
            assert all(step.status is StepStatus.DONE for step in op.steps)
            assert [step.result["found"] for step in op.steps] == [f"sd{number}-{i}" for i in range(STEPS)]
        assert len(reopened.attachments()) == THREADS
