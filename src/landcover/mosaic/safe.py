"""Sentinel-2 L2A SAFE products as STAC Items, so they load through the same path as catalogues.

What the composite needs is read from the product itself: band files from `GRANULE/*/IMG_DATA`
(10 m B02 B03 B04 B08; 20 m B05 B06 B07 B8A B11 B12 and SCL), and from `MTD_MSIL2A.xml` the
sensing time, platform, processing baseline, cloud cover, footprint, and BOA_ADD_OFFSET /
BOA_QUANTIFICATION_VALUE, which become each band asset's `raster:bands` offset and scale.
"""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET
from pathlib import Path

import pystac
import rasterio
from pystac.extensions.projection import ProjectionExtension

from landcover.bands import BANDS
from landcover.mosaic.sources import SourceError

MTD = "MTD_MSIL2A.xml"
RES_10M = ("B02", "B03", "B04", "B08")
# band_id of BOA_ADD_OFFSET in MTD_MSIL2A.xml (B01=0 ... B8A=8, B09=9, B10=10, B11=11, B12=12)
MTD_BAND_ID = {"B02": 1, "B03": 2, "B04": 3, "B05": 4, "B06": 5, "B07": 6, "B08": 7, "B8A": 8, "B11": 11,
               "B12": 12}


def find_safe_products(folder: Path) -> list[Path]:
    folder = Path(folder)
    if folder.suffix == ".SAFE" and (folder / MTD).is_file():
        return [folder]
    return sorted(p for p in folder.glob("*.SAFE") if p.is_dir())


def _texts(root: ET.Element, tag: str) -> list[ET.Element]:
    return [e for e in root.iter() if e.tag.rsplit("}", 1)[-1] == tag]


def _text(root: ET.Element, tag: str) -> str | None:
    found = _texts(root, tag)
    return found[0].text.strip() if found and found[0].text else None


def _band_file(safe: Path, band: str) -> Path:
    res = "10m" if band in RES_10M else "20m"
    found = sorted(safe.glob(f"GRANULE/*/IMG_DATA/R{res}/*_{band}_{res}.jp2"))
    if len(found) != 1:
        raise SourceError(f"{safe.name}: {'no' if not found else 'several'} {band} file(s) in "
                          f"GRANULE/*/IMG_DATA/R{res}/ (expected *_{band}_{res}.jp2)")
    return found[0]


def _grid(path: Path) -> tuple[int, list[int], list[float], tuple[float, ...]]:
    try:
        with rasterio.open(path) as src:
            return src.crs.to_epsg(), [src.height, src.width], list(src.transform)[:6], tuple(src.bounds)
    except rasterio.errors.RasterioError as exc:
        raise SourceError(f"{path}: cannot read: {exc}") from exc


def _footprint(root: ET.Element, epsg: int, bounds: tuple[float, ...]) -> dict:
    positions = _text(root, "EXT_POS_LIST")
    if positions:
        values = [float(v) for v in positions.split()]
        ring = [(values[i + 1], values[i]) for i in range(0, len(values) - 1, 2)]  # lat lon -> lon lat
        if ring[0] != ring[-1]:
            ring.append(ring[0])
        return {"type": "Polygon", "coordinates": [ring]}
    from rasterio.warp import transform_geom

    w, s, e, n = bounds
    return transform_geom(f"EPSG:{epsg}", "EPSG:4326",
                          {"type": "Polygon", "coordinates": [[(w, s), (e, s), (e, n), (w, n), (w, s)]]})


def safe_item(safe: Path) -> pystac.Item:
    """One SAFE product as an Item with band-named assets (B02 ... B12, SCL)."""
    safe = Path(safe)
    try:
        root = ET.parse(safe / MTD).getroot()
    except (OSError, ET.ParseError) as exc:
        raise SourceError(f"{safe / MTD}: cannot read: {exc}") from exc
    when = _text(root, "DATATAKE_SENSING_START") or _text(root, "PRODUCT_START_TIME")
    if not when:
        raise SourceError(f"{safe / MTD}: no sensing time (DATATAKE_SENSING_START / PRODUCT_START_TIME)")
    quantification = float(_text(root, "BOA_QUANTIFICATION_VALUE") or 10000)
    offsets = {int(e.get("band_id")): float(e.text) for e in _texts(root, "BOA_ADD_OFFSET")}
    files = {band: _band_file(safe, band) for band in (*BANDS, "SCL")}
    grids = {"10m": _grid(files["B02"]), "20m": _grid(files["B05"])}
    epsg, _, _, bounds = grids["10m"]
    geometry = _footprint(root, epsg, bounds)
    lons = [p[0] for p in geometry["coordinates"][0]]
    lats = [p[1] for p in geometry["coordinates"][0]]
    cloud = _text(root, "Cloud_Coverage_Assessment")
    platform = _text(root, "SPACECRAFT_NAME")
    props = {"platform": platform.lower() if platform else None,
             "s2:processing_baseline": _text(root, "PROCESSING_BASELINE"),
             "eo:cloud_cover": float(cloud) if cloud is not None else None}
    item = pystac.Item(safe.name.removesuffix(".SAFE"), geometry, [min(lons), min(lats), max(lons), max(lats)],
                       dt.datetime.fromisoformat(when.replace("Z", "+00:00")),
                       {k: v for k, v in props.items() if v is not None})
    ProjectionExtension.ext(item, add_if_missing=True).epsg = epsg
    for band, path in files.items():
        _, shape, transform, _ = grids["10m" if band in RES_10M else "20m"]
        raster: dict = {"nodata": 0, "data_type": "uint8" if band == "SCL" else "uint16"}
        if band != "SCL":
            raster |= {"scale": 1 / quantification, "offset": offsets.get(MTD_BAND_ID[band], 0.0) / quantification}
        asset = pystac.Asset(str(path.resolve()), media_type="image/jp2", roles=["data"],
                             extra_fields={"raster:bands": [raster]})
        item.add_asset(band, asset)
        proj = ProjectionExtension.ext(asset)
        proj.shape, proj.transform = shape, transform
    return item
