"""Volumes are worked on one at a time each, in parallel with each other; a shared login runs once."""

import threading
import time

import pytest

from iscsi_agent.service.locks import KeyedLocks, OperationGate, SingleFlight


def test_one_key_is_held_by_one_caller_at_a_time():
    locks = KeyedLocks()
    inside = []
    entered = threading.Event()
    release = threading.Event()

    def first():
        with locks.hold("vol-1"):
            inside.append("first")
            entered.set()
            release.wait(5)

    thread = threading.Thread(target=first)
    thread.start()
    entered.wait(5)
    second_in = threading.Event()

    def second():
        with locks.hold("vol-1"):
            second_in.set()

    waiter = threading.Thread(target=second)
    waiter.start()
    assert not second_in.wait(0.1)
    release.set()
    assert second_in.wait(5)
    thread.join()
    waiter.join()


def test_different_keys_do_not_wait_for_each_other():
    locks = KeyedLocks()
    with locks.hold("vol-1"):
        got = threading.Event()
        thread = threading.Thread(target=lambda: (locks.hold("vol-2").__enter__(), got.set()))
        thread.start()
        assert got.wait(5)
        thread.join()


def test_keys_are_dropped_when_nobody_holds_them():
    locks = KeyedLocks()
    with locks.hold("vol-1"):
        assert len(locks) == 1
    assert len(locks) == 0


def test_concurrent_callers_share_one_call_and_its_result():
    flight: SingleFlight[str] = SingleFlight()
    calls = []
    gate = threading.Event()

    def login():
        calls.append(1)
        gate.wait(5)
        return "session-3"

    results = []
    threads = [
        threading.Thread(target=lambda: results.append(flight.run(("iqn", "p"), login))) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    while not calls:
        threading.Event().wait(0.01)
    threading.Event().wait(0.05)
    gate.set()
    for thread in threads:
        thread.join()
    assert results == ["session-3"] * 8
    assert len(calls) == 1


def test_every_waiter_gets_the_leaders_error_and_the_next_call_runs_again():
    flight: SingleFlight[str] = SingleFlight()

    def fail():
        raise RuntimeError("login refused")

    with pytest.raises(RuntimeError, match="login refused"):
        flight.run("k", fail)
    assert flight.run("k", lambda: "ok") == "ok"


def test_operations_pass_the_gate_together_and_a_pass_waits_for_them_all():
    gate = OperationGate()
    order: list[str] = []
    first, second = gate.operation(), gate.operation()
    first.__enter__()
    second.__enter__()

    def reconcile() -> None:
        with gate.exclusive(timeout=10) as quiet:
            order.append(f"pass {quiet}")

    passing = threading.Thread(target=reconcile)
    passing.start()
    time.sleep(0.05)
    order.append("first done")
    first.__exit__(None, None, None)
    time.sleep(0.05)
    order.append("second done")
    second.__exit__(None, None, None)
    passing.join(5)
    assert order == ["first done", "second done", "pass True"]


def test_a_pass_kept_waiting_past_its_timeout_gives_up_and_holds_nothing_back():
    gate = OperationGate()
    with gate.operation():
        with gate.exclusive(timeout=0.05) as quiet:
            assert quiet is False
        with gate.operation():  # another operation still goes through
            pass


def test_an_operation_waits_while_a_pass_runs():
    gate = OperationGate()
    entered = threading.Event()

    def attach() -> None:
        with gate.operation():
            entered.set()

    with gate.exclusive(timeout=1) as quiet:
        assert quiet
        worker = threading.Thread(target=attach)
        worker.start()
        assert not entered.wait(0.1)
    assert entered.wait(5)
    worker.join(5)
