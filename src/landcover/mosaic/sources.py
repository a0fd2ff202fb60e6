"""Where scenes come from: a STAC API, a local static STAC catalog or item collection, or SAFE
products (`safe.py`). Each yields pystac Items for a place and a date window; from there every source
shares one reading path (`read.py`), so the code only a remote API reaches is the search itself.
`opening.py` turns a `--source` into one of them.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path

import pystac

from landcover.config import S2_ASSETS, StacPreset
from landcover.errors import LandcoverError

IDENTITY_ASSETS = {band: band for band in S2_ASSETS}  # SAFE items and many local catalogs


class SourceError(LandcoverError, ValueError):
    """A source that cannot be opened or searched; the message names it."""


def season_window(year: int, months: tuple[int, int]) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) in UTC of inclusive months of `year`; a start month after the end month starts
    the year before (winter: December of the year before to February)."""
    first, last = months
    start = dt.datetime(year - 1 if first > last else year, first, 1, tzinfo=dt.UTC)
    end = dt.datetime(year + 1, 1, 1, tzinfo=dt.UTC) if last == 12 else dt.datetime(year, last + 1, 1, tzinfo=dt.UTC)
    return start, end


def _intersects(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def filter_items(items: list[pystac.Item], bbox: tuple[float, ...], start: dt.datetime, end: dt.datetime,
                 max_cloud: float) -> list[pystac.Item]:
    """The local equivalent of a STAC API search: footprint, date window and scene cloud cover."""
    keep = []
    for item in items:
        when = item.datetime or dt.datetime.fromisoformat(item.properties["start_datetime"])
        when = when if when.tzinfo else when.replace(tzinfo=dt.UTC)
        cloud = item.properties.get("eo:cloud_cover")
        if item.bbox and _intersects(tuple(item.bbox), bbox) and start <= when < end and (
                cloud is None or cloud <= max_cloud):
            keep.append(item)
    return keep


@dataclass
class LocalSource:
    """Items already in memory: a static catalog, an item collection, or SAFE folders."""

    description: dict
    items: list[pystac.Item]
    asset_candidates: dict[str, dict[str, str]] = field(default_factory=dict)

    def search(self, bbox: tuple[float, ...], start: dt.datetime, end: dt.datetime,
               max_cloud: float) -> list[pystac.Item]:
        return filter_items(self.items, bbox, start, end, max_cloud)


@dataclass
class StacApiSource:
    """A STAC API (Earth Search, Planetary Computer, or any other with a preset)."""

    preset: StacPreset
    retries: int
    description: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.description = {"kind": "stac-api", "url": self.preset.url, "collection": self.preset.collection}
        self.asset_candidates = {"preset": self.preset.assets}

    def search(self, bbox: tuple[float, ...], start: dt.datetime, end: dt.datetime,
               max_cloud: float) -> list[pystac.Item]:
        from pystac_client import Client
        from pystac_client.stac_api_io import StacApiIO

        modifier = None
        if self.preset.sign == "planetary-computer":
            try:
                import planetary_computer
            except ImportError as exc:
                raise SourceError("Planetary Computer hrefs need signing: pip install planetary-computer") from exc
            modifier = planetary_computer.sign_inplace
        try:
            client = Client.open(self.preset.url, modifier=modifier, stac_io=StacApiIO(max_retries=self.retries))
            found = client.search(collections=[self.preset.collection], bbox=list(bbox),
                                  datetime=[start.isoformat(), (end - dt.timedelta(microseconds=1)).isoformat()],
                                  query={"eo:cloud_cover": {"lte": max_cloud}}).item_collection()
        except Exception as exc:  # noqa: BLE001 - network and API errors name the API
            raise SourceError(f"{self.preset.url}: search failed: {exc}") from exc
        return list(found)


def read_static(path: Path) -> list[pystac.Item]:
    try:
        kind = json.loads(path.read_text()).get("type")
        if kind == "FeatureCollection":
            items = list(pystac.ItemCollection.from_file(str(path)))
        elif kind == "Feature":
            items = [pystac.Item.from_file(str(path))]
        else:
            items = list(pystac.read_file(str(path)).get_items(recursive=True))
    except (OSError, ValueError, KeyError, pystac.STACError) as exc:
        raise SourceError(f"{path}: not a readable STAC catalog, collection or item collection: {exc}") from exc
    for item in items:
        item.make_asset_hrefs_absolute()
    return items
