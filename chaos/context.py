"""One soak's shared state: the rig, the client, the world, the seeded random source and the tallies."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

from chaos.client import Client
from chaos.rig import Rig
from chaos.world import World


@dataclass(frozen=True)
class Failure:
    step: int
    check: str
    message: str


@dataclass
class Context:
    rig: Rig
    client: Client
    world: World
    rng: random.Random
    burst: tuple[int, int] = (8, 16)  # volumes called at once in a burst
    step: int = 0
    killed: bool = False  # this step killed the agent: calls cut by it are expected
    actions: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    checks: Counter[str] = field(default_factory=Counter)
    failures: list[Failure] = field(default_factory=list)

    def fail(self, check: str, message: str) -> None:
        self.failures.append(Failure(self.step, check, message))
        print(f"FAIL seed {self.world.seed} step {self.step} [{check}]: {message}", flush=True)
