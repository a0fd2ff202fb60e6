"""Batch inference: GIS-ready COGs, provenance, reruns, corrupt inputs, kills and concurrency."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import numpy as np
import pytest
import rasterio
import torch
from rasterio.enums import ColorInterp
from rio_cogeo.cogeo import cog_validate

from conftest import REPO, TINY_TRAIN
from landcover.classes import NUM_CLASSES
from landcover.cli import main as cli_main
from landcover.config import Params, load_params
from landcover.dataset import TileRef, discover_tiles
from landcover.fuelmap import OUTPUTS
from landcover.inference.stage import run_predict
from landcover.model.bundle import ModelBundle
from landcover.model.loading import load_bundle
from landcover.model.pyfunc import log_bundle_model
from landcover.splitfile import read_split
from landcover.synth.generate import SynthOptions, generate
from landcover.tracking import connect

# TTA on tiles that are exactly one window (the tiny dataset's 64 px, no overlap): no blending or
# padding stands between the network's output and the written probabilities
TTA_ONE_WINDOW = {"inference.tta": True, "inference.window": 64, "inference.overlap": 0}
SHARP_TEMPERATURE = 0.5


@pytest.fixture(scope="module")
def params():
    return load_params(REPO / "params.yaml", TINY_TRAIN)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three tiles of 100 px: a size no window divides."""
    root = tmp_path_factory.mktemp("pred") / "data"
    generate(root, SynthOptions(cities=3, tiles_per_city=1, size=100, seed=9))
    return root


@pytest.fixture(scope="module")
def predicted(inputs, tiny_model, params, tmp_path_factory):
    out = tmp_path_factory.mktemp("out") / "fuelmaps"
    result = run_predict(params, inputs, out, tiny_model.model_uri)
    return out, result


def _digest(out: Path) -> dict[str, str]:
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(out.rglob("*.tif"))}


def test_outputs_are_valid_cogs_on_the_input_grid(predicted, inputs, params) -> None:
    out, result = predicted
    assert len(result.written) == 3 and not result.failed
    crosswalk = {v for zone in (None, *params.fuel.zones) for v in params.fuel.for_zone(zone).values()}
    for tile in discover_tiles(inputs)[0]:
        with rasterio.open(tile.season_path("summer")) as src:
            grid = (src.crs, src.transform, src.shape)
        for name in OUTPUTS:
            path = out / tile.city_id / tile.tile_id / name
            valid, errors, _ = cog_validate(path, quiet=True)
            assert valid, (path, errors)
            with rasterio.open(path) as ds:
                assert (ds.crs, ds.transform, ds.shape) == grid
                assert ds.dtypes[0] == "uint8" and ds.nodata == 0
                assert ds.overviews(1), f"{path}: no overviews"
                data = ds.read(1)
                tags = ds.tags()
                assert json.loads(tags["model"])["run_id"]
                assert tags["crosswalk_version"] == params.fuel.crosswalk_version
                if name == "landcover.tif":
                    assert set(np.unique(data)) <= set(range(11))
                    assert ds.colorinterp[0] == ColorInterp.palette
                    assert ds.colormap(1)[8][:3] == (0x33, 0xA0, 0x2C)
                    assert tags["CLASS_9"] == "Coniferous Forest"
                    assert ds.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
                elif name == "fuel.tif":
                    assert set(np.unique(data)) <= crosswalk | {0}
                    assert ds.colorinterp[0] == ColorInterp.palette
                else:
                    assert data.max() <= 100 and data[data > 0].min() >= 10
        tile_out = out / tile.city_id / tile.tile_id
        prov = json.loads((tile_out / "provenance.json").read_text())
        assert set(prov["inputs"]) == {"spring.tif", "summer.tif", "autumn.tif", "winter.tif"}
        assert "Coniferous Forest" in (tile_out / "landcover.tif.aux.xml").read_text()
        item = json.loads((tile_out / "item.json").read_text())
        assert any("classification" in e for e in item["stac_extensions"])
        assert item["assets"]["landcover"]["classification:classes"][0]["value"] == 1


def test_fuel_is_the_crosswalk_of_landcover(predicted, params) -> None:
    """Each tile's fuel is the crosswalk row of its city's climate zone (tests/test_landscape.py
    checks the zones themselves)."""
    out, _ = predicted
    for lc in out.rglob("landcover.tif"):
        zone = json.loads(lc.with_name("provenance.json").read_text())["crosswalk_zone"]
        lut = np.zeros(256, np.uint8)
        for k, v in params.fuel.for_zone(zone).items():
            lut[k] = v
        with rasterio.open(lc) as a, rasterio.open(lc.with_name("fuel.tif")) as b:
            assert np.array_equal(lut[a.read(1)], b.read(1))


def test_rerun_does_no_work(predicted, inputs, tiny_model, params) -> None:
    out, _ = predicted
    before = _digest(out)
    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("*.tif")}
    again = run_predict(params, inputs, out, tiny_model.model_uri)
    assert len(again.skipped) == 3 and not again.written
    assert _digest(out) == before
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.tif")} == mtimes


def test_corrupt_tile_is_reported_and_others_complete(inputs, tiny_model, tmp_path, capsys) -> None:
    data = tmp_path / "data"
    shutil.copytree(inputs, data)
    bad = discover_tiles(data)[0][1]
    path = bad.season_path("winter")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])  # truncated
    (data / "tiles" / bad.city_id / "bad..id").mkdir()
    out = tmp_path / "out"
    sets = [f"--set={k}={v}" for k, v in TINY_TRAIN.items()]
    code = cli_main(["--params", str(REPO / "params.yaml"), *sets, "predict", "--input", str(data), "--out",
                     str(out), "--model", tiny_model.model_uri])
    err = capsys.readouterr().err
    assert code == 1
    assert f"failed {bad.key}" in err and "winter.tif" in err
    assert "bad..id" in err
    assert len(list(out.rglob("landcover.tif"))) == 2
    assert not (out / bad.city_id / bad.tile_id / "landcover.tif").exists()


def _predict_cmd(inputs: Path, out: Path, model_uri: str) -> list[str]:
    sets = [f"--set={k}={v}" for k, v in TINY_TRAIN.items()]
    return [sys.executable, "-m", "landcover.cli", "--params", str(REPO / "params.yaml"), *sets, "predict",
            "--input", str(inputs), "--out", str(out), "--model", model_uri]


@pytest.mark.slow
def test_killed_run_resumes_to_identical_outputs(predicted, inputs, tiny_model, mlflow_store, tmp_path) -> None:
    reference, _ = predicted
    out = tmp_path / "out"
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_store}
    proc = subprocess.Popen(_predict_cmd(inputs, out, tiny_model.model_uri), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not list(out.rglob("provenance.json")):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len(list(out.rglob("provenance.json")))
    assert done_before < 3, "the run finished before it was killed"
    rerun = subprocess.run(_predict_cmd(inputs, out, tiny_model.model_uri), env=env, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert _digest(out) == _digest(reference)
    assert not [p for p in out.rglob("*") if p.name.startswith(".")], "stray temporary files"


@pytest.mark.slow
def test_two_concurrent_runs_on_one_folder(inputs, tiny_model, mlflow_store, tmp_path, predicted) -> None:
    reference, _ = predicted
    out = tmp_path / "out"
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_store}
    procs = [subprocess.Popen(_predict_cmd(inputs, out, tiny_model.model_uri), env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [r[1][-1000:] for r in results]
    assert _digest(out) == _digest(reference)
    for path in out.rglob("*.tif"):
        assert cog_validate(path, quiet=True)[0]
    summaries = [json.loads((out / "run_summary.json").read_text())]
    assert summaries[0]["tiles_written"] + summaries[0]["tiles_skipped"] == 3


def test_unknown_model_is_a_clear_error(inputs, mlflow_store, tmp_path, capsys) -> None:
    code = cli_main(["--params", str(REPO / "params.yaml"), "predict", "--input", str(inputs), "--out",
                     str(tmp_path / "o"), "--model", "models:/no-such-model@champion"])
    assert code == 1
    err = capsys.readouterr().err.strip()
    assert "no-such-model" in err and len(err.splitlines()) == 1


def test_outputs_carry_their_names_and_open_styled(predicted, tmp_path) -> None:
    """A `.tif` copied alone (no `.aux.xml`, no style) still names its classes and fuel models; the
    `.qml` beside each raster gives QGIS the raster's own colour table with the names, the `.sld`
    the same for map servers."""
    import shutil
    import xml.etree.ElementTree as ET

    from landcover.classes import CLASSES, colormap
    from landcover.fuel import FBFM40, fuel_colormap

    out, _ = predicted
    tile_out = next(p.parent for p in out.rglob("landcover.tif"))
    alone = tmp_path / "alone"
    alone.mkdir()
    for name in ("landcover.tif", "fuel.tif"):
        shutil.copy(tile_out / name, alone / name)
    with rasterio.open(alone / "landcover.tif") as ds:
        assert {int(k[6:]): v for k, v in ds.tags().items() if k.startswith("CLASS_")} == {
            c.code: c.name for c in CLASSES}
    with rasterio.open(alone / "fuel.tif") as ds:
        assert ds.tags()["FUEL_165"] == "TU5 Very high load, dry climate timber-shrub"

    for stem, table, names in (("landcover", colormap(), {c.code: c.name for c in CLASSES}),
                               ("fuel", fuel_colormap(), {k: v[1] for k, v in FBFM40.items()})):
        qml = ET.fromstring((tile_out / f"{stem}.qml").read_text().split("\n", 1)[1])
        entries = qml.findall("./pipe/rasterrenderer[@type='paletted']/colorPalette/paletteEntry")
        assert len(entries) == len(names)
        for e in entries:
            code = int(e.get("value"))
            assert e.get("color") == "#{:02x}{:02x}{:02x}".format(*table[code][:3])
            assert names[code] in e.get("label")
        sld = ET.fromstring((tile_out / f"{stem}.sld").read_text())
        ns = {"sld": "http://www.opengis.net/sld"}
        assert len(sld.findall(".//sld:ColorMap[@type='values']/sld:ColorMapEntry", ns)) == len(names)
    ramp = ET.fromstring((tile_out / "confidence.qml").read_text().split("\n", 1)[1])
    items = ramp.findall(".//colorrampshader[@colorRampType='INTERPOLATED']/item")
    assert [int(i.get("value")) for i in items] == sorted(int(i.get("value")) for i in items)
    assert items[-1].get("value") == "100"


def test_a_stac_collection_walks_every_tile(predicted) -> None:
    """pystac opens the run's collection.json and reaches every tile's item and assets; the
    collection and items pass the STAC core schemas pystac ships (extension schemas would need the
    network, so they are not checked here)."""
    import pystac
    from pystac.validation import RegisteredValidator

    out, result = predicted
    collection = pystac.Collection.from_file(str(out / "collection.json"))
    items = list(collection.get_items(recursive=True))
    assert sorted(i.id.replace(".", "/") for i in items) == sorted(result.written)
    validator = RegisteredValidator.get_validator()
    version = pystac.get_stac_version()
    validator.validate_core(collection.to_dict(), pystac.STACObjectType.COLLECTION, version)
    for item in items:
        validator.validate_core(item.to_dict(), pystac.STACObjectType.ITEM, version)
        assert item.get_collection().id == collection.id
        assert Path(item.assets["landcover"].get_absolute_href()).is_file()
    w, s, e, n = collection.extent.spatial.bboxes[0]
    assert all(w <= i.bbox[0] and i.bbox[2] <= e and s <= i.bbox[1] and i.bbox[3] <= n for i in items)


def varied_model_uri(p: Params, model_uri: str, folder: Path, temperature: float = SHARP_TEMPERATURE) -> str:
    """The tiny model with its class head sharpened (weights x 20, bias 0) and `temperature` in its
    bundle, logged as a new MLflow model. The smoke-trained model predicts one class almost everywhere
    with near-uniform probabilities: TTA moves them by < 0.5 % (under the outputs' percent
    quantisation) and a confusion matrix has one column, so no wrong computation would show."""
    bundle, _ = load_bundle(model_uri)
    head = [m for m in bundle.network.modules() if isinstance(m, torch.nn.Conv2d) and m.out_channels == NUM_CLASSES]
    with torch.no_grad():
        head[-1].weight *= 20
        head[-1].bias.zero_()
    bundle.meta.temperature = temperature
    bundle.save(folder / "bundle")
    with mlflow.start_run(experiment_id=connect(p.tracking_uri(), p.mlflow.experiment)):
        return log_bundle_model(folder / "bundle").model_uri


@torch.no_grad()
def d4_logits(bundle: ModelBundle, tile: TileRef) -> tuple[list[torch.Tensor], np.ndarray]:
    """The bundle's network on each of the eight flips and rotations of a one-window tile, each output
    turned back (identity view first): (C, H, W) float64 logits, and the (H, W) mask of pixels with
    any observation. Written from the definitions (z-scores of reflectance, torch.rot90 / flip), not
    with landcover's normalisation or D4 helpers."""
    dn = np.concatenate([rasterio.open(tile.season_path(s)).read() for s in bundle.meta.seasons]).astype(np.float64)
    assert dn.shape[1:] == (64, 64), "the comparison needs a tile that is exactly one window"
    mean, std = (np.asarray(bundle.meta.norm[k], np.float64)[:, None, None] for k in ("mean", "std"))
    x = torch.from_numpy(np.where(dn > 0, (dn / 10000 - mean) / std, 0.0)).float()[None]
    views = []
    for k in range(4):
        for flip in (False, True):
            view = torch.rot90(x, k, dims=(2, 3))
            out = bundle.network(view.flip(3) if flip else view).double()[0]
            views.append(torch.rot90(out.flip(2) if flip else out, -k, dims=(1, 2)))
    return views, (dn > 0).any(0)


def mean_softmax(views: list[torch.Tensor], temperature: float) -> np.ndarray:
    """(C, H, W) mean over the views of softmax(logits / T): TTA's probabilities."""
    return (sum(torch.softmax(v / temperature, dim=0) for v in views) / len(views)).numpy()


def test_tta_probabilities_are_the_mean_of_the_eight_d4_views(tiny_model, tiny_dataset, tiny_split, mlflow_store,
                                                               tmp_path) -> None:
    """`landcover predict` with `inference.tta: true` writes, per class, the mean of the eight D4
    views' calibrated probabilities, computed here without landcover's code."""
    p = load_params(REPO / "params.yaml", TINY_TRAIN)
    uri = varied_model_uri(p, tiny_model.model_uri, tmp_path)
    sets = [f"--set={k}={v}" for k, v in {**TINY_TRAIN, **TTA_ONE_WINDOW, "predict.probabilities": True}.items()]
    assert cli_main(["--params", str(REPO / "params.yaml"), *sets, "predict", "--input", str(tiny_dataset), "--out",
                     str(tmp_path / "out"), "--model", uri, "--split", str(tiny_split), "--subset", "test"]) == 0
    bundle, _ = load_bundle(uri)
    tiles = read_split(tiny_split, tiny_dataset, "test")
    apart = {"no TTA": 0, "T = 1": 0}  # probabilities the comparison tells apart from the right ones
    for tile in tiles:
        views, valid = d4_logits(bundle, tile)
        want = mean_softmax(views, SHARP_TEMPERATURE)
        folder = tmp_path / "out" / tile.city_id / tile.tile_id
        with rasterio.open(folder / "probabilities.tif") as pr, rasterio.open(folder / "landcover.tif") as lc:
            got, codes = pr.read().astype(np.float64), lc.read(1)
        assert (got[:, ~valid] == 255).all() and (codes[~valid] == 0).all()
        # uint8 percent, round(100 p): within half a percent of the reference, plus float noise
        assert np.abs(got[:, valid] - 100 * want[:, valid]).max() <= 0.5 + 1e-3
        top = np.sort(want, axis=0)
        clear = valid & (top[-1] - top[-2] > 1e-4)  # not a near-tie that float noise may flip
        assert np.array_equal(codes[clear], want.argmax(0)[clear] + 1)
        for name, wrong in (("no TTA", mean_softmax(views[:1], SHARP_TEMPERATURE)), ("T = 1", mean_softmax(views, 1))):
            apart[name] += int((np.abs(100 * (wrong - want))[:, valid] > 1.0).sum())
    assert min(apart.values()) > 100, apart
