"""Writes that must not be resent blindly: apply once, and after a transport failure re-read.

A connection reset or timeout after a lun-map or igroup-create leaves the outcome unknown: the
array may have applied it. Resending could create a second map under a new LUN id. So after
such a failure the caller's ``find`` reads the array; if the object is there, the write
happened and that object is the answer. Only when it is absent is the write sent again, and a
late-arriving first attempt then makes the array answer "already exists", which the callers
resolve by reading too. Either way no duplicate can appear.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from iscsi_agent.array.errors import TRANSPORT_ERRORS

log = logging.getLogger(__name__)

T = TypeVar("T")


def write_then_verify(write: Callable[[], T], find: Callable[[], T | None], *, what: str, attempts: int) -> T:
    """Return ``write()``, or after a transport failure what ``find()`` sees; retry up to ``attempts``."""
    for attempt in range(1, max(1, attempts) + 1):
        try:
            return write()
        except TRANSPORT_ERRORS as exc:
            found = find()
            if found is not None:
                log.info("%s: the array applied it despite %s", what, exc.code)
                return found
            if attempt >= attempts:
                raise
            log.warning(
                "%s: not applied after %s; sending again (%d of %d)", what, exc.code, attempt + 1, attempts
            )
    raise AssertionError("unreachable: the last attempt returns or raises")
