"""Writes that must not be resent blindly: apply once, and after an unknown outcome re-read.

A connection reset, a timeout, a reply cut off mid-body or a gateway's 502/503/504 after a
lun-map or igroup-create leaves the outcome unknown: the array may have applied it. Resending
could create a second map under a new LUN id, and reporting a failure would make the caller roll
back around a map that exists. So after such a failure the caller's ``find`` reads the array; if
the object is there, the write happened and that object is the answer. Only when it is absent is
the write sent again, after a backoff and only while the client call's retry budget allows
(``iscsi_agent.array.budget``); a late-arriving first attempt then makes the array answer
"already exists", which the callers resolve by reading too. Either way no duplicate can appear.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from iscsi_agent.array.budget import CallBudget
from iscsi_agent.array.errors import TRANSPORT_ERRORS

log = logging.getLogger(__name__)

T = TypeVar("T")


def write_then_verify(
    write: Callable[[], T], find: Callable[[], T | None], *, what: str, budget: CallBudget
) -> T:
    """Return ``write()``, or after an unknown outcome what ``find()`` sees; resend while ``budget`` allows."""
    while True:
        try:
            return write()
        except TRANSPORT_ERRORS as exc:
            found = find()
            if found is not None:
                log.info("%s: the array applied it despite %s", what, exc.code)
                return found
            if not budget.retry(what, f"{exc.code}; a re-read shows it not applied"):
                raise
