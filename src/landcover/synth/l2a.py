"""Fabricated Sentinel-2 L2A scenes with known clouds, shadows and offsets, written as a static
STAC catalog (in the styles of Earth Search Collection 1, Earth Search's older collection, and
Planetary Computer) or as SAFE products. They stand in for real archives in the tests, the
benchmark and the offline demo of `landcover mosaic`: every pixel's truth is known.

A scene covers an area on the 10 m grid of one UTM zone: four 10 m bands, six 20 m bands (2 x 2
averages of the 10 m truth, as a 20 m sensor sees it) and a 20 m SCL. Stored DN = reflectance x
10000 - offset, so a scene with BOA_ADD_OFFSET -1000 stores 1000 more.
"""

from __future__ import annotations

import datetime as dt
import json
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


def fabricate(n_scenes: int, size: int, seed: int = 0, epsg: int = 32632, west: float = 500000.0,
              north: float = 5000000.0, start: dt.datetime = dt.datetime(2023, 6, 2, 10, 30, tzinfo=dt.UTC),
              every_days: int = 5, cloud_share: float = 0.3) -> list[FakeScene]:
    """`n_scenes` scenes of `size` x `size` px (size even) over one area, each with a cloud and its
    shadow at random places; reflectance is a smooth landscape plus per-scene noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / max(size, 1)
    base = np.stack([1500 + 800 * np.sin(6 * xx + k) * np.cos(4 * yy - k) + 300 * k for k in range(len(BANDS))])
    scenes = []
    for s in range(n_scenes):
        truth = np.clip(base + rng.normal(0, 60, base.shape), 50, 9000).round().astype(np.float64)
        scl = np.full((size // 2, size // 2), SCL_VEGETATION, np.uint8)
        cy, cx = rng.integers(0, size // 2, 2)
        r = int(size // 2 * np.sqrt(cloud_share / np.pi))
        gy, gx = np.ogrid[0:size // 2, 0:size // 2]
        cloud = (gy - cy) ** 2 + (gx - cx) ** 2 <= r * r
        shadow = (gy - cy - r // 2) ** 2 + (gx - cx - r) ** 2 <= (r // 2) ** 2
        scl[shadow & ~cloud], scl[cloud] = SCL_SHADOW, SCL_CLOUD_HIGH
        cloud10 = np.repeat(np.repeat(cloud, 2, 0), 2, 1)
        shadow10 = np.repeat(np.repeat(shadow & ~cloud, 2, 0), 2, 1)
        truth[:, cloud10] = 8500  # bright cloud tops: they must never leak into a composite
        truth[:, shadow10] *= 0.3
        when = start + dt.timedelta(days=every_days * s)
        scenes.append(FakeScene(f"S2B_T32TMR_{when:%Y%m%dT%H%M%S}_L2A", when, epsg, west, north, truth, scl))
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


def stac_item(scene: FakeScene, folder: Path, style: str = "earth-search-c1") -> pystac.Item:
    """Write the scene's COGs under `folder` and return its Item in a catalogue's style:
    `earth-search-c1` (offset in raster:bands), `earth-search-old` (the boa_offset_applied flag,
    a constant -0.1 in raster:bands), `planetary-computer` (only s2:processing_baseline)."""
    geometry, bbox = _footprint(scene)
    props = {"platform": scene.platform, "eo:cloud_cover": scene.cloud_cover,
             "s2:processing_baseline": scene.baseline, **scene.extra}
    if style == "earth-search-old":
        props.setdefault("earthsearch:boa_offset_applied", scene.offset == 0 and float(scene.baseline) >= 4)
    item = pystac.Item(scene.id, geometry, bbox, scene.when, props)
    ProjectionExtension.ext(item, add_if_missing=True).epsg = scene.epsg
    keys = {b: b for b in EARTH_SEARCH_KEYS} if style == "planetary-computer" else EARTH_SEARCH_KEYS
    for band, key in keys.items():
        data = scene.scl if band == "SCL" else scene.dn(band)
        ten = band in BANDS_10M
        path = folder / scene.id / f"{band}.tif"
        _write_band(path, data, scene.epsg, scene.transform10 if ten else scene.transform20, "COG")
        raster: dict = {"nodata": 0, "data_type": data.dtype.name}
        if band != "SCL" and style == "earth-search-c1":
            raster |= {"scale": 0.0001, "offset": scene.offset / 10000}
        elif band != "SCL" and style == "earth-search-old":
            raster |= {"scale": 0.0001, "offset": -0.1}
        asset = pystac.Asset(str(path.resolve()), media_type=pystac.MediaType.COG, roles=["data"],
                             extra_fields={"raster:bands": [raster]})
        item.add_asset(key, asset)
        proj = ProjectionExtension.ext(asset)
        proj.shape, proj.transform = list(data.shape), list(scene.transform10 if ten else scene.transform20)[:6]
    return item


def write_catalog(scenes: list[FakeScene], folder: Path, style: str = "earth-search-c1") -> Path:
    """A self-contained static STAC catalog (catalog.json) of the scenes."""
    folder = Path(folder)
    catalog = pystac.Catalog("fake-l2a", "Fabricated Sentinel-2 L2A scenes")
    for scene in scenes:
        catalog.add_item(stac_item(scene, folder / "data", style))
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


def write_safe(scene: FakeScene, folder: Path) -> Path:
    """The scene as an L2A SAFE product: JP2 bands under GRANULE/*/IMG_DATA and MTD_MSIL2A.xml
    (BOA_ADD_OFFSET only from processing baseline 04.00 on, as ESA writes it)."""
    stamp = f"{scene.when:%Y%m%dT%H%M%S}"
    name = f"S2B_MSIL2A_{stamp}_N{scene.baseline.replace('.', '')}_R008_T32TMR_{stamp}"
    safe = Path(folder) / f"{name}.SAFE"
    img = safe / "GRANULE" / f"L2A_T32TMR_A000000_{stamp}" / "IMG_DATA"
    for band in (*BANDS, "SCL"):
        res = "10m" if band in BANDS_10M else "20m"
        data = scene.scl if band == "SCL" else scene.dn(band)
        _write_band(img / f"R{res}" / f"T32TMR_{stamp}_{band}_{res}.jp2", data, scene.epsg,
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
    return safe


def truth_json(scenes: list[FakeScene]) -> str:
    """What was fabricated, for people reading a test's folder."""
    return json.dumps([{"id": s.id, "when": s.when.isoformat(), "offset": s.offset, "baseline": s.baseline}
                       for s in scenes], indent=2)


def scenes_over(bounds: tuple[float, float, float, float], epsg: int, year: int, per_season: int = 2,
                seed: int = 0, margin_m: float = 160.0, cloud_share: float = 0.2) -> list[FakeScene]:
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
