"""Sentinel-2 L2A SAFE products as STAC Items, found where users keep them.

Products are folders (`<name>.SAFE`) or the zips the Copernicus Browser downloads (`<name>.SAFE.zip`,
read in place through GDAL's /vsizip/, never unpacked), at any depth under the folder given: flat,
or by date as the Copernicus Data Space `eodata` store and its mirrors keep them
(`Sentinel-2/MSI/L2A/YYYY/MM/DD/`, `Sentinel-2/MSI/L2A_N0500/YYYY/MM/DD/`, `Sentinel-2/L2A/YYYY/MM/DD/`).
A search walks only the date folders that can hold the window and opens only products whose names
(`MMM_MSIL2A_<sensing>_N<baseline>_R<orbit>_T<tile>_<discriminator>`) fall in it and whose MGRS
tile can reach the area, so a mount of the whole archive is usable.

What the composite needs is read from the product itself: band files from `GRANULE/*/IMG_DATA`
(10 m B02 B03 B04 B08; 20 m B05 B06 B07 B8A B11 B12 and SCL), and from `MTD_MSIL2A.xml` the
sensing time, platform, processing baseline, cloud cover, footprint, and BOA_ADD_OFFSET /
BOA_QUANTIFICATION_VALUE, which become each band asset's `raster:bands` offset and scale.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import os
import re
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import pystac
import rasterio
from pystac.extensions.projection import ProjectionExtension

from landcover.bands import BANDS
from landcover.mosaic.sources import IDENTITY_ASSETS, SourceError, filter_items

MTD = "MTD_MSIL2A.xml"
RES_10M = ("B02", "B03", "B04", "B08")
# band_id of BOA_ADD_OFFSET in MTD_MSIL2A.xml (B01=0 ... B8A=8, B09=9, B10=10, B11=11, B12=12)
MTD_BAND_ID = {"B02": 1, "B03": 2, "B04": 3, "B05": 4, "B06": 5, "B07": 6, "B08": 7, "B8A": 8, "B11": 11,
               "B12": 12}
NAME = re.compile(r"^(?P<mission>S2[A-D])_MSIL2A_(?P<sensed>\d{8}T\d{6})_N(?P<baseline>\d{4})_R(?P<orbit>\d{3})_"
                  r"T(?P<tile>\d{2}[C-X][A-Z]{2})_(?P<discriminator>\d{8}T\d{6})(?:\.SAFE)?(?:\.zip)?$")
S2_TILE_M = 109_800  # a Sentinel-2 tile: 109.8 km from the north-west corner of its 100 km MGRS square
SLACK = dt.timedelta(days=1)  # date folders and names are UTC sensing dates; keep a day either side


@dataclass(frozen=True)
class ProductName:
    """What a product's name says, before any of its files is opened."""

    mission: str
    sensed: dt.datetime
    baseline: str  # "05.09"
    orbit: int
    tile: str  # MGRS, e.g. 32TMR
    discriminator: str

    @classmethod
    def parse(cls, name: str) -> ProductName | None:
        m = NAME.match(name)
        if not m:
            return None
        sensed = dt.datetime.strptime(m["sensed"], "%Y%m%dT%H%M%S").replace(tzinfo=dt.UTC)
        baseline = f"{m['baseline'][:2]}.{m['baseline'][2:]}"
        return cls(m["mission"], sensed, baseline, int(m["orbit"]), m["tile"], m["discriminator"])


@lru_cache(maxsize=4096)
def tile_lonlat_bounds(tile: str) -> tuple[float, float, float, float]:
    """(west, south, east, north) in degrees that a Sentinel-2 tile of this MGRS name can cover."""
    import mgrs
    from rasterio.warp import transform_bounds

    zone, hemisphere, east, north = mgrs.MGRS().MGRSToUTM(tile)  # the 100 km square's centre
    west, top = east - 50_000, north + 50_000
    epsg = (32600 if hemisphere == "N" else 32700) + zone
    margin = 5_000  # forgive the tiling's 40 m shifts and rounding
    return tuple(transform_bounds(f"EPSG:{epsg}", "EPSG:4326", west - margin, top - S2_TILE_M - margin,
                                  west + S2_TILE_M + margin, top + margin, densify_pts=21))


def _intersects(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return a[0] <= b[2] and b[0] <= a[2] and a[1] <= b[3] and b[1] <= a[3]


def _date_span(parts: tuple[int, ...]) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) of a date folder path: (year,), (year, month) or (year, month, day)."""
    if len(parts) == 1:
        return dt.datetime(parts[0], 1, 1, tzinfo=dt.UTC), dt.datetime(parts[0] + 1, 1, 1, tzinfo=dt.UTC)
    if len(parts) == 2:
        start = dt.datetime(parts[0], parts[1], 1, tzinfo=dt.UTC)
        return start, (start + dt.timedelta(days=32)).replace(day=1)
    start = dt.datetime(*parts, tzinfo=dt.UTC)
    return start, start + dt.timedelta(days=1)


def _date_part(name: str, parts: tuple[int, ...]) -> tuple[int, ...] | None:
    """The date folders so far extended by `name`, or None when `name` is not the next date level."""
    limits = {0: (4, 1950, 2200), 1: (2, 1, 12), 2: (2, 1, 31)}
    if len(parts) > 2 or not name.isdigit():
        return None
    digits, low, high = limits[len(parts)]
    if len(name) != digits or not low <= int(name) <= high:
        return None
    extended = (*parts, int(name))
    try:
        _date_span(extended)
    except ValueError:  # 31 February
        return None
    return extended


def is_product(path: Path) -> bool:
    name = path.name
    return (name.endswith(".SAFE") and path.is_dir()) or (name.endswith(".zip") and path.is_file() and (
        name.endswith(".SAFE.zip") or ProductName.parse(name) is not None))


def walk_products(root: Path, start: dt.datetime | None = None, end: dt.datetime | None = None,
                  bbox: tuple[float, ...] | None = None) -> Iterator[Path]:
    """Products under `root` at any depth, pruned by the date folders and the names: those that can
    hold an acquisition in [start, end) over `bbox` (lon/lat). Unreadable folders are skipped."""

    def wanted(name: str) -> bool:
        parsed = ProductName.parse(name)
        if parsed is None:
            return True  # a renamed product: only its metadata can tell
        if start is not None and not start - SLACK <= parsed.sensed < end + SLACK:
            return False
        return bbox is None or _intersects(tile_lonlat_bounds(parsed.tile), bbox)

    def visit(folder: Path, dates: tuple[int, ...]) -> Iterator[Path]:
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            return
        for entry in entries:
            path = Path(entry.path)
            if entry.name.endswith((".SAFE", ".zip")):
                if is_product(path) and wanted(entry.name):
                    yield path
                continue
            if not entry.is_dir():
                continue
            deeper = _date_part(entry.name, dates)
            if deeper is not None and start is not None:
                span = _date_span(deeper)
                if span[1] <= start - SLACK or span[0] >= end + SLACK:
                    continue
            yield from visit(path, deeper if deeper is not None else dates)

    root = Path(root)
    if is_product(root):
        yield root
        return
    yield from visit(root, ())


def find_safe_products(folder: Path) -> list[Path]:
    """Every product under `folder` (a SAFE folder or zip itself, or a tree holding them)."""
    return list(walk_products(folder))


# --------------------------------------------------------------------------- reading one product


class _Product:
    """A product's files, whether in a folder or a zip: the metadata's bytes and GDAL paths of members."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path).resolve()
        if self.path.suffix == ".zip":
            try:
                with zipfile.ZipFile(self.path) as archive:
                    self.members = archive.namelist()
            except (OSError, zipfile.BadZipFile) as exc:
                raise SourceError(f"{self.path}: not a readable zip: {exc}") from exc
            tops = sorted({m.split("/", 1)[0] for m in self.members if m.split("/", 1)[0].endswith(".SAFE")})
            if len(tops) != 1:
                raise SourceError(f"{self.path}: expected one <name>.SAFE folder inside, found {tops or 'none'}")
            self.top = tops[0]
        else:
            self.members, self.top = None, None

    @property
    def name(self) -> str:
        return (self.top or self.path.name).removesuffix(".SAFE")

    def read(self, member: str) -> bytes:
        if self.top is None:
            return (self.path / member).read_bytes()
        with zipfile.ZipFile(self.path) as archive:
            return archive.read(f"{self.top}/{member}")

    def glob(self, pattern: str) -> list[str]:
        """Members matching a glob relative to the product root, as paths GDAL opens."""
        if self.top is None:
            return [str(p) for p in sorted(self.path.glob(pattern))]
        full = f"{self.top}/{pattern}"
        return [f"/vsizip/{self.path}/{m}" for m in sorted(self.members) if fnmatch.fnmatchcase(m, full)]

    def describe(self, member: str) -> str:
        return f"{self.path}/{member}" if self.top is None else f"{self.path}!{self.top}/{member}"


def _texts(root: ET.Element, tag: str) -> list[ET.Element]:
    return [e for e in root.iter() if e.tag.rsplit("}", 1)[-1] == tag]


def _text(root: ET.Element, tag: str) -> str | None:
    found = _texts(root, tag)
    return found[0].text.strip() if found and found[0].text else None


def _band_file(product: _Product, band: str) -> str:
    res = "10m" if band in RES_10M else "20m"
    found = product.glob(f"GRANULE/*/IMG_DATA/R{res}/*_{band}_{res}.jp2")
    if len(found) != 1:
        raise SourceError(f"{product.path}: {'no' if not found else 'several'} {band} file(s) in "
                          f"GRANULE/*/IMG_DATA/R{res}/ (expected *_{band}_{res}.jp2)")
    return found[0]


def _grid(path: str) -> tuple[int, list[int], list[float], tuple[float, ...]]:
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


def safe_item(path: Path) -> pystac.Item:
    """One SAFE product (folder or zip) as an Item with band-named assets (B02 ... B12, SCL)."""
    product = _Product(path)
    try:
        root = ET.fromstring(product.read(MTD))
    except (OSError, KeyError, ET.ParseError) as exc:
        raise SourceError(f"{product.describe(MTD)}: cannot read: {exc}") from exc
    when = _text(root, "DATATAKE_SENSING_START") or _text(root, "PRODUCT_START_TIME")
    if not when:
        raise SourceError(f"{product.describe(MTD)}: no sensing time (DATATAKE_SENSING_START / PRODUCT_START_TIME)")
    quantification = float(_text(root, "BOA_QUANTIFICATION_VALUE") or 10000)
    offsets = {int(e.get("band_id")): float(e.text) for e in _texts(root, "BOA_ADD_OFFSET")}
    files = {band: _band_file(product, band) for band in (*BANDS, "SCL")}
    grids = {"10m": _grid(files["B02"]), "20m": _grid(files["B05"])}
    epsg, _, _, bounds = grids["10m"]
    geometry = _footprint(root, epsg, bounds)
    lons = [p[0] for p in geometry["coordinates"][0]]
    lats = [p[1] for p in geometry["coordinates"][0]]
    cloud = _text(root, "Cloud_Coverage_Assessment")
    platform = _text(root, "SPACECRAFT_NAME")
    named = ProductName.parse(product.name)
    props = {"platform": platform.lower() if platform else None,
             "s2:processing_baseline": _text(root, "PROCESSING_BASELINE"),
             "eo:cloud_cover": float(cloud) if cloud is not None else None,
             "s2:mgrs_tile": named.tile if named else None,
             "sat:relative_orbit": named.orbit if named else None}
    item = pystac.Item(product.name, geometry, [min(lons), min(lats), max(lons), max(lats)],
                       dt.datetime.fromisoformat(when.replace("Z", "+00:00")),
                       {k: v for k, v in props.items() if v is not None})
    ProjectionExtension.ext(item, add_if_missing=True).epsg = epsg
    for band, href in files.items():
        _, shape, transform, _ = grids["10m" if band in RES_10M else "20m"]
        raster: dict = {"nodata": 0, "data_type": "uint8" if band == "SCL" else "uint16"}
        if band != "SCL":
            raster |= {"scale": 1 / quantification, "offset": offsets.get(MTD_BAND_ID[band], 0.0) / quantification}
        asset = pystac.Asset(href, media_type="image/jp2", roles=["data"], extra_fields={"raster:bands": [raster]})
        item.add_asset(band, asset)
        proj = ProjectionExtension.ext(asset)
        proj.shape, proj.transform = shape, transform
    return item


@dataclass
class SafeSource:
    """SAFE products under a folder, searched by walking it (pruned by dates and MGRS tiles) and
    reading the products that can match; each product is read once per run."""

    root: Path
    description: dict = field(default_factory=dict)
    asset_candidates: dict[str, dict[str, str]] = field(default_factory=lambda: {"band names": IDENTITY_ASSETS})
    _items: dict[Path, pystac.Item] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.root = Path(self.root).resolve()
        self.description = {"kind": "safe", "path": str(self.root)}

    def item(self, path: Path) -> pystac.Item:
        if path not in self._items:
            self._items[path] = safe_item(path)
        return self._items[path]

    def search(self, bbox: tuple[float, ...], start: dt.datetime, end: dt.datetime,
               max_cloud: float) -> list[pystac.Item]:
        items = [self.item(p) for p in walk_products(self.root, start, end, bbox)]
        return filter_items(items, bbox, start, end, max_cloud)
