"""Scenes as the composite needs them: assets under the band names, and the BOA offset to apply.

The offset (reflectance x 10000 = DN + offset) comes from the scene's own metadata, never from its
date (Collection-1 reprocessing puts it on pre-2022 acquisitions too; BRIEF section 8), in this
order:

1. `earthsearch:boa_offset_applied` (Earth Search's older collection): true means the catalogue
   already applied it (0); false means the processing baseline decides. That collection's
   `raster:bands` offsets are a constant, not a per-scene statement, so they are not read there.
2. `raster:bands` offset and scale of each band asset (Earth Search Collection 1; the SAFE reader
   writes MTD_MSIL2A.xml's BOA_ADD_OFFSET there): offset / scale, per band.
3. `s2:processing_baseline` (Planetary Computer) or `processing:version` (the Copernicus Data Space
   STAC): 04.00 and later carry BOA_ADD_OFFSET = -1000. The Copernicus Data Space's assets also carry
   STAC 1.1 `raster:offset` -0.1, but its item generator writes that constant for every product,
   whatever the baseline, so it is not read (neither are Earth Search's older `raster:bands`).

A scene none of these describe is rejected unless params give `mosaic.offset_when_unknown`; a
baseline that is not a number rejects its scene, named.

When one acquisition is in a catalogue or archive more than once (ESA's reprocessings: the same
platform, sensing time and MGRS tile with another processing baseline), the newest processing is used
and the others are named in the manifest as superseded.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

import numpy as np
import pystac

from landcover.bands import BANDS
from landcover.errors import LandcoverError

BASELINE_WITH_OFFSET = 4.0  # processing baseline 04.00 introduced BOA_ADD_OFFSET
PB04_OFFSET = -1000.0
BASELINE_KEYS = ("s2:processing_baseline", "sentinel:processing_baseline", "processing:version")


class SceneError(LandcoverError, ValueError):
    """A scene that cannot be used; the message names the scene and the problem."""


@dataclass(frozen=True)
class Scene:
    item: pystac.Item  # assets keyed by band name (B02 ... B12, SCL)
    offsets: tuple[float, ...]  # per band, DN
    offset_source: str

    @property
    def id(self) -> str:
        return self.item.id

    @property
    def datetime(self) -> dt.datetime:
        return self.item.datetime or dt.datetime.fromisoformat(self.item.properties["start_datetime"])

    def describe(self) -> dict:
        p = self.item.properties
        return {"id": self.id, "datetime": self.datetime.isoformat(), "cloud_cover": p.get("eo:cloud_cover"),
                "platform": p.get("platform"), "processing_baseline": _baseline_text(p),
                "offset": sorted(set(self.offsets)), "offset_source": self.offset_source}


def _baseline_text(props: dict) -> str | None:
    return next((str(props[k]) for k in BASELINE_KEYS if props.get(k) is not None), None)


BASELINE_FORMS = (re.compile(r"^(\d{1,2}\.\d{1,2})$"), re.compile(r"^N?(\d{2})(\d{2})$"))


def baseline_number(item: pystac.Item) -> float | None:
    """The processing baseline as a number (05.09 -> 5.09; the name form N0509 too), None when absent."""
    text = _baseline_text(item.properties)
    if text is None:
        return None
    for form in BASELINE_FORMS:
        m = form.match(text.strip())
        if m:
            return float(".".join(m.groups())) if len(m.groups()) == 2 else float(m.group(1))
    raise SceneError(f"scene {item.id}: processing baseline {text!r} is not a number (expected e.g. 05.09)")


def _offset_for_baseline(item: pystac.Item) -> float:
    return PB04_OFFSET if baseline_number(item) >= BASELINE_WITH_OFFSET else 0.0


def with_band_assets(item: pystac.Item, assets: dict[str, str]) -> pystac.Item:
    """A copy of the item whose assets are the ten bands and the SCL under their band names."""
    missing = [f"{band} ({key})" for band, key in assets.items() if key not in item.assets]
    if missing:
        raise SceneError(f"scene {item.id}: asset(s) missing: {', '.join(missing)}")
    copy = item.clone()
    copy.assets = {band: item.assets[key].clone() for band, key in assets.items()}
    for asset in copy.assets.values():
        asset.owner = copy
    return copy


def detect_assets(item: pystac.Item, candidates: dict[str, dict[str, str]]) -> dict[str, str]:
    """The first asset map (preset) whose keys this item has."""
    for assets in candidates.values():
        if all(key in item.assets for key in assets.values()):
            return assets
    raise SceneError(f"scene {item.id}: its assets ({', '.join(sorted(item.assets))}) match no preset "
                     f"({', '.join(candidates)}); set mosaic.preset or add one to mosaic.presets")


def _raster_band_offsets(item: pystac.Item) -> tuple[float, ...] | None:
    offsets = []
    for band in BANDS:
        bands = item.assets[band].extra_fields.get("raster:bands") or [{}]
        offset, scale = bands[0].get("offset"), bands[0].get("scale")
        if offset is None or not scale:
            return None
        offsets.append(float(round(offset / scale)))
    return tuple(offsets)


def boa_offsets(item: pystac.Item, when_unknown: float | None = None) -> tuple[tuple[float, ...], str]:
    """(offset per band in DN, where it was read) for an item with band-named assets."""
    props = item.properties
    baseline = _baseline_text(props)
    applied = props.get("earthsearch:boa_offset_applied")
    if applied is not None:
        if applied:
            return (0.0,) * len(BANDS), "earthsearch:boa_offset_applied=true"
        if baseline is None:
            raise SceneError(f"scene {item.id}: earthsearch:boa_offset_applied=false but no processing baseline")
        offset = _offset_for_baseline(item)
        return (offset,) * len(BANDS), f"earthsearch:boa_offset_applied=false, baseline {baseline}"
    from_bands = _raster_band_offsets(item)
    if from_bands is not None:
        return from_bands, "raster:bands"
    if baseline is not None:
        return (_offset_for_baseline(item),) * len(BANDS), f"processing baseline {baseline}"
    if when_unknown is not None:
        return (float(when_unknown),) * len(BANDS), "params mosaic.offset_when_unknown"
    raise SceneError(f"scene {item.id}: no BOA offset in its metadata (raster:bands, s2:processing_baseline); "
                     "set mosaic.offset_when_unknown if you know it")


def to_scene(item: pystac.Item, assets: dict[str, str], when_unknown: float | None = None) -> Scene:
    banded = with_band_assets(item, assets)
    offsets, source = boa_offsets(banded, when_unknown)
    return Scene(banded, offsets, source)


def solar_day_index(scenes: list[Scene], lon: float) -> np.ndarray:
    """Day index per scene (scenes in time order): one overpass seen by overlapping granules is one
    day. The local solar date at the tile's longitude and the platform make the key."""
    keys = [((s.datetime + dt.timedelta(hours=lon / 15)).date(), s.item.properties.get("platform"))
            for s in scenes]
    index: dict[tuple, int] = {}
    return np.array([index.setdefault(k, len(index)) for k in keys], dtype=np.int64)


def sort_scenes(scenes: list[Scene]) -> list[Scene]:
    return sorted(scenes, key=lambda s: (s.datetime, s.id))



MGRS_IN_ID = re.compile(r"(?:^|_)T?(\d{2}[C-X][A-Z]{2})(?:_|$)")


def mgrs_tile(item: pystac.Item) -> str | None:
    """The MGRS tile of an item, from whichever property its catalogue uses, or from its id."""
    p = item.properties
    if p.get("s2:mgrs_tile"):
        return str(p["s2:mgrs_tile"])
    if p.get("grid:code"):
        return str(p["grid:code"]).removeprefix("MGRS-")
    if p.get("mgrs:utm_zone") and p.get("mgrs:latitude_band") and p.get("mgrs:grid_square"):
        return f"{int(p['mgrs:utm_zone']):02d}{p['mgrs:latitude_band']}{p['mgrs:grid_square']}"
    m = MGRS_IN_ID.search(item.id)
    return m.group(1) if m else None


def newest_processing(scenes: list[Scene]) -> tuple[list[Scene], list[dict]]:
    """(scenes, superseded): of the scenes that are one acquisition (platform, sensing second, MGRS
    tile), the one with the newest processing baseline, then the latest id (the product discriminator
    is its processing time); the others as {"id", "reason"}."""
    groups: dict[tuple, list[Scene]] = {}
    for scene in scenes:
        tile = mgrs_tile(scene.item)
        key = (scene.item.properties.get("platform"), scene.datetime.replace(microsecond=0), tile) if tile else (
            scene.id,)
        groups.setdefault(key, []).append(scene)
    kept, superseded = [], []
    for group in groups.values():
        ordered = sorted(group, key=lambda s: (baseline_number(s.item) or 0.0, s.id), reverse=True)
        kept.append(ordered[0])
        newest = ordered[0]
        superseded += [{"id": s.id, "reason": f"superseded by {newest.id} (processing baseline "
                        f"{_baseline_text(newest.item.properties)} over {_baseline_text(s.item.properties)})"}
                       for s in ordered[1:]]
    return kept, superseded
