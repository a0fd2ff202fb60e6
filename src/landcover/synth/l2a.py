"""Fabricated Sentinel-2 L2A scenes with known clouds, shadows and offsets, written as a static
STAC catalog (in the styles of Earth Search Collection 1, Earth Search's older collection, Planetary
Computer and the Copernicus Data Space) or as SAFE products (folders or the Copernicus Browser's
zips, flat or in the archive's dated folders). They stand in for real archives in the tests, the
benchmark and the offline demo of `landcover mosaic`: every pixel's truth is known.

A scene covers an area on the 10 m grid of one UTM zone: four 10 m bands, six 20 m bands (2 x 2
averages of the 10 m truth, as a 20 m sensor sees it) and a 20 m SCL with every class Sen2Cor
writes, each where a real scene has it and with the reflectance it implies: a cloud core (9) in a
medium-probability rim (8) with its shadow (3), thin cirrus (10), a lake (6), terrain shadow (2),
bare ground (5), unclassified pixels (7), saturated pixels (1), snow (11) in winter and, on some
scenes, the swath's no-data edge (0). Stored DN = reflectance x 10000 - offset, so a scene with
BOA_ADD_OFFSET -1000 stores 1000 more.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pystac
import rasterio
from affine import Affine
from pystac.extensions.projection import ProjectionExtension
from rasterio.warp import transform_bounds

from landcover.bands import BANDS

BANDS_10M = ("B02", "B03", "B04", "B08")
EARTH_SEARCH_KEYS = {"B02": "blue", "B03": "green", "B04": "red", "B05": "rededge1", "B06": "rededge2",
                     "B07": "rededge3", "B08": "nir", "B8A": "nir08", "B11": "swir16", "B12": "swir22", "SCL": "scl"}
SCL_VEGETATION, SCL_SHADOW, SCL_CLOUD_HIGH = 4, 3, 9
SCL_NAMES = {0: "no data", 1: "saturated or defective", 2: "dark area (terrain shadow)", 3: "cloud shadow",
             4: "vegetation", 5: "not vegetated", 6: "water", 7: "unclassified", 8: "cloud medium probability",
             9: "cloud high probability", 10: "thin cirrus", 11: "snow or ice"}
WATER = np.array([600, 500, 300, 250, 200, 180, 150, 140, 80, 60], np.float64)  # a clear lake, B02 ... B12
SNOW = np.array([7200, 7100, 7000, 6800, 6700, 6600, 6500, 6400, 900, 700], np.float64)  # bright, dark in SWIR


@dataclass
class FakeScene:
    """One acquisition: `truth` (10, H, W) reflectance x 10000 at 10 m, `scl` (H/2, W/2) at 20 m."""

    id: str
    when: dt.datetime
    epsg: int
    west: float
    north: float
    truth: np.ndarray
    scl: np.ndarray
    offset: int = -1000  # BOA_ADD_OFFSET in DN (0 before processing baseline 04.00)
    baseline: str = "05.09"
    platform: str = "sentinel-2b"
    cloud_cover: float = 10.0
    extra: dict = field(default_factory=dict)  # more item properties

    @property
    def mgrs_tile(self) -> str:
        """The MGRS square holding the scene's centre (the `T<tile>` of its product name)."""
        import mgrs
        from pyproj import Transformer

        h, w = self.truth.shape[1:]
        lon, lat = Transformer.from_crs(self.epsg, 4326, always_xy=True).transform(self.west + 5 * w,
                                                                                    self.north - 5 * h)
        return mgrs.MGRS().toMGRS(lat, lon, MGRSPrecision=0)

    @property
    def transform10(self) -> Affine:
        return Affine(10, 0, self.west, 0, -10, self.north)

    @property
    def transform20(self) -> Affine:
        return Affine(20, 0, self.west, 0, -20, self.north)

    def dn(self, band: str) -> np.ndarray:
        """Stored digital numbers of one band (at its own resolution); nodata where truth is 0."""
        i = BANDS.index(band)
        refl = self.truth[i].astype(np.float64)
        if band not in BANDS_10M:
            h, w = refl.shape
            refl = refl.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
        dn = np.where(refl > 0, np.clip(np.round(refl) - self.offset, 1, 65535), 0)
        return dn.astype(np.uint16)

    def scl10(self) -> np.ndarray:
        return np.repeat(np.repeat(self.scl, 2, axis=0), 2, axis=1)


def _disc(shape: tuple[int, int], cy: float, cx: float, r: float) -> np.ndarray:
    gy, gx = np.ogrid[0:shape[0], 0:shape[1]]
    return (gy - cy) ** 2 + (gx - cx) ** 2 <= r * r


def surface_classes(size: int, winter: bool) -> tuple[np.ndarray, np.ndarray]:
    """(20 m SCL of the ground, 20 m snow mask): where the lake, terrain shadow, bare ground,
    unclassified pixels and (in winter) snow lie. The ground does not move between scenes."""
    half = size // 2
    scl = np.full((half, half), SCL_VEGETATION, np.uint8)
    scl[_disc(scl.shape, 0.75 * half, 0.25 * half, 0.1 * half)] = 5  # bare ground, a quarry
    scl[_disc(scl.shape, 0.3 * half, 0.7 * half, 0.09 * half)] = 6  # a lake
    scl[_disc(scl.shape, 0.85 * half, 0.8 * half, 0.07 * half)] = 2  # a north-facing slope in shadow
    scl[(np.arange(half)[:, None] * 7 + np.arange(half)[None] * 13) % 97 == 0] = 7  # unclassified, scattered
    snow = _disc(scl.shape, 0.15 * half, 0.15 * half, 0.12 * half) if winter else np.zeros_like(scl, bool)
    scl[snow] = 11
    return scl, snow


def fabricate(n_scenes: int, size: int, seed: int = 0, epsg: int = 32632, west: float = 500000.0,
              north: float = 5000000.0, start: dt.datetime = dt.datetime(2023, 6, 2, 10, 30, tzinfo=dt.UTC),
              every_days: int = 5, cloud_share: float = 0.3, clouds: int = 1) -> list[FakeScene]:
    """`n_scenes` scenes of `size` x `size` px (size even) over one area, each with `clouds` clouds
    (a high probability core in a medium-probability rim) sharing `cloud_share` of the area, their
    shadows and a cirrus veil at random places, on ground with every kept SCL class; every third
    scene ends in the swath's no-data edge. Reflectance is a smooth landscape plus per-scene noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / max(size, 1)
    base = np.stack([1500 + 800 * np.sin(6 * xx + k) * np.cos(4 * yy - k) + 300 * k for k in range(len(BANDS))])
    half = size // 2

    def ten(mask20: np.ndarray) -> np.ndarray:
        return np.repeat(np.repeat(mask20, 2, 0), 2, 1)

    scenes = []
    for s in range(n_scenes):
        when = start + dt.timedelta(days=every_days * s)
        ground, snow = surface_classes(size, when.month in (12, 1, 2))
        truth = np.clip(base + rng.normal(0, 60, base.shape), 50, 9000).round().astype(np.float64)
        truth[:, ten(ground == 6)] = WATER[:, None] + rng.normal(0, 10, (len(BANDS), int(ten(ground == 6).sum())))
        truth[:, ten(ground == 2)] *= 0.4
        truth[:, ten(snow)] = SNOW[:, None]
        scl = ground.copy()
        core, rim, shadow = (np.zeros_like(ground, bool) for _ in range(3))
        r = int(half * np.sqrt(cloud_share / clouds / np.pi))
        for _ in range(clouds):
            cy, cx = rng.integers(0, half, 2)
            core |= _disc(scl.shape, cy, cx, r)
            rim |= _disc(scl.shape, cy, cx, r + 1.5) if r > 0 else False
            shadow |= _disc(scl.shape, cy + r // 2, cx + r, r // 2)
        rim &= ~core
        shadow &= ~core & ~rim
        cirrus = _disc(scl.shape, *rng.integers(0, half, 2), max(r // 2, 1)) & ~core & ~rim if r > 0 else core
        saturated = np.zeros_like(core)
        saturated[rng.integers(0, half, 2), rng.integers(0, half, 2)] = True
        scl[shadow], scl[cirrus], scl[rim], scl[core], scl[saturated] = 3, 10, 8, SCL_CLOUD_HIGH, 1
        truth[:, ten(core)] = 8500  # bright cloud tops: they must never leak into a composite
        truth[:, ten(rim)] = 0.5 * truth[:, ten(rim)] + 3500
        truth[:, ten(cirrus)] = 0.7 * truth[:, ten(cirrus)] + 1500
        truth[:, ten(shadow)] *= 0.3
        truth[:, ten(saturated)] = 30000  # stored as 65535
        if s % 3 == 2:  # the swath's edge: no data in any band, SCL 0
            edge = np.add.outer(np.arange(half), np.arange(half)) > 1.6 * half
            scl[edge] = 0
            truth[:, ten(edge)] = 0
        scene = FakeScene("", when, epsg, west, north, truth, scl)
        scene.id = f"S2B_T{scene.mgrs_tile}_{when:%Y%m%dT%H%M%S}_L2A"  # Earth Search's ids name the MGRS tile
        scenes.append(scene)
    return scenes


def _write_band(path: Path, data: np.ndarray, epsg: int, transform: Affine, driver: str) -> None:
    profile = dict(driver=driver, width=data.shape[1], height=data.shape[0], count=1, dtype=data.dtype.name,
                   crs=f"EPSG:{epsg}", transform=transform, nodata=0)
    if driver == "COG":
        profile |= dict(compress="deflate", blocksize=256, overview_resampling="nearest")
    else:  # JP2OpenJPEG, lossless as ESA's products are
        profile |= dict(QUALITY="100", REVERSIBLE="YES", RESOLUTIONS="2")
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)


def _footprint(scene: FakeScene) -> tuple[dict, list[float]]:
    h, w = scene.truth.shape[1:]
    bounds = transform_bounds(f"EPSG:{scene.epsg}", "EPSG:4326", scene.west, scene.north - 10 * h,
                              scene.west + 10 * w, scene.north)
    w_, s_, e_, n_ = bounds
    ring = [[w_, s_], [e_, s_], [e_, n_], [w_, n_], [w_, s_]]
    return {"type": "Polygon", "coordinates": [ring]}, list(bounds)


def _cdse_assets(scene: FakeScene, folder: Path) -> dict[str, tuple[str, str, np.ndarray]]:
    """The Copernicus Data Space's layout: the item's assets are the JP2 files inside the SAFE product
    (hrefs s3://eodata/Sentinel-2/MSI/L2A/YYYY/MM/DD/<name>.SAFE/GRANULE/... there; local paths here)."""
    safe = write_safe(scene, folder / "eodata", dated=True)
    found = {}
    for band in (*BANDS, "SCL"):
        res = "10m" if band in BANDS_10M else "20m"
        path = next(safe.glob(f"GRANULE/*/IMG_DATA/R{res}/*_{band}_{res}.jp2"))
        found[band] = (f"{band}_{res}", str(path.resolve()), scene.scl if band == "SCL" else scene.dn(band))
    return found


def stac_item(scene: FakeScene, folder: Path, style: str = "earth-search-c1") -> pystac.Item:
    """Write the scene's files under `folder` and return its Item in a catalogue's style:
    `earth-search-c1` (offset in raster:bands), `earth-search-old` (the boa_offset_applied flag,
    a constant -0.1 in raster:bands), `planetary-computer` (only s2:processing_baseline), `cdse`
    (the Copernicus Data Space STAC as its item generator writes it: JP2 assets keyed `B02_10m` ...
    `SCL_20m` inside the SAFE product, `processing:version`, `grid:code`, and STAC 1.1 asset fields
    `raster:offset` -0.1 / `raster:scale` 0.0001 on every product, whatever its baseline)."""
    geometry, bbox = _footprint(scene)
    props = {"platform": scene.platform, "eo:cloud_cover": scene.cloud_cover, **scene.extra}
    if style == "cdse":
        props |= {"processing:version": scene.baseline, "grid:code": f"MGRS-{scene.mgrs_tile}",
                  "product:type": "S2MSI2A"}
    else:
        props["s2:processing_baseline"] = scene.baseline
    if style == "earth-search-old":
        props.setdefault("earthsearch:boa_offset_applied", scene.offset == 0 and float(scene.baseline) >= 4)
    item = pystac.Item(scene.id, geometry, bbox, scene.when, props)
    ProjectionExtension.ext(item, add_if_missing=True).epsg = scene.epsg
    if style == "cdse":
        files = _cdse_assets(scene, folder)
    else:
        keys = {b: b for b in EARTH_SEARCH_KEYS} if style == "planetary-computer" else EARTH_SEARCH_KEYS
        files = {}
        for band, key in keys.items():
            data = scene.scl if band == "SCL" else scene.dn(band)
            path = folder / scene.id / f"{band}.tif"
            _write_band(path, data, scene.epsg, scene.transform10 if band in BANDS_10M else scene.transform20, "COG")
            files[band] = (key, str(path.resolve()), data)
    for band, (key, href, data) in files.items():
        ten = band in BANDS_10M
        raster: dict = {"nodata": 0, "data_type": data.dtype.name}
        extra: dict = {}
        if band != "SCL" and style == "earth-search-c1":
            raster |= {"scale": 0.0001, "offset": scene.offset / 10000}
        elif band != "SCL" and style == "earth-search-old":
            raster |= {"scale": 0.0001, "offset": -0.1}
        if style == "cdse":
            extra = {"nodata": 0, "data_type": data.dtype.name, **({"raster:scale": 0.0001, "raster:offset": -0.1}
                                                                   if band != "SCL" else {})}
        else:
            extra = {"raster:bands": [raster]}
        asset = pystac.Asset(href, media_type="image/jp2" if style == "cdse" else pystac.MediaType.COG,
                             roles=["data"], extra_fields=extra)
        item.add_asset(key, asset)
        proj = ProjectionExtension.ext(asset)
        proj.shape, proj.transform = list(data.shape), list(scene.transform10 if ten else scene.transform20)[:6]
    return item


def write_catalog(scenes: list[FakeScene], folder: Path, style: str | list[str] = "earth-search-c1") -> Path:
    """A self-contained static STAC catalog (catalog.json) of the scenes; `style` for all of them,
    or one per scene (a catalogue that mixes styles, as a user's merged item collection does)."""
    folder = Path(folder)
    styles = [style] * len(scenes) if isinstance(style, str) else list(style)
    catalog = pystac.Catalog("fake-l2a", "Fabricated Sentinel-2 L2A scenes")
    for scene, one in zip(scenes, styles, strict=True):
        catalog.add_item(stac_item(scene, folder / "data", one))
    catalog.normalize_hrefs(str(folder))
    catalog.save(pystac.CatalogType.SELF_CONTAINED)
    return folder / "catalog.json"


MTD_TEMPLATE = """<?xml version="1.0" encoding="UTF-8"?>
<n1:Level-2A_User_Product xmlns:n1="https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-2A.xsd">
  <n1:General_Info>
    <Product_Info>
      <PRODUCT_START_TIME>{when}</PRODUCT_START_TIME>
      <PRODUCT_URI>{name}.SAFE</PRODUCT_URI>
      <PROCESSING_LEVEL>Level-2A</PROCESSING_LEVEL>
      <PROCESSING_BASELINE>{baseline}</PROCESSING_BASELINE>
      <Datatake datatakeIdentifier="GS2B_{stamp}">
        <SPACECRAFT_NAME>{platform}</SPACECRAFT_NAME>
        <DATATAKE_SENSING_START>{when}</DATATAKE_SENSING_START>
      </Datatake>
    </Product_Info>
    <Product_Image_Characteristics>
      <QUANTIFICATION_VALUES_LIST>
        <BOA_QUANTIFICATION_VALUE unit="none">10000</BOA_QUANTIFICATION_VALUE>
      </QUANTIFICATION_VALUES_LIST>
{offsets}
    </Product_Image_Characteristics>
  </n1:General_Info>
  <n1:Geometric_Info>
    <Product_Footprint><Product_Footprint><Global_Footprint>
      <EXT_POS_LIST>{footprint}</EXT_POS_LIST>
    </Global_Footprint></Product_Footprint></Product_Footprint>
  </n1:Geometric_Info>
  <n1:Quality_Indicators_Info>
    <Cloud_Coverage_Assessment>{cloud}</Cloud_Coverage_Assessment>
  </n1:Quality_Indicators_Info>
</n1:Level-2A_User_Product>
"""


def safe_name(scene: FakeScene, processed: dt.datetime | None = None) -> str:
    """`MMM_MSIL2A_<sensing>_N<baseline>_R<orbit>_T<tile>_<processing time>`, as ESA names products."""
    stamp = f"{scene.when:%Y%m%dT%H%M%S}"
    discriminator = f"{processed:%Y%m%dT%H%M%S}" if processed else stamp
    return f"S2B_MSIL2A_{stamp}_N{scene.baseline.replace('.', '')}_R008_T{scene.mgrs_tile}_{discriminator}"


def write_safe(scene: FakeScene, folder: Path, *, dated: bool = False, zipped: bool = False,
               processed: dt.datetime | None = None) -> Path:
    """The scene as an L2A SAFE product: JP2 bands under GRANULE/*/IMG_DATA and MTD_MSIL2A.xml
    (BOA_ADD_OFFSET only from processing baseline 04.00 on, as ESA writes it). `dated`: under
    `folder/YYYY/MM/DD/` as the archive keeps products; `zipped`: as `<name>.SAFE.zip` holding
    `<name>.SAFE/`, as the Copernicus Browser downloads it; `processed`: the processing time in the
    name (a reprocessing of the same acquisition differs only there and in the baseline)."""
    stamp = f"{scene.when:%Y%m%dT%H%M%S}"
    name, tile = safe_name(scene, processed), scene.mgrs_tile
    folder = Path(folder) / f"{scene.when:%Y/%m/%d}" if dated else Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(prefix=".build-", dir=folder)) if zipped else folder
    safe = build / f"{name}.SAFE"
    img = safe / "GRANULE" / f"L2A_T{tile}_A000000_{stamp}" / "IMG_DATA"
    for band in (*BANDS, "SCL"):
        res = "10m" if band in BANDS_10M else "20m"
        data = scene.scl if band == "SCL" else scene.dn(band)
        _write_band(img / f"R{res}" / f"T{tile}_{stamp}_{band}_{res}.jp2", data, scene.epsg,
                    scene.transform10 if res == "10m" else scene.transform20, "JP2OpenJPEG")
    geometry, _ = _footprint(scene)
    footprint = " ".join(f"{lat} {lon}" for lon, lat in geometry["coordinates"][0])
    offsets = ""
    if float(scene.baseline) >= 4:
        lines = "".join(f'        <BOA_ADD_OFFSET band_id="{i}">{scene.offset}</BOA_ADD_OFFSET>\n' for i in range(13))
        offsets = f"      <BOA_ADD_OFFSET_VALUES_LIST>\n{lines}      </BOA_ADD_OFFSET_VALUES_LIST>"
    (safe / "MTD_MSIL2A.xml").write_text(MTD_TEMPLATE.format(
        when=scene.when.strftime("%Y-%m-%dT%H:%M:%S.000Z"), name=name, baseline=scene.baseline, stamp=stamp,
        platform="Sentinel-2B", offsets=offsets, footprint=footprint, cloud=scene.cloud_cover))
    if not zipped:
        return safe
    target = folder / f"{name}.SAFE.zip"
    with zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as archive:
        for path in sorted(safe.rglob("*")):
            archive.write(path, path.relative_to(build).as_posix())
    shutil.rmtree(build)
    return target


def truth_json(scenes: list[FakeScene]) -> str:
    """What was fabricated, for people reading a test's folder."""
    return json.dumps([{"id": s.id, "when": s.when.isoformat(), "offset": s.offset, "baseline": s.baseline}
                       for s in scenes], indent=2)


def scenes_over(bounds: tuple[float, float, float, float], epsg: int, year: int, per_season: int = 2,
                seed: int = 0, margin_m: float = 160.0, cloud_share: float = 0.12) -> list[FakeScene]:
    """Scenes covering `bounds` (west, south, east, north in `epsg`) with a margin, `per_season`
    in each season of `year` (winter from December of the year before), a week apart."""
    west, south, east, north = bounds
    west, north = west - margin_m, north + margin_m
    size = int(max(east + margin_m - west, north - (south - margin_m)) // 20) * 2
    starts = [dt.datetime(year - 1, 12, 10, 10, 30, tzinfo=dt.UTC)] + [
        dt.datetime(year, m, 10, 10, 30, tzinfo=dt.UTC) for m in (4, 7, 10)]
    made = []
    for k, start in enumerate(starts):
        made += fabricate(per_season, size, seed=seed * 10 + k, epsg=epsg, west=west, north=north, start=start,
                          every_days=7, cloud_share=cloud_share)
    return made
