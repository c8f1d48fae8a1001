"""What the service reports as it works (step and operation timings, identity mismatches, reconciler
actions and passes).

A Protocol, so the service knows nothing of Prometheus; ``iscsi_agent.metrics.Metrics`` is the
daemon's implementation and ``Unobserved`` the default.
"""

from __future__ import annotations

from typing import Protocol


class Observer(Protocol):
    def step(self, operation: str, step: str, seconds: float) -> None: ...

    def finished(self, operation: str, seconds: float, code: str | None) -> None: ...

    def identity_mismatch(self) -> None: ...

    def reconcile_action(self, action: str, reason: str, result: str) -> None: ...

    def reconcile_pass(self, seconds: float, held: int, failed: bool) -> None: ...


class Unobserved:
    def step(self, operation: str, step: str, seconds: float) -> None:
        pass

    def finished(self, operation: str, seconds: float, code: str | None) -> None:
        pass

    def identity_mismatch(self) -> None:
        pass

    def reconcile_action(self, action: str, reason: str, result: str) -> None:
        pass

    def reconcile_pass(self, seconds: float, held: int, failed: bool) -> None:
        pass
