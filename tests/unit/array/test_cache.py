"""The LUN cache is a bounded LRU reachable by path, UUID, and by name only where the array said it is unique."""

from iscsi_agent.array.cache import LunCache
from iscsi_agent.array.model import Lun


def lun(path: str, uuid: str) -> Lun:
    return Lun(path, uuid, "serial000000", 1024, "linux", False)


def test_a_cached_lun_is_found_by_path_and_uuid():
    cache = LunCache(4)
    cache.put(lun("/vol/vol1/lun0", "u0"))
    assert cache.by_path("/vol/vol1/lun0").uuid == "u0"
    assert cache.by_uuid("u0").path == "/vol/vol1/lun0"
    assert cache.by_path("/vol/vol1/lun9") is None


def test_a_lun_cached_by_path_is_not_found_by_name():
    """Other volumes may hold a LUN of the same name: only the array can say it is unique."""
    cache = LunCache(4)
    cache.put(lun("/vol/vol1/lun0", "u0"))
    assert cache.by_name("lun0") is None


def test_a_name_the_array_said_is_unique_is_found_by_name():
    cache = LunCache(4)
    cache.put(lun("/vol/vol1/lun0", "u0"), name_unique=True)
    assert cache.by_name("lun0").uuid == "u0"
    cache.put(lun("/vol/vol1/lun0", "u0"))  # refreshed by path: still the same LUN
    assert cache.by_name("lun0").uuid == "u0"


def test_another_lun_of_a_unique_name_makes_it_ambiguous_again():
    cache = LunCache(4)
    cache.put(lun("/vol/vol1/data", "u1"), name_unique=True)
    cache.put(lun("/vol/vol2/data", "u2"))
    assert cache.by_name("data") is None


def test_a_unique_name_leaves_with_its_lun():
    cache = LunCache(1)
    cache.put(lun("/vol/v/a", "ua"), name_unique=True)
    cache.evict("/vol/v/a")
    cache.put(lun("/vol/v/b", "ub"))
    assert cache.by_name("a") is None
    cache.put(lun("/vol/v/a", "ua"), name_unique=True)
    cache.put(lun("/vol/v/c", "uc"))  # pushes a out of the LRU
    assert cache.by_name("a") is None and cache.by_path("/vol/v/a") is None


def test_the_least_recently_used_lun_leaves_first():
    cache = LunCache(2)
    cache.put(lun("/vol/v/a", "ua"))
    cache.put(lun("/vol/v/b", "ub"))
    cache.by_uuid("ua")  # a is now the most recently used
    cache.put(lun("/vol/v/c", "uc"))
    assert len(cache) == 2
    assert cache.by_path("/vol/v/b") is None
    assert cache.by_path("/vol/v/a") is not None and cache.by_path("/vol/v/c") is not None


def test_evict_forgets_a_lun():
    cache = LunCache(4)
    cache.put(lun("/vol/v/a", "ua"))
    cache.evict("/vol/v/a")
    cache.evict("/vol/v/never")
    assert cache.by_uuid("ua") is None
