"""Land cover class codes, names and colours: the contract of BRIEF section 2."""

from __future__ import annotations

from dataclasses import dataclass

NODATA_CODE = 0  # unlabelled in labels, nodata in outputs


@dataclass(frozen=True)
class LandCoverClass:
    code: int
    name: str
    colour: str  # "#rrggbb"

    @property
    def rgb(self) -> tuple[int, int, int]:
        h = self.colour.lstrip("#")
        return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


CLASSES: tuple[LandCoverClass, ...] = (
    LandCoverClass(1, "Roads", "#e31a1c"),
    LandCoverClass(2, "Urban", "#fb9a99"),
    LandCoverClass(3, "Bare Surfaces", "#d9d9d9"),
    LandCoverClass(4, "Wetlands", "#6a3d9a"),
    LandCoverClass(5, "Water", "#1f78b4"),
    LandCoverClass(6, "Grassland", "#b2df8a"),
    LandCoverClass(7, "Agricultural", "#ffff99"),
    LandCoverClass(8, "Broadleaved Forest", "#33a02c"),
    LandCoverClass(9, "Coniferous Forest", "#005a32"),
    LandCoverClass(10, "Shrubs", "#ff7f00"),
)
NUM_CLASSES = len(CLASSES)
CLASS_NAMES: tuple[str, ...] = tuple(c.name for c in CLASSES)

# Named codes for readability in generators and tests.
ROADS, URBAN, BARE, WETLANDS, WATER, GRASSLAND, AGRICULTURAL, BROADLEAVED, CONIFEROUS, SHRUBS = range(
    1, 11
)


def colormap() -> dict[int, tuple[int, int, int, int]]:
    """GDAL colour table for a uint8 land cover raster (0 transparent)."""
    cmap = {i: (0, 0, 0, 0) for i in range(256)}
    for c in CLASSES:
        cmap[c.code] = (*c.rgb, 255)
    return cmap
