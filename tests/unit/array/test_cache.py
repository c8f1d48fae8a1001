"""The LUN cache is a bounded LRU reachable by path, UUID and unambiguous name."""

from iscsi_agent.array.cache import LunCache
from iscsi_agent.array.model import Lun


def lun(path: str, uuid: str) -> Lun:
    return Lun(path, uuid, "serial000000", 1024, "linux", False)


def test_a_cached_lun_is_found_by_path_uuid_and_name():
    cache = LunCache(4)
    cache.put(lun("/vol/vol1/lun0", "u0"))
    assert cache.by_path("/vol/vol1/lun0").uuid == "u0"
    assert cache.by_uuid("u0").path == "/vol/vol1/lun0"
    assert cache.by_name("lun0").uuid == "u0"
    assert cache.by_path("/vol/vol1/lun9") is None


def test_the_least_recently_used_lun_leaves_first():
    cache = LunCache(2)
    cache.put(lun("/vol/v/a", "ua"))
    cache.put(lun("/vol/v/b", "ub"))
    cache.by_uuid("ua")  # a is now the most recently used
    cache.put(lun("/vol/v/c", "uc"))
    assert len(cache) == 2
    assert cache.by_path("/vol/v/b") is None
    assert cache.by_path("/vol/v/a") is not None and cache.by_path("/vol/v/c") is not None


def test_a_name_shared_by_two_cached_luns_is_not_answered_from_the_cache():
    cache = LunCache(4)
    cache.put(lun("/vol/vol1/data", "u1"))
    cache.put(lun("/vol/vol2/data", "u2"))
    assert cache.by_name("data") is None


def test_evict_forgets_a_lun():
    cache = LunCache(4)
    cache.put(lun("/vol/v/a", "ua"))
    cache.evict("/vol/v/a")
    cache.evict("/vol/v/never")
    assert cache.by_uuid("ua") is None
