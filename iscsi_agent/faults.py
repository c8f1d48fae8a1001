"""Fault points: places where a test may have the agent killed on the spot, as a crash would.

``ISCSI_AGENT_FAULT_POINT`` names one point (``attach.map.done``, ``recovery.unmap.intended`` ...);
when the running code reaches it, the process sends itself SIGKILL: no ``finally``, no atexit, no
journal close, exactly what a power cut or the OOM killer leaves behind. Unset (always, outside
tests), a point costs one dictionary lookup. The names are built from the journal's steps
(``<operation>.<step>.intended`` right after the intent is on disk, ``<operation>.<step>.done``
right after the outcome is), so every journalled step of every operation is a point, and a new
step is one without anyone listing it here.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable, MutableMapping

log = logging.getLogger(__name__)

FAULT_ENV = "ISCSI_AGENT_FAULT_POINT"


def _kill_self() -> None:
    logging.shutdown()  # the log says where it died; nothing else is flushed, closed or undone
    os.kill(os.getpid(), signal.SIGKILL)


class FaultPoints:
    """Reads the armed point from the environment at every hit, so a test can arm it late."""

    def __init__(
        self,
        environ: MutableMapping[str, str] = os.environ,
        kill: Callable[[], None] = _kill_self,
    ) -> None:
        self._environ = environ
        self._kill = kill

    def hit(self, point: str) -> None:
        if self._environ.get(FAULT_ENV) == point:
            log.critical("fault point %s reached: killing the agent (%s is set)", point, FAULT_ENV)
            self._kill()


def step_point(operation: str, step: str, phase: str) -> str:
    """The name of the point after a step's intent (``intended``) or outcome (``done``) is written."""
    return f"{operation}.{step}.{phase}"


faults = FaultPoints()
"""The process's fault points; tests swap ``kill`` to raise instead of dying where they need to."""
