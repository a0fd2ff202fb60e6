"""Sentinel-2 band order and seasons: the raster contract of BRIEF section 2."""

from __future__ import annotations

BANDS: tuple[str, ...] = ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12")
SEASONS: tuple[str, ...] = ("spring", "summer", "autumn", "winter")
NUM_BANDS = len(BANDS)
NUM_SEASONS = len(SEASONS)
NUM_CHANNELS = NUM_BANDS * NUM_SEASONS  # 40: season-major stack (spring B02..B12, summer ...)
REFLECTANCE_SCALE = 10000.0
NODATA_VALUE = 0
RGB_BAND_INDICES = (BANDS.index("B04"), BANDS.index("B03"), BANDS.index("B02"))
PIXEL_SIZE_M = 10.0


def channel_names() -> list[str]:
    return [f"{s}_{b}" for s in SEASONS for b in BANDS]
