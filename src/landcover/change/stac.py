"""A STAC Item per compared tile: the transition and change-mask assets, both maps' models."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pystac
import rasterio
from pystac.extensions.classification import Classification, ClassificationExtension
from pystac.extensions.projection import ProjectionExtension
from pystac.extensions.raster import RasterBand, RasterExtension
from rasterio.warp import transform_bounds

from landcover.transitions import MASK_NAMES, transition_names


def change_item(tile_out: Path, key: str, before_model: dict, after_model: dict, min_confidence: int) -> pystac.Item:
    with rasterio.open(tile_out / "transition.tif") as ds:
        w, s, e, n = transform_bounds(ds.crs, "EPSG:4326", *ds.bounds)
        epsg, shape, transform = ds.crs.to_epsg(), [ds.height, ds.width], list(ds.transform)[:6]
    item = pystac.Item(
        id=f"change.{key.replace('/', '.')}", bbox=[w, s, e, n],
        geometry={"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]},
        datetime=dt.datetime.now(dt.UTC).replace(microsecond=0),
        properties={"landcover:before_model": before_model, "landcover:after_model": after_model,
                    "landcover:min_confidence": min_confidence},
    )
    proj = ProjectionExtension.ext(item, add_if_missing=True)
    proj.epsg, proj.shape, proj.transform = epsg, shape, transform
    for name, title, classes in (
            ("transition", "Land cover transition (from x 16 + to)", transition_names()),
            ("change_mask", f"Change at confidence >= {min_confidence} % in both maps", MASK_NAMES)):
        asset = pystac.Asset(href=f"./{name}.tif", media_type=pystac.MediaType.COG, roles=["data"], title=title)
        item.add_asset(name, asset)
        ClassificationExtension.ext(asset, add_if_missing=True).classes = [
            Classification.create(value=k, description=v, name=re.sub(r"[^0-9A-Za-z]+", "_", v).strip("_").lower())
            for k, v in sorted(classes.items())]
        RasterExtension.ext(asset, add_if_missing=True).bands = [RasterBand.create(nodata=0, data_type="uint8")]
    for name in ("transitions.csv", "gains_losses.csv"):
        item.add_asset(name.removesuffix(".csv"), pystac.Asset(href=f"./{name}", media_type="text/csv",
                                                               roles=["metadata"]))
    return item
