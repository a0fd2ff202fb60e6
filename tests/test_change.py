"""Change between two map versions: a known synthetic change is found, noise below the confidence
threshold is not, the matrix adds up to the mapped area, and mismatched grids are a clear error."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio
from rasterio.transform import from_origin

from conftest import REPO
from landcover.change.stage import SUMMARY, run_change
from landcover.classes import BROADLEAVED, GRASSLAND, URBAN, WATER
from landcover.cli import main as cli_main
from landcover.config import load_params
from landcover.fuelmap import PROVENANCE
from landcover.transitions import BASE

SIZE = 60
PX_KM2 = 1e-4  # a 10 m pixel


def write_map(root: Path, key: str, landcover: np.ndarray, confidence: np.ndarray, model: str,
              transform=from_origin(500000, 5000000, 10, 10), crs: str = "EPSG:32632") -> None:
    folder = root / key
    folder.mkdir(parents=True)
    for name, data in (("landcover.tif", landcover), ("confidence.tif", confidence)):
        with rasterio.open(folder / name, "w", driver="GTiff", width=SIZE, height=SIZE, count=1, dtype="uint8",
                           crs=crs, transform=transform, nodata=0) as dst:
            dst.write(data.astype(np.uint8), 1)
    (folder / PROVENANCE).write_text(json.dumps({"model": {"name": "m", "version": model,
                                                           "uri": f"models:/m/{model}"}}))


@pytest.fixture()
def versions(tmp_path: Path) -> tuple[Path, Path]:
    """Forest with a river; in the later map a 20 x 20 px block of forest became town (both maps
    sure), 50 scattered pixels flipped to grassland at 40 % confidence (noise), one corner unmapped."""
    rng = np.random.default_rng(0)
    before = np.full((SIZE, SIZE), BROADLEAVED, np.uint8)
    before[:, 28:31] = WATER
    after = before.copy()
    after[5:25, 5:25] = URBAN
    conf_before = np.full((SIZE, SIZE), 90, np.uint8)
    conf_after = conf_before.copy()
    noise = rng.choice(np.flatnonzero(before[30:, 35:].ravel() == BROADLEAVED), 50, replace=False)
    rows, cols = np.unravel_index(noise, (30, 25))
    after[rows + 30, cols + 35] = GRASSLAND
    conf_after[rows + 30, cols + 35] = 40
    before[:4, -4:] = 0  # unmapped corner in the earlier map
    conf_before[:4, -4:] = 0
    write_map(tmp_path / "before", "C1/t0", before, conf_before, "3")
    write_map(tmp_path / "after", "C1/t0", after, conf_after, "4")
    write_map(tmp_path / "before", "C1/t1", before, conf_before, "3")  # only in the earlier run
    return tmp_path / "before", tmp_path / "after"


def test_a_known_change_is_found_and_noise_is_not(versions, tmp_path) -> None:
    before, after = versions
    p = load_params(REPO / "params.yaml")
    result = run_change(p, before, after, tmp_path / "change")
    assert not result.failed, result.failed
    assert result.written == ["C1/t0"] and result.only_before == ["C1/t1"]
    out = tmp_path / "change" / "C1" / "t0"
    with rasterio.open(out / "transition.tif") as ds:
        codes = ds.read(1)
        assert ds.tags()[f"TRANSITION_{BROADLEAVED * BASE + URBAN}"] == "Broadleaved Forest -> Urban"
        assert ds.colormap(1)[BROADLEAVED * BASE + URBAN][:3] == (0xFB, 0x9A, 0x99)  # the new class's colour
    with rasterio.open(out / "change_mask.tif") as ds:
        mask = ds.read(1)
    assert (codes[5:25, 5:25] == BROADLEAVED * BASE + URBAN).all()
    assert (mask == 2).sum() == 400 and (mask[5:25, 5:25] == 2).all()  # the town, and nothing else
    assert (mask == 3).sum() == 50  # the noise: differs, but not sure enough
    assert (mask == 0).sum() == 16 and (codes == 0).sum() == 16

    rows = list(csv.reader((tmp_path / "change" / "transitions.csv").open()))
    header, body = rows[0], {r[0]: r[1:] for r in rows[1:]}
    to_urban = float(body["Broadleaved Forest"][header.index("Urban") - 1])
    assert to_urban == pytest.approx(400 * PX_KM2)
    mapped = (SIZE * SIZE - 16) * PX_KM2
    assert float(body["total"][-1]) == pytest.approx(mapped)  # the matrix adds up to the mapped area
    summary = json.loads((tmp_path / "change" / SUMMARY).read_text())
    assert summary["mapped_km2"] == pytest.approx(mapped) and summary["changed_km2"] == pytest.approx(450 * PX_KM2)
    assert [m["version"] for m in summary["models"]["before"]] == ["3"]
    assert [m["version"] for m in summary["models"]["after"]] == ["4"]
    assert summary["top_transitions"][0] == {"from": "Broadleaved Forest", "to": "Urban", "km2": 0.04}
    gains = {r["class"]: r for r in csv.DictReader((tmp_path / "change" / "gains_losses.csv").open())}
    assert float(gains["Urban"]["gain_km2"]) == pytest.approx(0.04)
    assert float(gains["Broadleaved Forest"]["net_km2"]) == pytest.approx(-0.045)
    assert (tmp_path / "change" / "transitions.png").stat().st_size > 10_000
    qml = (out / "transition.qml").read_text()  # QGIS opens the transitions named and coloured
    assert 'label="Broadleaved Forest -&gt; Urban"' in qml and 'color="#fb9a99"' in qml
    assert "class differs, below the confidence threshold" in (out / "change_mask.sld").read_text()
    with rasterio.open(tmp_path / "change" / "C1" / "area" / "transition.tif") as ds:  # the city as one map
        assert np.array_equal(ds.read(1), codes) and ds.tags()[f"TRANSITION_{BASE + 1}"] == "Roads"
    assert (tmp_path / "change" / "C1" / "area" / "change_mask.vrt").is_file()
    item = pystac.Item.from_file(str(out / "item.json"))
    assert item.properties["landcover:after_model"]["version"] == "4"
    # pystac's bundled core schema; the extension schemas it would fetch need the network
    from pystac.validation import RegisteredValidator

    RegisteredValidator.get_validator().validate_core(item.to_dict(), pystac.STACObjectType.ITEM,
                                                      pystac.get_stac_version())


def test_maps_on_different_grids_are_a_clear_error(versions, tmp_path, capsys) -> None:
    before, after = versions
    shifted = tmp_path / "shifted"
    land = np.full((SIZE, SIZE), BROADLEAVED, np.uint8)
    write_map(shifted, "C1/t0", land, np.full((SIZE, SIZE), 90, np.uint8), "5",
              transform=from_origin(500010, 5000000, 10, 10))
    code = cli_main(["--params", str(REPO / "params.yaml"), "change", "--before", str(before), "--after",
                     str(shifted), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 1
    assert "C1/t0: the maps are on different grids" in err
