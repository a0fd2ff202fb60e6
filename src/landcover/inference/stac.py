"""A STAC Item per output tile, with the classification extension on the categorical assets."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pystac
import rasterio
from pystac.extensions.classification import Classification, ClassificationExtension
from pystac.extensions.projection import ProjectionExtension
from pystac.extensions.raster import RasterBand, RasterExtension
from rasterio.warp import transform_bounds, transform_geom

from landcover.classes import CLASSES
from landcover.fuel import FBFM40


def build_item(tile_out: Path, tile_key: str, provenance: dict) -> pystac.Item:
    with rasterio.open(tile_out / "landcover.tif") as ds:
        bounds = transform_bounds(ds.crs, "EPSG:4326", *ds.bounds)
        geom = transform_geom(ds.crs, "EPSG:4326", {
            "type": "Polygon",
            "coordinates": [[(ds.bounds.left, ds.bounds.bottom), (ds.bounds.right, ds.bounds.bottom),
                             (ds.bounds.right, ds.bounds.top), (ds.bounds.left, ds.bounds.top),
                             (ds.bounds.left, ds.bounds.bottom)]],
        })
        epsg, shape, transform = ds.crs.to_epsg(), [ds.height, ds.width], list(ds.transform)[:6]
    item = pystac.Item(
        # ids are [A-Za-z0-9_-]+, so "." cannot make two tiles' item ids collide
        id=tile_key.replace("/", "."), geometry=geom, bbox=list(bounds),
        datetime=dt.datetime.fromisoformat(provenance["created"]),
        properties={"landcover:model": provenance["model"], "landcover:crosswalk_version":
                    provenance["crosswalk_version"], "landcover:crosswalk_zone": provenance.get("crosswalk_zone"),
                    "landcover:software_version": provenance["software_version"]},
    )
    proj = ProjectionExtension.ext(item, add_if_missing=True)
    proj.epsg, proj.shape, proj.transform = epsg, shape, transform
    lc_classes = [Classification.create(value=c.code, description=c.name, name=c.name.lower().replace(" ", "_"),
                                        color_hint=c.colour.lstrip("#").upper()) for c in CLASSES]
    fuel_classes = [Classification.create(value=k, description=v[1], name=v[0], color_hint=v[2].lstrip("#").upper())
                    for k, v in FBFM40.items() if k in set(provenance["crosswalk"].values())]
    for name, classes, title in (("landcover", lc_classes, "Land cover"),
                                 ("fuel", fuel_classes, "Fuel model (FBFM40)"),
                                 ("confidence", None, "Top-class probability (%)")):
        asset = pystac.Asset(href=f"./{name}.tif", media_type=pystac.MediaType.COG, roles=["data"], title=title)
        item.add_asset(name, asset)
        if classes:
            ClassificationExtension.ext(asset, add_if_missing=True).classes = classes
    if provenance.get("probabilities"):
        asset = pystac.Asset(href="./probabilities.tif", media_type=pystac.MediaType.COG, roles=["data"],
                             title="Class probabilities (%), one band per class",
                             extra_fields={"landcover:band_classes": [c.name for c in CLASSES]})
        item.add_asset("probabilities", asset)
        RasterExtension.ext(asset, add_if_missing=True).bands = [
            RasterBand.create(nodata=255, data_type="uint8", unit="percent") for _ in CLASSES]
    item.add_asset("provenance", pystac.Asset(href="./provenance.json", media_type=pystac.MediaType.JSON,
                                              roles=["metadata"]))
    return item
