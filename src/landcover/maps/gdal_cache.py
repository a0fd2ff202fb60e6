"""GDAL's block cache, sized to the readers and writers running now.

GDAL keeps one block cache per process, by default 5 % of RAM, which would hold every decoded block
of a large tile: memory would grow with the tile. Each reader or writer reserves what it needs
(a strip reader: one block row of the tile's files) and the cache is the sum of what is reserved.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from rasterio.env import get_gdal_config, set_gdal_config

MIN_GDAL_CACHE = 64 * 2**20


class _GdalCache:
    """GDAL's block cache (one per process) sized to what the readers and writers running now
    need; see `gdal_cache_budget`."""

    lock = threading.Lock()
    needs: dict[int, int] = {}
    saved: int | None = None

    @classmethod
    @contextmanager
    def reserve(cls, need: int) -> Iterator[None]:
        key = object()
        with cls.lock:
            if not cls.needs:
                cls.saved = get_gdal_config("GDAL_CACHEMAX")
            cls.needs[id(key)] = need
            set_gdal_config("GDAL_CACHEMAX", max(sum(cls.needs.values()), MIN_GDAL_CACHE))
        try:
            yield
        finally:
            with cls.lock:
                del cls.needs[id(key)]
                if cls.needs:
                    set_gdal_config("GDAL_CACHEMAX", max(sum(cls.needs.values()), MIN_GDAL_CACHE))
                elif cls.saved is not None:
                    set_gdal_config("GDAL_CACHEMAX", cls.saved)


def gdal_cache_budget(nbytes: int):
    """Context manager: GDAL's block cache is one per process and by default 5 % of RAM, which
    keeps every decoded block of a large tile, so memory would grow with the tile. Inside, the
    cache is the sum of the budgets open now (at least MIN_GDAL_CACHE); the previous setting comes
    back when the last one closes. A strip reader needs one block row of the tile's files."""
    return _GdalCache.reserve(nbytes)
