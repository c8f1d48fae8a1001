"""What the service reports as it works (step and operation timings, identity mismatches).

A Protocol, so the service knows nothing of Prometheus; ``iscsi_agent.metrics.Metrics`` is the
daemon's implementation and ``Unobserved`` the default.
"""

from __future__ import annotations

from typing import Protocol


class Observer(Protocol):
    def step(self, operation: str, step: str, seconds: float) -> None: ...

    def finished(self, operation: str, seconds: float, code: str | None) -> None: ...

    def identity_mismatch(self) -> None: ...


class Unobserved:
    def step(self, operation: str, step: str, seconds: float) -> None:
        pass

    def finished(self, operation: str, seconds: float, code: str | None) -> None:
        pass

    def identity_mismatch(self) -> None:
        pass
