"""Crosswalks from public reference maps to the ten classes. Approximations, documented in
docs/real-data.md: ESA WorldCover has no roads (they are inside built-up) and no leaf type (its
tree cover becomes 0, unlabelled, unless another reference fills it); CORINE's mixed classes
(mixed forest, agro-forestry, green urban areas, ...) have no one class and become 0 too.
"""

from __future__ import annotations

from landcover.classes import (
    AGRICULTURAL,
    BARE,
    BROADLEAVED,
    CONIFEROUS,
    GRASSLAND,
    ROADS,
    SHRUBS,
    URBAN,
    WATER,
    WETLANDS,
)

UNLABELLED = 0

# ESA WorldCover 10 m (2020, 2021) map codes
WORLDCOVER: dict[int, int] = {
    10: UNLABELLED,  # tree cover: no broadleaved / coniferous split
    20: SHRUBS,  # shrubland
    30: GRASSLAND,  # grassland
    40: AGRICULTURAL,  # cropland
    50: URBAN,  # built-up (roads included)
    60: BARE,  # bare / sparse vegetation
    70: UNLABELLED,  # snow and ice
    80: WATER,  # permanent water bodies
    90: WETLANDS,  # herbaceous wetland
    95: UNLABELLED,  # mangroves
    100: UNLABELLED,  # moss and lichen
}

# CORINE Land Cover level 3, by code (the CODE_18 attribute of the vector product)
CLC: dict[int, int] = {
    111: URBAN, 112: URBAN, 121: URBAN, 122: ROADS, 123: URBAN, 124: URBAN,
    131: BARE, 132: BARE, 133: BARE, 141: UNLABELLED, 142: UNLABELLED,
    211: AGRICULTURAL, 212: AGRICULTURAL, 213: AGRICULTURAL, 221: AGRICULTURAL, 222: AGRICULTURAL,
    223: AGRICULTURAL, 231: GRASSLAND, 241: AGRICULTURAL, 242: AGRICULTURAL, 243: UNLABELLED, 244: UNLABELLED,
    311: BROADLEAVED, 312: CONIFEROUS, 313: UNLABELLED,
    321: GRASSLAND, 322: SHRUBS, 323: SHRUBS, 324: SHRUBS,
    331: BARE, 332: BARE, 333: BARE, 334: UNLABELLED, 335: UNLABELLED,
    411: WETLANDS, 412: WETLANDS, 421: WETLANDS, 422: UNLABELLED, 423: UNLABELLED,
    511: WATER, 512: WATER, 521: WATER, 522: WATER, 523: WATER,
}

# CORINE Land Cover raster product: grid codes 1..44 are the level-3 classes in code order
# (48 and 128 are its nodata and outside-area values, which stay unlabelled)
CLC_RASTER: dict[int, int] = {grid: CLC[code] for grid, code in enumerate(sorted(CLC), start=1)}

PRESETS: dict[str, dict[int, int]] = {"worldcover": WORLDCOVER, "clc": CLC, "clc-raster": CLC_RASTER}
