"""A bounded LRU of LUNs, like cinder's ``lun_table``: a miss is filled by a query for that one LUN.

LUN identity (path, UUID, serial, size) rarely changes, so attaches after the first skip the
lookup. ``mapped`` can go stale; the client updates or evicts an entry when it maps or unmaps,
and callers pass ``fresh=True`` where staleness matters (e.g. a WWID mismatch).
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
        """The cached LUN with this name, unless several cached LUNs share it."""
        with self._lock:
            matches = [lun for lun in self._by_path.values() if lun.name == name]
            return self._touch(matches[0]) if len(matches) == 1 else None

    def put(self, lun: Lun) -> None:
        with self._lock:
            self._by_path[lun.path] = lun
            self._by_path.move_to_end(lun.path)
            while len(self._by_path) > self.capacity:
                self._by_path.popitem(last=False)

    def evict(self, path: str) -> None:
        with self._lock:
            self._by_path.pop(path, None)

    def _touch(self, lun: Lun | None) -> Lun | None:
        if lun is not None:
            self._by_path.move_to_end(lun.path)
        return lun
