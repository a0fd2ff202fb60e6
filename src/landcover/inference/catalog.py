"""A STAC Collection over a batch-inference output folder, so a STAC browser, pystac or
TiTiler walks the whole run: `collection.json` at the root, linking each tile's `item.json` where
it already is (`<city>/<tile>/item.json`), each item linking back to it."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pystac
from pystac.layout import CustomLayoutStrategy

from landcover.classes import CLASSES
from landcover.fuelmap import STAC_ITEM
from landcover.io_utils import atomic_write_json

COLLECTION = "collection.json"


DESCRIPTION = ("Per-tile land cover (10 classes), FBFM40 fuel model and confidence COGs from multi-seasonal "
               "Sentinel-2 mosaics, with provenance. Written by `landcover predict`.")


def write_collection(out_dir: Path, title: str = "Land cover and fuel maps", description: str = DESCRIPTION,
                     assets: dict[str, pystac.Asset] | None = None) -> Path | None:
    """(Re)write the collection over every tile item under `out_dir` (with `assets` of its own, hrefs
    relative to it); None when there is none."""
    out_dir = Path(out_dir).resolve()
    items = []
    for path in sorted(out_dir.glob(f"*/*/{STAC_ITEM}")):
        item = pystac.Item.from_file(str(path))
        item.clear_links()  # links are rebuilt below; assets keep their relative hrefs
        items.append((path, item))
    if not items:
        return None
    bboxes = [i.bbox for _, i in items]
    times = [i.datetime for _, i in items if i.datetime is not None] or [dt.datetime.now(dt.UTC)]
    extent = pystac.Extent(
        pystac.SpatialExtent([[min(b[0] for b in bboxes), min(b[1] for b in bboxes),
                               max(b[2] for b in bboxes), max(b[3] for b in bboxes)]]),
        pystac.TemporalExtent([[min(times), max(times)]]))
    collection = pystac.Collection(
        id=out_dir.name or "landcover", title=title, extent=extent, license="other", description=description,
        summaries=pystac.Summaries({"landcover:classes": [c.name for c in CLASSES]}))
    for key, asset in (assets or {}).items():
        collection.add_asset(key, asset)
    by_id = {}
    for path, item in items:
        collection.add_item(item)
        by_id[item.id] = path
    layout = CustomLayoutStrategy(item_func=lambda item, _parent: str(by_id[item.id]))
    collection.normalize_hrefs(str(out_dir), strategy=layout)
    collection.catalog_type = pystac.CatalogType.SELF_CONTAINED
    # atomic writes (pystac's save is not): a killed run never leaves a half-written item or collection
    for path, item in items:
        atomic_write_json(path, item.to_dict(include_self_link=False, transform_hrefs=True))
    atomic_write_json(out_dir / COLLECTION, collection.to_dict(include_self_link=False, transform_hrefs=True))
    return out_dir / COLLECTION
