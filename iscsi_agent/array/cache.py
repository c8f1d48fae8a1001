"""A bounded LRU of LUNs, like cinder's ``lun_table``: a miss is filled by a query for that one LUN.

LUN identity (path, UUID, serial, size) rarely changes, so attaches after the first skip the
lookup. ``mapped`` can go stale; the client updates or evicts an entry when it maps or unmaps,
and callers pass ``fresh=True`` where staleness matters (e.g. a WWID mismatch).

A name is not an identity: ``/vol/a/vol-1234`` and ``/vol/b/vol-1234`` may both exist, and a
LUN cached by path or UUID says nothing about other volumes. So ``by_name`` answers only for
a name the array itself reported unique (``put(lun, name_unique=True)`` after a name query
that matched exactly one LUN), and forgets that as soon as the cache sees another LUN of the
same name or the LUN leaves the cache.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from iscsi_agent.array.model import Lun


class LunCache:
    def __init__(self, capacity: int = 512) -> None:
        if capacity < 1:
            raise ValueError("LUN cache capacity must be at least 1")
        self.capacity = capacity
        self._by_path: OrderedDict[str, Lun] = OrderedDict()
        self._unique_names: dict[str, str] = {}  # name -> the path of the only LUN the array has by it
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._by_path)

    def by_path(self, path: str) -> Lun | None:
        with self._lock:
            return self._touch(self._by_path.get(path))

    def by_uuid(self, uuid: str) -> Lun | None:
        with self._lock:
            return self._touch(next((lun for lun in self._by_path.values() if lun.uuid == uuid), None))

    def by_name(self, name: str) -> Lun | None:
        """The LUN of this name, only where the array said no other LUN has it."""
        with self._lock:
            path = self._unique_names.get(name)
            return self._touch(self._by_path.get(path)) if path is not None else None

    def put(self, lun: Lun, *, name_unique: bool = False) -> None:
        """Cache ``lun``; ``name_unique`` when the array just answered a query for its name with it alone."""
        with self._lock:
            known = self._unique_names.get(lun.name)
            if name_unique:
                self._unique_names[lun.name] = lun.path
            elif known is not None and known != lun.path:
                del self._unique_names[lun.name]  # a second LUN of that name exists
            self._by_path[lun.path] = lun
            self._by_path.move_to_end(lun.path)
            while len(self._by_path) > self.capacity:
                self._forget(self._by_path.popitem(last=False)[1])

    def forget_name(self, name: str) -> None:
        """The array answered a query for ``name`` with none or several LUNs."""
        with self._lock:
            self._unique_names.pop(name, None)

    def evict(self, path: str) -> None:
        with self._lock:
            lun = self._by_path.pop(path, None)
            if lun is not None:
                self._forget(lun)

    def _forget(self, lun: Lun) -> None:
        if self._unique_names.get(lun.name) == lun.path:
            del self._unique_names[lun.name]

    def _touch(self, lun: Lun | None) -> Lun | None:
        if lun is not None:
            self._by_path.move_to_end(lun.path)
        return lun
