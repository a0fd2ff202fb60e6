"""The split stage's error: a request the data cannot meet (raised by counts, search and inputs)."""

from __future__ import annotations

from landcover.errors import LandcoverError


class SplitError(LandcoverError, ValueError):
    """A split request that cannot be met (too few cities, bad ratios, unknown tiles)."""
