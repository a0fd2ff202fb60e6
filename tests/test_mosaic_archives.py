"""SAFE products as users hold them: flat folders, the Copernicus archive's dated layout (with a
reprocessed duplicate and products that must never be opened), the Copernicus Browser's zips, and
the Copernicus Data Space preset's credentials."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import numpy as np
import pytest

from landcover.bands import SEASONS
from landcover.config import load_params
from landcover.mosaic.opening import open_source
from landcover.mosaic.safe import ProductName, SafeSource, walk_products
from landcover.mosaic.sources import SourceError, StacApiSource
from landcover.synth.l2a import fabricate, safe_name, write_safe
from mosaic_reference import EPSG, NORTH, SIZE, TILE, WEST, mosaic, read_tile, reference

DATED = Path("Sentinel-2/MSI/L2A")  # the Copernicus Data Space eodata layout
MIRROR = Path("Sentinel-2/L2A")  # some mirrors'
FILES = (*(f"{s}.tif" for s in SEASONS), "clear_count.tif")


@pytest.fixture(scope="module")
def scenes():
    return fabricate(3, SIZE, seed=21, epsg=EPSG, west=WEST, north=NORTH)


def _decoy(folder: Path, name: str) -> Path:
    """A product folder with nothing inside: opening it fails, so a search that opens it fails."""
    path = folder / f"{name}.SAFE"
    path.mkdir(parents=True)
    return path


def test_dated_archives_and_zips_give_the_flat_folders_tiles(scenes, tmp_path) -> None:
    for s in scenes:
        write_safe(s, tmp_path / "flat")
    archive = tmp_path / "eodata"
    write_safe(scenes[0], archive / DATED, dated=True, processed=dt.datetime(2024, 5, 16, 2, 24, 40))
    write_safe(scenes[1], archive / DATED, dated=True)
    write_safe(scenes[2], archive / MIRROR, dated=True, zipped=True)
    # the same acquisition in an older processing, with other pixels: the newest baseline must win
    old = dataclasses.replace(scenes[0], baseline="04.00", truth=np.full_like(scenes[0].truth, 7000.0))
    old_path = write_safe(old, archive / DATED, dated=True)
    # products a search must never open: outside every season of 2023, and on a tile far away
    _decoy(archive / DATED / "2021/07/15", "S2B_MSIL2A_20210715T103021_N0509_R008_T32TNQ_20210715T120000")
    _decoy(archive / DATED / "2023/06/02", "S2A_MSIL2A_20230602T093041_N0509_R136_T35WMT_20230602T120000")

    assert not mosaic(tmp_path / "flat", tmp_path / "from-flat").failed
    result = mosaic(archive, tmp_path / "from-archive")
    assert result.written == [TILE.key], result.failed
    for name in FILES:
        assert (tmp_path / "from-archive/tiles/c1/r00c00" / name).read_bytes() == \
            (tmp_path / "from-flat/tiles/c1/r00c00" / name).read_bytes(), name
    pixels, _, manifest = read_tile(tmp_path / "from-archive")
    assert np.array_equal(pixels, reference(scenes)[0])
    summer = manifest["seasons"]["summer"]
    assert len(summer["scenes"]) == 3
    superseded = {e["id"]: e["reason"] for e in summer["excluded"]}
    old_id = old_path.name.removesuffix(".SAFE")
    assert list(superseded) == [old_id] and "processing baseline 05.09 over 04.00" in superseded[old_id]
    assert manifest["request"]["source"] == {"kind": "safe", "path": str(archive.resolve())}

    # one zipped product given directly is read in place, nothing unpacked beside it
    zipped = next((archive / MIRROR).rglob("*.SAFE.zip"))
    before = sorted(p.name for p in zipped.parent.iterdir())
    assert not mosaic(zipped, tmp_path / "one-zip").failed
    assert read_tile(tmp_path / "one-zip")[2]["seasons"]["summer"]["scenes"][0]["id"] == safe_name(scenes[2])
    assert sorted(p.name for p in zipped.parent.iterdir()) == before


def test_a_search_prunes_by_date_folder_name_and_tile_before_opening_anything(scenes, tmp_path) -> None:
    root = tmp_path / "eodata"
    keep = write_safe(scenes[0], root / DATED, dated=True)
    inside = write_safe(scenes[1], root / DATED, dated=True, zipped=True)
    _decoy(root / DATED / "2023/03/02", "S2B_MSIL2A_20230302T103021_N0509_R008_T32TMR_20230302T120000")
    _decoy(root / DATED / "2023/06/02", "S2B_MSIL2A_20230602T103021_N0509_R008_T29SND_20230602T120000")
    _decoy(root / DATED / "2023/06/30", "S2B_MSIL2A_20230502T103021_N0509_R008_T32TMR_20230502T120000")
    june = (dt.datetime(2023, 6, 1, tzinfo=dt.UTC), dt.datetime(2023, 7, 1, tzinfo=dt.UTC))
    bbox = TILE.lonlat_bounds()
    assert sorted(walk_products(root, *june, bbox)) == sorted([keep, inside])
    assert len(list(walk_products(root))) == 5  # unpruned, every product is there
    items = SafeSource(root).search(bbox, *june, 100.0)  # opens only the two: the decoys would fail
    assert sorted(i.id for i in items) == sorted([keep.name.removesuffix(".SAFE"), safe_name(scenes[1])])
    with pytest.raises(SourceError, match="20230302T120000.SAFE/MTD_MSIL2A.xml: cannot read"):
        SafeSource(root).search(bbox, dt.datetime(2023, 3, 1, tzinfo=dt.UTC), dt.datetime(2023, 3, 31,
                                                                                          tzinfo=dt.UTC), 100.0)


def test_product_names_parse_as_esa_writes_them() -> None:
    name = ProductName.parse("S2A_MSIL2A_20180826T103021_N0208_R108_T32TMR_20180826T135147.SAFE")
    assert name == ProductName("S2A", dt.datetime(2018, 8, 26, 10, 30, 21, tzinfo=dt.UTC), "02.08", 108, "32TMR",
                               "20180826T135147")
    assert ProductName.parse("S2C_MSIL2A_20250101T000000_N0511_R001_T01CCV_20250101T010101.SAFE.zip").tile == "01CCV"
    assert ProductName.parse("S2A_MSIL1C_20180826T103021_N0206_R108_T32TMR_20180826T123456.SAFE") is None


def test_an_empty_folder_is_refused_by_name(tmp_path) -> None:
    (tmp_path / "Sentinel-2/MSI/L2A/2023/06/02").mkdir(parents=True)
    p = load_params(Path(__file__).resolve().parents[1] / "params.yaml")
    with pytest.raises(SourceError, match="holds no .SAFE product"):
        open_source(str(tmp_path), p.mosaic)


def test_the_copernicus_data_space_preset_needs_s3_keys_from_the_environment(monkeypatch) -> None:
    p = load_params(Path(__file__).resolve().parents[1] / "params.yaml")
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(SourceError, match="AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"):
        open_source("cdse", p.mosaic)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "id")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    source = open_source("cdse", p.mosaic)
    assert isinstance(source, StacApiSource)
    assert source.preset.url == "https://stac.dataspace.copernicus.eu/v1"
    assert source.preset.s3_endpoint == "eodata.dataspace.copernicus.eu"
    assert source.description == {"kind": "stac-api", "url": source.preset.url, "collection": "sentinel-2-l2a"}
