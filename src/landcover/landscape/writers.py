"""The files fire models read, in their units (BRIEF section 9).

- FlamMap / FARSITE: `landscape.lcp` through GDAL's LCP driver, eight int16 bands (elevation m,
  slope degrees, aspect azimuth degrees, FBFM40 fuel model, canopy cover %, canopy height m x 10,
  canopy base height m x 10, canopy bulk density kg/m3 x 100), the units stated in its header, and
  `landscape.prj` beside it.
- ELMFIRE: `elmfire/<layer>.tif`, one single-band GeoTIFF per layer on the tile grid: `dem slp asp
  fbfm40 cc ch cbh cbd` int16, and `adj` (fuel adjustment factor) and `phi` (initial level set)
  float32, both 1 everywhere; and `elmfire/elmfire.data.fragment`, the `&INPUTS` file names and the
  `&COMPUTATIONAL_DOMAIN` of the tile, to merge into a case's `elmfire.data`.

-9999 is nodata: in the fuel and canopy layers where the land cover is nodata.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine

from landcover.io_utils import atomic_path

NODATA = -9999
# layer: (what, natural unit, factor: stored value = natural value x factor), in the LCP's band order
LAYERS: dict[str, tuple[str, str, int]] = {
    "dem": ("elevation", "m", 1),
    "slp": ("slope", "degrees", 1),
    "asp": ("aspect", "degrees clockwise from north", 1),
    "fbfm40": ("Scott & Burgan (2005) FBFM40 fuel model", "code", 1),
    "cc": ("canopy cover", "percent", 1),
    "ch": ("canopy height", "m", 10),
    "cbh": ("canopy base height", "m", 10),
    "cbd": ("canopy bulk density", "kg/m3", 100),
}


def stored_unit(layer: str) -> str:
    """The unit of the stored integers, as the tools name it: 'm x 10' for canopy height."""
    _, unit, factor = LAYERS[layer]
    return unit if factor == 1 else f"{unit} x {factor}"
LCP_OPTIONS = dict(ELEVATION_UNIT="METERS", SLOPE_UNIT="DEGREES", ASPECT_UNIT="AZIMUTH_DEGREES",
                   FUEL_MODEL_OPTION="NO_CUSTOM_AND_NO_FILE", CANOPY_COV_UNIT="PERCENT", CANOPY_HT_UNIT="METERS_X_10",
                   CBH_UNIT="METERS_X_10", CBD_UNIT="KG_PER_CUBIC_METER_X_100", LINEAR_UNIT="SET_FROM_SRS")
ELMFIRE_FLOATS = ("adj", "phi")
ELMFIRE_KEYS = {"dem": "DEM", "slp": "SLP", "asp": "ASP", "fbfm40": "FBFM", "cc": "CC", "ch": "CH", "cbh": "CBH",
                "cbd": "CBD", "adj": "ADJ", "phi": "PHI"}  # <KEY>_FILENAME in ELMFIRE's &INPUTS namelist


def to_int16(natural: dict[str, np.ndarray], nodata: np.ndarray) -> dict[str, np.ndarray]:
    """Natural units -> the tools' int16 units; -9999 in fuel and canopy layers where `nodata`."""
    out = {}
    for name, (_, _, factor) in LAYERS.items():
        values = np.round(natural[name].astype(np.float64) * factor)
        values = np.clip(values, -32767, 32767).astype(np.int16)
        if name not in ("dem", "slp", "asp"):
            values[nodata] = NODATA
        out[name] = values
    return out


def _profile(crs, transform: Affine, shape: tuple[int, int], dtype: str, **extra) -> dict:
    return dict(driver="GTiff", width=shape[1], height=shape[0], count=1, dtype=dtype, crs=crs, transform=transform,
                compress="deflate", **extra)


def write_lcp(path: Path, layers: dict[str, np.ndarray], crs, transform: Affine, latitude: float,
              description: str) -> list[Path]:
    """`path` (.lcp) and the .prj GDAL writes beside it; both appear only when complete."""
    shape = layers["dem"].shape
    tmp_dir = path.parent / f".tmp-lcp-{os.getpid()}"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    try:
        tmp = tmp_dir / path.name
        with rasterio.open(tmp, "w", driver="LCP", width=shape[1], height=shape[0], count=len(LAYERS),
                           dtype="int16", crs=crs, transform=transform, LATITUDE=int(round(latitude)),
                           DESCRIPTION=description[:500], **LCP_OPTIONS) as dst:
            dst.write(np.stack([layers[name] for name in LAYERS]))
        written = []
        for made in sorted(tmp_dir.iterdir(), key=lambda p: p.suffix != ".prj"):  # the .lcp last
            os.replace(made, path.parent / made.name)
            written.append(path.parent / made.name)
        return written
    finally:
        for leftover in tmp_dir.glob("*"):
            leftover.unlink()
        tmp_dir.rmdir()


def write_elmfire(folder: Path, layers: dict[str, np.ndarray], crs, transform: Affine) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    shape = layers["dem"].shape
    written = []
    for name, (what, _, _) in LAYERS.items():
        with atomic_path(folder / f"{name}.tif") as tmp, \
                rasterio.open(tmp, "w", **_profile(crs, transform, shape, "int16", nodata=NODATA)) as dst:
            dst.write(layers[name], 1)
            dst.set_band_description(1, f"{what} ({stored_unit(name)})")
            dst.update_tags(1, unit=stored_unit(name))
        written.append(folder / f"{name}.tif")
    for name in ELMFIRE_FLOATS:
        with atomic_path(folder / f"{name}.tif") as tmp, \
                rasterio.open(tmp, "w", **_profile(crs, transform, shape, "float32")) as dst:
            dst.write(np.ones(shape, np.float32), 1)
            dst.set_band_description(1, "fuel adjustment factor" if name == "adj" else "initial level set (phi)")
        written.append(folder / f"{name}.tif")
    written.append(_namelist(folder, crs, transform, shape))
    return written


def _namelist(folder: Path, crs, transform: Affine, shape: tuple[int, int]) -> Path:
    """ELMFIRE names files by stem (it adds .tif) relative to FUELS_AND_TOPOGRAPHY_DIRECTORY."""
    names = "\n".join(f"{key + '_FILENAME':<30} = '{name}'" for name, key in ELMFIRE_KEYS.items())
    text = (f"! written by landcover landscape: merge into the case's elmfire.data\n&INPUTS\n"
            f"{'FUELS_AND_TOPOGRAPHY_DIRECTORY':<30} = '{folder.resolve()}'\n{names}\n/\n\n"
            f"&COMPUTATIONAL_DOMAIN\nA_SRS = '{crs.to_wkt() if crs.to_epsg() is None else f'EPSG:{crs.to_epsg()}'}'\n"
            f"COMPUTATIONAL_DOMAIN_CELLSIZE = {transform.a:g}\n"
            f"COMPUTATIONAL_DOMAIN_XLLCORNER = {transform.c:.3f}\n"
            f"COMPUTATIONAL_DOMAIN_YLLCORNER = {transform.f + transform.e * shape[0]:.3f}\n/\n")
    with atomic_path(folder / "elmfire.data.fragment") as tmp:
        tmp.write_text(text)
    return folder / "elmfire.data.fragment"
