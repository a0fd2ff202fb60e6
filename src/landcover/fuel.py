"""Scott & Burgan (2005) FBFM40 fuel models: the codes the crosswalk may produce, with colours."""

from __future__ import annotations

import numpy as np

# numeric code -> (short name, description, colour); Scott & Burgan 2005, RMRS-GTR-153
FBFM40: dict[int, tuple[str, str, str]] = {
    91: ("NB1", "Urban/developed", "#686868"),
    92: ("NB2", "Snow/ice", "#e1e1e1"),
    93: ("NB3", "Agricultural", "#ffed66"),
    98: ("NB8", "Open water", "#0000ff"),
    99: ("NB9", "Bare ground", "#b3b3b3"),
    101: ("GR1", "Short, sparse dry climate grass", "#fff5c8"),
    102: ("GR2", "Low load, dry climate grass", "#ffe89a"),
    103: ("GR3", "Low load, very coarse, humid climate grass", "#ffdc6b"),
    104: ("GR4", "Moderate load, dry climate grass", "#ffd03a"),
    121: ("GS1", "Low load, dry climate grass-shrub", "#e6c89a"),
    122: ("GS2", "Moderate load, dry climate grass-shrub", "#d9b074"),
    123: ("GS3", "Moderate load, humid climate grass-shrub", "#cc994d"),
    141: ("SH1", "Low load dry climate shrub", "#f2b38c"),
    142: ("SH2", "Moderate load dry climate shrub", "#e69966"),
    143: ("SH3", "Moderate load, humid climate shrub", "#d98040"),
    145: ("SH5", "High load, dry climate shrub", "#c06020"),
    147: ("SH7", "Very high load, dry climate shrub", "#a04010"),
    161: ("TU1", "Low load dry climate timber-grass-shrub", "#9ccc8c"),
    162: ("TU2", "Moderate load, humid climate timber-shrub", "#7fbf6a"),
    165: ("TU5", "Very high load, dry climate timber-shrub", "#3f8f2a"),
    181: ("TL1", "Low load compact conifer litter", "#c8e6b4"),
    182: ("TL2", "Low load broadleaf litter", "#a8d68c"),
    183: ("TL3", "Moderate load conifer litter", "#88c664"),
    186: ("TL6", "Moderate load broadleaf litter", "#50a030"),
    188: ("TL8", "Long-needle litter", "#2f7f1a"),
    189: ("TL9", "Very high load broadleaf litter", "#1f5f0a"),
}


def _rgb(colour: str) -> tuple[int, int, int, int]:
    h = colour.lstrip("#")
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16), 255


def fuel_colormap() -> dict[int, tuple[int, int, int, int]]:
    cmap = {i: (0, 0, 0, 0) for i in range(256)}
    for code, (_, _, colour) in FBFM40.items():
        cmap[code] = _rgb(colour)
    return cmap


def lookup_table(crosswalk: dict[int, int]) -> np.ndarray:
    """uint8 LUT: land cover code (0..10) -> fuel code (0 stays nodata)."""
    unknown = sorted(set(crosswalk.values()) - set(FBFM40))
    if unknown:
        raise ValueError(f"crosswalk uses fuel codes not in FBFM40 table: {unknown}")
    lut = np.zeros(256, dtype=np.uint8)
    for lc, fuel in crosswalk.items():
        lut[int(lc)] = int(fuel)
    return lut
