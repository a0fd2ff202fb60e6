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
    105: ("GR5", "Low load, humid climate grass", "#f5c431"),
    106: ("GR6", "Moderate load, humid climate grass", "#ebb828"),
    107: ("GR7", "High load, dry climate grass", "#e0ab1f"),
    108: ("GR8", "High load, very coarse, humid climate grass", "#d69f16"),
    109: ("GR9", "Very high load, humid climate grass", "#cc920d"),
    121: ("GS1", "Low load, dry climate grass-shrub", "#e6c89a"),
    122: ("GS2", "Moderate load, dry climate grass-shrub", "#d9b074"),
    123: ("GS3", "Moderate load, humid climate grass-shrub", "#cc994d"),
    124: ("GS4", "High load, humid climate grass-shrub", "#bf8a40"),
    141: ("SH1", "Low load dry climate shrub", "#f2b38c"),
    142: ("SH2", "Moderate load dry climate shrub", "#e69966"),
    143: ("SH3", "Moderate load, humid climate shrub", "#d98040"),
    144: ("SH4", "Low load, humid climate timber-shrub", "#cc7030"),
    145: ("SH5", "High load, dry climate shrub", "#c06020"),
    146: ("SH6", "Low load, humid climate shrub", "#b05018"),
    147: ("SH7", "Very high load, dry climate shrub", "#a04010"),
    148: ("SH8", "High load, humid climate shrub", "#903808"),
    149: ("SH9", "Very high load, humid climate shrub", "#803000"),
    161: ("TU1", "Low load dry climate timber-grass-shrub", "#9ccc8c"),
    162: ("TU2", "Moderate load, humid climate timber-shrub", "#7fbf6a"),
    163: ("TU3", "Moderate load, humid climate timber-grass-shrub", "#5fa84a"),
    164: ("TU4", "Dwarf conifer with understory", "#4f9c3a"),
    165: ("TU5", "Very high load, dry climate timber-shrub", "#3f8f2a"),
    181: ("TL1", "Low load compact conifer litter", "#c8e6b4"),
    182: ("TL2", "Low load broadleaf litter", "#a8d68c"),
    183: ("TL3", "Moderate load conifer litter", "#88c664"),
    184: ("TL4", "Small downed logs", "#78b654"),
    185: ("TL5", "High load conifer litter", "#68a644"),
    186: ("TL6", "Moderate load broadleaf litter", "#50a030"),
    187: ("TL7", "Large downed logs", "#409025"),
    188: ("TL8", "Long-needle litter", "#2f7f1a"),
    189: ("TL9", "Very high load broadleaf litter", "#1f5f0a"),
    201: ("SB1", "Low load activity fuel", "#a0522d"),
    202: ("SB2", "Moderate load activity fuel or low load blowdown", "#8b4513"),
    203: ("SB3", "High load activity fuel or moderate load blowdown", "#7a3b10"),
    204: ("SB4", "High load blowdown", "#69320d"),
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
